"""The session controller: the document, the pipeline worker thread and the undo stack.

Views never touch the pipeline: they call the session's methods (open a photo, move a
landmark, re-run, export) and listen to its signals. The session keeps the invariant that
the ``Pipeline`` is only used from the worker thread, and drops the events of superseded runs
(a newer photo or re-run cancels the older job; its late events are ignored by job id).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from ..errors import OccguiError
from ..imageio import is_image_path
from ..pipeline.runner import STAGES, PipelineConfig
from ..pipeline.stages import stage as stage_spec
from . import document as D
from .document import FaceDocument
from .undo_commands import MoveLandmarkCommand, SetLandmarksCommand
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

    photoOpened = Signal(str)                     # photo path
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

    _runRequested = Signal(object)
    _exportRequested = Signal(object)
    _configureRequested = Signal(str)
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
        self._device_pref = (config.device if config is not None else "auto")
        self._configured: str | None = None      # device preference last sent to the worker

        self._thread = WorkerThread()
        self._worker = PipelineWorker(config, compute)
        self._worker.moveToThread(self._thread)
        self._runRequested.connect(self._worker.run)
        self._exportRequested.connect(self._worker.export)
        self._configureRequested.connect(self._worker.configure)
        self._warmUpRequested.connect(self._worker.warm_up)
        self._worker.stageUpdated.connect(self._on_stage_update)
        self._worker.runFinished.connect(self._on_run_finished)
        self._worker.runFailed.connect(self._on_run_failed)
        self._worker.exportFinished.connect(self._on_export_finished)
        self._worker.exportFailed.connect(self._on_export_failed)
        self._worker.deviceReady.connect(self._on_device_ready)
        self._worker.deviceFailed.connect(lambda msg: self.message.emit("error", msg))
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
    def open_photo(self, path) -> bool:
        """Open ``path`` and start the pipeline; False (and a message) when it is not a photo."""
        reason = check_photo_path(path)
        if reason:
            self.message.emit("error", reason)
            return False
        self._worker.request_cancel(self._job)
        self._pending_export = None
        self._finished_job = None
        self.document.open(Path(path).resolve())
        self.undo_stack.clear()
        self.photoOpened.emit(str(self.document.photo))
        for s in STAGES:
            self.stageStateChanged.emit(s)
        self.landmarksChanged.emit()
        self.stalenessChanged.emit(frozenset())
        self._start_run()
        return True

    def rerun(self) -> bool:
        """Run again with the landmarks on screen; only what they changed is recomputed."""
        if not self.document.has_photo:
            self.message.emit("warning", "Open a photo first (File \u25b8 Open or drop one on the window).")
            return False
        self._auto_timer.stop()
        self._worker.request_cancel(self._job)
        self._start_run()
        return True

    def cancel(self) -> None:
        """Cancel the run in flight (between two stages)."""
        if self._busy:
            self._worker.request_cancel(self._job)
            self._pending_export = None
            self.progress.emit("Cancelling\u2026", -1, len(STAGES))

    def _start_run(self) -> None:
        self._ensure_configured()
        self._job = next(self._ids)
        self.document.begin_run()
        self._set_busy(True)
        self.progress.emit("Starting\u2026", 0, len(STAGES))
        self._runRequested.emit(RunJob(self._job, str(self.document.photo), self.document.run_landmarks()))

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def _on_stage_update(self, up: StageUpdate) -> None:
        if up.job != self._job:
            return
        doc = self.document
        title = stage_spec(up.stage).title
        if up.state == "started":
            doc.mark_running(up.stage)
            self.progress.emit(f"{title}\u2026", up.index, up.total)
            self.stageStateChanged.emit(up.stage)
            return
        had_landmarks = doc.landmarks is not None
        changed = doc.set_result(up.stage, up.value, cached=up.state == "cached", seconds=up.seconds,
                                 used_landmarks=up.used_landmarks)
        self.progress.emit(title, up.index + 1, up.total)
        if changed:
            self.stageResult.emit(up.stage, up.value, up.display)
        self.stageStateChanged.emit(up.stage)
        if up.stage == "landmarks" and not had_landmarks:
            self.landmarksChanged.emit()
        if up.stage in D.LANDMARK_DEPENDENT:
            self.stalenessChanged.emit(doc.stale_stages())

    def _on_run_finished(self, outcome: RunOutcome) -> None:
        if outcome.job != self._job:
            return
        self.last_outcome = outcome
        self._finished_job = outcome.job
        self.document.finish_run(outcome.result, outcome.run_counts)
        self._set_busy(False)
        n = len(outcome.recomputed)
        self.progress.emit(f"Done in {outcome.seconds:.2f} s ({n} stage{'s' if n != 1 else ''} computed)",
                           len(STAGES), len(STAGES))
        self.stalenessChanged.emit(self.document.stale_stages())
        self.runFinished.emit(outcome)
        for w in outcome.result.warnings:
            self.message.emit("info", w)
        if self._pending_export is not None:
            folder, self._pending_export = self._pending_export, None
            self.export_to(folder)

    def _on_run_failed(self, job: int, kind: str, message: str) -> None:
        if job != self._job:
            return
        self.document.end_run(D.CANCELLED if kind == "cancelled" else D.FAILED)
        for s in STAGES:
            self.stageStateChanged.emit(s)
        self._set_busy(False)
        self._pending_export = None
        self.progress.emit("Cancelled" if kind == "cancelled" else "Failed", 0, len(STAGES))
        self.runFailed.emit(kind, message)
        self.message.emit("info" if kind == "cancelled" else "error", message)

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
        self.stalenessChanged.emit(self.document.stale_stages())
        if self.auto_rerun and not self._dragging and self.document.is_stale:
            self._auto_timer.start()

    def _auto_rerun_due(self) -> None:
        if self._dragging:
            self._auto_timer.start()
        elif self.document.is_stale:
            self.rerun()

    def save_landmarks(self, path) -> bool:
        """Write the landmarks on screen to ``path`` as ``landmarks.json`` (photo px)."""
        from ..landmarks.landmarks_json import landmarks_document
        import json

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
        if self._busy or doc.is_stale or self._finished_job is None:
            self._pending_export = folder
            if not self._busy:
                self.rerun()
            self.message.emit("info", "Exporting when the run finishes\u2026")
            return True
        self._export_job += 1
        self.progress.emit("Exporting\u2026", len(STAGES), len(STAGES))
        self._exportRequested.emit(ExportJob(self._export_job, self._finished_job, folder, doc.photo.stem))
        return True

    def _on_export_finished(self, job: int, folder: str) -> None:
        self.progress.emit(f"Exported to {folder}", len(STAGES), len(STAGES))
        self.message.emit("info", f"Exported to {folder}")
        self.exportFinished.emit(folder)

    def _on_export_failed(self, job: int, message: str) -> None:
        self.message.emit("error", message)
        self.exportFailed.emit(message)
