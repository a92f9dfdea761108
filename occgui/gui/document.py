"""The GUI's document model, free of Qt: one photo, its stage results, the user's corrections.

The document is the single source of truth the views display (napari's "layer model" role).
Corrections are the edited landmarks and the painted occluder (``occgui.corrections.AlphaEdit``,
crop pixels). The document knows which landmarks and which paint every dependent result was
computed from, so staleness is exact: a stage is *stale* when the landmarks on screen (or the
paint) differ from the ones its result used, and it stops being stale when the edit is undone
or the stage is recomputed.

Coordinates: landmarks are kept in *photo* pixels (as in ``landmarks.json`` and
``PipelineResult.landmarks_in_photo``); the views convert to working-image pixels with
:attr:`FaceDocument.scale`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import labels as L
from ..corrections import AlphaEdit, edit_digest
from ..pipeline.backends import reads_of
from ..pipeline.runner import STAGE_TABLE, STAGES, PipelineResult, downstream_of, painted_alpha_readers


def paint_dependent(reads: dict | None = None) -> tuple[str, ...]:
    """Stages whose results depend on the painted occluder, given what the chosen backends read
    (``backends.reads_of``): its readers and what follows them."""
    readers = painted_alpha_readers(reads)
    return tuple(s for s in STAGES if s in readers or any(s in downstream_of(r, reads) for r in readers))


#: Stages whose results depend on the landmarks (recomputed after an edit).
LANDMARK_DEPENDENT: tuple[str, ...] = downstream_of("landmarks")
#: Stages whose results depend on the painted occluder with the default backends (merge and what
#: follows reads it; the default geometry, MediaPipe's mesh, does not). A document whose geometry
#: is another backend uses :meth:`FaceDocument.set_geometry`'s set instead.
PAINT_DEPENDENT: tuple[str, ...] = paint_dependent(reads_of())


def paint_dependent_for(geometry: str | None) -> tuple[str, ...]:
    """:func:`paint_dependent` with geometry backend ``geometry`` (None: the default backends).
    The ``morphable`` fit reads M_alpha as painted, so with it ``geometry`` depends on the paint."""
    return PAINT_DEPENDENT if geometry is None else paint_dependent(reads_of({"geometry": geometry}))

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
    * ``alpha_edit``: the painted occluder on screen (crop px; None = no paint);
      ``computed_edit[stage]``: the digest of the paint a paint-dependent result used.
    * ``face_index``: the face of a group photo the results are for.
    * ``states[stage]``: pending / running / done / cached / failed / cancelled.
    * ``seconds[stage]``: how long the computation of the result shown took (kept when a later
      run reuses that very result; None when unknown); ``elapsed[stage]``: how long the stage ran
      before it was cancelled or failed.
    """

    def __init__(self, geometry: str | None = None) -> None:
        #: the geometry backend of the runs (None: the default) and the stages the paint reaches with it
        self.geometry: str | None = geometry
        self.paint_dependent: tuple[str, ...] = paint_dependent_for(geometry)
        self.photo: Path | None = None
        self.face_index = 0
        self.alpha_edit: AlphaEdit | None = None
        self.computed_edit: dict[str, str] = {}
        self.results: dict[str, Any] = {}
        self.states: dict[str, str] = {s: PENDING for s in STAGES}
        self.seconds: dict[str, float | None] = {}
        self.elapsed: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        self.source_key: str | None = None        # the photo file's key when it was loaded
        self.landmarks: np.ndarray | None = None
        self.detected: np.ndarray | None = None
        self.computed_with: dict[str, np.ndarray] = {}
        self.last_result: PipelineResult | None = None
        self.run_counts: dict[str, int] = {}

    # -- photo -------------------------------------------------------------------------------
    def set_geometry(self, backend: str | None) -> None:
        """The geometry backend the runs use from now on (None: the default); it decides whether
        the ``geometry`` stage depends on the painted occluder (:attr:`paint_dependent`). Kept when
        another photo is opened."""
        self.geometry = backend
        self.paint_dependent = paint_dependent_for(backend)

    def open(self, photo: str | Path, face_index: int = 0) -> None:
        """Start over with a new photo (or another face of it): every result, correction and
        state is dropped; the chosen geometry stays."""
        self.__init__(geometry=self.geometry)
        self.photo = Path(photo)
        self.face_index = int(face_index)

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
    def mark_running(self, stage: str, now: float | None = None) -> None:
        self.states[stage] = RUNNING
        self.started_at[stage] = time.perf_counter() if now is None else now
        self.elapsed.pop(stage, None)

    def set_result(self, stage: str, value, *, cached: bool, seconds: float,
                   used_landmarks: np.ndarray | None, used_edit: str = "") -> bool:
        """Record one stage's result. ``used_landmarks``: the photo-px points the run was given
        (None = the detected ones); ``used_edit``: the digest of its paint ('' = none). Returns
        True when the value differs from the one shown."""
        changed = self.results.get(stage) is not value
        self.results[stage] = value
        self.states[stage] = CACHED if cached else DONE
        if not cached:
            self.seconds[stage] = seconds
        elif changed:
            self.seconds[stage] = None         # reused from a run whose timing this window did not see
        self.started_at.pop(stage, None)
        self.elapsed.pop(stage, None)
        if stage == "load" and self.photo is not None and changed:
            from ..imageio import source_key

            self.source_key = source_key(self.photo)
        if stage == "landmarks":
            detected_crop = value.detected_points if value.detected_points is not None else value.points
            self.detected = landmarks_to_photo(self.image, self.crop, detected_crop)
            if self.landmarks is None:
                self.landmarks = landmarks_to_photo(self.image, self.crop, value.points)
        if stage in LANDMARK_DEPENDENT or stage == "landmarks":
            used = used_landmarks if used_landmarks is not None else self.detected
            self.computed_with[stage] = None if used is None else np.array(used, dtype=np.float64)
        self.computed_edit[stage] = used_edit    # every stage: a later geometry switch may make it paint-dependent
        return changed

    def finish_run(self, result: PipelineResult, run_counts: dict[str, int]) -> None:
        self.last_result = result
        self.run_counts = dict(run_counts)

    def end_run(self, state: str, now: float | None = None) -> str | None:
        """A run stopped early (``failed`` or ``cancelled``): the stage that was running gets that
        state (and how long it ran, :attr:`elapsed`), those already shown keep theirs. Returns
        the stage that was running, if any."""
        now = time.perf_counter() if now is None else now
        running = None
        for s in STAGES:
            if self.states[s] == RUNNING:
                running = s
                self.states[s] = state
                if s in self.started_at:
                    self.elapsed[s] = max(0.0, now - self.started_at.pop(s))
        return running

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

    # -- the painted occluder -----------------------------------------------------------------
    @property
    def alpha(self) -> np.ndarray | None:
        """The parser's M_alpha (crop px), once stage ``parse`` has run."""
        a = self.results.get("parse")
        return None if a is None else a.labels

    @property
    def can_paint(self) -> bool:
        return self.alpha is not None and self.crop is not None and self.image is not None

    def blank_edit(self) -> AlphaEdit:
        return AlphaEdit.blank(self.image, self.crop)

    def set_alpha_edit(self, edit: AlphaEdit | None) -> None:
        self.alpha_edit = None if edit is None or edit.empty else edit

    @property
    def painted(self) -> bool:
        return self.alpha_edit is not None and not self.alpha_edit.empty

    def run_alpha_edit(self) -> AlphaEdit | None:
        """The ``alpha_edit`` argument of the next run (None when nothing is painted)."""
        return self.alpha_edit if self.painted else None

    def occluder_mask(self) -> np.ndarray | None:
        """The occluder pixels of M_alpha as painted on screen (crop px)."""
        a = self.alpha
        if a is None:
            return None
        return (self.alpha_edit.apply(a) if self.painted else a) == L.OCCLUDER

    @property
    def has_corrections(self) -> bool:
        """Edited landmarks or a painted occluder."""
        return self.edited or self.painted

    # -- staleness ---------------------------------------------------------------------------
    def stale_stages(self) -> frozenset[str]:
        """Stages whose result was computed from other landmarks, or another paint, than the
        ones on screen."""
        out = set()
        if self.landmarks is not None:
            for s in LANDMARK_DEPENDENT:
                if s in self.results and not same_points(self.computed_with.get(s), self.landmarks):
                    out.add(s)
        digest = edit_digest(self.run_alpha_edit())
        for s in self.paint_dependent:
            if s in self.results and self.computed_edit.get(s, "") != digest:
                out.add(s)
        return frozenset(out)

    @property
    def is_stale(self) -> bool:
        return bool(self.stale_stages())

    @property
    def complete(self) -> bool:
        """Every stage has a result and none is stale (export writes exactly what is shown)."""
        return all(s in self.results for s in STAGES) and not self.is_stale

    def current_results(self) -> dict[str, Any]:
        """The results shown that were computed from the landmarks and paint on screen (what a run
        with them would compute again): every result but the stale ones, and the landmark stage's
        only when it holds the points on screen."""
        stale = self.stale_stages()
        out = {s: v for s, v in self.results.items() if s not in stale}
        if "landmarks" in out and not same_points(self.computed_with.get("landmarks"), self.landmarks):
            del out["landmarks"]
        return out

    def export_result(self, device: str = "cpu") -> PipelineResult | None:
        """The results on screen as one ``PipelineResult`` for the exporter, or None when they are
        not complete and current (:attr:`complete`). It is the last run's own result when the
        window shows exactly that; otherwise it is put together from the stage results shown,
        with their timings, the paint they used and the warnings a run would report."""
        if not self.complete:
            return None
        last = self.last_result
        if last is not None and all(last.get(s) is self.results[s] for s in STAGES) \
                and edit_digest(last.alpha_edit) == edit_digest(self.run_alpha_edit()):
            return last
        from ..results import ParsingMap

        r = self.results
        edit = self.run_alpha_edit()
        res = PipelineResult(device=device, alpha_edit=edit)
        for spec in STAGE_TABLE:
            setattr(res, spec.field, r[spec.name])
        if edit is not None:
            res.alpha_painted = ParsingMap(edit.apply(res.alpha.labels), "alpha", res.alpha.backend + "+painted")
        res.seconds = {s: (0.0 if self.states.get(s) == CACHED else float(self.seconds.get(s) or 0.0)) for s in STAGES}
        res.cached = [s for s in STAGES if self.states.get(s) == CACHED]
        res.backends = dict(last.backends) if last is not None else {}
        res.warnings = list(res.image.notes) + list(res.landmarks.warnings)
        return res
