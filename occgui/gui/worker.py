"""The pipeline worker: a QObject moved to a QThread, owning the long-lived pipeline.

Everything that computes -- the stages, preparing display data, exporting -- happens off the GUI
thread. Requests arrive as queued signal emissions (the worker handles them one at a time, in
order); results go back as signals carrying plain Python objects.

The worker drives a *host* (:mod:`.compute_host`): by default a child process that owns the
``Pipeline`` (so no stage can hold Python's interpreter lock against the GUI thread), or the
``Pipeline`` right here in the worker thread (``OCCGUI_COMPUTE=thread``). Either way one
pipeline lives as long as the window, so its cache and loaded models persist: a re-run after a
landmark edit recomputes only M_beta and the stages after it.

* Each run has a job id. :meth:`PipelineWorker.request_cancel` (thread-safe, called directly
  from the GUI thread) cancels that job and every older one; stages are polled between them.
* Errors become one-line messages with a kind (``no-face``, ``cancelled``, ``out-of-memory``,
  ``error``, ``internal``, ``crashed``); a failure never ends the worker.
"""
from __future__ import annotations

import sys
import threading
import traceback
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..pipeline.runner import STAGES, PipelineConfig, PipelineResult, StageEvent
from . import view_data
from .compute_host import HostError, classify_error, make_host


@dataclass(frozen=True)
class RunJob:
    """One pipeline run: the photo, the landmarks to use (None = the detected ones), the painted
    occluder (``occgui.corrections.AlphaEdit``, None = none) and the face of a group photo."""

    job: int
    photo: str
    landmarks: np.ndarray | None = None
    alpha_edit: object = None
    face_index: int = 0
    #: ``{stage: (backend name, typed settings or None)}`` to use from this run on (the I_out
    #: view's backend switch); stages not named keep their backend
    backends: dict = field(default_factory=dict)

    @property
    def edit_digest(self) -> str:
        from ..corrections import edit_digest

        return edit_digest(self.alpha_edit)


@dataclass(frozen=True)
class ExportJob:
    """Export the result of run ``run_job`` into ``outdir`` (a per-photo folder is made there)."""

    job: int
    run_job: int
    outdir: str
    stem: str


@dataclass(frozen=True)
class StageUpdate:
    """A stage event of run ``job`` with its result and display data (see ``view_data``)."""

    job: int
    stage: str
    index: int
    total: int
    state: str                # started | finished | cached
    seconds: float = 0.0
    value: object = field(default=None, repr=False)
    display: object = field(default=None, repr=False)
    used_landmarks: np.ndarray | None = field(default=None, repr=False)
    used_edit: str = ""       # digest of the painted occluder the run was given ('' = none)


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its result, the pipeline's per-stage computation counters, timings."""

    job: int
    result: PipelineResult = field(repr=False)
    run_counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    recomputed: tuple[str, ...] = ()


class PipelineWorker(QObject):
    """Runs the pipeline and exports in its own thread; see the module docstring."""

    stageUpdated = Signal(object)            # StageUpdate
    runFinished = Signal(object)             # RunOutcome
    runFailed = Signal(int, str, str)        # job, kind, message
    exportFinished = Signal(int, str)        # job, folder
    exportFailed = Signal(int, str)          # job, message
    deviceReady = Signal(str, str, bool)     # resolved device, description, CUDA available
    deviceFailed = Signal(str)               # message

    def __init__(self, config: PipelineConfig | None = None, compute: str | None = None):
        super().__init__()
        self.host = make_host(config, compute)
        self._lock = threading.Lock()
        self._cancel_through = 0
        self._counts: dict[str, int] = {}

    # -- called from the GUI thread ------------------------------------------------------------
    def request_cancel(self, job: int) -> None:
        """Cancel run ``job`` and every older one (thread-safe; takes effect between stages)."""
        with self._lock:
            self._cancel_through = max(self._cancel_through, job)
        self.host.request_cancel(job)

    def _cancelled(self, job: int) -> bool:
        with self._lock:
            return job <= self._cancel_through

    def abort(self) -> None:
        """Stop computing at once (the window closes): kills the compute process if there is one."""
        self.host.abort()

    # -- slots, run in the worker thread ---------------------------------------------------------
    @Slot(str)
    def configure(self, device: str) -> None:
        """Use ``device`` (auto | cpu | cuda) from now on (a fresh pipeline when it changes)."""
        try:
            info = self.host.configure(device)
        except HostError as e:
            self.deviceFailed.emit(e.message)
            return
        self.deviceReady.emit(info.device, info.description, info.cuda_available)

    @Slot(object)
    def set_geometry(self, choice) -> None:
        """``choice``: (geometry backend, preview backend or None), applied from the next run."""
        try:
            self.host.set_geometry(*choice)
        except HostError as e:
            self.deviceFailed.emit(e.message)

    @Slot()
    def warm_up(self) -> None:
        """Create the pipeline and its backends (models) ahead of the first run."""
        try:
            info = self.host.warm_up()
        except HostError as e:
            self.deviceFailed.emit(e.message)
            return
        self.deviceReady.emit(info.device, info.description, info.cuda_available)

    @Slot(object)
    def run(self, job: RunJob) -> None:
        """Run every stage on ``job.photo``; stage updates stream out as they happen."""
        if self._cancelled(job.job):
            self.runFailed.emit(job.job, "cancelled", "Run cancelled.")
            return
        values: dict[str, object] = {}
        displays: dict[str, object] = {}
        used_edit = job.edit_digest

        def on_event(ev: StageEvent) -> None:
            display = None
            if ev.state != "started":
                values[ev.stage] = ev.result
                try:
                    display = displays[ev.stage] = view_data.prepare(ev.stage, ev.result, values, displays)
                except Exception:  # noqa: BLE001 -- a display problem must not fail the run
                    traceback.print_exc(file=sys.stderr)
            self.stageUpdated.emit(StageUpdate(job.job, ev.stage, ev.index, ev.total, ev.state, ev.seconds,
                                               ev.result, display, job.landmarks, used_edit))

        try:
            reply = self.host.run(job.job, job.photo, job.landmarks, on_event, alpha_edit=job.alpha_edit,
                                  face_index=job.face_index, backends=job.backends)
        except HostError as e:
            self.runFailed.emit(job.job, e.kind, e.message)
            return
        except BaseException as e:  # noqa: BLE001 -- a bug still becomes one line in the window
            traceback.print_exc(file=sys.stderr)
            self.runFailed.emit(job.job, *classify_error(e))
            return
        before, self._counts = self._counts, dict(reply.run_counts)
        if any(self._counts.get(s, 0) < n for s, n in before.items()):
            before = {}         # a new pipeline (device change, restarted process): counters restarted
        recomputed = tuple(s for s in STAGES if self._counts.get(s, 0) > before.get(s, 0))
        self.runFinished.emit(RunOutcome(job.job, reply.result, dict(reply.run_counts), reply.seconds, recomputed))

    @Slot(object)
    def export(self, job: ExportJob) -> None:
        """Write the result of run ``job.run_job`` with the core's exporter (same files as the CLI)."""
        try:
            folder = self.host.export(job.run_job, job.outdir, job.stem)
        except HostError as e:
            self.exportFailed.emit(job.job, e.message)
            return
        except BaseException as e:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            self.exportFailed.emit(job.job, f"Export failed: {classify_error(e)[1]}")
            return
        self.exportFinished.emit(job.job, folder)

    @Slot()
    def close_host(self) -> None:
        """Release the pipeline (quits the compute process); the worker's last call."""
        self.host.close()


class WorkerThread(QThread):
    """The QThread the worker lives in (named, so that it shows up in debuggers)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("occgui-pipeline")
