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
  from the GUI thread) cancels that job and every older one; stages are polled between them, and
  the process host kills a compute process that does not stop within its grace period (then
  starts a new one at once).
* Errors become one-line messages with a kind (``no-face``, ``cancelled``, ``out-of-memory``,
  ``error``, ``internal``, ``crashed``); a failure never ends the worker.
* When the compute process stops unexpectedly (even while idle), ``computeStopped`` says why at
  once and a new process is started (``computeRestarted`` once its models are loaded).
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from ..pipeline.runner import STAGES, PipelineConfig, PipelineResult, StageEvent
from . import view_data
from .compute_host import DeviceInfo, HostError, classify_error, make_host


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
    #: ``(source_key, {stage: result})``: results of this photo already computed from exactly these
    #: inputs, that a freshly restarted compute process reuses instead of recomputing
    kept: tuple | None = field(default=None, repr=False)

    @property
    def edit_digest(self) -> str:
        from ..corrections import edit_digest

        return edit_digest(self.alpha_edit)


@dataclass(frozen=True)
class ExportJob:
    """Export ``result`` (the results on screen) into ``outdir`` (a per-photo folder is made
    there). ``run_job``: the run that made exactly this result, when one did (the compute process
    then writes its own copy), else None."""

    job: int
    run_job: int | None
    outdir: str
    stem: str
    result: PipelineResult | None = field(default=None, repr=False)
    total_seconds: float | None = None


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
    """A finished run: its result, the pipeline's per-stage computation counters, timings, and
    which stages this run computed and which it reused (from the stage events themselves)."""

    job: int
    result: PipelineResult = field(repr=False)
    run_counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    computed: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()

    @property
    def recomputed(self) -> tuple[str, ...]:
        """The stages this run computed (not taken from the cache)."""
        return self.computed


#: A compute process stopped by a cancel is replaced this much later: a new interpreter's start-up
#: would otherwise compete for the CPU with the GUI thread showing the cancel.
RESTART_DELAY_MS = 400
#: A compute process that stops unexpectedly more than MAX_RESTARTS times within RESTART_WINDOW_S is
#: not restarted at once again (it would only die again, e.g. out of memory while loading models).
MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0


class PipelineWorker(QObject):
    """Runs the pipeline and exports in its own thread; see the module docstring."""

    stageUpdated = Signal(object)            # StageUpdate
    runFinished = Signal(object)             # RunOutcome
    runFailed = Signal(int, str, str)        # job, kind, message
    exportFinished = Signal(int, str)        # job, folder
    exportFailed = Signal(int, str)          # job, message
    deviceReady = Signal(str, str, bool)     # resolved device, description, CUDA available
    deviceFailed = Signal(str)               # message
    computeStopped = Signal(str)             # why the compute process stopped (it was not asked to)
    computeRestarted = Signal(str)           # a new compute process is ready (the reason it was needed)
    _restartRequested = Signal(str)

    def __init__(self, config: PipelineConfig | None = None, compute: str | None = None):
        super().__init__()
        self.host = make_host(config, compute, on_exit=self._host_stopped)
        self._lock = threading.Lock()
        self._cancel_through = 0
        self.current_run = 0              # the job whose run is in the host right now (0: none)
        self._stops: list[float] = []     # when the compute process stopped unexpectedly (monotonic s)
        self._restartRequested.connect(self.restart)

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

    def _host_stopped(self, reason: str) -> None:
        """The compute process stopped unexpectedly (called from the host's watcher thread). It is
        restarted at once, unless it keeps stopping (then the next run or export starts one)."""
        now = time.monotonic()
        self._stops = [t for t in self._stops if now - t < RESTART_WINDOW_S] + [now]
        if len(self._stops) > MAX_RESTARTS:
            self.computeStopped.emit(f"{reason}; it stopped {len(self._stops)} times in a minute, so it is "
                                     "not restarted before the next run")
            return
        self.computeStopped.emit(reason)
        self._restartRequested.emit(reason)        # queued: runs in the worker thread

    def _start_new_process(self) -> DeviceInfo | None:
        try:
            info = self.host.warm_up()
        except HostError as e:
            self.deviceFailed.emit(e.message)
            return None
        self.deviceReady.emit(info.device, info.description, info.cuda_available)
        return info

    @Slot()
    def _restart_after_cancel(self) -> None:
        if self.host.restart_needed:
            self._start_new_process()

    @Slot(str)
    def restart(self, reason: str) -> None:
        """Start a new compute process (the last one stopped because of ``reason``)."""
        if self._start_new_process() is not None:
            self.computeRestarted.emit(reason)

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
        computed: list[str] = []
        reused: list[str] = []
        used_edit = job.edit_digest

        def on_event(ev: StageEvent) -> None:
            display = None
            if ev.state != "started":
                (reused if ev.state == "cached" else computed).append(ev.stage)
                values[ev.stage] = ev.result
                try:
                    display = displays[ev.stage] = view_data.prepare(ev.stage, ev.result, values, displays)
                except Exception:  # noqa: BLE001 -- a display problem must not fail the run
                    traceback.print_exc(file=sys.stderr)
            self.stageUpdated.emit(StageUpdate(job.job, ev.stage, ev.index, ev.total, ev.state, ev.seconds,
                                               ev.result, display, job.landmarks, used_edit))

        self.current_run = job.job
        try:
            reply = self.host.run(job.job, job.photo, job.landmarks, on_event, alpha_edit=job.alpha_edit,
                                  face_index=job.face_index, backends=job.backends, kept=job.kept)
        except HostError as e:
            self.current_run = 0
            self.runFailed.emit(job.job, e.kind, e.message)
            if self.host.restart_needed:          # a cancel stopped the process: have a new one ready, after
                QTimer.singleShot(RESTART_DELAY_MS, self._restart_after_cancel)    # the GUI has shown it
            return
        except BaseException as e:  # noqa: BLE001 -- a bug still becomes one line in the window
            self.current_run = 0
            traceback.print_exc(file=sys.stderr)
            self.runFailed.emit(job.job, *classify_error(e))
            return
        self.current_run = 0
        order = {s: i for i, s in enumerate(STAGES)}
        self.runFinished.emit(RunOutcome(job.job, reply.result, dict(reply.run_counts), reply.seconds,
                                         tuple(sorted(computed, key=order.get)), tuple(sorted(reused, key=order.get))))

    @Slot(object)
    def export(self, job: ExportJob) -> None:
        """Write the result of run ``job.run_job`` with the core's exporter (same files as the CLI)."""
        try:
            folder = self.host.export(job.run_job, job.outdir, job.stem, job.result, job.total_seconds)
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
