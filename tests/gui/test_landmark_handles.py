"""Landmark handles keep their colours through a drag, and the dragged one shows as edited at once
(issue 17: after every drag all 68 handles used to fall back to pyqtgraph's default blue)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _colours(item) -> list[str]:
    return [b.color().name() for b in item.scatter.data["brush"]]


def test_handle_colours_survive_a_drag(qtbot):
    from occgui.gui import theme
    from occgui.gui.landmark_editor import LandmarkHandles

    item = LandmarkHandles()
    pts = np.stack([np.linspace(10, 200, 68), np.linspace(20, 180, 68)], axis=1)
    item.set_points(pts)
    assert set(_colours(item)) == {theme.HANDLE}
    for step in range(3):                                   # three move events of one drag
        item.move_handle(30, 100.0 + step, 90.0)
    colours = _colours(item)
    assert colours[30] == theme.HANDLE_EDITED
    assert all(c == theme.HANDLE for k, c in enumerate(colours) if k != 30)
    assert np.allclose(item.points[30], (102.0, 90.0)) and np.allclose(item.points[31], pts[31])


def test_handle_colours_survive_a_real_mouse_drag_in_the_window(qtbot, ran_window):
    """The same through the window: a mouse drag of the nose tip, then a re-run (new landmarks
    arrive): the dragged handle is pink at once and stays so, the other 67 keep the handle colour."""
    from gui_helpers import mouse_drag, wait_run_end
    from PySide6.QtCore import QPointF

    from occgui.gui import theme

    window = ran_window
    editor, doc = window.editor, window.session.document
    editor.zoom_to_points()
    qtbot.wait(50)
    assert set(_colours(editor.handles)) == {theme.HANDLE}
    start = editor.photo_to_widget(doc.landmarks[30])
    mouse_drag(editor.view.viewport(), start, start + QPointF(14.0, 9.0))
    assert not np.allclose(doc.landmarks[30], doc.detected[30])
    colours = _colours(editor.handles)
    assert colours[30] == theme.HANDLE_EDITED, "the dragged handle is not shown as edited"
    assert all(c == theme.HANDLE for k, c in enumerate(colours) if k != 30), "handles lost their colour"
    kind, outcome = wait_run_end(qtbot, window, window.rerun)
    assert kind == "finished", outcome
    colours = _colours(editor.handles)
    assert colours[30] == theme.HANDLE_EDITED and colours.count(theme.HANDLE) == 67
