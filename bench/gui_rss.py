"""RSS growth of the GUI over repeated runs (issue 17, point 4: RSS growth over 50 GUI runs
reported and bounded).

    xvfb-run -a python bench/gui_rss.py [--runs 50] [--warmup 10] [--mode nudge|reopen] [--bound-mb 2]

Opens the main window (a real ``MainWindow`` with its compute process, as ``occgui`` starts it),
runs the bundled sample photo, then ``--runs`` more times: ``nudge`` moves the chin landmark by
a few pixels (alternately down and back) and presses Re-run -- M_beta, M_gamma, I_out, the mesh
and the texture are recomputed and every view is redrawn; ``reopen`` opens the two bundled sample
photos in turn (File > Open), so every stage is recomputed and the document replaced each run.
After each run it samples the RSS of the GUI process and of the compute process
(``/proc/PID/status``). Growth per run is the least-squares slope over the runs after
``--warmup`` (allocator pools, font and GL caches and the models' first-call buffers settle in
the first runs); total growth is the last sample minus the first after the warm-up. Exit status 1
when either process grows faster than ``--bound-mb`` per run.

Why 2 MB per run: one run's results are 6.3 MB on the sample (pickled: the 1024-px texture and
its provenance map 4.2 MB, the working image 0.8 MB, the mesh 0.6 MB, crop, maps and I_out the
rest; a re-run after a nudge recomputes 5.2 MB of them); a run that leaked its results, or the
views' copies of them, would grow by that much or more. At 2 MB per run, a long editing session
of 200 re-runs stays within 0.4 GB of growth per process, leaving both processes (0.4-0.5 GB
each at rest) well inside the 2.5 GB memory bound.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_API", "pyside6")

RUN_TIMEOUT_S = 600.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def slope(ys: list[float]) -> float:
    """Least-squares growth per step of the series ``ys``."""
    n = len(ys)
    if n < 2:
        return 0.0
    xm, ym = (n - 1) / 2, statistics.fmean(ys)
    return sum((i - xm) * (y - ym) for i, y in enumerate(ys)) / sum((i - xm) ** 2 for i in range(n))


def wait_run(app, session, start) -> tuple[str, object]:
    """Call ``start()`` and pump the event loop until the session reports the run's end."""
    from PySide6.QtCore import QEventLoop, QTimer

    got: list = []
    loop = QEventLoop()

    def done(outcome):
        got.append(("finished", outcome))
        loop.quit()

    def failed(kind, message):
        got.append(("failed", (kind, message)))
        loop.quit()

    session.runFinished.connect(done)
    session.runFailed.connect(failed)
    QTimer.singleShot(int(RUN_TIMEOUT_S * 1000), loop.quit)
    try:
        if not start():
            raise RuntimeError("the run did not start")
        if not got:
            loop.exec()
    finally:
        session.runFinished.disconnect(done)
        session.runFailed.disconnect(failed)
    if not got:
        raise RuntimeError(f"no run end within {RUN_TIMEOUT_S:.0f} s")
    return got[0]


def settle(app, ms: int = 150) -> None:
    """Let queued paints and timers run before sampling."""
    from PySide6.QtTest import QTest

    QTest.qWait(ms)
    app.processEvents()


def compute_pid(window) -> int | None:
    """The compute process's pid (None when the pipeline runs in the GUI process)."""
    host = getattr(getattr(window.session, "_worker", None), "host", None)
    proc = getattr(host, "_proc", None)
    return proc.pid if proc is not None and proc.is_alive() else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10, help="runs left out of the growth rate")
    ap.add_argument("--mode", choices=("nudge", "reopen"), default="nudge")
    ap.add_argument("--bound-mb", type=float, default=2.0, help="largest accepted growth per run, MB")
    ap.add_argument("--photo", type=Path, help="photo to run (default: the bundled sample)")
    ap.add_argument("--photo2", type=Path, help="the other photo of --mode reopen (default: the masked sample)")
    a = ap.parse_args(argv)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("needs a display: run under xvfb-run -a", file=sys.stderr)
        return 2
    if a.warmup >= a.runs - 2:
        ap.error("--warmup must leave at least 3 runs")

    import numpy as np
    from PySide6.QtCore import QStandardPaths

    from occgui.gui.app import create_application
    from occgui.gui.settings import use_settings_folder
    from occgui.resources import sample_photo

    QStandardPaths.setTestModeEnabled(True)
    settings = tempfile.TemporaryDirectory()
    use_settings_folder(Path(settings.name))
    app = create_application()
    from occgui.gui.main_window import MainWindow

    photo = a.photo or sample_photo()
    photo2 = a.photo2 or ROOT / "resources" / "samples" / "astronaut_mask.png"
    win = MainWindow()
    win.session.auto_rerun = False
    win.show()
    settle(app, 300)
    t0 = time.perf_counter()
    kind, outcome = wait_run(app, win.session, lambda: win.open_photo(photo))
    if kind != "finished":
        print(f"first run failed: {outcome}", file=sys.stderr)
        return 1
    settle(app)
    gui_pid, cpid = os.getpid(), compute_pid(win)
    names = photo.name + (f" and {photo2.name}" if a.mode == "reopen" else "")
    print(f"{a.mode}: {a.runs} runs of {names}; GUI pid {gui_pid}, compute pid {cpid}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"run   0: GUI {rss_mb(gui_pid):7.1f} MB  compute {rss_mb(cpid) if cpid else float('nan'):7.1f} MB  "
          f"({time.perf_counter() - t0:.1f} s)")
    gui, comp, secs = [], [], []
    for i in range(1, a.runs + 1):
        s = win.session
        if a.mode == "nudge":
            pts = np.array(s.document.landmarks, dtype=np.float64)
            iod = float(np.linalg.norm(pts[36] - pts[45]))
            s.move_landmark(8, pts[8] + (0.0, (0.03 if i % 2 else -0.03) * iod))
            start = win.rerun
        else:
            def start(p=(photo2 if i % 2 else photo)):
                return win.open_photo(p)
        t = time.perf_counter()
        kind, outcome = wait_run(app, s, start)
        secs.append(time.perf_counter() - t)
        if kind != "finished":
            print(f"run {i} failed: {outcome}", file=sys.stderr)
            return 1
        settle(app)
        pid = compute_pid(win)
        if pid != cpid:
            print(f"run {i}: the compute process changed ({cpid} -> {pid})", file=sys.stderr)
            cpid = pid
        gui.append(rss_mb(gui_pid))
        comp.append(rss_mb(cpid) if cpid else float("nan"))
        if i % 10 == 0 or i == 1:
            print(f"run {i:3d}: GUI {gui[-1]:7.1f} MB  compute {comp[-1]:7.1f} MB  ({secs[-1]:.2f} s)")
    win.session.undo_stack.setClean()
    win.close()
    win.deleteLater()
    settle(app)

    w = a.warmup
    worst = 0.0
    print(f"\nrun time median {statistics.median(secs):.2f} s; growth after {w} warm-up runs "
          f"(least-squares slope over runs {w + 1}-{a.runs}; total = run {a.runs} - run {w + 1}; "
          f"whole = run {a.runs} - run 1):")
    for name, ys in (("GUI process", gui), ("compute process", comp)):
        if not ys or any(y != y for y in ys):
            print(f"  {name:16s} not measured (no separate process)")
            continue
        per_run = slope(ys[w:])
        worst = max(worst, per_run)
        print(f"  {name:16s} {per_run:+6.2f} MB/run  total {ys[-1] - ys[w]:+7.1f} MB  "
              f"whole {ys[-1] - ys[0]:+7.1f} MB  (rest {ys[w]:.0f} MB, last {ys[-1]:.0f} MB)")
    ok = worst <= a.bound_mb
    print(f"worst growth {worst:+.2f} MB/run: {'within' if ok else 'ABOVE'} the bound of {a.bound_mb} MB/run")
    return 0 if ok else 1


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: PySide6 may abort while collecting Qt objects at exit
    # ("bool_dealloc: deallocating True or False"), after the measurement is complete.
    os._exit(rc)
