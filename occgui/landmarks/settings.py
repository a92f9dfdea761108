"""Typed settings of the ``landmarks`` backends (``--option landmarks.FIELD=VALUE``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting


@dataclass(frozen=True)
class RefinerSettings:
    """Settings of the refined MediaPipe backend (:class:`occgui.landmarks.mediapipe_mesh.RefinedMeshLandmarks`)."""

    checkpoint: str = setting("", "landmark refiner checkpoint to load (.onnx); empty: the shipped "
                                  "checkpoints/landmark_refiner.onnx", "path")
    plausibility_gate: bool = setting(False, "keep the refined points only when they look at least as much like "
                                             "a face (shape residual) as MediaPipe's, else MediaPipe's (rule 4 of "
                                             "refine_guard; off by default, see checkpoints/parsing_unet.md)")
