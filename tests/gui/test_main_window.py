"""End-to-end tests of the main window, through the real worker and pipeline.

Every test has a window of its own (``window``, or ``ran_window`` with the bundled sample
already run; see ``conftest.py``), so the tests pass alone and in any order.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import Heartbeat, drop_on, file_mime, mouse_drag, send_mouse, wait_export, wait_run_end
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtTest import QTest

pytestmark = pytest.mark.gui

MAX_GAP_MS = 100.0


def _stages_done(doc):
    from occgui.pipeline.runner import STAGES

    return [s for s in STAGES if doc.states[s] in ("done", "cached")]


def test_default_layout_and_title(window):
    assert window.windowTitle() == "occgui"
    assert window.width() >= 1200 and window.height() >= 800
    sizes = window.top_split.sizes()
    assert sizes[0] > sizes[1] > 0, "photo + landmarks should be the large view on the left"
    assert window.bottom_split.sizes() == sizes, "maps/I_out columns follow the top row"
    assert not window.session.busy


def test_drop_sample_runs_every_stage(qtbot, window, sample):
    from occgui.pipeline.runner import STAGES

    kind, outcome = wait_run_end(qtbot, window, lambda: drop_on(window, file_mime(sample)))
    assert kind == "finished", outcome
    doc = window.session.document
    assert _stages_done(doc) == list(STAGES)
    assert sample.name in window.windowTitle()
    assert window.editor.photo_item.image is not None
    assert len(window.editor.handles.points) == 68
    for kind_ in ("alpha", "beta", "gamma"):
        assert window.maps.canvases[kind_].has_image()
    assert window.deoccluded.canvas.has_image()
    assert window.mesh_view.has_mesh and window.mesh_view.has_texture
    qtbot.waitUntil(lambda: window.status.device_label.text().startswith("Device: C"), timeout=10_000)
    assert ("CPU" in window.status.device_label.text()) or ("CUDA" in window.status.device_label.text())
    assert "Done" in window.status.stage_label.text()
    assert window.status.progress.value() == len(STAGES)


def test_3d_viewport_is_not_blank(qtbot, ran_window):
    window = ran_window
    qtbot.wait(100)
    assert window.mesh_view.rendered_variance() > 20.0
    img = window.mesh_view.grab_image()
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_mouse_drag_moves_a_handle_and_undo_restores_it(qtbot, ran_window):
    window = ran_window
    doc, editor = window.session.document, window.editor
    editor.zoom_to_points()
    qtbot.wait(50)
    index = 30                                     # nose tip: well inside the face
    before = doc.landmarks.copy()
    start = editor.photo_to_widget(before[index])
    end = start + QPointF(25.0, 18.0)
    n_commands = window.session.undo_stack.count()
    mouse_drag(editor.view.viewport(), start, end)
    moved = doc.landmarks[index] - before[index]
    assert np.hypot(*moved) > 3.0, f"the handle did not follow the drag (moved {moved})"
    others = np.delete(np.arange(68), index)
    assert np.allclose(doc.landmarks[others], before[others]), "only the dragged point moves"
    assert window.session.undo_stack.count() == n_commands + 1, "one drag = one undo step"
    assert np.allclose(editor.handles.points[index] / doc.scale, doc.landmarks[index], atol=1e-6)
    assert doc.is_stale and window.deoccluded.is_stale and window.mesh_view.is_stale
    assert window.stage_strip.states["geometry"] == "stale"
    assert window.stage_strip.states["parse"] in ("done", "cached"), "M_alpha is not landmark-dependent"

    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    if not np.allclose(doc.landmarks, before):     # no keyboard focus on some window managers
        window.undo_action.trigger()
    assert np.allclose(doc.landmarks, before)
    assert not doc.is_stale and not window.mesh_view.is_stale
    window.redo_action.trigger()
    assert np.allclose(doc.landmarks[index], before[index] + moved)
    window.undo_action.trigger()
    assert np.allclose(doc.landmarks, before)


def test_arrow_keys_nudge_the_hovered_point_and_double_click_resets_it(qtbot, ran_window):
    window = ran_window
    from PySide6.QtCore import QEvent

    doc, editor = window.session.document, window.editor
    index = 27
    start = doc.landmarks[index].copy()
    viewport = editor.view.viewport()
    pos = editor.photo_to_widget(start)
    send_mouse(viewport, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    qtbot.waitUntil(lambda: editor.hovered_point() == index, timeout=2000)
    assert editor.hover_label.isVisible() and editor.hover_label.textItem.toPlainText().startswith(f"{index} ")
    editor.view.setFocus()
    QTest.keyClick(editor.view, Qt.Key.Key_Right)
    assert np.allclose(doc.landmarks[index], start + (0.5, 0.0))
    QTest.keyClick(editor.view, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    assert np.allclose(doc.landmarks[index], start + (0.5, 5.0))
    pos = editor.photo_to_widget(doc.landmarks[index])
    left = Qt.MouseButton.LeftButton
    send_mouse(viewport, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    send_mouse(viewport, QEvent.Type.MouseButtonPress, pos, left, left)
    send_mouse(viewport, QEvent.Type.MouseButtonRelease, pos, left, Qt.MouseButton.NoButton)
    send_mouse(viewport, QEvent.Type.MouseButtonDblClick, pos, left, left)
    send_mouse(viewport, QEvent.Type.MouseButtonRelease, pos, left, Qt.MouseButton.NoButton)
    qtbot.waitUntil(lambda: np.allclose(doc.landmarks[index], doc.detected[index]), timeout=2000)
    window.session.undo_stack.undo()
    window.session.undo_stack.undo()
    window.session.undo_stack.undo()
    assert np.allclose(doc.landmarks[index], start) and not doc.is_stale


def test_rerun_recomputes_only_downstream_stages_and_moves_the_mesh(qtbot, ran_window):
    window = ran_window
    from occgui.gui.document import LANDMARK_DEPENDENT

    s, doc = window.session, window.session.document
    alpha_before, crop_before = doc.results["parse"], doc.results["detect"]
    vertices_before = np.array(doc.results["geometry"].vertices, copy=True)
    counts_before = dict(s.last_outcome.run_counts)
    pts = doc.landmarks.copy()
    face = float(np.linalg.norm(pts[36] - pts[45]))
    s.move_landmark(8, pts[8] + (0.0, 0.12 * face))          # pull the chin down
    assert set(doc.stale_stages()) == set(LANDMARK_DEPENDENT)
    assert window.maps.canvases["gamma"].dimmed and not window.maps.canvases["alpha"].dimmed

    t0 = time.perf_counter()
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    latency = time.perf_counter() - t0
    assert kind == "finished", outcome
    print(f"\nre-run latency after a landmark edit: {latency:.2f} s "
          f"(pipeline {outcome.seconds:.2f} s, recomputed {', '.join(outcome.recomputed)})")
    # the landmark stage applies the corrected points (its backend is not run again: run_counts below)
    assert set(outcome.computed) == set(LANDMARK_DEPENDENT) | {"landmarks"}
    assert outcome.reused == ("load", "detect", "parse")
    assert "6 computed \u00b7 3 reused" in window.status.stage_label.toolTip()
    counts = outcome.run_counts
    for stage in ("load", "detect", "parse"):
        assert counts[stage] == counts_before[stage], f"{stage} was recomputed"
    for stage in LANDMARK_DEPENDENT:
        assert counts[stage] == counts_before[stage] + 1, f"{stage} was not recomputed"
    assert doc.results["parse"] is alpha_before and doc.results["detect"] is crop_before
    vertices_after = np.asarray(doc.results["geometry"].vertices)
    assert vertices_after.shape == vertices_before.shape
    assert np.abs(vertices_after - vertices_before).max() > 0.5, "the mesh did not follow the edit"
    assert not doc.is_stale and not window.mesh_view.is_stale
    assert window.stage_strip.states["parse"] == "cached" and window.stage_strip.states["geometry"] == "done"
    assert doc.last_result.landmarks.edited
    assert window.mesh_view.rendered_variance() > 20.0


def test_export_writes_files_that_reload_textured(qtbot, ran_window, tmp_path):
    window = ran_window
    import trimesh

    from occgui.gui.export_check import REQUIRED_FILES, check_export_folder
    from occgui.landmarks.landmarks_json import read_landmarks_json

    kind, folder = wait_export(qtbot, window, tmp_path)
    assert kind == "ok", folder
    folder = Path(folder)
    assert folder.parent == tmp_path
    names = {p.name for p in folder.iterdir()}
    assert set(REQUIRED_FILES) <= names
    assert check_export_folder(folder, expected_landmarks=window.session.document.landmarks) == []
    mesh = trimesh.load(folder / "mesh.obj", force="mesh", process=False)
    assert mesh.visual.uv is not None and len(mesh.visual.uv) == len(mesh.vertices)
    assert mesh.visual.material.image is not None and min(mesh.visual.material.image.size) >= 256
    glb = trimesh.load(folder / "mesh.glb", force="mesh", process=False)
    assert len(glb.faces) == len(mesh.faces)
    pts = read_landmarks_json(folder / "landmarks.json")
    assert np.allclose(pts, window.session.document.landmarks, atol=0.01)


def test_save_and_load_landmarks_json(qtbot, ran_window, tmp_path):
    window = ran_window
    from occgui.landmarks.landmarks_json import read_landmarks_json

    s, doc = window.session, window.session.document
    s.move_landmark(30, doc.landmarks[30] + (4.0, -3.0))
    path = tmp_path / "corrected.json"
    assert s.save_landmarks(path)
    saved = read_landmarks_json(path)                 # what `occgui run --landmarks` reads
    assert np.allclose(saved, doc.landmarks, atol=0.01)
    assert not s.unsaved_corrections, "the landmarks were all the corrections there were"
    s.reset_landmarks()
    assert np.allclose(doc.landmarks, doc.detected)
    assert s.load_landmarks(path)
    assert np.allclose(doc.landmarks, saved)
    assert not s.load_landmarks(tmp_path / "missing.json")
    assert "not found" in window.banner.message
    bad = tmp_path / "bad.json"
    bad.write_text("{\"points\": [[1, 2]]}")
    assert not s.load_landmarks(bad)
    assert "68" in window.banner.message


def test_overlay_opacity_and_compare(qtbot, ran_window):
    window = ran_window
    maps, editor = window.maps, window.editor
    maps.overlay_buttons["gamma"].click()
    assert maps.overlay == "gamma" and editor.overlay_item.isVisible()
    maps.opacity_slider.setValue(30)
    assert abs(editor.overlay_item.opacity() - 0.30) < 1e-6
    maps.overlay_buttons["alpha"].click()
    assert maps.overlay == "alpha" and not maps.overlay_buttons["gamma"].isChecked()
    maps.overlay_buttons["alpha"].click()
    assert maps.overlay == "" and not editor.overlay_item.isVisible()
    window.deoccluded.compare_button.click()
    assert window.deoccluded.comparing
    canvas = window.deoccluded.canvas
    r = canvas.image_rect()
    mouse_drag(canvas, QPointF(r.center()), QPointF(r.left() + 0.25 * r.width(), r.center().y()), steps=4)
    assert abs(canvas.wipe - 0.25) < 0.05
    window.deoccluded.compare_button.click()


def test_3d_display_modes_and_reset(qtbot, ran_window):
    window = ran_window
    view = window.mesh_view
    for mode in ("shaded", "wireframe", "texture"):
        view.mode_buttons[mode].click()
        assert view.mode == mode
        assert view.rendered_variance() > 20.0, f"blank 3D view in {mode} mode"
    view.plotter.camera.azimuth = 60
    view.reset_button.click()
    pos = np.array(view.plotter.camera.position) - np.array(view.plotter.camera.focal_point)
    assert pos[2] > 0 and abs(pos[0]) < 1e-6 * max(1.0, abs(pos[2])), "reset view looks along -Z"
    assert tuple(np.round(view.plotter.camera.up, 6)) == (0.0, 1.0, 0.0)


def test_gui_thread_heartbeat_during_a_full_run(qtbot, ran_window, sample, tmp_path):
    window = ran_window
    """The GUI thread never stalls for more than 100 ms while the pipeline runs."""
    from PIL import Image

    from occgui.pipeline.runner import STAGES

    mirrored = tmp_path / "mirrored_sample.png"
    Image.open(sample).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    qtbot.wait(300)
    hb = Heartbeat(interval_ms=15)
    hb.start()
    kind, outcome = wait_run_end(qtbot, window, lambda: window.open_photo(mirrored))
    qtbot.wait(500)                    # the last views (3D) update after the run signal
    hb.stop()
    assert kind == "finished", outcome
    assert set(outcome.recomputed) == set(STAGES), "a new photo runs every stage"
    print(f"\nGUI heartbeat during a full run ({outcome.seconds:.2f} s, {len(hb.gaps)} ticks): "
          f"max gap {hb.max_gap_ms:.0f} ms")
    assert hb.max_gap_ms < MAX_GAP_MS


def test_screenshot_of_the_window_after_a_run(qtbot, window, sample, tmp_path):
    kind, _ = wait_run_end(qtbot, window, lambda: window.open_photo(sample))
    assert kind == "finished"
    window.maps.set_overlay("")
    qtbot.wait(400)
    path = tmp_path / "occgui_window.png"
    assert window.grab().save(str(path))
    print(f"\nwindow screenshot: {path}")
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[0] >= 800 and img.std() > 20


def test_bad_drops_show_one_line_and_keep_the_window_usable(qtbot, ran_window, tmp_path):
    window = ran_window
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    photo_before = window.session.document.photo

    drop_on(window, file_mime(text_file))
    assert "not an image file" in window.banner.message
    drop_on(window.editor.view, file_mime(tmp_path / "missing.jpg"))       # dropped on a child view
    assert "not found" in window.banner.message
    drop_on(window, file_mime(tmp_path))
    assert "folder" in window.banner.message
    md = QMimeData()
    md.setText("just some text")
    drop_on(window, md)
    assert "not an image file" in window.banner.message
    assert window.session.document.photo == photo_before and not window.session.busy

    kind, (err_kind, message) = wait_run_end(qtbot, window, lambda: drop_on(window, file_mime(corrupt)))
    assert kind == "failed" and err_kind == "error", message
    assert "\n" not in window.banner.message and window.banner.message
    assert window.banner.level == "error"
    assert window.session.document.photo == photo_before, "a file that does not load keeps the current photo"
    assert window.session.document.complete and window.stage_strip.states["load"] in ("done", "cached")


def test_no_face_error_then_a_new_run_works(qtbot, window, sample, tmp_path):
    from PIL import Image

    blank = tmp_path / "no_face.png"
    ramp = np.tile(np.linspace(40, 220, 320, dtype=np.uint8), (240, 1))
    Image.fromarray(np.dstack([ramp, ramp, ramp])).save(blank)
    kind, (err_kind, message) = wait_run_end(qtbot, window, lambda: window.open_photo(blank))
    assert kind == "failed" and err_kind == "no-face", message
    assert "face" in window.banner.message.lower()
    assert window.stage_strip.states["detect"] == "failed"
    kind, outcome = wait_run_end(qtbot, window, lambda: window.open_photo(sample))
    assert kind == "finished", outcome
    assert not window.banner.isVisible() or window.banner.level != "error"


def test_cancel_stops_the_run_and_rerun_works(qtbot, ran_window, sample, tmp_path):
    window = ran_window
    from PIL import Image

    other = tmp_path / "small_sample.png"
    Image.open(sample).resize((448, 448)).save(other)

    def start_and_cancel():
        window.open_photo(other)
        window.status.cancel_button.click()

    kind, (err_kind, message) = wait_run_end(qtbot, window, start_and_cancel)
    assert kind == "failed" and err_kind == "cancelled"
    assert window.status.stage_label.toolTip().startswith("Cancelled")
    # The cancel reaches the worker between stages: before the new photo loaded, the old photo stays;
    # after it loaded, the window shows the new one. Either way nothing is half-switched.
    assert window.session.document.photo in (Path(sample).resolve(), other.resolve())
    assert not window.session.busy and not window.status.cancel_button.isEnabled()
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome


def test_preferences_dialog_shows_and_returns_the_hand_evidence(qtbot):
    from occgui.gui.settings_dialog import SettingsDialog

    dlg = SettingsDialog("auto", False, False, "CPU", hand_evidence=True, forehead_growth=True)
    qtbot.addWidget(dlg)
    assert dlg.hand_evidence and "false hand" in dlg.hand_evidence_box.toolTip()
    assert dlg.forehead_growth and "fringe" in dlg.forehead_growth_box.toolTip()
    dlg.hand_evidence_box.setChecked(False)
    assert not dlg.hand_evidence and dlg.device == "auto" and not dlg.auto_rerun and dlg.forehead_growth
    dlg.forehead_growth_box.setChecked(False)
    assert not dlg.forehead_growth


def test_hand_evidence_preference_reruns_from_the_parser_and_persists(qtbot, ran_window):
    """Preferences: the hand evidence (parse.hand_evidence, on by default) is stored, and turning it off
    re-runs at once from M_alpha (its backend id changed) while the stages before it are reused; turning
    it on again goes back to the parse stage as configured."""
    from gui_helpers import wait_run_end

    from occgui.gui.settings import AppSettings
    from occgui.parsing.settings import UNetSettings

    window = ran_window
    assert AppSettings().hand_evidence()                      # nothing stored: the setting's default
    assert window.session.hand_evidence and "parse" not in window.session._run_backends()
    kind, outcome = wait_run_end(qtbot, window, lambda: window.apply_preferences("auto", False, False))
    assert kind == "finished", outcome
    assert not AppSettings().hand_evidence() and not window.session.hand_evidence
    stats = window.session._run_stats
    assert "parse" in stats["computed"] and "detect" in stats["reused"]
    assert window.session._run_backends()["parse"] == (None, UNetSettings(hand_evidence=False))
    assert "hands" not in window.maps.panes["alpha"].subtitle_label.text()
    assert "forehead hair" in window.maps.panes["alpha"].subtitle_label.text()   # its own setting, still on
    assert not window.session.set_hand_evidence(False)         # no change, no run
    kind, outcome = wait_run_end(qtbot, window, lambda: window.apply_preferences("auto", False, True))
    assert kind == "finished", outcome
    assert AppSettings().hand_evidence()
    assert "parse" not in window.session._run_backends()   # back to the configured parse stage, not named
    assert window.maps.panes["alpha"].subtitle_label.text().startswith("N\u03b1 U-Net + MediaPipe hands")


def test_forehead_growth_preference_reruns_once_from_the_parser_and_persists(qtbot, ran_window):
    """Preferences: the forehead growth (parse.occluder_into_forehead, on by default) is stored; turning it
    off re-runs from M_alpha with the setting off; changing it and the hand evidence together re-runs once;
    turning both back goes to the parse stage as configured."""
    from gui_helpers import wait_run_end

    from occgui.gui.settings import AppSettings
    from occgui.parsing.settings import UNetSettings

    window = ran_window
    s = window.session
    assert AppSettings().forehead_growth() and s.forehead_growth
    kind, outcome = wait_run_end(qtbot, window, lambda: window.apply_preferences("auto", False, None, False))
    assert kind == "finished", outcome
    assert not AppSettings().forehead_growth() and not s.forehead_growth and s.hand_evidence
    assert "parse" in s._run_stats["computed"] and "detect" in s._run_stats["reused"]
    assert s._run_backends()["parse"] == (None, UNetSettings(occluder_into_forehead=False))
    text = window.maps.panes["alpha"].subtitle_label.text()
    assert "forehead hair" not in text and "MediaPipe hands" in text
    assert not s.set_forehead_growth(False)                      # no change, no run
    runs, rerun = [], s.rerun
    s.rerun = lambda *a, **k: runs.append(1) or rerun(*a, **k)
    kind, outcome = wait_run_end(qtbot, window, lambda: window.apply_preferences("auto", False, False, True))
    assert kind == "finished", outcome
    assert len(runs) == 1                                        # both changed: one re-run
    assert s._run_backends()["parse"] == (None, UNetSettings(hand_evidence=False))
    kind, outcome = wait_run_end(qtbot, window, lambda: window.apply_preferences("auto", False, True, True))
    assert kind == "finished", outcome
    assert AppSettings().forehead_growth() and AppSettings().hand_evidence()
    assert "parse" not in s._run_backends()
    assert window.maps.panes["alpha"].subtitle_label.text().startswith(
        "N\u03b1 U-Net + MediaPipe hands + forehead hair")


def test_recent_files_and_preferences_persist(qtbot, ran_window, sample):
    window = ran_window
    from occgui.gui.settings import AppSettings

    settings = AppSettings()
    recent = settings.recent_files()
    assert str(Path(sample).resolve()) in recent
    assert recent[0] == str(window.session.document.photo), "the photo opened last comes first"
    assert window.recent_menu.isEnabled() and window.recent_menu.actions()
    assert settings.last_folder() == str(Path(recent[0]).parent)
    window.apply_preferences("cpu", True)
    assert AppSettings().device() == "cpu" and AppSettings().auto_rerun()
    qtbot.waitUntil(lambda: window.status.device_label.text() == "Device: CPU", timeout=60_000)
    window.apply_preferences("auto", False)
    assert AppSettings().device() == "auto" and not AppSettings().auto_rerun()
