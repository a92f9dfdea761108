"""Cancel latency of the GUI's compute process in every stage (issue 17 point 4: "cancel within
0.5 s in every stage, including loading a huge photo").

    python bench/cancel_latency.py [--repeats 3] [--huge-side 16000] [--stages load,detect,...]

The GUI's Cancel calls ``ProcessPipelineHost.request_cancel``; the child process checks the flag
between stages, and a stage that does not come back within ``CANCEL_GRACE_S`` has its process
killed (a new one is started). Measured here, without Qt, from ``request_cancel`` to the moment
``run`` raises ``cancelled`` in the calling thread -- what the GUI's worker thread then reports to
the window (the test ``tests/gui/test_recovery.py`` prints the window-level number, which adds
the queued signal and the repaint):

* **huge photo**: a real ``--huge-side``² JPEG (made once, kept in the temp folder), cancelled
  0.5 s into its ``load`` stage (the decode);
* **every stage**: the bundled sample, with the stage made to block (``tests/gui/slow_stage.py``,
  a ``time.sleep`` that never returns to the pipeline's cancel check), cancelled 0.3 s after the
  block starts.

Also reported: how long until a new process is ready again (spawn + model loading), which the
next run waits for. Each case is repeated ``--repeats`` times; the median and the maximum are
printed, with the machine's load average (other jobs on a 2-core machine slow everything down).
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
sys.path.insert(0, str(ROOT / "tests" / "gui"))          # slow_stage.py, imported by the compute process


def huge_jpeg(side: int) -> Path:
    """A ``side``x``side`` JPEG of the sample face (made once)."""
    path = Path(tempfile.gettempdir()) / f"occgui_bench_huge_{side}.jpg"
    if not path.exists():
        from PIL import Image

        from occgui.resources import sample_photo

        Image.MAX_IMAGE_PIXELS = None
        img = Image.open(sample_photo()).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        tmp = path.with_suffix(".tmp.jpg")
        img.save(tmp, quality=90)
        os.replace(tmp, path)
    return path


def one_cancel(host, job: int, photo: str, stage: str, delay: float, mark: Path | None) -> float:
    """Start run ``job`` and cancel it ``delay`` s after ``stage`` started; seconds until it raised."""
    from occgui.gui.compute_host import HostError

    started = threading.Event()
    clicked: list[float] = []

    def on_event(ev):
        if ev.stage == stage and ev.state == "started" and mark is None:
            started.set()

    def canceller():
        if mark is not None:
            while not mark.exists():
                time.sleep(0.005)
        else:
            started.wait()
        time.sleep(delay)
        clicked.append(time.perf_counter())
        host.request_cancel(job)

    if mark is not None and mark.exists():
        mark.unlink()
    threading.Thread(target=canceller, daemon=True).start()
    try:
        host.run(job, photo, None, on_event)
    except HostError as e:
        if e.kind != "cancelled":
            raise
        return time.perf_counter() - clicked[0]
    raise RuntimeError(f"the run of {stage} finished before the cancel")


def ready_again(host) -> float:
    t = time.perf_counter()
    host.warm_up()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--huge-side", type=int, default=16000, help="0 skips the huge photo")
    ap.add_argument("--stages", default="load,detect,parse,landmarks,landmark_map,merge,synthesize,geometry,texture")
    args = ap.parse_args()

    from occgui.gui.compute_host import CANCEL_GRACE_S, SETUP_ENV, ProcessPipelineHost
    from occgui.resources import sample_photo

    rows = []
    job = 0
    if args.huge_side:
        t = time.perf_counter()
        photo = huge_jpeg(args.huge_side)
        print(f"huge photo {photo} ({photo.stat().st_size / 1e6:.0f} MB, "
              f"made/found in {time.perf_counter() - t:.1f} s)")
        host = ProcessPipelineHost()
        host.warm_up()
        lat, ready = [], []
        for _ in range(args.repeats):
            job += 1
            lat.append(one_cancel(host, job, str(photo), "load", 0.5, None))
            ready.append(ready_again(host))
        host.close()
        rows.append((f"load {args.huge_side}\u00b2 JPEG", lat, ready))

    mark = Path(tempfile.gettempdir()) / f"occgui_bench_cancel_{os.getpid()}.started"
    os.environ[SETUP_ENV] = "slow_stage:install"
    os.environ["OCCGUI_TEST_SLOW_MARK"] = str(mark)
    os.environ["OCCGUI_TEST_SLOW_SECONDS"] = "120"
    for stage in [s for s in args.stages.split(",") if s]:
        os.environ["OCCGUI_TEST_SLOW_STAGE"] = stage
        host = ProcessPipelineHost()
        host.warm_up()
        lat, ready = [], []
        for _ in range(args.repeats):
            job += 1
            lat.append(one_cancel(host, job, str(sample_photo()), stage, 0.3, mark))
            ready.append(ready_again(host))
        host.close()
        rows.append((f"{stage} (blocking)", lat, ready))
    if mark.exists():
        mark.unlink()

    load = os.getloadavg()
    print(f"\ncancel latency, request_cancel -> run raised 'cancelled' (grace {CANCEL_GRACE_S * 1000:.0f} ms; "
          f"{args.repeats} repeats; load average {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'stage':<28}{'median ms':>10}{'max ms':>10}{'new process ready, median s':>30}")
    for name, lat, ready in rows:
        print(f"{name:<28}{statistics.median(lat) * 1000:>10.0f}{max(lat) * 1000:>10.0f}"
              f"{statistics.median(ready):>30.2f}")


if __name__ == "__main__":
    main()
