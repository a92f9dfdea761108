"""The GUI's document model, free of Qt: one photo, its stage results, the edited landmarks.

The document is the single source of truth the views display (napari's "layer model" role).
It knows which landmarks every landmark-dependent result was computed from, so staleness is
exact: a stage is *stale* when the landmarks on screen differ from the ones its result used,
and it stops being stale when the edit is undone or the stage is recomputed.

Coordinates: landmarks are kept in *photo* pixels (as in ``landmarks.json`` and
``PipelineResult.landmarks_in_photo``); the views convert to working-image pixels with
:attr:`FaceDocument.scale`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline.runner import STAGES, PipelineResult, downstream_of

#: Stages whose results depend on the landmarks (recomputed after an edit).
LANDMARK_DEPENDENT: tuple[str, ...] = downstream_of("landmarks")

#: Display states of a stage.
PENDING, RUNNING, DONE, CACHED, FAILED, CANCELLED = "pending", "running", "done", "cached", "failed", "cancelled"


def landmarks_to_photo(result_image, crop, points_crop: np.ndarray) -> np.ndarray:
    """(68,2) crop-pixel points -> photo pixels, through the crop and the working image."""
    return result_image.working_to_photo(crop.crop_to_working(points_crop))


def same_points(a: np.ndarray | None, b: np.ndarray | None, tol: float = 1e-6) -> bool:
    """True when both are None or both are arrays of equal shape within ``tol``."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.allclose(a, b, atol=tol, rtol=0.0))


class FaceDocument:
    """State of the window's one open photo.

    * ``results[stage]``: the latest result shown for each stage (values are shared with the
      pipeline's cache and never modified).
    * ``landmarks``: the 68 points on screen (photo px); ``detected``: the detector's own points.
    * ``computed_with[stage]``: the landmarks a landmark-dependent result was computed from.
    * ``states[stage]``: pending / running / done / cached / failed / cancelled.
    """

    def __init__(self) -> None:
        self.photo: Path | None = None
        self.results: dict[str, Any] = {}
        self.states: dict[str, str] = {s: PENDING for s in STAGES}
        self.seconds: dict[str, float] = {}
        self.landmarks: np.ndarray | None = None
        self.detected: np.ndarray | None = None
        self.computed_with: dict[str, np.ndarray] = {}
        self.last_result: PipelineResult | None = None
        self.run_counts: dict[str, int] = {}

    # -- photo -------------------------------------------------------------------------------
    def open(self, photo: str | Path) -> None:
        """Start over with a new photo: every result, landmark and state is dropped."""
        self.__init__()
        self.photo = Path(photo)

    @property
    def has_photo(self) -> bool:
        return self.photo is not None

    @property
    def image(self):
        """The ``LoadedImage`` of the photo, once stage ``load`` has run."""
        return self.results.get("load")

    @property
    def crop(self):
        return self.results.get("detect")

    @property
    def scale(self) -> float:
        """Working-image pixels per photo pixel (1.0 before the photo is loaded)."""
        return float(self.image.scale) if self.image is not None else 1.0

    # -- stage results -----------------------------------------------------------------------
    def mark_running(self, stage: str) -> None:
        self.states[stage] = RUNNING

    def set_result(self, stage: str, value, *, cached: bool, seconds: float,
                   used_landmarks: np.ndarray | None) -> bool:
        """Record one stage's result. ``used_landmarks``: the photo-px points the run was given
        (None = the detected ones). Returns True when the value differs from the one shown."""
        changed = self.results.get(stage) is not value
        self.results[stage] = value
        self.states[stage] = CACHED if cached else DONE
        self.seconds[stage] = seconds
        if stage == "landmarks":
            detected_crop = value.detected_points if value.detected_points is not None else value.points
            self.detected = landmarks_to_photo(self.image, self.crop, detected_crop)
            if self.landmarks is None:
                self.landmarks = landmarks_to_photo(self.image, self.crop, value.points)
        if stage in LANDMARK_DEPENDENT or stage == "landmarks":
            used = used_landmarks if used_landmarks is not None else self.detected
            self.computed_with[stage] = None if used is None else np.array(used, dtype=np.float64)
        return changed

    def finish_run(self, result: PipelineResult, run_counts: dict[str, int]) -> None:
        self.last_result = result
        self.run_counts = dict(run_counts)

    def end_run(self, state: str) -> None:
        """A run stopped early (``failed`` or ``cancelled``): stages still running or pending get
        that state, those already shown keep theirs."""
        for s in STAGES:
            if self.states[s] in (RUNNING, PENDING):
                self.states[s] = state if self.states[s] == RUNNING else PENDING

    def begin_run(self) -> None:
        """A new run starts: stages without a result are pending again."""
        for s in STAGES:
            if s not in self.results:
                self.states[s] = PENDING

    # -- landmarks ---------------------------------------------------------------------------
    def set_landmarks(self, points: np.ndarray) -> None:
        self.landmarks = np.array(points, dtype=np.float64).reshape(68, 2)

    def move_landmark(self, index: int, xy) -> None:
        pts = self.landmarks.copy()
        pts[index] = xy
        self.landmarks = pts

    @property
    def edited(self) -> bool:
        """True when the landmarks on screen differ from the detected ones."""
        return self.landmarks is not None and not same_points(self.landmarks, self.detected)

    def run_landmarks(self) -> np.ndarray | None:
        """The ``landmarks`` argument of the next :meth:`Pipeline.run`: the edited points, or
        None when they are the detected ones (a plain run)."""
        return self.landmarks.copy() if self.edited else None

    def stale_stages(self) -> frozenset[str]:
        """Landmark-dependent stages whose result was computed from other landmarks than the
        ones on screen."""
        if self.landmarks is None:
            return frozenset()
        out = set()
        for s in LANDMARK_DEPENDENT:
            if s in self.results and not same_points(self.computed_with.get(s), self.landmarks):
                out.add(s)
        return frozenset(out)

    @property
    def is_stale(self) -> bool:
        return bool(self.stale_stages())

    @property
    def complete(self) -> bool:
        """Every stage has a result and none is stale (export writes exactly what is shown)."""
        return all(s in self.results for s in STAGES) and not self.is_stale
