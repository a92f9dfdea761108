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

Recovery (issue 17), process host only:

* **The process dies** (``kill -9``, out of memory, a crash in native code): a watcher thread
  waits on the process's sentinel and calls ``on_exit(reason)`` at once, also while idle; the
  next call (or the GUI, at once) starts a fresh process. A run in flight fails with ``crashed``.
* **Cancel within a grace period**: the child polls the cancel flag between stages; when a stage
  does not come back within :data:`CANCEL_GRACE_S` of :meth:`ProcessPipelineHost.request_cancel`
  (a huge photo's decode, a long solve), the process is killed and the run fails with
  ``cancelled`` like any cancel. :attr:`ProcessPipelineHost.restart_needed` then tells the
  caller to start a fresh process.
* **Results survive a restart**: a fresh process's cache is empty; the first run after a restart
  may be given ``kept`` results (the GUI's copies of results computed from the same photo, face,
  landmarks and paint) that are put into the new pipeline's cache under the keys this run
  computes, so they come back as cache hits -- the very objects the GUI holds -- instead of being
  recomputed.
* **Export from what the caller holds**: :meth:`export` takes the ``PipelineResult`` to write;
  the child's own copy is used when it has it (no transfer), else the caller's is sent. An export
  whose process dies half-way leaves no temporary folder behind and the previous folder in place.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
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
#: A run not acknowledging a cancel within this many seconds has its process killed (then restarted).
CANCEL_GRACE_S = 0.15
#: How long a call waits for a process whose pipe ended to report its exit code (seconds).
EXIT_WAIT_S = 15.0
#: Environment hook: ``module:function`` called in the compute process before it serves requests
#: (e.g. to register extra backends with ``occgui.pipeline.backends.register``).
SETUP_ENV = "OCCGUI_COMPUTE_SETUP"
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
    crashed, missing) and a one-line ``message``."""

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


def _exit_code(proc, wait_s: float) -> int | None:
    """The exit code of ``proc``, waiting up to ``wait_s`` for it. The pipe ends before a killed
    process has finished exiting (freeing a few GB on a busy machine takes seconds), and when two
    threads join the same process the one that loses the ``waitpid`` race sees no code at first,
    so this polls until the code is known."""
    deadline = time.monotonic() + wait_s
    while True:
        proc.join(timeout=0.05)
        code = proc.exitcode
        if code is not None or time.monotonic() >= deadline:
            return code


def exit_reason(code: int | None) -> str:
    """Words for a process exit code (``multiprocessing``: negative = killed by that signal)."""
    if code is None:
        return "it stopped"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name} ({-code})"
    return f"exit code {code}"


def run_seed(pipeline: Pipeline, photo: str, source_key_then: str, landmarks, alpha_edit, face_index: int | None,
             values: dict) -> list[str]:
    """Put ``values`` (stage -> result) into ``pipeline``'s cache under the keys a run with these
    inputs computes, so that such a run reuses them; returns the stages seeded.

    Only valid for results computed from exactly these inputs (the caller's duty: the GUI passes
    the results that are not stale for them); nothing is seeded when the photo file changed since
    (``source_key_then``), and a result whose ``backend`` is not the stage's backend now (the
    backend was switched), or computed from such a result, is not seeded. Uses the runner's key
    function, so a seeded result is a cache hit iff the pipeline would have computed it with the
    same key.
    """
    from ..imageio import source_key
    from ..pipeline.runner import _digest

    if not values or source_key(photo) != source_key_then:
        return []
    config = pipeline.config
    if face_index is not None and face_index != config.face_index:
        config = dataclasses.replace(config, face_index=int(face_index))
    if alpha_edit is not None and alpha_edit.empty:
        alpha_edit = None
    keys: dict[str, str] = {}
    seeded = []
    refused: set[str] = set()
    for spec in STAGE_TABLE:
        keys[spec.name] = pipeline._key(spec, keys, photo, landmarks, alpha_edit, config)
        value = values.get(spec.name)
        if value is None:
            continue
        made_by = getattr(value, "backend", None)
        if (refused & set(spec.inputs)) or (spec.protocol is not None and isinstance(made_by, str)
                                            and made_by.split("+")[0] != pipeline.backend(spec.name).name):
            refused.add(spec.name)            # made by another backend, or from a result that was
            continue
        pipeline._cache[spec.name] = (keys[spec.name], value)
        seeded.append(spec.name)
        if spec.name == "landmarks" and not getattr(value, "edited", False):
            pipeline._detected_landmarks = (_digest(*(keys[d] for d in spec.inputs)), value)
    return seeded


def _device_info(pipeline: Pipeline) -> DeviceInfo:
    from ..device import cuda_available, describe

    return DeviceInfo(pipeline.device, describe(pipeline.device), cuda_available())


class LocalPipelineHost:
    """The pipeline in the calling thread (see the module docstring). Nothing to restart: a run
    stops at the next stage boundary after a cancel."""

    restart_needed = False
    alive = True
    pid = None

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

    def seed(self, photo: str, source_key_then: str, landmarks, alpha_edit, face_index, values: dict) -> list[str]:
        """Reuse ``values`` in the next run with these inputs (see :func:`run_seed`)."""
        self.device_info()
        return run_seed(self.pipeline, photo, source_key_then, landmarks, alpha_edit, face_index, values)

    def run(self, job: int, photo: str, landmarks: np.ndarray | None,
            on_event: Callable[[StageEvent], None], cancelled: Callable[[], bool] | None = None, *,
            alpha_edit=None, face_index: int | None = None, backends: dict | None = None,
            kept=None) -> RunReply:
        """Run the pipeline; ``on_event`` gets every StageEvent. Raises :class:`HostError`.

        ``backends``: ``{stage: (name, settings)}`` to use from this run on (None as a name: the
        default; None as settings: its defaults), e.g. the I_out view's switch between ``fisn``
        and the classical backend; only the stages from the first changed one on are recomputed
        (:meth:`Pipeline.set_backend`). ``kept`` (see :class:`ProcessPipelineHost`) is not needed
        here: this pipeline's cache lives as long as the host."""
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

    def export(self, run_job: int | None, outdir: str, stem: str, result: PipelineResult | None = None,
               total_seconds: float | None = None) -> str:
        """Write ``result`` (or, when None, the result of run ``run_job`` kept from :meth:`run`)."""
        if result is None:
            if self._last is None or run_job is None or self._last[0] != run_job:
                raise HostError("missing", "Nothing to export: the run did not finish.")
            result, total_seconds = self._last[1], self._last[2]
        from ..export import export_result

        try:
            folder = export_result(result, outdir, stem=stem, total_seconds=total_seconds)
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
    setup = os.environ.get(SETUP_ENV)
    if setup:
        import importlib

        module, _, func = setup.partition(":")
        getattr(importlib.import_module(module), func or "setup")()
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
            elif op == "seed":
                _, photo, key_then, landmarks, alpha_edit, face_index, values = msg
                seeded = host.seed(photo, key_then, landmarks, alpha_edit, face_index, values)
                for name in seeded:
                    shown[name] = values[name]     # a later cache hit is sent as "the same object"
                send(("seeded", seeded))
            elif op == "export":
                _, run_job, outdir, stem, result, total_seconds = msg
                send(("exported", host.export(run_job, outdir, stem, result, total_seconds)))
        except HostError as e:
            send(("error", e.kind, e.message))
        except BaseException as e:  # noqa: BLE001 -- report, keep serving
            traceback.print_exc(file=sys.stderr)
            send(("error", *classify_error(e)))


def _before_switched(kept: tuple[str, dict], backends: dict | None) -> tuple[str, dict]:
    """``kept`` without the stages from the first one ``backends`` switches on (stage-table order)."""
    if not backends:
        return kept
    order = [st.name for st in STAGE_TABLE]
    first = min(order.index(n) for n in backends if n in order) if any(n in order for n in backends) else len(order)
    return kept[0], {k: v for k, v in kept[1].items() if k in order and order.index(k) < first}


class ProcessPipelineHost:
    """The pipeline in a child process (see the module docstring). Not thread-safe: one thread
    (the worker's) makes the calls; :meth:`request_cancel` and :meth:`abort` may come from any.

    ``on_exit(reason)`` is called from a watcher thread when the process stops without being
    asked to (killed from outside, crashed); not for :meth:`close`, :meth:`abort` or a cancel."""

    def __init__(self, config: PipelineConfig | None = None, on_exit: Callable[[str], None] | None = None,
                 cancel_grace_s: float = CANCEL_GRACE_S):
        self.config = config or PipelineConfig()
        self.on_exit = on_exit
        self.cancel_grace_s = float(cancel_grace_s)
        self.exit_wait_s = EXIT_WAIT_S
        self._ctx = mp.get_context("spawn")
        self._cancel_through = self._ctx.Value("q", 0, lock=False)
        self._proc = None
        self._conn = None
        self._received: dict[str, object] = {}
        self._configured: str | None = None
        self._lock = threading.Lock()
        self._generation = 0
        self._expected_exit: set[int] = set()     # generations stopped on purpose (quit, abort, cancel)
        self._running_job: int | None = None      # the run in flight, if any
        self._killed_for_cancel = False           # the process was killed because a cancel was not acknowledged
        self._fresh = False                       # no run yet in this process (its cache is empty)
        self._finished: tuple[int, int] | None = None   # (generation, job) of the last finished run
        self.restart_needed = False               # the process was stopped by a cancel: start a new one

    # -- process lifecycle ---------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.is_alive() and not self.restart_needed

    @property
    def generation(self) -> int:
        """How many processes were started so far (the current one's number)."""
        return self._generation

    def _ensure_process(self) -> None:
        if self._proc is not None and self._proc.is_alive() and not self.restart_needed:
            return
        self._reap()
        self._received.clear()
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_child_main, args=(child, self._cancel_through, self.config),
                                 name="occgui-compute", daemon=True)
        proc.start()
        child.close()
        with self._lock:
            self._generation += 1
            gen = self._generation
            self._proc, self._conn = proc, parent
        self._configured = None
        self._fresh = True
        self._killed_for_cancel = False
        self.restart_needed = False
        threading.Thread(target=self._watch, args=(proc, gen), name=f"occgui-compute-watch-{gen}",
                         daemon=True).start()

    def _watch(self, proc, gen: int) -> None:
        """Wait for process ``gen`` to end; report it when nobody asked it to."""
        mp_connection.wait([proc.sentinel])
        with self._lock:
            expected = gen in self._expected_exit
        if expected or self.on_exit is None:
            return
        code = _exit_code(proc, self.exit_wait_s)
        try:
            self.on_exit(exit_reason(code))
        except Exception:  # noqa: BLE001 -- a reporting problem must not kill the watcher silently
            traceback.print_exc(file=sys.stderr)

    def _reap(self) -> None:
        """Forget a dead (or killed) process (joined, pipe closed)."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        if proc is not None:
            proc.join(timeout=2.0)
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def _died(self) -> HostError:
        """The process is gone: the error the current call raises (cancelled, when we killed it)."""
        if self._killed_for_cancel:              # killed on purpose: reaped when the next one starts
            self._killed_for_cancel = False
            self.restart_needed = True
            return HostError("cancelled", "Run cancelled.")
        proc = self._proc
        code = None
        if proc is not None:
            code = _exit_code(proc, self.exit_wait_s)
        self._reap()
        return HostError("crashed", f"The compute process stopped unexpectedly ({exit_reason(code)}); "
                                    "it restarts by itself.")

    def _recv(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError, ConnectionError, AttributeError):
            raise self._died() from None

    def _send(self, msg) -> None:
        try:
            self._conn.send(msg)
        except (OSError, ConnectionError, AttributeError):
            raise self._died() from None

    def _call(self, msg):
        self._ensure_process()
        self._send(msg)
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
        """Cancel run ``job`` and older ones. The child polls this between stages; a run that has
        not ended :attr:`cancel_grace_s` later is stopped by killing the process."""
        if job > self._cancel_through.value:
            self._cancel_through.value = job
        running = self._running_job
        if running is not None and running <= job:
            timer = threading.Timer(self.cancel_grace_s, self._kill_if_still_running, args=(running,))
            timer.daemon = True
            timer.start()

    def _kill_if_still_running(self, job: int) -> None:
        with self._lock:
            proc, conn = self._proc, self._conn
            if self._running_job != job or proc is None:
                return
            self._expected_exit.add(self._generation)
            self._killed_for_cancel = True
        try:
            proc.kill()
        except (OSError, AttributeError, ValueError):
            pass
        # SIGKILL cannot be caught: the run is over. Do not wait for the process to finish exiting
        # (freeing a few GB of a niced process can take long on a busy machine): end the pipe now,
        # which wakes the thread waiting in recv() with an end-of-file.
        _shut_down(conn)

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

    def _seed(self, photo: str, landmarks, alpha_edit, face_index, kept) -> None:
        """Give a fresh process the results the caller kept (see the module docstring)."""
        source_key_then, values = kept
        reply = self._expect(self._call(("seed", photo, source_key_then, landmarks, alpha_edit, face_index,
                                         dict(values))), "seeded")
        for name in reply[1]:
            self._received[name] = values[name]

    def run(self, job: int, photo: str, landmarks: np.ndarray | None,
            on_event: Callable[[StageEvent], None], *, alpha_edit=None, face_index: int | None = None,
            backends: dict | None = None, kept: tuple[str, dict] | None = None) -> RunReply:
        """Run in the child; stage events are replayed through ``on_event``. Raises :class:`HostError`.

        ``backends``: as :meth:`LocalPipelineHost.run`. ``kept``: ``(source_key, {stage: result})``,
        results of this photo computed from these inputs that the caller still holds; used only when
        the process is fresh (after a restart), and only for the stages before the first one whose
        backend ``backends`` names (a switched backend's result is recomputed, not seeded)."""
        if self.restart_needed:
            self._reap()
        with self._lock:
            self._running_job = job       # from here on a cancel that is not acknowledged kills the process
        try:
            if job <= self._cancel_through.value:
                raise HostError("cancelled", "Run cancelled.")
            self._ensure_configured()
            landmarks = None if landmarks is None else np.asarray(landmarks)
            if self._fresh and kept is not None and kept[1]:
                kept = _before_switched(kept, backends)
                if kept[1]:
                    self._seed(photo, landmarks, alpha_edit, face_index, kept)
            self._fresh = False
            self._send(("run", job, photo, landmarks, alpha_edit, face_index, dict(backends or {})))
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
                    self._finished = (self._generation, job)
                    return RunReply(dataclasses.replace(skeleton, **fields), counts, seconds)
                elif msg[0] == "error":
                    raise HostError(msg[1], msg[2])
        finally:
            with self._lock:
                self._running_job = None

    def export(self, run_job: int | None, outdir: str, stem: str, result: PipelineResult | None = None,
               total_seconds: float | None = None) -> str:
        """Write ``result`` into ``outdir/<stem>/``. When it is the result of run ``run_job`` and
        this process made it, the process's own copy is written (nothing is sent); otherwise (the
        process was restarted since, or ``run_job`` is None) ``result`` itself is sent. Should the
        process die half-way, no temporary folder is left and an older folder stays in place."""
        same = run_job is not None and self._finished == (self._generation, run_job) and self.alive
        if result is None and not same:
            raise HostError("missing", "Nothing to export: the run did not finish.")
        try:
            reply = self._call(("export", run_job, str(outdir), stem, None if same else result,
                                None if same else total_seconds))
            if reply[0] == "error" and reply[1] == "missing" and result is not None:
                reply = self._call(("export", run_job, str(outdir), stem, result, total_seconds))
        except HostError as e:
            if e.kind == "crashed":
                restore_export_folder(outdir, stem)
                raise HostError("crashed", "Export failed: the compute process stopped while writing; "
                                           "nothing was left half-written, it restarts by itself.") from None
            raise
        return self._expect(reply, "exported")[1]

    def abort(self) -> None:
        """Stop the child at once (window closing): the current call fails with ``crashed``."""
        with self._lock:
            proc = self._proc
            self._expected_exit.add(self._generation)
        if proc is not None and proc.is_alive():
            proc.terminate()

    def close(self) -> None:
        """Ask the child to quit; terminate it if it does not within a few seconds."""
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc, self._conn = None, None
            self._expected_exit.add(self._generation)
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

    @property
    def pid(self) -> int | None:
        """The compute process's id (None when none is running)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() and not self.restart_needed else None


def _shut_down(conn) -> None:
    """Shut the socket under a ``multiprocessing`` connection down, so that a thread blocked in its
    ``recv`` returns with end-of-file at once (closing the descriptor would not wake it)."""
    import socket

    try:
        fd = conn.fileno()
        sock = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)      # a duplicate descriptor
    except (OSError, AttributeError, ValueError):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def restore_export_folder(outdir, stem: str) -> None:
    """Undo what an export killed half-way left in ``outdir`` (see :func:`occgui.export.export_result`):
    its temporary folders go, and a previous ``<stem>`` folder set aside is put back."""
    import shutil
    from pathlib import Path

    from ..export import safe_stem

    outdir = Path(outdir)
    name = safe_stem(stem)
    if not outdir.is_dir():
        return
    for tmp in outdir.glob(f".{name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    olds = sorted(outdir.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    target = outdir / name
    if olds and not target.exists():
        os.replace(olds[-1], target)
        olds = olds[:-1]
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def make_host(config: PipelineConfig | None = None, mode: str | None = None,
              on_exit: Callable[[str], None] | None = None):
    """The host for ``mode`` (``process`` | ``thread``; default from ``$OCCGUI_COMPUTE``, else process);
    ``on_exit`` (process host): called when the compute process stops unexpectedly."""
    mode = (mode or os.environ.get(COMPUTE_ENV) or "process").lower()
    if mode == "thread":
        return LocalPipelineHost(config)
    if mode != "process":
        raise OccguiError(f"{COMPUTE_ENV} must be 'process' or 'thread', not {mode!r}")
    return ProcessPipelineHost(config, on_exit=on_exit)
