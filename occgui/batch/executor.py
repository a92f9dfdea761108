"""One executor for every batch of occgui: in this process, in N local processes, or on a Ray cluster.

A batch is a list of *items* (photos, evaluation cases) and a *factory*: a picklable callable with no
arguments that builds a worker's state once (the models: a :class:`occgui.pipeline.runner.Pipeline`)
and returns the *task*, a callable ``task(item) -> value``. Every worker calls the factory once and
then runs many items, so the models load once per worker, not once per item.

* :class:`SerialExecutor` (``workers=1``): here, in this process (the factory's ``local`` shortcut
  reuses state the caller already built).
* :class:`ProcessExecutor` (``--workers N``): ``concurrent.futures.ProcessPoolExecutor`` with N
  ``spawn`` processes; the factory runs in each process's initializer.
* :class:`RayExecutor` (``--ray ADDRESS``): N Ray actors, each holding the task its factory built;
  ``num_gpus`` per actor when the cluster has GPUs and the device is ``cuda`` or ``auto``. Ray is
  the optional extra ``occgui[cluster]``; ``ADDRESS`` ``local`` starts a private Ray instance on
  this machine, bound to 127.0.0.1 (tests, one-machine runs).

:meth:`Executor.map_unordered` yields one :class:`Outcome` per item as items finish: the value, or
the item's error as one line (a task that raises fails its item, not the batch). A factory that
raises (a missing checkpoint) ends the batch with :class:`WorkerStartError`. Values and errors
travel back to the caller, which alone writes files: the workers need the inputs, not the output
folder (see :mod:`occgui.batch.photos`).

No torch and no Ray at import time: Ray is imported by :class:`RayExecutor` only.
"""
from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..errors import OccguiError

#: ``--ray`` address that starts a private, loopback-only Ray instance on this machine.
LOCAL_RAY = "local"
CLUSTER_EXTRA_HINT = "install the cluster extra: pip install 'occgui[cluster]'"


class WorkerStartError(OccguiError):
    """A worker could not build its state (the factory raised); the batch cannot go on."""


@dataclass(frozen=True)
class Outcome:
    """One item's result: ``value`` when ``error`` is None, else the one-line error."""

    index: int           # position of the item in the list given to map_unordered
    item: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def one_line_error(e: BaseException) -> str:
    """The one line a batch reports for an item that failed with ``e``."""
    if isinstance(e, OccguiError):
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, MemoryError):
        return "out of memory"
    text = str(e).strip().splitlines()
    return f"internal error ({type(e).__name__}: {text[0] if text else ''})"


def _run_one(task: Callable, index: int, item) -> tuple[int, Any, str | None]:
    """``(index, value, None)`` or ``(index, None, error line)``; OCCGUI_DEBUG=1 re-raises bugs."""
    try:
        return index, task(item), None
    except (Exception, MemoryError) as e:
        if os.environ.get("OCCGUI_DEBUG") and not isinstance(e, OccguiError):
            raise
        return index, None, one_line_error(e)


def limit_threads(threads: int) -> None:
    """Give this worker process ``threads`` compute threads (N workers share the machine's cores):
    OpenMP/BLAS for libraries loaded later, onnxruntime's CPU sessions, OpenCV, and torch when loaded."""
    threads = max(1, int(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from .. import onnx_runtime

    onnx_runtime.MAX_THREADS = threads
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                              # not on Linux
        return os.cpu_count() or 1


class Executor(ABC):
    """Runs a factory's task over items (see the module docstring)."""

    workers: int = 1
    description: str = ""

    @abstractmethod
    def map_unordered(self, factory: Callable[[], Callable], items: Iterable, *, local: Callable | None = None,
                      prepare: Callable | None = None) -> Iterator[Outcome]:
        """One :class:`Outcome` per item (``Outcome.item`` is the item as given), in the order they
        finish. ``local``: a task already built in this process, used instead of ``factory()`` when
        the executor runs here (serial). ``prepare(item)``: what is sent to a worker instead of the
        item, made when the item is dispatched (Ray: when an actor is free, so that e.g. a photo's
        bytes are read only then)."""

    def close(self) -> None:  # noqa: B027 -- optional hook: an executor without workers has nothing to release
        """Release the workers (processes, actors, a private Ray instance)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(Executor):
    """Every item in this process, in order."""

    description = "1 worker (this process)"

    def map_unordered(self, factory, items, *, local=None, prepare=None):
        task = local
        for i, item in enumerate(items):
            if task is None:
                try:
                    task = factory()
                except OccguiError:
                    raise
                except Exception as e:
                    raise WorkerStartError(f"the worker could not start: {one_line_error(e)}") from e
            index, value, error = _run_one(task, i, item if prepare is None else prepare(item))
            yield Outcome(index, item, value, error)


# ----------------------------------------------------------------------------- local processes
_PROCESS_TASK: Callable | None = None
_PROCESS_START_ERROR: str | None = None


def _process_init(factory: Callable, threads: int) -> None:
    global _PROCESS_TASK, _PROCESS_START_ERROR
    limit_threads(threads)
    try:
        _PROCESS_TASK = factory()
    except BaseException as e:                         # reported with the first item
        _PROCESS_START_ERROR = one_line_error(e)


def _process_call(index: int, item) -> tuple[int, Any, str | None, bool]:
    if _PROCESS_START_ERROR is not None:
        return index, None, _PROCESS_START_ERROR, True
    return (*_run_one(_PROCESS_TASK, index, item), False)


class ProcessExecutor(Executor):
    """N local ``spawn`` processes (``concurrent.futures.ProcessPoolExecutor``); each builds its state
    once and gets ``cores // N`` compute threads."""

    def __init__(self, workers: int):
        if workers < 1:
            raise OccguiError("--workers must be at least 1")
        self.workers = int(workers)
        self.threads = max(1, machine_cores() // self.workers)
        self.description = f"{self.workers} local processes, {self.threads} thread(s) each"
        self._pool = None

    def map_unordered(self, factory, items, *, local=None, prepare=None):
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        items = list(items)
        if not items:
            return
        self._pool = ProcessPoolExecutor(max_workers=min(self.workers, len(items)),
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_process_init, initargs=(factory, self.threads))
        pending = {self._pool.submit(_process_call, i, item if prepare is None else prepare(item)): i
                   for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    try:
                        index, value, error, start_failed = fut.result()
                    except BrokenProcessPool as e:
                        raise WorkerStartError("a worker process died (out of memory or a crash in native "
                                               f"code) while running {items[i]}") from e
                    if start_failed:
                        raise WorkerStartError(f"a worker could not start: {error}")
                    yield Outcome(index, items[index], value, error)
        finally:
            for fut in pending:
                fut.cancel()
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# ----------------------------------------------------------------------------- Ray
#: Ray's switch for one-machine instances (its default on macOS and Windows): the node's address is
#: 127.0.0.1, and Ray's gRPC servers then listen on 127.0.0.1 only, not on every interface.
_RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_only(ray) -> None:
    """Make the next ``ray.init()`` without an address start a node reachable from this machine only
    (its processes inherit the environment variable)."""
    os.environ[_RAY_LOOPBACK_ENV] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False        # read at import time; ray may be imported already


def import_ray():
    """The ``ray`` module, or a one-line :class:`OccguiError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise OccguiError(f"--ray needs Ray, which is not installed; {CLUSTER_EXTRA_HINT}") from None
    return ray


class _Actor:
    """A Ray actor: builds the task once (the models), then runs many items."""

    def __init__(self, factory: Callable, threads: int):
        limit_threads(threads)
        self.start_error = None
        self.task = None
        try:
            self.task = factory()
        except BaseException as e:
            self.start_error = one_line_error(e)

    def run(self, index: int, item) -> tuple[int, Any, str | None, bool]:
        if self.start_error is not None:
            return index, None, self.start_error, True
        return (*_run_one(self.task, index, item), False)


def gpus_per_actor(cluster_gpus: float, workers: int, device: str) -> float:
    """GPUs each of ``workers`` actors requests: none on a CPU cluster or for ``--device cpu``; one
    each when there are enough, else an equal share (actors then share GPUs)."""
    if cluster_gpus <= 0 or device == "cpu" or workers < 1:
        return 0.0
    return 1.0 if cluster_gpus >= workers else round(cluster_gpus / workers, 4)


class RayExecutor(Executor):
    """``workers`` model-holding Ray actors on the cluster at ``address`` (``local``: a private
    loopback-only instance with ``workers`` CPUs; ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``: an
    existing cluster). ``workers`` None: one actor per GPU of the cluster when the device may use
    them, else one per CPU. A ``local`` instance is shut down by :meth:`close`; an existing cluster
    is only disconnected from."""

    def __init__(self, address: str, workers: int | None = None, *, device: str = "auto"):
        ray = import_ray()
        if workers is not None and workers < 1:
            raise OccguiError("--workers must be at least 1")
        self._ray = ray
        self._owned = False               # a private local instance, shut down by close()
        self._connected = False           # connected by this executor, disconnected by close()
        self._actors: list = []
        if ray.is_initialized():          # the caller connected already (a notebook, a test)
            pass
        elif address == LOCAL_RAY:
            loopback_only(ray)
            cpus = workers or machine_cores()
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,     # GPUs: Ray finds them
                     configure_logging=False, logging_level="ERROR")
            self._owned = self._connected = True
        else:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False, logging_level="ERROR")
            except Exception as e:
                raise OccguiError(f"--ray {address}: could not connect to the Ray cluster "
                                  f"({one_line_error(e)})") from None
            self._connected = True
        res = ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        if workers is None:
            workers = int(gpus) if gpus >= 1 and device != "cpu" else max(1, int(cpus))
        self.workers = int(workers)
        self.num_gpus = gpus_per_actor(gpus, self.workers, device)
        self.num_cpus = 1
        where = "a private local Ray instance" if self._owned else f"the Ray cluster at {address}"
        gpu_text = f", {self.num_gpus:g} GPU each" if self.num_gpus else ""
        self.description = f"{self.workers} Ray actors on {where} ({cpus:g} CPUs, {gpus:g} GPUs{gpu_text})"

    def map_unordered(self, factory, items, *, local=None, prepare=None):
        ray = self._ray
        from ray.util import ActorPool

        items = list(items)
        if not items:
            return
        actor_cls = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(_Actor)
        self._actors = [actor_cls.remote(factory, self.num_cpus) for _ in range(min(self.workers, len(items)))]
        pool = ActorPool(self._actors)
        send = prepare or (lambda item: item)
        for i, item in enumerate(items):    # ActorPool dispatches (and prepares) one per free actor
            pool.submit(lambda actor, job: actor.run.remote(job[0], send(job[1])), (i, item))
        try:
            for _ in items:
                try:
                    index, value, error, start_failed = pool.get_next_unordered()
                except ray.exceptions.RayActorError as e:
                    raise WorkerStartError(f"a Ray actor died ({one_line_error(e)})") from None
                if start_failed:
                    raise WorkerStartError(f"a worker could not start: {error}")
                yield Outcome(index, items[index], value, error)
        finally:
            self._kill_actors()

    def _kill_actors(self) -> None:
        for a in self._actors:
            try:
                self._ray.kill(a)
            except Exception:           # already gone
                pass
        self._actors = []

    def close(self) -> None:
        self._kill_actors()
        if self._connected and self._ray.is_initialized():
            self._ray.shutdown()
        self._connected = False


def make_executor(workers: int | None = None, ray_address: str | None = None, *, device: str = "auto") -> Executor:
    """The executor of ``--workers N`` / ``--ray ADDRESS`` (serial for neither or ``--workers 1``)."""
    if workers is not None and workers < 1:
        raise OccguiError("--workers must be at least 1")
    if ray_address:
        return RayExecutor(ray_address, workers, device=device)
    if workers is None or workers == 1:
        return SerialExecutor()
    return ProcessExecutor(workers)


def add_arguments(p, *, what: str = "items") -> None:
    """``--workers N`` and ``--ray ADDRESS`` on an argparse parser (``occgui run``, ``occgui eval ...``)."""
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help=f"run the {what} in N local processes, each loading the models once (default 1); with "
                        "--ray: N Ray actors (default: one per GPU of the cluster, else one per CPU)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help=f"run the {what} on a Ray cluster (needs occgui[cluster], and occgui on every node): "
                        "auto, HOST:PORT or ray://HOST:PORT; 'local' starts a private Ray instance on this machine")


def executor_from_args(args) -> Executor:
    """The executor of parsed ``--workers`` / ``--ray`` (:func:`add_arguments`) and ``--device``."""
    return make_executor(args.workers, args.ray, device=getattr(args, "device", "auto"))
