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
