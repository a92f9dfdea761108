"""Issue 17 point 3 and the cancel part of point 4, in the window: the compute process restarts by
itself after ``kill -9`` (idle, during a run, during an export), the export writes the results on
screen, every status line reflects the last action, stage counters and timings are right after
cancel, failure and reuse, and Cancel takes effect within half a second in any stage (a stage made
to block by ``slow_stage.py``, the way a huge photo's decode does).

Every test has a window of its own (own compute process), so they pass alone and in any order.
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import close_window, drop_on, file_mime, wait_export, wait_run_end

pytestmark = pytest.mark.gui

#: What the test allows for Cancel -> idle + "Cancelled" on this shared, loaded 2-core machine; the
#: target (0.5 s) is measured by bench/cancel_latency.py, the value seen is printed here.
CANCEL_BOUND_S = 2.0


@pytest.fixture
def slow_window(gui_app, qtbot, monkeypatch, tmp_path):
    """``make(stage)``: a window whose compute process blocks in ``stage`` (see slow_stage.py);
    returns (window, mark file written when the block starts)."""
    from gui_helpers import ModalGuard
    from PySide6.QtTest import QTest

    from occgui.gui.compute_host import SETUP_ENV
    from occgui.gui.main_window import MainWindow

    made = []
    guard = ModalGuard()

    def make(stage: str, seconds: float = 60.0):
        mark = tmp_path / f"{stage}.started"
        monkeypatch.setenv(SETUP_ENV, "slow_stage:install")
        monkeypatch.setenv("OCCGUI_TEST_SLOW_STAGE", stage)
        monkeypatch.setenv("OCCGUI_TEST_SLOW_SECONDS", str(seconds))
        monkeypatch.setenv("OCCGUI_TEST_SLOW_MARK", str(mark))
        win = MainWindow()
        win.show()
        QTest.qWaitForWindowExposed(win)
        made.append(win)
        return win, mark

    yield make
    for win in made:
        close_window(win)
    guard.stop()
    assert not guard.closed, f"a dialog was left open and had to be closed: {guard.closed}"


def _not_slow_any_more(monkeypatch) -> None:
    """Compute processes started from now on block nowhere."""
    monkeypatch.delenv("OCCGUI_TEST_SLOW_STAGE", raising=False)


def _status(window) -> str:
    return window.status.stage_label.toolTip()


def _kill_compute(window) -> int:
    pid = window.session._worker.host.pid
    assert pid is not None and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    return pid


def _wait_restarted(qtbot, window, old_pid: int) -> None:
    qtbot.waitUntil(lambda: _status(window).startswith("Compute process restarted"), timeout=120_000)
    pid = window.session._worker.host.pid
    assert pid is not None and pid != old_pid


def test_kill_9_while_idle_restarts_exports_what_is_on_screen_and_reuses_it(qtbot, ran_window, tmp_path):
    from occgui.gui.export_check import check_export_folder

    window = ran_window
    s, doc = window.session, window.session.document
    shown = dict(doc.results)
    seen: list[str] = []
    s.progress.connect(lambda text, *_: seen.append(text))
    pid = _kill_compute(window)
    qtbot.waitUntil(lambda: any("stopped" in t and "restarting" in t for t in seen), timeout=10_000)
    assert any("SIGKILL" in t for t in seen), seen
    _wait_restarted(qtbot, window, pid)
    assert "results on screen are kept" in _status(window)
    assert all(doc.results[k] is v for k, v in shown.items()) and doc.complete

    kind, folder = wait_export(qtbot, window, tmp_path)          # from the results on screen
    assert kind == "ok", folder
    assert check_export_folder(Path(folder), expected_landmarks=doc.landmarks) == []
    assert _status(window).startswith("Exported to")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary folder was left behind"

    s.move_landmark(48, doc.landmarks[48] + (-3.0, 0.0))          # then a re-run reuses what survived
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome
    assert outcome.reused == ("load", "detect", "parse"), outcome
    assert set(outcome.computed) == set(s.document.results) - {"load", "detect", "parse"}
    assert "6 computed \u00b7 3 reused" in _status(window)
    assert doc.results["parse"] is shown["parse"], "a kept result comes back as the very object on screen"
    tip = window.stage_strip.tooltip_text("parse")
    assert "reused" in tip and "computed in" not in tip, tip
    tip = window.stage_strip.tooltip_text("landmarks")
    assert not re.search(r"(?<![0-9.])0 ms", tip), tip                  # never "computed in 0 ms"


def test_kill_9_during_a_run_says_so_restarts_and_the_next_run_works(qtbot, slow_window, sample, monkeypatch):
    window, mark = slow_window("synthesize")
    got = []
    window.session.runFailed.connect(lambda k, m: got.append((k, m)))
    window.open_photo(sample)
    qtbot.waitUntil(mark.exists, timeout=120_000)
    _not_slow_any_more(monkeypatch)
    pid = _kill_compute(window)
    qtbot.waitUntil(lambda: bool(got), timeout=10_000)
    kind, message = got[0]
    assert kind == "crashed" and "SIGKILL" in message, got
    assert window.banner.level == "error" and "stopped" in window.banner.message
    assert window.stage_strip.states["synthesize"] == "failed"
    assert "after" in window.stage_strip.tooltip_text("synthesize")      # how long it ran before it failed
    _wait_restarted(qtbot, window, pid)
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome
    assert outcome.reused == ("load", "detect", "parse", "landmarks", "landmark_map", "merge"), outcome
    assert outcome.computed == ("synthesize", "geometry", "texture")
    assert "3 computed \u00b7 6 reused" in _status(window)
    assert not window.banner.isVisible() or window.banner.level != "error", "the error line outlived a good run"


@pytest.mark.parametrize("stage", ["load", "parse", "geometry"])
def test_cancel_returns_within_half_a_second_in_a_blocking_stage(qtbot, slow_window, sample, monkeypatch, stage):
    from occgui.pipeline.runner import STAGES
    from occgui.pipeline.stages import stage as stage_spec

    window, mark = slow_window(stage)
    s = window.session
    ended = []
    s.runFailed.connect(lambda k, m: ended.append((time.perf_counter(), k)))
    window.open_photo(sample)
    qtbot.waitUntil(mark.exists, timeout=120_000)
    _not_slow_any_more(monkeypatch)                 # the process started after the cancel is not slow
    qtbot.wait(200)
    t0 = time.perf_counter()
    window.status.cancel_button.click()
    qtbot.waitUntil(lambda: not s.busy and _status(window).startswith("Cancelled"), timeout=10_000)
    latency = time.perf_counter() - t0
    print(f"\ncancel in a blocking '{stage}' stage: idle and 'Cancelled' after {latency * 1000:.0f} ms "
          f"(the failure reached the session after {(ended[0][0] - t0) * 1000:.0f} ms)")
    assert ended and ended[0][1] == "cancelled"
    assert latency < CANCEL_BOUND_S
    assert not window.status.cancel_button.isEnabled()
    before = STAGES[:STAGES.index(stage)]
    if stage == "load":                              # the photo never loaded: nothing switched
        assert not s.document.has_photo and "was not opened" in _status(window)
        kind, outcome = wait_run_end(qtbot, window, lambda: window.open_photo(sample))
        assert kind == "finished", outcome
        return
    assert f"during {stage_spec(stage).title}" in _status(window)
    assert f"{len(before)} computed \u00b7 0 reused" in _status(window)
    assert s.document.states[stage] == "cancelled"
    assert "cancelled after" in window.stage_strip.tooltip_text(stage)
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome
    assert outcome.reused == before and outcome.computed == STAGES[len(before):], outcome
    assert f"{len(STAGES) - len(before)} computed \u00b7 {len(before)} reused" in _status(window)


def test_a_failed_export_and_a_failed_run_say_so_until_an_action_succeeds(qtbot, ran_window, tmp_path):
    window = ran_window
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the export folder should go")
    kind, message = wait_export(qtbot, window, blocker)
    assert kind == "failed", message
    assert _status(window).startswith("Export failed"), _status(window)
    assert window.banner.level == "error" and window.banner.message
    kind, folder = wait_export(qtbot, window, tmp_path / "good")
    assert kind == "ok", folder
    assert _status(window).startswith("Exported to") and window.banner.level != "error"

    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    kind, (err, _msg) = wait_run_end(qtbot, window, lambda: drop_on(window, file_mime(corrupt)))
    assert kind == "failed" and window.banner.level == "error"
    assert "Could not open broken.png" in _status(window)
    doc = window.session.document
    window.session.move_landmark(30, doc.landmarks[30] + (2.0, 1.0))
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished"
    assert not window.banner.isVisible() or window.banner.level != "error", "the error line outlived a good run"
    assert _status(window).startswith("Done in")


def test_kill_9_during_an_export_leaves_nothing_half_written(qtbot, slow_window, sample, monkeypatch, tmp_path):
    from occgui.gui.export_check import check_export_folder

    window, mark = slow_window("export")
    kind, outcome = wait_run_end(qtbot, window, lambda: window.open_photo(sample))
    assert kind == "finished", outcome
    out = tmp_path / "out"
    got = []
    window.session.exportFailed.connect(got.append)
    assert window.export_to(out)
    qtbot.waitUntil(mark.exists, timeout=60_000)
    assert any(p.name.startswith(".") for p in out.iterdir()), "the export was expected to be half-way"
    _not_slow_any_more(monkeypatch)
    pid = _kill_compute(window)
    qtbot.waitUntil(lambda: bool(got), timeout=10_000)
    assert "nothing was left half-written" in got[0]
    assert _status(window).startswith("Export failed")
    assert list(out.iterdir()) == [], f"left behind: {list(out.iterdir())}"
    _wait_restarted(qtbot, window, pid)
    kind, folder = wait_export(qtbot, window, out)
    assert kind == "ok", folder
    assert check_export_folder(Path(folder), expected_landmarks=window.session.document.landmarks) == []
    assert np.allclose(window.session.document.landmarks, window.session.document.detected)


def test_a_compute_process_that_keeps_dying_is_not_restarted_in_a_loop(gui_app):
    from occgui.gui.worker import MAX_RESTARTS, PipelineWorker

    worker = PipelineWorker(compute="thread")
    stopped, restarts = [], []
    worker.computeStopped.connect(stopped.append)
    worker._restartRequested.disconnect(worker.restart)
    worker._restartRequested.connect(restarts.append)
    for _ in range(MAX_RESTARTS + 2):
        worker._host_stopped("killed by SIGKILL (9)")
    assert len(restarts) == MAX_RESTARTS, "each of the first stops starts a new process"
    assert len(stopped) == MAX_RESTARTS + 2 and "not restarted" in stopped[-1]
