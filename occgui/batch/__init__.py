"""Batches of photos or evaluation items in this process, in N local processes, or on a Ray cluster.

:mod:`occgui.batch.executor` is the one executor every batch uses (``occgui run FOLDER --workers N``
or ``--ray ADDRESS``, and ``occgui eval``); :mod:`occgui.batch.photos` runs ``occgui run`` over many
photos with it. Nothing here imports torch or Ray at import time.
"""
from .executor import (
    LOCAL_RAY,
    Executor,
    Outcome,
    ProcessExecutor,
    RayExecutor,
    SerialExecutor,
    WorkerStartError,
    make_executor,
    one_line_error,
)

__all__ = ["LOCAL_RAY", "Executor", "Outcome", "ProcessExecutor", "RayExecutor", "SerialExecutor",
           "WorkerStartError", "make_executor", "one_line_error"]
