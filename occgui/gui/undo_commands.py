"""Undoable corrections for the session's ``QUndoStack``: landmark moves, paint strokes, loaded files.

One drag of one handle is one undo step: every intermediate position pushes a
:class:`MoveLandmarkCommand` with the same drag id, and consecutive commands of one drag merge.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand

from ..landmarks import ibug68

_MOVE_ID = 6801


def landmark_name(index: int) -> str:
    """Human name of an iBUG point, e.g. ``jaw 8`` or ``left eye (image) 37``."""
    groups = (("jaw", ibug68.JAW), ("brow, image left", ibug68.BROW_IMAGE_LEFT),
              ("brow, image right", ibug68.BROW_IMAGE_RIGHT), ("nose bridge", ibug68.NOSE_BRIDGE),
              ("nostrils", ibug68.NOSTRILS), ("eye, image left", ibug68.EYE_IMAGE_LEFT),
              ("eye, image right", ibug68.EYE_IMAGE_RIGHT), ("outer lips", ibug68.OUTER_LIPS),
              ("inner lips", ibug68.INNER_LIPS))
    for name, idx in groups:
        if index in idx:
            return name
    return "landmark"


class MoveLandmarkCommand(QUndoCommand):
    """Move landmark ``index`` from ``old`` to ``new`` (photo px) via ``apply(index, xy)``."""

    def __init__(self, apply, index: int, old, new, drag_id: int):
        super().__init__(f"Move landmark {index}")
        self._apply = apply
        self.index = int(index)
        self.old = np.array(old, dtype=np.float64)
        self.new = np.array(new, dtype=np.float64)
        self.drag_id = int(drag_id)

    def id(self) -> int:  # noqa: A003 -- Qt's name
        return _MOVE_ID

    def mergeWith(self, other) -> bool:  # noqa: N802 -- Qt's name
        if not isinstance(other, MoveLandmarkCommand) or other.drag_id != self.drag_id or other.index != self.index:
            return False
        self.new = other.new.copy()
        return True

    def redo(self) -> None:
        self._apply(self.index, self.new)

    def undo(self) -> None:
        self._apply(self.index, self.old)


class SetLandmarksCommand(QUndoCommand):
    """Replace all 68 points (reset to detected, load from a file) via ``apply_all(points)``."""

    def __init__(self, apply_all, old, new, text: str):
        super().__init__(text)
        self._apply_all = apply_all
        self.old = np.array(old, dtype=np.float64)
        self.new = np.array(new, dtype=np.float64)

    def redo(self) -> None:
        self._apply_all(self.new)

    def undo(self) -> None:
        self._apply_all(self.old)


class PaintCommand(QUndoCommand):
    """One brush or eraser stroke on the occluder map: ``apply_edit(edit)`` sets the whole
    painted state (``occgui.corrections.AlphaEdit`` or None), so undo restores the one before."""

    def __init__(self, apply_edit, old, new, text: str):
        super().__init__(text)
        self._apply_edit = apply_edit
        self.old, self.new = old, new

    def redo(self) -> None:
        self._apply_edit(self.new)

    def undo(self) -> None:
        self._apply_edit(self.old)


class SetCorrectionsCommand(QUndoCommand):
    """Landmarks and paint together (a corrections file loaded): ``apply(points, edit)``."""

    def __init__(self, apply, old_points, old_edit, new_points, new_edit, text: str):
        super().__init__(text)
        self._apply = apply
        self.old = (np.array(old_points, dtype=np.float64), old_edit)
        self.new = (np.array(new_points, dtype=np.float64), new_edit)

    def redo(self) -> None:
        self._apply(*self.new)

    def undo(self) -> None:
        self._apply(*self.old)
