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
