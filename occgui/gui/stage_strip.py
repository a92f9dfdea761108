"""A row of chips, one per pipeline stage, coloured by state.

pending (grey) -> running (blue) -> done (green) / cached (teal, reused from an earlier run);
failed (red), cancelled (grey), and *stale* (amber) for results computed from other landmarks
than those on screen. Tooltips give the stage's time as the state means it: a computed stage
"computed in 12 ms", a reused one "reused" (with the time its computation took, when known --
never "computed in 0 ms"), a cancelled or failed one how long it ran before it stopped.

The strip paints itself in one widget of fixed height: a state change is a repaint only, never
a relayout of the window (which would cost the GUI thread tens of milliseconds while the worker
holds the interpreter lock).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from ..pipeline.stages import STAGES
from ..pipeline.stages import stage as stage_spec
from . import theme

STATE_TEXT = {"pending": "not run yet", "running": "running\u2026", "done": "computed", "cached": "reused (cached)",
              "failed": "failed", "cancelled": "cancelled", "stale": "out of date: re-run to update"}
_PAD_X, _GAP, _ARROW = 10, 4, 12


def format_seconds(sec: float) -> str:
    """``0.4 ms``, ``12 ms``, ``1.25 s``: never a computation of "0 ms"."""
    if sec < 0.001:
        return f"{sec * 1000:.2f} ms"
    if sec < 1.0:
        return f"{sec * 1000:.0f} ms"
    return f"{sec:.2f} s"


class StageStrip(QWidget):
    """One chip per stage; call :meth:`set_state` as stages change."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.states: dict[str, str] = {s: "pending" for s in STAGES}
        self.seconds: dict[str, float | None] = {s: None for s in STAGES}
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(self._font.pointSizeF() - 0.5, 8.0))
        fm = QFontMetrics(self._font)
        self._chip_h = fm.height() + 6
        self._rects: dict[str, QRectF] = {}
        x = 1.0
        for s in STAGES:
            w = fm.horizontalAdvance(stage_spec(s).label) + 2 * _PAD_X
            self._rects[s] = QRectF(x, 1, w, self._chip_h)
            x += w + _ARROW
        self.setFixedHeight(self._chip_h + 2)
        self.setMinimumWidth(int(x))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_state(self, stage: str, state: str, seconds: float | None = None) -> None:
        if self.states.get(stage) != state or self.seconds.get(stage) != seconds:
            self.states[stage] = state
            self.seconds[stage] = seconds
            self.update()

    def tooltip_text(self, stage: str) -> str:
        state = self.states[stage]
        tip = f"{stage_spec(stage).title}: {STATE_TEXT.get(state, state)}"
        sec = self.seconds.get(stage)
        if sec is None:
            return tip
        if state == "done":
            tip += f" in {format_seconds(sec)}"
        elif state == "cached":
            tip += f"; its computation took {format_seconds(sec)}"
        elif state in ("cancelled", "failed"):
            tip += f" after {format_seconds(sec)}"
        return tip

    def paintEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setFont(self._font)
        for i, s in enumerate(STAGES):
            r = self._rects[s]
            state = self.states[s]
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(theme.STATE_COLORS.get(state, theme.STATE_COLORS["pending"])))
            p.drawRoundedRect(r, r.height() / 2, r.height() / 2)
            p.setPen(QColor("#1b1b1b" if state == "stale" else "white"))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, stage_spec(s).label)
            if i < len(STAGES) - 1:
                p.setPen(QColor(theme.TEXT_DIM))
                p.drawText(QRectF(r.right(), r.top(), _ARROW, r.height()), Qt.AlignmentFlag.AlignCenter, "\u203a")

    def event(self, ev) -> bool:
        if ev.type() == QEvent.Type.ToolTip:
            for s, r in self._rects.items():
                if r.contains(QPointF(ev.pos())):
                    QToolTip.showText(ev.globalPos(), self.tooltip_text(s), self)
                    return True
            QToolTip.hideText()
            return True
        return super().event(ev)
