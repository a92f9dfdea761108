"""The ``fisn`` backend of the ``synthesize`` stage: I_out drawn by the trained FISN generator.

Same inputs and the same typed :class:`~occgui.results.Synthesis` as the classical ``symmetric``
backend: the crop, M_alpha (the hole is its occluder class dilated by 2 px at 256, the classical
backend's and Telea's mask) and M_gamma (the layout the generator follows); every pixel outside
the hole is the photo's, bit for bit (:mod:`occgui.synthesis.fisn.composite`). The landmarks and
M_beta are not read (M_gamma already carries them).

* **Checkpoint**: :attr:`FISNSettings.checkpoint`, default the shipped
  ``checkpoints/fisn_generator.safetensors`` (:func:`occgui.resources.checkpoint_path`). A missing
  or malformed file is a one-line :class:`~occgui.errors.CheckpointError` naming it.
* **Version**: the checkpoint's content digest (``fisn@<digest>``), so the stage's cache keys and
  the reports change with the weights.
* **Device**: CUDA when the pipeline runs on CUDA; else CPU with :func:`cpu_threads` torch
  threads while the generator runs (the process-wide setting is restored afterwards).

This module imports torch only when the backend is created: a pipeline that does not select it
stays torch-free on CPU (``tests/test_parsing_unet.py::test_cpu_run_does_not_import_torch``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import CheckpointError
from ..results import Landmarks, Synthesis
from .settings import FISN_CHECKPOINT_NAME, FISNSettings

#: Threads used when the machine is idle enough (the generator is small: more do not help).
MAX_IDLE_THREADS = 4


def checkpoint_file(settings: FISNSettings | None = None) -> Path:
    """The checkpoint the backend loads: the setting's path, else the shipped one."""
    from ..resources import checkpoint_path

    given = (settings or FISNSettings()).checkpoint
    return Path(given).expanduser() if given else checkpoint_path(FISN_CHECKPOINT_NAME)


def shipped_checkpoint_exists() -> bool:
    """Whether the shipped FISN generator is installed (no torch import)."""
    return checkpoint_file().is_file()


def auto_threads(load1: float, cores: int) -> int:
    """Torch threads for one inference: 1 when the 1-minute load average ``load1`` is at least
    ``cores - 1`` (the other processes already use the cores; oversubscribed OpenMP threads wait
    on each other at every operation: 10x slower inference measured, docs/fisn.md), else
    ``min(cores, MAX_IDLE_THREADS)``."""
    cores = max(1, int(cores))
    if cores == 1 or load1 >= cores - 1:
        return 1
    return min(cores, MAX_IDLE_THREADS)


def cpu_threads(setting: int = 0) -> int:
    """The thread count for ``setting`` (> 0: itself; 0: :func:`auto_threads` of this machine now)."""
    if setting > 0:
        return int(setting)
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):       # no load average (Windows): assume shared
        load1 = float("inf")
    return auto_threads(load1, os.cpu_count() or 1)


class FISNDeocclusion:
    """Stage ``synthesize`` backend ``fisn`` (see the module docstring)."""

    name = "fisn"

    def __init__(self, ctx=None):
        from ..resources import checkpoint_digest

        self.settings: FISNSettings = getattr(ctx, "settings", None) or FISNSettings()
        self.device = getattr(ctx, "device", None) or "cpu"
        self.checkpoint = checkpoint_file(self.settings)
        if not self.checkpoint.is_file():
            raise CheckpointError(f"FISN checkpoint not found: {self.checkpoint} (the `fisn` synthesis backend needs "
                                  "the trained generator: `occgui train fisn`, or --option synthesize.checkpoint=PATH)")
        if self.device == "cuda":
            from ..device import cuda_available

            if not cuda_available():
                raise CheckpointError("the FISN generator was asked to run on CUDA but no CUDA device is available")
        from .fisn.inpainter import FISNInpainter

        self.inpainter = FISNInpainter(self.checkpoint, self.device)
        self.version = checkpoint_digest(self.checkpoint)
        self.network_size = int(self.inpainter.generator.config.size)

    def synthesize(self, crop_rgb: np.ndarray, landmarks: Landmarks, alpha: np.ndarray, beta: np.ndarray,
                   gamma: np.ndarray) -> Synthesis:
        rgb = np.ascontiguousarray(np.asarray(crop_rgb)[:, :, :3], dtype=np.uint8)
        alpha, gamma = np.asarray(alpha), np.asarray(gamma)
        threads = 0
        if self.device == "cpu":
            import torch

            threads = cpu_threads(self.settings.threads)
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                out = self.inpainter.synthesize(rgb, alpha, gamma)
            finally:
                torch.set_num_threads(before)
        else:
            out = self.inpainter.synthesize(rgb, alpha, gamma)
        return Synthesis(image=out.image, filled=out.filled, backend=self.name,
                         details=self._details(out.filled, gamma, threads))

    def _details(self, hole: np.ndarray, gamma: np.ndarray, threads: int) -> dict:
        """The classical backend's provenance keys (``hole_px``, ``sources``, ``features``): every
        hole pixel and every feature group M_gamma draws in the hole is ``generated``."""
        n = int(hole.sum())
        feats = {}
        if n:
            g = gamma[hole]
            feats = {name: "generated" for name, ids in L.FEATURE_GROUPS.items() if np.isin(g, ids).sum() >= 10}
        return {"hole_px": n, "sources": {"generated": 1.0} if n else {}, "features": feats,
                "network_size": self.network_size, "device": self.device, "threads": threads}
