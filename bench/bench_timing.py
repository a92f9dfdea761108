"""Shared timing helper of the benchmarks (``python bench/NAME.py`` puts this folder on sys.path)."""
from __future__ import annotations

import statistics
import time


def timed(fn, runs: int, sync) -> tuple[float, float]:
    """(median, min) seconds of ``runs`` calls of ``fn`` after one warm-up call; ``sync()`` waits
    for asynchronous devices (CUDA) before each clock read."""
    fn()
    sync()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)
