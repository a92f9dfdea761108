"""A row of chips, one per pipeline stage, coloured by state.

pending (grey) -> running (blue) -> done (green) / cached (teal, reused from an earlier run);
failed (red), cancelled (grey), and *stale* (amber) for results computed from other landmarks
than those on screen. Tooltips give the stage's time.
"""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from ..pipeline.runner import STAGE_TITLES, STAGES
from . import theme

SHORT_TITLES = {"load": "Load", "detect": "Detect", "landmarks": "Landmarks", "parse": "M\u03b1 parse",
                "landmark_map": "M\u03b2 map", "merge": "M\u03b3 merge", "synthesize": "I_out",
                "geometry": "Geometry", "texture": "Texture"}
_STATE_TEXT = {"pending": "not run yet", "running": "running\u2026", "done": "computed", "cached": "reused (cached)",
               "failed": "failed", "cancelled": "cancelled", "stale": "out of date: re-run to update"}


class StageStrip(QWidget):
    """One chip per stage; call :meth:`set_state` as stages change."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 0, 2, 0)
        lay.setSpacing(4)
        self.chips: dict[str, QLabel] = {}
        self.states: dict[str, str] = {}
        for i, s in enumerate(STAGES):
            chip = QLabel(SHORT_TITLES.get(s, s), self)
            chip.setObjectName("Chip")
            self.chips[s] = chip
            lay.addWidget(chip)
            if i < len(STAGES) - 1:
                arrow = QLabel("\u203a", self)
                arrow.setStyleSheet(f"color: {theme.TEXT_DIM};")
                lay.addWidget(arrow)
            self.set_state(s, "pending")
        lay.addStretch(1)

    def set_state(self, stage: str, state: str, seconds: float | None = None) -> None:
        self.states[stage] = state
        color = theme.STATE_COLORS.get(state, theme.STATE_COLORS["pending"])
        fg = "#1b1b1b" if state == "stale" else "white"
        self.chips[stage].setStyleSheet(f"background: {color}; color: {fg};")
        tip = f"{STAGE_TITLES.get(stage, stage)}: {_STATE_TEXT.get(state, state)}"
        if seconds is not None and state == "done":
            tip += f" in {seconds * 1000:.0f} ms"
        self.chips[stage].setToolTip(tip)
