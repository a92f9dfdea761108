"""The window's geometry choice (issue 15, point 8): the morphable fit behind MediaPipe's mesh."""
from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import Heartbeat, wait_run_end

pytestmark = pytest.mark.gui


def test_fit_status_text_of_a_fit_and_of_the_preview():
    from occgui.gui.geometry_choice import choice_of_backend, fit_status_text
    from occgui.results import FaceMesh, HeadPose, MorphableFit

    mesh = FaceMesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((3, 2)), None)
    assert fit_status_text(mesh, "morphable").startswith("Fitting the morphable model")
    assert fit_status_text(mesh, "mediapipe") == "MediaPipe mesh" and fit_status_text(None, "morphable") == ""
    pose = HeadPose(-3.04, 12.5, 0.4, 1, 2, 3)
    loss = {"total": 0.25, "landmark": 6.4, "photometric": 0.133, "regularisation": 59.9, "identity": 0.099}
    fit = MorphableFit("m", np.zeros(2), np.zeros(1), np.zeros(0), np.zeros((3, 9)), pose, np.zeros(6), loss,
                       np.zeros((3, 3)), 0.03, 26, True, 1.93)
    from dataclasses import replace

    text = fit_status_text(replace(mesh, fit=fit), "morphable")
    assert text.startswith("Pose yaw +12.5\u00b0 pitch -3.0\u00b0 roll +0.4\u00b0")
    assert "fit loss 0.250 (lmk 6.4, pix 0.133, reg 59.9, id 0.099)" in text and text.endswith("(warm start)")
    assert choice_of_backend("morphable") == "morphable" and choice_of_backend("mediapipe-mesh") == "mediapipe"


@pytest.mark.slow
def test_choosing_the_morphable_fit_shows_the_fast_mesh_first_then_the_fit(qtbot, ran_window):
    pytest.importorskip("pytorch3d")
    from occgui.gui.geometry_choice import SETTINGS_KEY

    window = ran_window
    s, doc = window.session, window.session.document
    shown = []
    s.stageResult.connect(lambda stage, value, _d: shown.append(value) if stage == "geometry" else None)
    hb = Heartbeat(interval_ms=15)
    hb.start()
    kind, outcome = wait_run_end(qtbot, window, lambda: window.geometry_choice.set_choice("morphable"))
    qtbot.wait(300)
    hb.stop()
    assert kind == "finished", outcome
    assert window.settings.qs.value(SETTINGS_KEY) == "morphable"
    assert set(outcome.recomputed) == {"geometry", "texture"}, "only the geometry and the texture are recomputed"
    # the MediaPipe mesh was shown first (no fit), then replaced by the fitted model's mesh
    assert [m.fit is None for m in shown] == [True, False], [m.backend for m in shown]
    mesh = doc.results["geometry"]
    assert mesh.backend == "morphable" and mesh.fit is not None and window.mesh_view.has_mesh
    assert window.geometry_choice.label.toolTip().startswith("Pose yaw")
    print(f"\nGUI heartbeat during the fit ({outcome.seconds:.2f} s): max gap {hb.max_gap_ms:.0f} ms")
    assert hb.max_gap_ms < 1000.0, "the window never waits on the fit"

    # a landmark edit re-fits from the previous solution
    pts = doc.landmarks.copy()
    pts[57] += (0.0, 3.0)
    s.set_landmarks(pts)
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome
    assert doc.results["geometry"].fit.warm_start
    # back to MediaPipe: its mesh, no fit
    kind, outcome = wait_run_end(qtbot, window, lambda: window.geometry_choice.set_choice("mediapipe"))
    assert kind == "finished" and doc.results["geometry"].fit is None
