"""Issue 13 points 5-7 in the window: painting the occluder (brush, eraser, undo/redo, re-run from
the merge), corrections saved and loaded as one file, no correction lost without asking, and what
the app says (no occluder found, several faces). Each test has its own window (``conftest.py``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import answer_dialog, drop_on, file_mime, mouse_drag, wait_export, wait_run_end
from PySide6.QtWidgets import QMessageBox

from occgui import labels as L

pytestmark = pytest.mark.gui

Btn = QMessageBox.StandardButton
#: Screenshots of the painting and of the dialog land here (outside the repository) when set.
SHOTS = os.environ.get("OCCGUI_TEST_SCREENSHOTS", "")


def _shot(widget, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(SHOTS) / name))


def _paint_with_mouse(window, tool: str, crop_points, radius: int = 10) -> None:
    """Select ``tool`` through its header button and drag the mouse through ``crop_points``."""
    window.tool_buttons[tool].click()
    assert window.editor.tool == tool
    window.brush_size.setValue(radius)
    start, end = (window.editor.crop_to_widget(p) for p in (crop_points[0], crop_points[-1]))
    mouse_drag(window.editor.view.viewport(), start, end, steps=10)


def _stroke_points(doc):
    """A horizontal stroke across the cheek area of the crop, away from the parser's occluder."""
    occ = doc.alpha == L.OCCLUDER
    size = doc.alpha.shape[0]
    for y in range(int(size * 0.35), int(size * 0.8), 8):
        xs = np.arange(int(size * 0.2), int(size * 0.45))
        if not occ[y - 12:y + 12, xs[0] - 12:xs[-1] + 12].any():
            return [(float(xs[0]), float(y)), (float(xs[-1]), float(y))]
    raise AssertionError("no occluder-free row found for the test stroke")


def test_painting_then_rerun_recomputes_from_the_merge_only(qtbot, ran_window):
    window = ran_window
    s, doc = window.session, window.session.document
    window.editor.zoom_to_points()
    qtbot.wait(50)
    counts_before = dict(s.last_outcome.run_counts)
    occ_before = int((doc.alpha == L.OCCLUDER).sum())
    a, b = _stroke_points(doc)
    n_commands = s.undo_stack.count()
    landmarks_before = doc.landmarks.copy()
    _paint_with_mouse(window, "brush", [a, b], radius=10)
    assert doc.painted and s.undo_stack.count() == n_commands + 1, "one stroke = one undo step"
    added = doc.alpha_edit.added
    y = int(round(a[1]))
    assert added[y, int(a[0]) + 5: int(b[0]) - 5].all(), "the stroke covers the dragged path"
    assert added.sum() > 300 and not doc.alpha_edit.erased.any()
    assert np.allclose(doc.landmarks, landmarks_before), "painting never moves a landmark"
    assert window.editor.paint_item.isVisible(), "the painted occluder is drawn over the photo"
    stale = doc.stale_stages()
    assert stale == {"merge", "synthesize", "texture"}, stale
    assert window.stage_strip.states["geometry"] in ("done", "cached") and window.deoccluded.is_stale
    assert "occluder painted" in window.windowTitle() and "unsaved" in window.windowTitle()
    _shot(window, "painting.png")

    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome
    assert set(outcome.recomputed) == {"merge", "synthesize", "texture"}, outcome.recomputed
    for stage in ("load", "detect", "parse", "landmarks", "landmark_map", "geometry"):
        assert outcome.run_counts[stage] == counts_before[stage], f"{stage} was recomputed"
    result = doc.last_result
    assert result.alpha_edit is not None and result.alpha_edit.digest() == doc.alpha_edit.digest()
    assert int((result.effective_alpha().labels == L.OCCLUDER).sum()) > occ_before
    assert result.synthesis.filled[y, int(a[0]) + 5: int(b[0]) - 5].all(), "I_out re-synthesizes the paint"
    assert not doc.is_stale and window.stage_strip.states["merge"] == "done"
    assert window.stage_strip.states["parse"] == "cached"


def test_undo_redo_of_a_brush_and_an_eraser_stroke(qtbot, ran_window):
    window = ran_window
    s, doc = window.session, window.session.document
    window.editor.zoom_to_points()
    a, b = _stroke_points(doc)
    _paint_with_mouse(window, "brush", [a, b], radius=8)
    painted = doc.alpha_edit.digest()
    occ = np.argwhere(doc.alpha == L.OCCLUDER)
    centre = occ.mean(axis=0)[::-1]                          # (x, y) inside the parser's occluder
    _paint_with_mouse(window, "eraser", [tuple(centre - (6, 0)), tuple(centre + (6, 0))], radius=6)
    assert doc.alpha_edit.erased.any() and doc.alpha_edit.added.sum() > 0
    erased = doc.alpha_edit.digest()
    assert erased != painted and s.undo_stack.count() == 2

    window.undo_action.trigger()
    assert doc.alpha_edit.digest() == painted and not doc.alpha_edit.erased.any()
    window.undo_action.trigger()
    assert doc.alpha_edit is None and not doc.is_stale
    assert not doc.has_corrections and "unsaved" not in window.windowTitle()
    window.redo_action.trigger()
    window.redo_action.trigger()
    assert doc.alpha_edit.digest() == erased and doc.stale_stages() == {"merge", "synthesize", "texture"}
    window.clear_paint_action.trigger()
    assert doc.alpha_edit is None
    window.undo_action.trigger()
    assert doc.alpha_edit.digest() == erased


def test_corrections_round_trip_save_load_and_export(qtbot, ran_window, tmp_path):
    from occgui.corrections import read_corrections

    window = ran_window
    s, doc = window.session, window.session.document
    s.move_landmark(8, doc.landmarks[8] + (0.0, 9.0))
    a, b = _stroke_points(doc)
    assert s.paint_stroke([a, b], 9)
    landmarks, digest = doc.landmarks.copy(), doc.alpha_edit.digest()
    assert s.unsaved_corrections
    path = tmp_path / "corrections.json"
    assert s.save_corrections(path)
    assert not s.unsaved_corrections and "unsaved" not in window.windowTitle()
    c = read_corrections(path)
    assert np.allclose(c.landmarks, landmarks, atol=1e-3) and c.alpha_edit.digest() == digest

    s.reset_landmarks()
    s.clear_paint()
    assert not doc.has_corrections
    assert s.load_corrections(path)
    assert np.allclose(doc.landmarks, landmarks, atol=1e-3) and doc.alpha_edit.digest() == digest
    assert not s.unsaved_corrections
    window.undo_action.trigger()                       # loading is one undo step
    assert not doc.has_corrections
    window.redo_action.trigger()

    # a file made for another photo changes nothing
    other = tmp_path / "other.json"
    text = path.read_text().replace(f'"photo_size": [\n  {doc.image.photo_size[0]}', '"photo_size": [\n  77')
    other.write_text(text)
    n = s.undo_stack.count()
    assert not s.load_corrections(other)
    assert "photo" in window.banner.message and s.undo_stack.count() == n
    assert doc.alpha_edit.digest() == digest

    # the export re-runs (the results are stale) and carries corrections.json along
    kind, folder = wait_export(qtbot, window, tmp_path / "out")
    assert kind == "ok", folder
    exported = read_corrections(Path(folder) / "corrections.json")
    assert exported.alpha_edit.digest() == digest and np.allclose(exported.landmarks, landmarks, atol=0.01)
    assert window.default_corrections_path() == Path(folder) / "corrections.json"


def test_unsaved_corrections_ask_before_a_drop_and_before_closing(qtbot, ran_window, sample, tmp_path):
    from PIL import Image

    window = ran_window
    s, doc = window.session, window.session.document
    other = tmp_path / "mirrored.png"
    Image.open(sample).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    s.move_landmark(30, doc.landmarks[30] + (5.0, 0.0))
    edited = doc.landmarks.copy()

    seen = answer_dialog(Btn.Cancel)
    drop_on(window, file_mime(other))
    assert seen and seen[0][0] == "Unsaved corrections" and "Opening mirrored.png" in seen[0][2]
    assert doc.photo == Path(sample).resolve() and np.allclose(doc.landmarks, edited) and not s.busy

    seen = answer_dialog(Btn.Discard)
    kind, outcome = wait_run_end(qtbot, window, lambda: drop_on(window, file_mime(other)))
    assert seen and kind == "finished", outcome
    doc = s.document
    assert doc.photo == other.resolve() and not doc.has_corrections and s.undo_stack.count() == 0

    s.move_landmark(30, doc.landmarks[30] + (5.0, 0.0))
    seen = answer_dialog(Btn.Cancel)
    window.close()
    assert seen and "Closing the window" in seen[0][2]
    assert window.isVisible(), "Cancel keeps the window open"

    saved = tmp_path / "saved_on_close.json"
    window.corrections_path_to_save = lambda: str(saved)         # the file dialog's answer
    box_shot = []
    if SHOTS:                                                      # a look at the question itself
        from PySide6.QtCore import QTimer

        QTimer.singleShot(300, lambda: box_shot.append(window.unsaved_box and window.unsaved_box.grab().save(
            str(Path(SHOTS) / "unsaved_dialog.png"))))
        QTimer.singleShot(600, lambda: window.unsaved_box and window.unsaved_box.button(Btn.Save).click())
    else:
        answer_dialog(Btn.Save)
    window.close()
    assert not window.isVisible() and saved.is_file(), "Save writes the corrections, then the window closes"


def test_a_broken_file_keeps_the_current_work_and_stays_out_of_open_recent(qtbot, ran_window, tmp_path):
    from occgui.gui.settings import AppSettings

    window = ran_window
    s, doc = window.session, window.session.document
    s.move_landmark(8, doc.landmarks[8] + (0.0, 7.0))
    a, b = _stroke_points(doc)
    s.paint_stroke([a, b], 8)
    landmarks, digest, n_undo = doc.landmarks.copy(), doc.alpha_edit.digest(), s.undo_stack.count()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20)

    seen = answer_dialog(Btn.Discard)
    kind, (err_kind, message) = wait_run_end(qtbot, window, lambda: drop_on(window, file_mime(broken)))
    assert seen and kind == "failed" and err_kind == "error", message
    assert s.document is doc and doc.photo.name == "astronaut_hand.png"
    assert np.allclose(doc.landmarks, landmarks) and doc.alpha_edit.digest() == digest
    assert s.undo_stack.count() == n_undo and s.unsaved_corrections, "the work and its undo steps stay"
    assert window.banner.level == "error" and "broken.jpg" in window.banner.message
    assert str(broken.resolve()) not in AppSettings().recent_files()
    assert str(broken.resolve()) not in [a.toolTip() for a in window.recent_menu.actions()]
    assert window.editor.has_points and window.deoccluded.canvas.has_image()
    kind, outcome = wait_run_end(qtbot, window, window.rerun)     # and the photo still runs
    assert kind == "finished" and outcome.result.alpha_edit.digest() == digest


def test_no_occluder_found_says_so_and_points_to_the_brush(qtbot, ran_window):
    window = ran_window
    s, doc = window.session, window.session.document
    assert (doc.alpha == L.OCCLUDER).any() and window.deoccluded.note == ""
    size = doc.alpha.shape[0]
    assert s.paint_stroke([(size / 2, size / 2)], radius=size, erase=True)     # erase every occluder pixel
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome
    assert not outcome.result.synthesis.filled.any()
    note = window.deoccluded.note
    assert "No occluder found" in note and "Brush" in note, note
    assert "no occluder found" in window.deoccluded.subtitle_label.text()
    _shot(window, "no_occluder.png")
    window.undo_action.trigger()
    kind, _ = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished" and window.deoccluded.note == ""


def test_no_occluder_on_a_clean_lfw_photo(qtbot, window, lfw_dir):
    photo = lfw_dir / "AJ_Cook" / "AJ_Cook_0001.jpg"
    kind, outcome = wait_run_end(qtbot, window, lambda: window.open_photo(photo))
    assert kind == "finished", outcome
    if (outcome.result.alpha.labels == L.OCCLUDER).any():
        pytest.skip("the parser marks an occluder on this photo now")
    assert "No occluder found" in window.deoccluded.note and "Brush" in window.deoccluded.note


def test_group_photo_says_how_many_faces_and_the_picker_switches(qtbot, window, tmp_path):
    import cv2
    import skimage.data
    from PIL import Image

    astro = skimage.data.astronaut()
    canvas = np.full((512, 800, 3), 200, np.uint8)
    canvas[:, :512] = astro
    canvas[128:384, 530:786] = cv2.resize(astro, (256, 256))
    photo = tmp_path / "two_faces.png"
    Image.fromarray(canvas).save(photo)

    shown: list[str] = []                                  # a note fades after 6 s: record it
    note = window.banner.show_message
    window.banner.show_message = lambda level, text: (shown.append(text), note(level, text))
    kind, outcome = wait_run_end(qtbot, window, lambda: window.open_photo(photo))
    assert kind == "finished", outcome
    combo = window.face_combo
    assert combo.isVisible() and combo.count() == 2 and combo.currentIndex() == 0
    assert any("2 faces found" in t for t in shown), shown
    assert window.session.document.landmarks[:, 0].mean() < 512
    window.session.move_landmark(8, window.session.document.landmarks[8] + (0.0, 4.0))

    seen = answer_dialog(Btn.Discard)                      # the correction belongs to face 1: ask
    kind, outcome = wait_run_end(qtbot, window, lambda: (combo.setCurrentIndex(1), combo.activated.emit(1)))
    assert seen and kind == "finished", outcome
    doc = window.session.document
    assert doc.face_index == 1 and doc.crop.face_index == 1 and doc.crop.num_faces == 2
    assert doc.landmarks[:, 0].mean() > 530, "the second face is reconstructed"
    assert combo.currentIndex() == 1 and combo.isVisible()
    _shot(window, "face_picker.png")
    assert set(outcome.recomputed) >= {"detect", "parse", "landmarks"} and "load" not in outcome.recomputed
