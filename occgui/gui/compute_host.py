"""Where the pipeline computes: in-process, or in a dedicated child process. Free of Qt.

The GUI's :class:`~occgui.gui.worker.PipelineWorker` (a QObject in a QThread) drives a *host*:

* :class:`ProcessPipelineHost` (default): a long-lived child process owns the ``Pipeline``, so
  its models and cache persist between runs exactly as in-process. The worker thread only waits
  on a pipe (which releases the interpreter lock), so nothing the stages do -- numpy, SciPy's
  SuperLU, VTK, MediaPipe, torch, some of which hold Python's GIL for hundreds of milliseconds
  -- can stall the GUI thread. Stage results come back pickled; a result the child already sent
  (a cache hit) is sent as a marker and replaced by the very object received before, so
  "unchanged" keeps meaning "the same object" on the GUI side too.
* :class:`LocalPipelineHost`: the ``Pipeline`` in the worker thread itself (``OCCGUI_COMPUTE=thread``);
  simpler, but any GIL-holding stage code then pauses the GUI while it runs.

Both run ``Pipeline.run(photo, landmarks=..., alpha_edit=..., face_index=..., progress=..., cancel=...)``
and export with :func:`occgui.export.export_result`, the same calls as the CLI.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import Cancelled, NoFaceError, OccguiError
from ..pipeline.runner import Pipeline, PipelineConfig, PipelineResult, StageEvent
from ..pipeline.stages import STAGE_TABLE, STAGES_WITH_BACKENDS

#: Environment switch: ``process`` (default) or ``thread``.
COMPUTE_ENV = "OCCGUI_COMPUTE"
_SAME = "__occgui_same_object__"
#: Niceness added to the compute process (Unix); the GUI process keeps the default priority.
CHILD_NICENESS = 10
_RESULT_FIELDS = tuple(s.field for s in STAGE_TABLE)


@dataclass(frozen=True)
class DeviceInfo:
    device: str               # "cpu" | "cuda"
    description: str          # e.g. "CUDA (NVIDIA H100)" or "CPU"
    cuda_available: bool


@dataclass
class RunReply:
    """A finished run: the result, the pipeline's run counters after it, its duration."""

    result: PipelineResult = field(repr=False)
    run_counts: dict
    seconds: float


class HostError(Exception):
    """A run or an export failed: ``kind`` (no-face, cancelled, out-of-memory, error, internal,
    crashed) and a one-line ``message``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def classify_error(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line message) of an exception raised by a run or an export."""
    if isinstance(exc, HostError):
        return exc.kind, exc.message
    if isinstance(exc, Cancelled):
        return "cancelled", "Run cancelled."
    if isinstance(exc, NoFaceError):
        return "no-face", str(exc)
    if isinstance(exc, OccguiError):
        return "error", str(exc)
    text = str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        return "out-of-memory", "Out of memory: try the CPU device (Edit \u25b8 Preferences) or a smaller photo."
    first = text.splitlines()[0] if text else ""
    return "internal", f"Internal error ({type(exc).__name__}{': ' + first if first else ''})"


def _device_info(pipeline: Pipeline) -> DeviceInfo:
    from ..device import cuda_available, describe

    return DeviceInfo(pipeline.device, describe(pipeline.device), cuda_available())


class LocalPipelineHost:
    """The pipeline in the calling thread (see the module docstring)."""

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()
        self.pipeline: Pipeline | None = None
        self._last: tuple[int, PipelineResult, float] | None = None
        self._cancel_through = 0

    def request_cancel(self, job: int) -> None:
        """Cancel run ``job`` and older ones (polled between stages; an int store is atomic)."""
        self._cancel_through = max(self._cancel_through, job)

    def configure(self, device: str) -> DeviceInfo:
        """(Re)create the pipeline for ``device`` (a no-op when it is already that one)."""
        if self.pipeline is None or device != self.config.device:
            self.config = dataclasses.replace(self.config, device=device)
            self.pipeline = None
            self._last = None
        return self.device_info()

    def device_info(self) -> DeviceInfo:
        if self.pipeline is None:
            try:
                self.pipeline = Pipeline(self.config)
            except Exception as e:  # noqa: BLE001 -- e.g. cuda requested but absent: one line
                raise HostError(*classify_error(e)) from None
        return _device_info(self.pipeline)

    def set_geometry(self, backend: str, preview: str | None = None) -> None:
        """Geometry ``backend`` from the next run, the fast ``preview`` backend's mesh shown first
        (``PipelineConfig.preview_geometry``); the cache and the other models are kept."""
        self.config = dataclasses.replace(self.config, backends={**self.config.backends, "geometry": backend},
                                          preview_geometry=preview)
        if self.pipeline is not None:
            self.pipeline.set_backend("geometry", backend, preview_geometry=preview)

    def warm_up(self) -> DeviceInfo:
        """Create every stage's backend (loads the models) ahead of the first run."""
        info = self.device_info()
        for stage in STAGES_WITH_BACKENDS:
            try:
                self.pipeline.backend(stage)
            except Exception:  # noqa: BLE001 -- the run reports a missing backend with its message
                pass
        return info

    def run(self, job: int, photo: str, landmarks: np.ndarray | None,
            on_event: Callable[[StageEvent], None], cancelled: Callable[[], bool] | None = None, *,
            alpha_edit=None, face_index: int | None = None, backends: dict | None = None) -> RunReply:
        """Run the pipeline; ``on_event`` gets every StageEvent. Raises :class:`HostError`.

        ``backends``: ``{stage: (name, settings)}`` to use from this run on (None as a name: the
        default; None as settings: its defaults), e.g. the I_out view's switch between ``fisn``
        and the classical backend; only the stages from the first changed one on are recomputed
        (:meth:`Pipeline.set_backend`)."""
        self.device_info()
        try:
            for stage_name, (backend, settings) in (backends or {}).items():
                self.pipeline.set_backend(stage_name, backend, settings)
        except Exception as e:  # noqa: BLE001 -- an unknown backend name: one line
            raise HostError(*classify_error(e)) from None
        if cancelled is None:
            cancelled = lambda: job <= self._cancel_through  # noqa: E731
        t0 = time.perf_counter()
        try:
            result = self.pipeline.run(photo, landmarks=landmarks, alpha_edit=alpha_edit, face_index=face_index,
                                       progress=on_event, cancel=cancelled)
        except BaseException as e:  # noqa: BLE001 -- every failure becomes one line
            kind, message = classify_error(e)
            if kind == "internal":
                traceback.print_exc(file=sys.stderr)
            raise HostError(kind, message) from None
        seconds = time.perf_counter() - t0
        self._last = (job, result, seconds)
        return RunReply(result, dict(self.pipeline.run_counts), seconds)

    def export(self, run_job: int, outdir: str, stem: str) -> str:
        if self._last is None or self._last[0] != run_job:
            raise HostError("error", "Nothing to export: the run did not finish.")
        from ..export import export_result

        try:
            folder = export_result(self._last[1], outdir, stem=stem, total_seconds=self._last[2])
        except BaseException as e:  # noqa: BLE001
            kind, message = classify_error(e)
            if kind == "internal":
                traceback.print_exc(file=sys.stderr)
            raise HostError(kind, f"Export failed: {message}") from None
        return str(folder)

    def abort(self) -> None:
        """Nothing to kill in-process: runs stop at the next stage boundary."""

    def close(self) -> None:
        self.pipeline = None


# -- the child process ---------------------------------------------------------------------------

def _child_main(conn, cancel_through, config: PipelineConfig) -> None:
    """Entry of the compute process: serve requests from ``conn`` until told to quit.

    The process lowers its own scheduling priority: on a machine with few cores the GUI
    process (which also renders the 3D view in software when there is no GPU) then keeps the
    CPU it needs to stay fluid, and the computation takes whatever is left."""
    try:
        os.nice(CHILD_NICENESS)
    except (AttributeError, OSError):
        pass
    # Ctrl+C in the terminal reaches the whole process group: the GUI handles it (closes the
    # window, then asks this process to quit); here it would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    host = LocalPipelineHost(config)
    shown: dict[str, object] = {}          # stage -> the object last sent (kept alive: identity)

    def send(msg) -> None:
        conn.send(msg)

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        op = msg[0]
        try:
            if op == "quit":
                return
            if op == "configure":
                send(("device", host.configure(msg[1])))
            elif op == "warm_up":
                send(("device", host.warm_up()))
            elif op == "set_geometry":
                host.set_geometry(msg[1], msg[2])
                send(("ok",))
            elif op == "run":
                _, job, photo, landmarks, alpha_edit, face_index, backends = msg

                def on_event(ev: StageEvent, job=job) -> None:
                    payload = ev.result
                    if ev.state != "started":
                        if shown.get(ev.stage) is ev.result:
                            payload = _SAME
                        else:
                            shown[ev.stage] = ev.result
                    send(("event", job, dataclasses.replace(ev, result=payload)))

                reply = host.run(job, photo, landmarks, on_event, lambda job=job: job <= cancel_through.value,
                                 alpha_edit=alpha_edit, face_index=face_index, backends=backends)
                skeleton = dataclasses.replace(reply.result, **{f: None for f in _RESULT_FIELDS})
                send(("done", job, skeleton, reply.run_counts, reply.seconds))
            elif op == "export":
                send(("exported", host.export(msg[1], msg[2], msg[3])))
        except HostError as e:
            send(("error", e.kind, e.message))
        except BaseException as e:  # noqa: BLE001 -- report, keep serving
            traceback.print_exc(file=sys.stderr)
            send(("error", *classify_error(e)))


class ProcessPipelineHost:
    """The pipeline in a child process (see the module docstring). Not thread-safe: one thread
    (the worker's) makes the calls; :meth:`request_cancel` and :meth:`abort` may come from any."""

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()
        self._ctx = mp.get_context("spawn")
        self._cancel_through = self._ctx.Value("q", 0, lock=False)
        self._proc = None
        self._conn = None
        self._received: dict[str, object] = {}
        self._configured: str | None = None

    # -- process lifecycle ---------------------------------------------------------------------
    def _ensure_process(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._received.clear()
        parent, child = self._ctx.Pipe(duplex=True)
        self._proc = self._ctx.Process(target=_child_main, args=(child, self._cancel_through, self.config),
                                       name="occgui-compute", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        self._configured = None

    def _recv(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError, ConnectionError):
            code = self._proc.exitcode if self._proc is not None else None
            if self._proc is not None:
                self._proc.join(timeout=1.0)
                code = self._proc.exitcode
            self._proc, self._conn = None, None
            raise HostError("crashed", "The compute process stopped unexpectedly"
                            + (f" (exit code {code})" if code not in (None, 0) else "")
                            + "; it restarts with the next run.") from None

    def _call(self, msg):
        self._ensure_process()
        try:
            self._conn.send(msg)
        except (OSError, ConnectionError):
            self._proc, self._conn = None, None
            raise HostError("crashed", "The compute process is not reachable; it restarts with the next run.") from None
        return self._recv()

    @staticmethod
    def _expect(reply, kind: str):
        if reply[0] == "error":
            raise HostError(reply[1], reply[2])
        if reply[0] != kind:
            raise HostError("internal", f"Internal error (unexpected reply {reply[0]!r} from the compute process)")
        return reply

    # -- host interface -----------------------------------------------------------------------
    def request_cancel(self, job: int) -> None:
        """Cancel run ``job`` and older ones (the child polls this between stages)."""
        if job > self._cancel_through.value:
            self._cancel_through.value = job

    def configure(self, device: str) -> DeviceInfo:
        self.config = dataclasses.replace(self.config, device=device)
        info = self._expect(self._call(("configure", device)), "device")[1]
        self._configured = device
        return info

    def _ensure_configured(self) -> None:
        self._ensure_process()
        if self._configured != self.config.device:
            self.configure(self.config.device)

    def warm_up(self) -> DeviceInfo:
        self._ensure_configured()
        return self._expect(self._call(("warm_up",)), "device")[1]

    def set_geometry(self, backend: str, preview: str | None = None) -> None:
        """As :meth:`LocalPipelineHost.set_geometry`; a (re)started child gets it with its config."""
        self.config = dataclasses.replace(self.config, backends={**self.config.backends, "geometry": backend},
                                          preview_geometry=preview)
        if self._proc is not None and self._proc.is_alive():
            self._expect(self._call(("set_geometry", backend, preview)), "ok")

    def run(self, job: int, photo: str, landmarks: np.ndarray | None,
            on_event: Callable[[StageEvent], None], *, alpha_edit=None, face_index: int | None = None,
            backends: dict | None = None) -> RunReply:
        """Run in the child; stage events are replayed through ``on_event``. Raises :class:`HostError`."""
        self._ensure_configured()
        self._conn.send(("run", job, photo, None if landmarks is None else np.asarray(landmarks), alpha_edit,
                         face_index, dict(backends or {})))
        while True:
            msg = self._recv()
            if msg[0] == "event":
                ev: StageEvent = msg[2]
                if ev.state != "started":
                    if isinstance(ev.result, str) and ev.result == _SAME:
                        ev = dataclasses.replace(ev, result=self._received[ev.stage])
                    else:
                        self._received[ev.stage] = ev.result
                on_event(ev)
            elif msg[0] == "done":
                _, _job, skeleton, counts, seconds = msg
                fields = {s.field: self._received.get(s.name) for s in STAGE_TABLE}
                return RunReply(dataclasses.replace(skeleton, **fields), counts, seconds)
            elif msg[0] == "error":
                raise HostError(msg[1], msg[2])

    def export(self, run_job: int, outdir: str, stem: str) -> str:
        return self._expect(self._call(("export", run_job, str(outdir), stem)), "exported")[1]

    def abort(self) -> None:
        """Stop the child at once (window closing): the current call fails with ``crashed``."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()

    def close(self) -> None:
        """Ask the child to quit; terminate it if it does not within a few seconds."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        if proc is None:
            return
        try:
            if conn is not None and proc.is_alive():
                conn.send(("quit",))
        except (OSError, ConnectionError):
            pass
        proc.join(timeout=5.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=2.0)
        if conn is not None:
            conn.close()


def make_host(config: PipelineConfig | None = None, mode: str | None = None):
    """The host for ``mode`` (``process`` | ``thread``; default from ``$OCCGUI_COMPUTE``, else process)."""
    mode = (mode or os.environ.get(COMPUTE_ENV) or "process").lower()
    if mode == "thread":
        return LocalPipelineHost(config)
    if mode != "process":
        raise OccguiError(f"{COMPUTE_ENV} must be 'process' or 'thread', not {mode!r}")
    return ProcessPipelineHost(config)
