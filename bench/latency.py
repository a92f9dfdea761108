"""Latency benchmark: per-stage wall time and peak memory of the CLI pipeline, and the GUI's
re-run latency after a landmark edit (issue point 7).

    python bench/latency.py [--photo PATH] [--runs 5] [--edits 5] [--device cpu|cuda|all]

* **CLI pipeline** (``Pipeline.run`` + ``export_result``, what ``occgui run`` does per photo), on
  the CPU and, when present, CUDA: one warm-up run (model loading, first-call initialisation) is
  not counted, then ``--runs`` runs from an empty result cache. Per stage: the median and minimum
  wall time, the peak resident set size (RSS) of the process while the stage ran and how far it
  rose above the RSS at the stage's start (sampled every 2 ms from ``/proc/self/statm``), and on
  CUDA the peak GPU memory allocated by torch during the stage.
* **GUI re-run after a landmark edit**: the GUI's compute host (:mod:`occgui.gui.compute_host`,
  the Qt-free part of the GUI's worker) runs the photo once, then ``--edits`` times with one
  landmark moved by a few pixels, each stage's display data prepared as the worker does
  (:func:`occgui.gui.view_data.prepare`). Reported: the median wall time from request to the last
  stage's display data, and which stages were recomputed (the rest come from the cache). Both the
  default child-process host and the in-thread host are measured.

Prints one table per measurement.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


class RssSampler:
    """Samples the RSS in a background thread; ``mark()`` starts a new window, ``peak()`` is the
    maximum since the last mark."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self._peak = rss_bytes()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            r = rss_bytes()
            with self._lock:
                self._peak = max(self._peak, r)
            time.sleep(self.interval)

    def mark(self) -> int:
        r = rss_bytes()
        with self._lock:
            self._peak = r
        return r

    def peak(self) -> int:
        r = rss_bytes()
        with self._lock:
            return max(self._peak, r)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def pipeline_latency(photo: Path, device: str, runs: int) -> dict[str, dict[str, list[float]]]:
    """Per stage: wall seconds, peak RSS (bytes), RSS rise (bytes), CUDA peak (bytes) per run."""
    from occgui.export import export_result
    from occgui.pipeline.runner import STAGES, Pipeline, PipelineConfig

    cuda = device == "cuda"
    if cuda:
        import torch
    pipeline = Pipeline(PipelineConfig(device=device))
    names = (*STAGES, "export", "total")
    out = {s: {"seconds": [], "peak": [], "rise": [], "cuda_peak": []} for s in names}
    with tempfile.TemporaryDirectory() as tmp, RssSampler() as sampler:
        pipeline.run(photo)                                   # warm-up, not counted
        for _ in range(runs):
            pipeline.clear_cache()
            start: dict[str, int] = {}

            def on_event(ev, start=start):
                if ev.state == "started":
                    start[ev.stage] = sampler.mark()
                    if cuda:
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                elif ev.state == "finished":
                    if cuda:
                        torch.cuda.synchronize()
                        out[ev.stage]["cuda_peak"].append(torch.cuda.max_memory_allocated())
                    p = sampler.peak()
                    out[ev.stage]["peak"].append(p)
                    out[ev.stage]["rise"].append(p - start[ev.stage])

            t0 = time.perf_counter()
            res = pipeline.run(photo, progress=on_event)
            t1 = time.perf_counter()
            before = sampler.mark()
            export_result(res, Path(tmp), stem=photo.stem)
            t2 = time.perf_counter()
            p = sampler.peak()
            out["export"]["peak"].append(p)
            out["export"]["rise"].append(p - before)
            for s in STAGES:
                out[s]["seconds"].append(res.seconds[s])
            out["export"]["seconds"].append(t2 - t1)
            out["total"]["seconds"].append(t2 - t0)
            out["total"]["peak"].append(max(out[s]["peak"][-1] for s in (*STAGES, "export")))
    return out


def gui_rerun_latency(photo: Path, device: str, edits: int, mode: str) -> dict:
    """Wall time of the GUI's re-run after a landmark edit (see the module docstring)."""
    from occgui.gui import view_data
    from occgui.gui.compute_host import make_host
    from occgui.pipeline.runner import PipelineConfig

    host = make_host(PipelineConfig(device=device), mode)
    try:
        host.warm_up()
        values: dict = {}

        def on_event(ev):
            if ev.state != "started":
                values[ev.stage] = ev.result
                view_data.prepare(ev.stage, ev.result, values)

        t0 = time.perf_counter()
        first = host.run(1, str(photo), None, on_event)
        full_run = time.perf_counter() - t0
        detected = first.result.landmarks_in_photo()
        counts = dict(first.run_counts)
        times, recomputed = [], set()
        for k in range(edits):
            edited = detected.copy()
            edited[30] += (2.0 + k, -1.0)                     # nose tip moved by a few pixels
            t0 = time.perf_counter()
            reply = host.run(2 + k, str(photo), edited, on_event)
            times.append(time.perf_counter() - t0)
            recomputed |= {s for s, n in reply.run_counts.items() if n > counts.get(s, 0)}
            counts = dict(reply.run_counts)
        return {"first_run": full_run, "edit": times, "recomputed": recomputed}
    finally:
        host.close()


def _mb(v: float) -> float:
    return v / 2 ** 20


def print_pipeline_table(photo: Path, device: str, runs: int, data: dict) -> None:
    cuda = device == "cuda"
    print(f"\nCLI pipeline on {device}: {photo.name}, median of {runs} warm runs ({os.cpu_count()} CPU cores)")
    head = f"{'stage':<14}{'median ms':>10}{'min ms':>9}{'peak RSS MB':>13}{'RSS rise MB':>13}"
    print(head + (f"{'CUDA peak MB':>14}" if cuda else ""))
    for s, d in data.items():
        sec = d["seconds"]
        line = f"{s:<14}{1000 * statistics.median(sec):>10.1f}{1000 * min(sec):>9.1f}"
        line += f"{_mb(max(d['peak'])):>13.0f}" if d["peak"] else f"{'':>13}"
        line += f"{_mb(statistics.median(d['rise'])):>13.1f}" if d["rise"] else f"{'':>13}"
        if cuda:
            line += f"{_mb(max(d['cuda_peak'])):>14.0f}" if d["cuda_peak"] else ""
        print(line)


def main() -> None:
    from occgui.resources import sample_photo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=sample_photo())
    ap.add_argument("--runs", type=int, default=5, help="warm runs per device (default 5)")
    ap.add_argument("--edits", type=int, default=5, help="landmark edits for the GUI re-run (default 5)")
    ap.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                    help="all = the CPU and CUDA when present (default)")
    args = ap.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not _cuda_available():
        if args.device == "cuda":
            sys.exit("bench: CUDA is not available on this machine")
        devices.remove("cuda")
        print("(CUDA not available: CPU only)")
    for dev in devices:
        print_pipeline_table(args.photo, dev, args.runs, pipeline_latency(args.photo, dev, args.runs))
    print(f"\nGUI re-run after a landmark edit ({args.edits} edits, median):")
    print(f"{'device':<8}{'host':<10}{'first run ms':>14}{'re-run ms':>11}{'min ms':>9}  recomputed stages")
    for dev in devices:
        for mode in ("process", "thread"):
            r = gui_rerun_latency(args.photo, dev, args.edits, mode)
            from occgui.pipeline.runner import STAGES

            rec = ", ".join(s for s in STAGES if s in r["recomputed"])
            print(f"{dev:<8}{mode:<10}{1000 * r['first_run']:>14.0f}{1000 * statistics.median(r['edit']):>11.0f}"
                  f"{1000 * min(r['edit']):>9.0f}  {rec}")


if __name__ == "__main__":
    main()
