"""Benchmark of the headless pipeline on the bundled sample (issue: whole run <= 1.5 s warm,
process cold start to finished export <= 6 s, peak RSS <= 2.5 GB on the 2-core CPU machine).

    python bench/pipeline.py [--runs 5] [--device cpu] [--photo PATH] [--option STAGE.SETTING=VALUE ...]

Prints per-stage times (median of warm runs, export included), the cold-start time of a fresh
``occgui run`` process with its peak RSS, and each figure as a ratio of its target.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_WARM_S = 1.5
TARGET_COLD_S = 6.0
TARGET_RSS_GB = 2.5


def warm_runs(photo: Path, runs: int, device: str, options: list[str] | None = None) -> dict[str, list[float]]:
    from occgui.export import export_result
    from occgui.pipeline.backends import parse_settings
    from occgui.pipeline.runner import STAGES, Pipeline, PipelineConfig

    times: dict[str, list[float]] = {s: [] for s in (*STAGES, "export", "total")}
    pipeline = Pipeline(PipelineConfig(device=device, settings=parse_settings(options)))
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.run(photo)  # model loading and first-call initialisation (not counted)
        for _ in range(runs):
            pipeline.clear_cache()
            t0 = time.perf_counter()
            res = pipeline.run(photo)
            t1 = time.perf_counter()
            export_result(res, Path(tmp), stem=photo.stem)
            t2 = time.perf_counter()
            for s in STAGES:
                times[s].append(res.seconds[s])
            times["export"].append(t2 - t1)
            times["total"].append(t2 - t0)
    return times


def cold_start(photo: Path, device: str, options: list[str] | None = None) -> tuple[float, float]:
    exe = [sys.executable, "-m", "occgui", "run", str(photo), "-q", "--device", device]
    for o in options or []:
        exe += ["--option", o]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(exe + ["-o", tmp], check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return dt, rss_kb / 1024 / 1024


def main() -> None:
    from occgui.resources import sample_photo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--photo", type=Path, default=sample_photo())
    ap.add_argument("--option", action="append", default=[], metavar="STAGE.SETTING=VALUE",
                    help="a backend setting, as for occgui run (e.g. parse.hand_evidence=true)")
    args = ap.parse_args()

    cold_s, rss_gb = cold_start(args.photo, args.device, args.option)  # first, so the page cache state is comparable
    times = warm_runs(args.photo, args.runs, args.device, args.option)
    print(f"occgui pipeline benchmark: {args.photo.name}, device={args.device}, {os.cpu_count()} CPU cores, "
          f"median of {args.runs} warm runs" + (f", options {' '.join(args.option)}" if args.option else ""))
    print(f"{'stage':<14}{'median ms':>10}{'min ms':>9}")
    for s, v in times.items():
        if s == "total":
            continue
        print(f"{s:<14}{1000 * statistics.median(v):>10.1f}{1000 * min(v):>9.1f}")
    warm = statistics.median(times["total"])
    print(f"{'total (warm)':<14}{1000 * warm:>10.1f}{1000 * min(times['total']):>9.1f}")
    print()
    print(f"{'figure':<34}{'measured':>10}{'target':>9}{'ratio':>8}")
    for name, val, tgt, _unit in (("whole run, warm (s)", warm, TARGET_WARM_S, "s"),
                                 ("cold start to finished export (s)", cold_s, TARGET_COLD_S, "s"),
                                 ("peak RSS of that process (GB)", rss_gb, TARGET_RSS_GB, "GB")):
        print(f"{name:<34}{val:>10.2f}{tgt:>9.2f}{val / tgt:>8.2f}")


if __name__ == "__main__":
    main()
