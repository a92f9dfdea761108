"""The session controller: the document, the pipeline worker thread and the undo stack.

Views never touch the pipeline: they call the session's methods (open a photo, move a
landmark, paint the occluder, re-run, export, save or load corrections) and listen to its
signals. The session keeps the invariant that the ``Pipeline`` is only used from the worker
thread, and drops the events of superseded runs (a newer photo or re-run cancels the older job;
its late events are ignored by job id).

Opening a photo never clears the current work before the new photo has loaded: the run of the
new photo starts while the document still holds the old one, and only when its ``load`` stage
succeeds is the document switched (``photoOpened``). A broken file therefore leaves the photo,
its corrections and the undo stack as they were (``photoRejected``). Whether unsaved
corrections may be dropped is the window's question to ask first (:attr:`Session.unsaved_corrections`).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from ..corrections import Corrections, brush_mask, edit_digest, read_corrections, write_corrections
from ..errors import OccguiError
from ..imageio import is_image_path
from ..pipeline.runner import STAGES, PipelineConfig
from ..pipeline.stages import stage as stage_spec
from . import document as D
from .document import FaceDocument
from .undo_commands import MoveLandmarkCommand, PaintCommand, SetCorrectionsCommand, SetLandmarksCommand
from .worker import ExportJob, PipelineWorker, RunJob, RunOutcome, StageUpdate, WorkerThread

#: Delay between the last landmark edit and an automatic re-run (when enabled).
AUTO_RERUN_DELAY_MS = 350


def check_photo_path(path) -> str | None:
    """A one-line reason why ``path`` cannot be opened as a photo, or None when it looks fine."""
    p = Path(path)
    if not p.exists():
        return f"{p.name}: file not found"
    if p.is_dir():
        return f"{p.name}: is a folder, not an image file"
    if not is_image_path(p):
        return f"{p.name}: not an image file (use JPEG, PNG, BMP, TIFF or WebP)"
    return None


class Session(QObject):
    """Owns the document and drives the worker; see the module docstring."""

    photoOpened = Signal(str)                     # photo path (its load stage succeeded: the document switched)
    photoRejected = Signal(str, str)              # photo path, one line: it did not load, the document is unchanged
    alphaEditChanged = Signal()                   # document.alpha_edit (the painted occluder) changed
    correctionsSaved = Signal(str)                # corrections file written
    stageStateChanged = Signal(str)               # stage whose display state changed
    stageResult = Signal(str, object, object)     # stage, result value, display data (new values only)
    landmarksChanged = Signal()                   # document.landmarks changed
    stalenessChanged = Signal(frozenset)          # the stale stages
    progress = Signal(str, int, int)              # text, stages done, total
    busyChanged = Signal(bool)                    # a run is in flight
    runFinished = Signal(object)                  # RunOutcome
    runFailed = Signal(str, str)                  # kind, message
    exportFinished = Signal(str)                  # folder
    exportFailed = Signal(str)                    # message
    deviceReady = Signal(str, str, bool)          # device, description, CUDA available
    message = Signal(str, str)                    # level (info | warning | error), one line
    synthesisBackendChanged = Signal(str)         # the I_out backend the next runs use
    succeeded = Signal(str)                       # an action succeeded (run, export, save, load): older errors are void
    computeStopped = Signal(str)                  # the compute process stopped unexpectedly (why)
    computeRestarted = Signal(str)                # ... and a new one is ready

    _runRequested = Signal(object)
    _exportRequested = Signal(object)
    _configureRequested = Signal(str)
    _geometryRequested = Signal(object)
    _warmUpRequested = Signal()

    def __init__(self, config: PipelineConfig | None = None, parent=None, compute: str | None = None):
        super().__init__(parent)
        self.document = FaceDocument()
        self.undo_stack = QUndoStack(self)
        self.auto_rerun = False
        self.last_outcome: RunOutcome | None = None
        self.device = ""
        self.device_description = ""
        self.cuda_available = False
        self._ids = itertools.count(1)
        self._job = 0                       # latest run requested
        self._busy = False
        self._finished_job: int | None = None   # latest run that finished (what export writes)
        self._pending_export: str | None = None
        self._export_job = 0
        self._drag_ids = itertools.count(1)
        self._dragging = False
        self._pending_open: tuple[Path, int] | None = None   # photo (and face) whose run is loading it
        self._stroke: dict | None = None                       # the paint stroke in progress
        self._export_undo_index: int | None = None
        self._device_pref = (config.device if config is not None else "auto")
        #: the parse stage as the window was configured (what turning the hand evidence off goes back to)
        self._parse_base = ((config.backends.get("parse"), config.settings.get("parse")) if config is not None
                            else (None, None))
        self._parse_switched = False             # the last run named the parse stage to switch an option below
        #: mark MediaPipe's hands as occluder (see :meth:`set_hand_evidence`); starts as configured
        self.hand_evidence = self._configured_hand_evidence()
        #: grow the occluder over the forehead's hair (see :meth:`set_forehead_growth`); starts as configured
        self.forehead_growth = self._configured_forehead_growth()
        self._configured: str | None = None      # device preference last sent to the worker
        #: the ``synthesize`` backend chosen in the I_out view (None: the pipeline's) and the
        #: typed settings each backend is switched to with (absent: its defaults)
        self.synthesis_backend: str | None = None
        self.synthesis_settings: dict[str, object] = {}
        self._results_pref: str | None = None    # device preference the results shown were computed with
        self._ended_job = 0                      # a run the session ended itself (a cancel before it started)
        self._run_stats: dict[str, list[str]] = {"computed": [], "reused": []}
        self._run_stage: str | None = None       # the stage of the current run that started last
        self._restarting: str | None = None      # why the compute process is being restarted

        self._thread = WorkerThread()
        self._worker = PipelineWorker(config, compute)
        self._worker.moveToThread(self._thread)
        self._runRequested.connect(self._worker.run)
        self._exportRequested.connect(self._worker.export)
        self._configureRequested.connect(self._worker.configure)
        self._geometryRequested.connect(self._worker.set_geometry)
        self._warmUpRequested.connect(self._worker.warm_up)
        self._worker.stageUpdated.connect(self._on_stage_update)
        self._worker.runFinished.connect(self._on_run_finished)
        self._worker.runFailed.connect(self._on_run_failed)
        self._worker.exportFinished.connect(self._on_export_finished)
        self._worker.exportFailed.connect(self._on_export_failed)
        self._worker.deviceReady.connect(self._on_device_ready)
        self._worker.deviceFailed.connect(lambda msg: self.message.emit("error", msg))
        self._worker.computeStopped.connect(self._on_compute_stopped)
        self._worker.computeRestarted.connect(self._on_compute_restarted)
        self._thread.start()
        self._stopped = False
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

        self._auto_timer = QTimer(self)
        self._auto_timer.setSingleShot(True)
        self._auto_timer.setInterval(AUTO_RERUN_DELAY_MS)
        self._auto_timer.timeout.connect(self._auto_rerun_due)

    # -- lifecycle ---------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Start the pipeline and load its models now (in the worker), so the first run is fast."""
        self._ensure_configured()
        self._warmUpRequested.emit()

    def set_device(self, preference: str) -> None:
        """Use ``preference`` (auto | cpu | cuda) for the next runs (a fresh pipeline when it
        changes). Applied at once when the pipeline is already started, else at its start."""
        self._device_pref = preference
        if self._configured is not None:
            self._ensure_configured()

    def set_geometry(self, backend: str, preview: str | None = None) -> None:
        """Use geometry ``backend`` from the next run, the ``preview`` backend's mesh shown first
        (queued to the worker in order with the runs; see ``geometry_choice``)."""
        self.document.set_geometry(backend)
        self._geometryRequested.emit((backend, preview))

    def _ensure_configured(self) -> None:
        if self._configured != self._device_pref:
            self._configured = self._device_pref
            self._configureRequested.emit(self._device_pref)

    def shutdown(self) -> None:
        """Cancel any run and stop the worker thread (waits for the current stage to end)."""
        if self._stopped:
            return
        self._stopped = True
        self._auto_timer.stop()
        self._worker.request_cancel(self._job)
        if self._busy:
            self._worker.abort()
        self._thread.quit()
        self._thread.wait()
        self._worker.close_host()        # the thread has ended: safe to call from here

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def current_job(self) -> int:
        return self._job

    # -- photo and runs ----------------------------------------------------------------------
    def open_photo(self, path, face_index: int = 0) -> bool:
        """Start the pipeline on ``path`` (face ``face_index`` of a group photo); False (and a
        message) when it is plainly not a photo. The document switches to it once its ``load``
        stage succeeds (``photoOpened``); until then, and for good when it fails to load
        (``photoRejected``), the current photo and its corrections stay."""
        reason = check_photo_path(path)
        if reason:
            self.message.emit("error", reason)
            return False
        self._worker.request_cancel(self._job)
        self._pending_export = None
        self._pending_open = (Path(path).resolve(), int(face_index))
        self._start_run()
        return True

    def select_face(self, index: int) -> bool:
        """Reconstruct face ``index`` of the open photo (0 = largest); its corrections start over."""
        doc = self.document
        if not doc.has_photo:
            return False
        crop = doc.crop
        if crop is not None and not 0 <= index < crop.num_faces:
            self.message.emit("error", f"face {index + 1} requested but only {crop.num_faces} found")
            return False
        return self.open_photo(doc.photo, index)

    @property
    def opening(self) -> Path | None:
        """The photo being opened (its run has not loaded it yet), or None."""
        return None if self._pending_open is None else self._pending_open[0]

    def _commit_open(self) -> None:
        path, face = self._pending_open
        self._pending_open = None
        self._finished_job = None
        self._stroke = None
        self.document.open(path, face)
        self.undo_stack.clear()
        self.photoOpened.emit(str(path))
        for s in STAGES:
            self.stageStateChanged.emit(s)
        self.landmarksChanged.emit()
        self.alphaEditChanged.emit()
        self.stalenessChanged.emit(frozenset())

    def rerun(self) -> bool:
        """Run again with the landmarks on screen; only what they changed is recomputed."""
        if not self.document.has_photo:
            self.message.emit("warning", "Open a photo first (File \u25b8 Open or drop one on the window).")
            return False
        self._auto_timer.stop()
        self._worker.request_cancel(self._job)
        self._start_run()
        return True

    def set_synthesis_backend(self, name: str) -> bool:
        """Make I_out with backend ``name`` (e.g. ``fisn`` or the classical ``symmetric``) from now
        on, re-running at once when a photo is open: only ``synthesize`` and what reads it are
        recomputed (the other stages' cache keys do not involve it). False when nothing changed."""
        if name == self.synthesis_backend:
            return False
        self.synthesis_backend = name
        self.synthesisBackendChanged.emit(name)
        if self.document.has_photo:
            self.rerun()
        return True

    def set_hand_evidence(self, on: bool) -> bool:
        """Also mark the hands MediaPipe's hand-landmark model finds as occluder (the parse setting
        ``hand_evidence``; on by default, ``checkpoints/parsing_unet.md``), re-running at once when a
        photo is open: M_alpha and what reads it are recomputed; corrections are kept. False when
        nothing changed."""
        return self.set_parse_options(hand_evidence=on)

    def set_forehead_growth(self, on: bool) -> bool:
        """Grow the occluder found above the brows through the forehead's hair (the parse setting
        ``occluder_into_forehead``; on by default, ``checkpoints/parsing_unet.md``), re-running at once when
        a photo is open: M_alpha and what reads it are recomputed; corrections are kept. False when
        nothing changed."""
        return self.set_parse_options(forehead_growth=on)

    def set_parse_options(self, *, hand_evidence: bool | None = None, forehead_growth: bool | None = None) -> bool:
        """Set the hand evidence and the forehead growth (None: unchanged) and re-run once when a photo is
        open and either changed. False when nothing changed."""
        new = (self.hand_evidence if hand_evidence is None else bool(hand_evidence),
               self.forehead_growth if forehead_growth is None else bool(forehead_growth))
        if new == (self.hand_evidence, self.forehead_growth):
            return False
        self.hand_evidence, self.forehead_growth = new
        if self.document.has_photo:
            self.rerun()
        return True

    def _configured_unet_settings(self):
        """The U-Net's settings as the window was configured (its defaults when none were given)."""
        from ..parsing.settings import UNetSettings

        settings = self._parse_base[1]
        return settings if isinstance(settings, UNetSettings) else UNetSettings()

    def _configured_forehead_growth(self) -> bool:
        """The forehead growth of the parse stage as the window was configured (the U-Net's setting)."""
        return self._parse_base[0] in (None, "unet") and self._configured_unet_settings().occluder_into_forehead

    def _configured_hand_evidence(self) -> bool:
        """The hand evidence of the parse stage as the window was configured (the U-Net's setting)."""
        return self._parse_base[0] in (None, "unet") and self._configured_unet_settings().hand_evidence

    def _run_backends(self) -> dict:
        from dataclasses import replace

        out: dict = {}
        # A stage named here counts as switched (results kept across a compute-process restart are
        # recomputed from it on), so the parse stage is named only while the hand evidence or the forehead
        # growth differs from the configured one and in the one run that goes back to it.
        # (another parse backend than the U-Net has neither option: its stage is never named here)
        switched = self._parse_base[0] in (None, "unet") and (
            self.hand_evidence != self._configured_hand_evidence()
            or self.forehead_growth != self._configured_forehead_growth())
        if switched or self._parse_switched:
            backend, settings = self._parse_base
            if switched:
                settings = replace(self._configured_unet_settings(), hand_evidence=self.hand_evidence,
                                   occluder_into_forehead=self.forehead_growth)
            out["parse"] = (backend, settings)
            self._parse_switched = switched
        name = self.synthesis_backend
        if name is not None:
            out["synthesize"] = (name, self.synthesis_settings.get(name))
        return out

    def cancel(self) -> None:
        """Cancel the run in flight: between two stages, or by stopping the compute process when a
        stage does not come back within its grace period (a new process is started at once)."""
        if not self._busy:
            return
        job = self._job
        self._worker.request_cancel(job)
        self._pending_export = None
        if self._worker.current_run != job:        # not started yet (queued): it never will be
            self._on_run_failed(job, "cancelled", "Run cancelled.")
            self._ended_job = job
            return
        self.progress.emit("Cancelling\u2026", -1, len(STAGES))

    def _stats_text(self) -> str:
        c, r = len(self._run_stats["computed"]), len(self._run_stats["reused"])
        return f"{c} computed \u00b7 {r} reused"

    def _start_run(self) -> None:
        self._ensure_configured()
        self._job = next(self._ids)
        self._run_stats = {"computed": [], "reused": []}
        self._run_stage = None
        self._set_busy(True)
        doc = self.document
        if self._pending_open is not None:
            path, face = self._pending_open
            self.progress.emit(f"Opening {path.name}\u2026", 0, len(STAGES))
            self._runRequested.emit(RunJob(self._job, str(path), None, None, face, self._run_backends()))
            return
        doc.begin_run()
        self.progress.emit("Starting\u2026", 0, len(STAGES))
        kept = None
        if doc.source_key is not None and self._results_pref == self._device_pref:
            kept = (doc.source_key, doc.current_results())
        self._runRequested.emit(RunJob(self._job, str(doc.photo), doc.run_landmarks(), doc.run_alpha_edit(),
                                       doc.face_index, self._run_backends(), kept))

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def _on_stage_update(self, up: StageUpdate) -> None:
        if up.job != self._job or up.job == self._ended_job:
            return
        doc = self.document
        title = stage_spec(up.stage).title
        if up.state == "started":
            self._run_stage = up.stage
        else:
            self._run_stats["reused" if up.state == "cached" else "computed"].append(up.stage)
            self._results_pref = self._configured
        if self._pending_open is not None:
            if up.state == "started" or up.stage != "load":
                self.progress.emit(f"{title}\u2026", up.index, up.total)
                return
            self._commit_open()                  # the new photo loaded: now the document switches
        if up.state == "started":
            doc.mark_running(up.stage)
            self.progress.emit(f"{title}\u2026", up.index, up.total)
            self.stageStateChanged.emit(up.stage)
            return
        had_landmarks = doc.landmarks is not None
        changed = doc.set_result(up.stage, up.value, cached=up.state == "cached", seconds=up.seconds,
                                 used_landmarks=up.used_landmarks, used_edit=up.used_edit)
        self.progress.emit(title, up.index + 1, up.total)
        if changed:
            self.stageResult.emit(up.stage, up.value, up.display)
        self.stageStateChanged.emit(up.stage)
        if up.stage == "landmarks" and not had_landmarks:
            self.landmarksChanged.emit()
        if up.stage == "parse":
            self.alphaEditChanged.emit()        # the parser's occluder is what the paint edits
        if up.stage in D.LANDMARK_DEPENDENT or up.stage in doc.paint_dependent:
            self.stalenessChanged.emit(doc.stale_stages())

    def _on_run_finished(self, outcome: RunOutcome) -> None:
        if outcome.job != self._job or outcome.job == self._ended_job:
            return
        self.last_outcome = outcome
        self._finished_job = outcome.job
        self.document.finish_run(outcome.result, outcome.run_counts)
        self._set_busy(False)
        self.progress.emit(f"Done in {outcome.seconds:.2f} s \u00b7 {len(outcome.computed)} computed \u00b7 "
                           f"{len(outcome.reused)} reused", len(STAGES), len(STAGES))
        self.stalenessChanged.emit(self.document.stale_stages())
        self.succeeded.emit("run")
        self.runFinished.emit(outcome)
        for w in outcome.result.warnings:
            self.message.emit("info", w)
        if self._pending_export is not None:
            folder, self._pending_export = self._pending_export, None
            self.export_to(folder)

    def _on_run_failed(self, job: int, kind: str, message: str) -> None:
        if job != self._job or job == self._ended_job:
            return
        stage = self._run_stage
        where = f" during {stage_spec(stage).title}" if stage else ""
        done = len(self._run_stats["computed"]) + len(self._run_stats["reused"])
        if self._pending_open is not None:         # the new photo never loaded: keep the current one
            path = self._pending_open[0]
            self._pending_open = None
            if kind != "cancelled" and path.name not in message:
                message = f"{path.name}: {message}" + (" \u2014 the current photo is kept"
                                                       if self.document.has_photo else "")
            self._set_busy(False)
            self.progress.emit(f"Cancelled{where}: {path.name} was not opened" if kind == "cancelled"
                               else f"Could not open {path.name}", done, len(STAGES))
            self.runFailed.emit(kind, message)
            if kind != "cancelled":                # a cancel is said by the status line alone
                self.message.emit("error", message)
            self.photoRejected.emit(str(path), message)
            return
        self.document.end_run(D.CANCELLED if kind == "cancelled" else D.FAILED)
        for s in STAGES:
            self.stageStateChanged.emit(s)
        self._set_busy(False)
        self._pending_export = None
        self.progress.emit(f"{'Cancelled' if kind == 'cancelled' else 'Failed'}{where} \u00b7 {self._stats_text()}",
                           done, len(STAGES))
        self.runFailed.emit(kind, message)
        if kind != "cancelled":                    # a cancel is said by the status line alone (no relayout)
            self.message.emit("error", message)

    def _on_compute_stopped(self, reason: str) -> None:
        """The compute process stopped without being asked to: say so; the worker restarts it."""
        self._restarting = reason
        if not self._busy:            # a run in flight fails and says so itself
            then = "" if "not restarted" in reason else "; restarting it\u2026"
            self.progress.emit(f"The compute process stopped ({reason}){then}", -1, len(STAGES))
        self.computeStopped.emit(reason)

    def _on_compute_restarted(self, reason: str) -> None:
        self._restarting = None
        if not self._busy:
            kept = " \u00b7 the results on screen are kept" if self.document.results else ""
            self.progress.emit(f"Compute process restarted (the last one stopped: {reason}){kept}", -1, len(STAGES))
        self.computeRestarted.emit(reason)

    def _on_device_ready(self, device: str, description: str, cuda: bool) -> None:
        self.device, self.device_description, self.cuda_available = device, description, cuda
        self.deviceReady.emit(device, description, cuda)

    # -- landmarks ---------------------------------------------------------------------------
    def begin_drag(self) -> int:
        """A new drag of a handle starts; its moves merge into one undo step."""
        self._dragging = True
        return next(self._drag_ids)

    def end_drag(self) -> None:
        self._dragging = False
        if self.auto_rerun and self.document.is_stale:
            self._auto_timer.start()

    def move_landmark(self, index: int, xy, drag_id: int | None = None) -> None:
        """Move landmark ``index`` to ``xy`` (photo px) as an undoable edit."""
        doc = self.document
        if doc.landmarks is None:
            return
        old = doc.landmarks[index].copy()
        new = np.asarray(xy, dtype=np.float64)
        if np.allclose(old, new):
            return
        self.undo_stack.push(MoveLandmarkCommand(self._apply_move, index, old, new,
                                                 drag_id if drag_id is not None else next(self._drag_ids)))

    def set_landmarks(self, points, text: str = "Set landmarks") -> None:
        """Replace all 68 points (photo px) as one undoable edit."""
        doc = self.document
        if doc.landmarks is None:
            return
        pts = np.asarray(points, dtype=np.float64).reshape(68, 2)
        if D.same_points(pts, doc.landmarks):
            return
        self.undo_stack.push(SetLandmarksCommand(self._apply_all, doc.landmarks.copy(), pts, text))

    def reset_landmarks(self) -> None:
        """Back to the detected points (undoable)."""
        if self.document.detected is not None:
            self.set_landmarks(self.document.detected, "Reset landmarks to detected")

    def _apply_move(self, index: int, xy) -> None:
        self.document.move_landmark(index, xy)
        self._landmarks_edited()

    def _apply_all(self, points) -> None:
        self.document.set_landmarks(points)
        self._landmarks_edited()

    def _landmarks_edited(self) -> None:
        self.landmarksChanged.emit()
        self._corrections_edited()

    def _corrections_edited(self) -> None:
        self.stalenessChanged.emit(self.document.stale_stages())
        if self.auto_rerun and not self._dragging and self.document.is_stale:
            self._auto_timer.start()

    # -- the painted occluder ------------------------------------------------------------------
    def begin_stroke(self, erase: bool, radius: float) -> bool:
        """A brush (or eraser, ``erase``) stroke of ``radius`` crop pixels starts; its dabs
        (:meth:`stroke_to`) become one undo step at :meth:`end_stroke`."""
        doc = self.document
        if not doc.can_paint:
            self.message.emit("warning", "Wait for M\u03b1 (the parsing stage) before painting the occluder.")
            return False
        self._stroke = {"erase": bool(erase), "radius": float(radius), "old": doc.alpha_edit, "last": None}
        self._dragging = True
        return True

    def stroke_to(self, crop_xy) -> None:
        """Paint from the stroke's last position to ``crop_xy`` (crop pixels)."""
        st, doc = self._stroke, self.document
        if st is None or not doc.can_paint:
            return
        p = np.asarray(crop_xy, dtype=np.float64).reshape(2)
        pts = [p] if st["last"] is None else [st["last"], p]
        st["last"] = p
        base = doc.alpha_edit if doc.alpha_edit is not None else doc.blank_edit()
        mask = brush_mask(base.size, pts, st["radius"])
        doc.set_alpha_edit(base.painted(doc.alpha, mask, erase=st["erase"]))
        self.alphaEditChanged.emit()
        self.stalenessChanged.emit(doc.stale_stages())

    def end_stroke(self) -> None:
        st, self._stroke = self._stroke, None
        self._dragging = False
        if st is None:
            return
        new = self.document.alpha_edit
        if edit_digest(new) != edit_digest(st["old"]):
            self.undo_stack.push(PaintCommand(self._apply_edit, st["old"], new,
                                              "Erase occluder" if st["erase"] else "Paint occluder"))
        elif self.auto_rerun and self.document.is_stale:
            self._auto_timer.start()

    def paint_stroke(self, points_crop, radius: float, erase: bool = False) -> bool:
        """A whole stroke through ``points_crop`` (crop px) as one undoable edit."""
        if not self.begin_stroke(erase, radius):
            return False
        for p in np.asarray(points_crop, dtype=np.float64).reshape(-1, 2):
            self.stroke_to(p)
        self.end_stroke()
        return True

    def clear_paint(self) -> None:
        """Remove every painted and erased pixel (undoable)."""
        doc = self.document
        if doc.painted:
            self.undo_stack.push(PaintCommand(self._apply_edit, doc.alpha_edit, None, "Clear painted occluder"))

    def _apply_edit(self, edit) -> None:
        self.document.set_alpha_edit(edit)
        self.alphaEditChanged.emit()
        self._corrections_edited()

    # -- corrections (landmarks + paint) in one file ---------------------------------------------
    @property
    def unsaved_corrections(self) -> bool:
        """Corrections on screen that are in no file yet (saved, loaded or exported)."""
        return self.document.has_corrections and not self.undo_stack.isClean()

    def current_corrections(self) -> Corrections:
        doc = self.document
        return Corrections(landmarks=doc.landmarks.copy() if doc.edited else None, alpha_edit=doc.run_alpha_edit(),
                           photo=str(doc.photo), photo_size=tuple(doc.image.photo_size) if doc.image else None,
                           face_index=doc.face_index)

    def save_corrections(self, path) -> bool:
        """Write the landmarks and the painted occluder on screen to ``path`` (corrections.json)."""
        doc = self.document
        if not doc.has_corrections:
            self.message.emit("warning", "No corrections to save: drag a landmark or paint the occluder first.")
            return False
        try:
            write_corrections(path, self.current_corrections())
        except OccguiError as e:
            self.message.emit("error", str(e))
            return False
        self.undo_stack.setClean()
        self.message.emit("info", f"Saved corrections to {path}")
        self.correctionsSaved.emit(str(path))
        return True

    def load_corrections(self, path) -> bool:
        """Replace the corrections with those of ``path`` (corrections.json, or a landmarks.json),
        checked against this photo and its crop, as one undoable edit. A bad file changes nothing."""
        doc = self.document
        if doc.landmarks is None or doc.crop is None:
            self.message.emit("warning", "Open a photo and wait for its landmarks before loading corrections.")
            return False
        try:
            c = read_corrections(path)
            c.check_fits(doc.image, doc.crop)
        except OccguiError as e:
            self.message.emit("error", str(e))
            return False
        pts = c.landmarks if c.landmarks is not None else doc.detected
        self.undo_stack.push(SetCorrectionsCommand(self._apply_corrections, doc.landmarks.copy(), doc.alpha_edit,
                                                   pts, c.alpha_edit, f"Load corrections from {Path(path).name}"))
        self.undo_stack.setClean()
        self.message.emit("info", f"Loaded corrections from {Path(path).name}")
        return True

    def _apply_corrections(self, points, edit) -> None:
        self.document.set_landmarks(points)
        self.document.set_alpha_edit(edit)
        self.landmarksChanged.emit()
        self.alphaEditChanged.emit()
        self._corrections_edited()

    def _auto_rerun_due(self) -> None:
        if self._dragging:
            self._auto_timer.start()
        elif self.document.is_stale:
            self.rerun()

    def save_landmarks(self, path) -> bool:
        """Write the landmarks on screen to ``path`` as ``landmarks.json`` (photo px)."""
        import json

        from ..landmarks.landmarks_json import landmarks_document

        doc = self.document
        if doc.landmarks is None:
            self.message.emit("warning", "No landmarks yet: open a photo and let the pipeline detect them.")
            return False
        try:
            text = json.dumps(landmarks_document(doc.landmarks, edited=doc.edited, source=str(doc.photo)), indent=1)
            Path(path).write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            self.message.emit("error", f"Could not save landmarks: {e.strerror or e}")
            return False
        if not self.document.painted:
            self.undo_stack.setClean()           # the landmarks are all the corrections there are
        self.message.emit("info", f"Saved landmarks to {path}")
        return True

    def load_landmarks(self, path) -> bool:
        """Replace the landmarks with those of a JSON file (photo px), as one undoable edit."""
        from ..landmarks.landmarks_json import read_landmarks_json

        if self.document.landmarks is None:
            self.message.emit("warning", "Open a photo and wait for its landmarks before loading corrected ones.")
            return False
        try:
            pts = read_landmarks_json(path)
        except OccguiError as e:
            self.message.emit("error", str(e))
            return False
        self.set_landmarks(pts, f"Load landmarks from {Path(path).name}")
        return True

    # -- export ------------------------------------------------------------------------------
    def export_to(self, folder) -> bool:
        """Export the shown result into ``folder`` (the per-photo sub-folder the CLI writes).

        When a run is in flight or the results are stale, the export waits for (or starts)
        the run that brings them up to date."""
        doc = self.document
        if not doc.has_photo:
            self.message.emit("warning", "Nothing to export: open a photo first.")
            return False
        folder = str(folder)
        result = None if self._busy else doc.export_result(self.device or "cpu")
        if result is None:                   # a run in flight, or results out of date or missing
            self._pending_export = folder
            if not self._busy:
                self.rerun()
            self.message.emit("info", "Exporting when the run finishes\u2026")
            return True
        own = result is doc.last_result and self.last_outcome is not None
        self._export_job += 1
        self._export_undo_index = self.undo_stack.index()
        self.progress.emit("Exporting\u2026", len(STAGES), len(STAGES))
        self._exportRequested.emit(ExportJob(self._export_job, self._finished_job if own else None, folder,
                                             doc.photo.stem, result, self.last_outcome.seconds if own else None))
        return True

    def _on_export_finished(self, job: int, folder: str) -> None:
        if self.document.has_corrections and self._export_undo_index == self.undo_stack.index():
            self.undo_stack.setClean()          # the export folder holds corrections.json
        self.progress.emit(f"Exported to {folder}", len(STAGES), len(STAGES))
        self.succeeded.emit("export")
        self.message.emit("info", f"Exported to {folder}")
        self.exportFinished.emit(folder)

    def _on_export_failed(self, job: int, message: str) -> None:
        self.progress.emit(message if message.startswith("Export failed") else f"Export failed: {message}",
                           len(STAGES), len(STAGES))
        self.message.emit("error", message)
        self.exportFailed.emit(message)
