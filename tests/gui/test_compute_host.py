"""The compute process behind the GUI's worker: same results as in-process, identity of cached
results preserved across the pipe, cancellation, and recovery when the process dies. No Qt."""
from __future__ import annotations

import numpy as np
import pytest

from occgui.gui.compute_host import HostError, ProcessPipelineHost
from occgui.gui.document import LANDMARK_DEPENDENT
from occgui.pipeline.runner import STAGES


@pytest.fixture(scope="module")
def host():
    h = ProcessPipelineHost()
    yield h
    h.close()


def _run(host, job, photo, landmarks=None):
    events = []
    reply = host.run(job, str(photo), landmarks, events.append)
    return reply, events


def test_process_host_runs_and_keeps_identity_of_cached_results(host, sample_photo):
    info = host.warm_up()
    assert info.device in ("cpu", "cuda") and info.description
    first, ev1 = _run(host, 1, sample_photo)
    assert [e.stage for e in ev1 if e.state != "started"] == list(STAGES)
    assert first.result.mesh is not None and first.result.texture is not None
    pts = first.result.landmarks_in_photo()
    pts[8, 1] += 6.0
    second, ev2 = _run(host, 2, sample_photo, pts)
    done = {e.stage: e for e in ev2 if e.state != "started"}
    assert {s for s, e in done.items() if e.state == "finished"} == set(LANDMARK_DEPENDENT) | {"landmarks"}
    assert second.result.alpha is first.result.alpha, "a cache hit arrives as the very same object"
    assert second.result.crop is first.result.crop
    assert np.allclose(second.result.landmarks_in_photo(), pts, atol=1e-6)
    counts = second.run_counts
    assert counts["parse"] == 1 and counts["geometry"] == 2


def test_cancel_between_stages(host, sample_photo):
    host.request_cancel(3)
    with pytest.raises(HostError) as e:
        _run(host, 3, sample_photo)
    assert e.value.kind == "cancelled"


def test_a_process_dying_mid_run_is_reported_then_restarted(host, sample_photo, tmp_path):
    from PIL import Image

    other = tmp_path / "other.png"
    Image.open(sample_photo).resize((480, 480)).save(other)

    def kill_on_first_event(ev):
        host.abort()

    with pytest.raises(HostError) as e:
        host.run(4, str(other), None, kill_on_first_event)
    assert e.value.kind == "crashed" and "restarts" in e.value.message
    reply, _ = _run(host, 5, sample_photo)                   # a fresh process, a fresh cache
    assert reply.run_counts["load"] == 1 and reply.result.texture is not None


def test_after_kill_9_the_host_reports_it_and_a_fresh_process_reuses_kept_results(sample_photo, tmp_path):
    """Issue 17: the watcher reports a death while idle; the fresh process is given the results the
    caller kept (they come back as cache hits, the very same objects); export writes what the
    caller holds although the new process never ran it."""
    import os
    import signal
    import threading

    from occgui.gui.export_check import check_export_folder
    from occgui.imageio import source_key

    stopped = threading.Event()
    reasons = []
    h = ProcessPipelineHost(on_exit=lambda r: (reasons.append(r), stopped.set()))
    try:
        first, _ = _run(h, 1, sample_photo)
        old_pid, gen = h.pid, h.generation
        os.kill(old_pid, signal.SIGKILL)
        assert stopped.wait(10.0), "the death of an idle compute process went unnoticed"
        assert "SIGKILL" in reasons[0]
        folder = h.export(1, str(tmp_path), "after_kill", first.result, first.seconds)
        assert h.generation == gen + 1 and h.pid not in (None, old_pid)
        assert check_export_folder(folder, expected_landmarks=first.result.landmarks_in_photo()) == []
        kept = {s: first.result.get(s) for s in ("load", "detect", "parse", "landmarks")}
        pts = first.result.landmarks_in_photo()
        pts[30] += (2.0, -1.0)
        second, events = h.run(2, str(sample_photo), pts, (ev := []).append,
                               kept=(source_key(sample_photo), {k: kept[k] for k in ("load", "detect", "parse")})), ev
        cached = [e.stage for e in events if e.state == "cached"]
        assert cached == ["load", "detect", "parse"], cached
        assert all(second.result.get(s) is kept[s] for s in cached), "a kept result comes back as the same object"
        assert second.run_counts.get("parse", 0) == 0 and second.run_counts["geometry"] == 1
        assert not [r for r in reasons[1:]], "an expected exit was reported"
    finally:
        h.close()
    assert len(reasons) == 1, "closing the host is not an unexpected stop"


def test_cancel_kills_a_stage_that_does_not_come_back(sample_photo, monkeypatch, tmp_path):
    """A stage that blocks (slow_stage.py) is stopped by killing the process after the grace
    period; the run fails as cancelled, and the next run starts a fresh process."""
    import threading
    import time

    from occgui.gui.compute_host import CANCEL_GRACE_S, SETUP_ENV

    mark = tmp_path / "started"
    monkeypatch.setenv(SETUP_ENV, "slow_stage:install")
    monkeypatch.setenv("OCCGUI_TEST_SLOW_STAGE", "detect")
    monkeypatch.setenv("OCCGUI_TEST_SLOW_MARK", str(mark))
    reasons = []
    h = ProcessPipelineHost(on_exit=reasons.append)
    clicked = []

    def cancel_when_blocked():
        while not mark.exists():
            time.sleep(0.01)
        monkeypatch.delenv("OCCGUI_TEST_SLOW_STAGE")
        clicked.append(time.perf_counter())
        h.request_cancel(7)

    try:
        threading.Thread(target=cancel_when_blocked, daemon=True).start()
        with pytest.raises(HostError) as e:
            _run(h, 7, sample_photo)
        latency = time.perf_counter() - clicked[0]
        print(f"\nhost: cancel of a blocking stage acknowledged after {latency * 1000:.0f} ms "
              f"(grace {CANCEL_GRACE_S * 1000:.0f} ms)")
        assert e.value.kind == "cancelled" and h.restart_needed
        assert CANCEL_GRACE_S <= latency < 3.0
        reply, events = _run(h, 8, sample_photo)
        assert reply.result.texture is not None and not h.restart_needed
        assert reasons == [], "a kill for a cancel is not reported as a crash"
    finally:
        h.close()


def test_restore_export_folder_removes_temporaries_and_puts_the_old_folder_back(tmp_path):
    from occgui.gui.compute_host import restore_export_folder

    (tmp_path / ".photo.tmp-1234abcd").mkdir()
    (tmp_path / ".photo.tmp-1234abcd" / "mesh.obj").write_text("half")
    old = tmp_path / ".photo.old-1234abcd"
    old.mkdir()
    (old / "report.json").write_text("{}")
    (tmp_path / "other").mkdir()
    restore_export_folder(tmp_path, "photo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "photo"]
    assert (tmp_path / "photo" / "report.json").read_text() == "{}"
    restore_export_folder(tmp_path / "missing", "photo")          # no folder: nothing to do


def _sleep_forever() -> None:
    import time
    time.sleep(600)


def test_two_threads_waiting_on_a_killed_process_both_learn_it_was_sigkill():
    """The watcher thread and the calling thread both wait on the process; the one that loses the
    ``waitpid`` race must still report the signal, not "it stopped" (a CI failure came from this)."""
    import multiprocessing as mp
    import os
    import signal
    import threading

    from occgui.gui.compute_host import _exit_code, exit_reason

    for _ in range(3):
        proc = mp.get_context("spawn").Process(target=_sleep_forever, daemon=True)
        proc.start()
        codes: list[int | None] = []
        threads = [threading.Thread(target=lambda p=proc, c=codes: c.append(_exit_code(p, 10.0)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        os.kill(proc.pid, signal.SIGKILL)
        for t in threads:
            t.join(20)
        assert codes == [-signal.SIGKILL] * 4, codes
        assert "SIGKILL" in exit_reason(codes[0])
