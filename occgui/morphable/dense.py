"""MediaPipe's dense face mesh as a fitting target (not in the paper; issue 15's head-scan criterion).

Eq. 12 pins the model with 68 points; where there are none (cheeks, the nose's sides, the
forehead) the shape is the prior's. MediaPipe's face mesh, which the landmark stage runs anyway,
places 468 surface points with a depth each. :func:`dense_loss` pulls the model's vertices under
those points towards them: their 2-D positions (crop pixels, like Eq. 12) and, with a smaller
weight, their depths relative to the face's mean depth (MediaPipe's z is in the same pixel units as
x). Which model vertex lies under which MediaPipe point is a per-model map; the embedded ICT model's
is ``resources/morphable/ict_face_reduced_mediapipe.json``, made by
``tools/derive_ict_mediapipe_map.py`` (MediaPipe run on renders of the model's mean face). Models
without a map (the full ICT folder, BFM) fit without the term.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import OccguiError

#: MediaPipe's face-mesh surface points (478 minus the 10 iris points).
MESH_POINTS = 468
#: The embedded model's map (``resources/``).
DENSE_MAP = "morphable/ict_face_reduced_mediapipe.json"


def map_path():
    """Where the embedded model's map lives."""
    from ..resources import resource_path

    return resource_path(DENSE_MAP)


@dataclass(frozen=True)
class DenseMap:
    """MediaPipe point ``points[k]`` lies on model vertex ``vertices[k]``."""

    points: np.ndarray     # (M,) int64, MediaPipe point ids in [0, 468)
    vertices: np.ndarray   # (M,) int64, model vertex ids

    @classmethod
    def from_record(cls, record, num_vertices: int, source="the dense map") -> "DenseMap":
        """From the map file's parsed JSON (``{"vertices": [468 ids or -1], ...}``)."""
        try:
            ids = np.asarray(record["vertices"], dtype=np.int64)
        except (ValueError, KeyError, TypeError, IndexError):
            raise OccguiError(f"{source} is not a MediaPipe-to-model vertex map") from None
        if ids.shape != (MESH_POINTS,) or ids.max(initial=-1) >= num_vertices or ids.min(initial=0) < -1:
            raise OccguiError(f"{source} must map {MESH_POINTS} points to vertex ids below {num_vertices} "
                              f"(or -1), got {ids.shape} ids in [{ids.min(initial=0)}, {ids.max(initial=0)}]")
        keep = np.flatnonzero(ids >= 0)
        return cls(points=keep, vertices=ids[keep])

    @classmethod
    def from_json(cls, text: str, num_vertices: int, source="the dense map") -> "DenseMap":
        try:
            record = json.loads(text)
        except ValueError:
            raise OccguiError(f"{source} is not a MediaPipe-to-model vertex map") from None
        return cls.from_record(record, num_vertices, source)


def default_dense_map(model) -> DenseMap | None:
    """The map of the embedded model, or None for any other model (or when the file is absent)."""
    path = map_path()
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise OccguiError(f"{path} is not JSON") from None
    if not isinstance(record, dict) or record.get("model") != model.name:
        return None
    return DenseMap.from_record(record, model.num_vertices, path)


def dense_loss(predicted: torch.Tensor, target: torch.Tensor, depth_weight: float) -> torch.Tensor:
    """Mean squared distance of the mapped vertices' screen positions ``predicted`` ((M, 3): x, y in
    pixels, z towards the camera in the same units) to MediaPipe's points ``target`` ((M, 3): x, y,
    z with z *away* from the camera, MediaPipe's convention); the depths compared after removing
    each one's mean, weighted by ``depth_weight``."""
    d_xy = ((predicted[:, :2] - target[:, :2]) ** 2).sum(-1).mean()
    if depth_weight <= 0:
        return d_xy
    zp = predicted[:, 2] - predicted[:, 2].mean()
    zt = -(target[:, 2] - target[:, 2].mean())
    return d_xy + depth_weight * ((zp - zt) ** 2).mean()
