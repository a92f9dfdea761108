"""The pipeline worker: a QObject moved to a QThread, owning one long-lived ``Pipeline``.

Everything that computes -- the pipeline stages, preparing display data, exporting -- runs
here, never on the GUI thread. Requests arrive as queued signal emissions (the worker handles
them one at a time, in order); results go back as signals carrying plain Python objects.

* Each run has a job id. ``request_cancel(job)`` (thread-safe, called directly from the GUI
  thread) cancels that job and every older one; the pipeline polls it between stages.
* The ``Pipeline`` instance survives across runs, so its cache and loaded models persist:
  a re-run after a landmark edit recomputes only M_beta and the stages after it.
* Errors become one-line messages with a kind (``no-face``, ``cancelled``, ``out-of-memory``,
  ``error``, ``internal``); a run's failure never ends the worker.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..errors import Cancelled, NoFaceError, OccguiError
from ..pipeline.runner import STAGES, Pipeline, PipelineConfig, PipelineResult, StageEvent
from . import view_data


@dataclass(frozen=True)
class RunJob:
    """One pipeline run: the photo and the landmarks to use (None = the detected ones)."""

    job: int
    photo: str
    landmarks: np.ndarray | None = None


@dataclass(frozen=True)
class ExportJob:
    """Export the worker's result of run ``run_job`` into ``outdir`` (a per-photo folder)."""

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
    value: object = None
    display: object = None
    used_landmarks: np.ndarray | None = None


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its result, the pipeline's per-stage computation counters, timings."""

    job: int
    result: PipelineResult
    run_counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    recomputed: tuple[str, ...] = ()


def classify_error(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line message) of an exception raised by a run or an export."""
    if isinstance(exc, Cancelled):
        return "cancelled", "Run cancelled."
    if isinstance(exc, NoFaceError):
        return "no-face", str(exc)
    if isinstance(exc, OccguiError):
        return "error", str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return "out-of-memory", "Out of memory: try the CPU device (Edit \u25b8 Preferences) or a smaller photo."
    first = str(exc).splitlines()[0] if str(exc) else ""
    return "internal", f"Internal error ({type(exc).__name__}{': ' + first if first else ''})"


class PipelineWorker(QObject):
    """Runs the pipeline and exports in its own thread; see the module docstring."""

    stageUpdated = Signal(object)            # StageUpdate
    runFinished = Signal(object)             # RunOutcome
    runFailed = Signal(int, str, str)        # job, kind, message
    exportFinished = Signal(int, str)        # job, folder
    exportFailed = Signal(int, str)          # job, message
    deviceReady = Signal(str, str, bool)     # resolved device, description, CUDA available
    deviceFailed = Signal(str)               # message

    def __init__(self, config: PipelineConfig | None = None):
        super().__init__()
        self._config = config or PipelineConfig()
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()
        self._cancel_through = 0
        self._last_job: int | None = None
        self._last_result: PipelineResult | None = None
        self._last_seconds = 0.0

    # -- called from the GUI thread ------------------------------------------------------------
    def request_cancel(self, job: int) -> None:
        """Cancel run ``job`` and every older one (thread-safe; takes effect between stages)."""
        with self._lock:
            self._cancel_through = max(self._cancel_through, job)

    def _cancelled(self, job: int) -> bool:
        with self._lock:
            return job <= self._cancel_through

    # -- slots, run in the worker thread ---------------------------------------------------------
    @Slot(str)
    def configure(self, device: str) -> None:
        """Use ``device`` (auto | cpu | cuda) from now on: a new Pipeline (and cache) is made."""
        if self._pipeline is not None and device == self._config.device:
            return
        self._config = PipelineConfig(**{**self._config.__dict__, "device": device})
        self._pipeline = None
        self._last_result, self._last_job = None, None
        self._ensure_pipeline()

    @Slot()
    def warm_up(self) -> None:
        """Create the pipeline and its backends (models) ahead of the first run."""
        if self._ensure_pipeline() is None:
            return
        for stage in STAGES[1:]:
            try:
                self._pipeline.backend(stage)
            except Exception:  # the run reports a missing or broken backend with its message
                pass

    def _ensure_pipeline(self) -> Pipeline | None:
        if self._pipeline is None:
            try:
                self._pipeline = Pipeline(self._config)
            except Exception as e:
                self.deviceFailed.emit(classify_error(e)[1])
                return None
            from ..device import describe

            import torch

            self.deviceReady.emit(self._pipeline.device, describe(self._pipeline.device), bool(torch.cuda.is_available()))
        return self._pipeline

    @Slot(object)
    def run(self, job: RunJob) -> None:
        """Run every stage on ``job.photo``; stage updates stream out as they happen."""
        if self._cancelled(job.job):
            self.runFailed.emit(job.job, "cancelled", "Run cancelled.")
            return
        pipeline = self._ensure_pipeline()
        if pipeline is None:
            self.runFailed.emit(job.job, "error", "The pipeline could not start (see the message above).")
            return
        values: dict[str, object] = {}
        before = dict(pipeline.run_counts)

        def progress(ev: StageEvent) -> None:
            display = None
            if ev.state != "started":
                values[ev.stage] = ev.value
                display = view_data.prepare(ev.stage, ev.value, values)
            self.stageUpdated.emit(StageUpdate(job.job, ev.stage, ev.index, ev.total, ev.state, ev.seconds,
                                               ev.value, display, job.landmarks))

        t0 = time.perf_counter()
        try:
            result = pipeline.run(job.photo, landmarks=job.landmarks, progress=progress,
                                  cancel=lambda: self._cancelled(job.job))
        except BaseException as e:  # noqa: BLE001 -- every failure becomes one line in the window
            kind, message = classify_error(e)
            if kind == "internal":
                traceback.print_exc(file=sys.stderr)
            self.runFailed.emit(job.job, kind, message)
            return
        seconds = time.perf_counter() - t0
        self._last_job, self._last_result, self._last_seconds = job.job, result, seconds
        counts = dict(pipeline.run_counts)
        recomputed = tuple(s for s in STAGES if counts.get(s, 0) > before.get(s, 0))
        self.runFinished.emit(RunOutcome(job.job, result, counts, seconds, recomputed))

    @Slot(object)
    def export(self, job: ExportJob) -> None:
        """Write the result of run ``job.run_job`` with the core's exporter (same files as the CLI)."""
        if self._last_result is None or self._last_job != job.run_job:
            self.exportFailed.emit(job.job, "Nothing to export: the run did not finish.")
            return
        try:
            from ..export import export_result

            folder = export_result(self._last_result, Path(job.outdir), stem=job.stem,
                                   total_seconds=self._last_seconds)
        except BaseException as e:  # noqa: BLE001
            kind, message = classify_error(e)
            if kind == "internal":
                traceback.print_exc(file=sys.stderr)
            self.exportFailed.emit(job.job, f"Export failed: {message}")
            return
        self.exportFinished.emit(job.job, str(folder))


class WorkerThread(QThread):
    """The QThread the worker lives in (named, so that it shows up in debuggers)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("occgui-pipeline")
