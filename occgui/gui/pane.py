"""A titled panel: a header (title, subtitle, "out of date" badge, tool widgets) over a body.

Every view of the main window sits in one, so staleness looks the same everywhere: an amber
"out of date" pill (in the header, or drawn over an image view's content) says the content was
computed from other landmarks than those on screen.

The subtitle and the badge paint themselves in fixed-height widgets that never ask for a new
layout when they change: updates during a run are repaints only, so the GUI thread stays
quick while the worker thread computes.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from . import theme


class ElidedText(QWidget):
    """One line of dim text that shrinks freely (elided with an ellipsis); changing it repaints
    without relayout."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self._text = text
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(QFontMetrics(self.font()).height() + 2)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 -- QLabel-like name
        if text != self._text:
            self._text = text
            self.setToolTip(text)
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        p = QPainter(self)
        p.setPen(QColor(theme.TEXT_DIM))
        text = self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, self.width())
        p.drawText(self.rect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)


class StaleBadge(QWidget):
    """The amber "out of date" pill; it keeps its place in the header and only paints when on."""

    TEXT = "out of date"

    def __init__(self, parent=None):
        super().__init__(parent)
        self._on = False
        self._font = QFont(self.font())
        self._font.setBold(True)
        fm = QFontMetrics(self._font)
        self.setFixedSize(fm.horizontalAdvance(self.TEXT) + 18, fm.height() + 4)
        self.setToolTip("")

    def set_on(self, on: bool) -> None:
        if on != self._on:
            self._on = on
            self.setToolTip("Computed from other landmarks than those shown: Run \u25b8 Re-run (Ctrl+R)" if on else "")
            self.update()

    @property
    def on(self) -> bool:
        return self._on

    def paintEvent(self, event) -> None:  # noqa: N802
        if not self._on:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(theme.STALE))
        r = QRectF(self.rect())
        p.drawRoundedRect(r, r.height() / 2, r.height() / 2)
        p.setFont(self._font)
        p.setPen(QColor("#1b1b1b"))
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, self.TEXT)


class Pane(QFrame):
    """A panel with a header row and one body widget."""

    def __init__(self, title: str, body: QWidget | None = None, subtitle: str = "", parent=None,
                 header_badge: bool = True):
        super().__init__(parent)
        self.setObjectName("Pane")
        self._stale = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(1, 1, 1, 1)
        outer.setSpacing(0)
        self.header = QFrame(self)
        self.header.setObjectName("PaneHeader")
        self._header_layout = QHBoxLayout(self.header)
        self._header_layout.setContentsMargins(10, 4, 6, 4)
        self._header_layout.setSpacing(6)
        self.title_label = QLabel(title, self.header)
        self.title_label.setObjectName("PaneTitle")
        self.subtitle_label = ElidedText(subtitle, self.header)
        self.stale_badge = StaleBadge(self.header) if header_badge else None
        self._header_layout.addWidget(self.title_label)
        self._header_layout.addWidget(self.subtitle_label, 1)
        if self.stale_badge is not None:
            self._header_layout.addWidget(self.stale_badge)
        outer.addWidget(self.header)
        self._body_holder = QVBoxLayout()
        self._body_holder.setContentsMargins(4, 4, 4, 4)
        outer.addLayout(self._body_holder, 1)
        self.body: QWidget | None = None
        if body is not None:
            self.set_body(body)

    def set_body(self, body: QWidget) -> None:
        self.body = body
        self._body_holder.addWidget(body, 1)

    def add_action_button(self, action, text: str, tip: str = "") -> QToolButton:
        """A header button that triggers ``action`` and follows its enabled state, with its own
        short ``text`` (an undo action's changing text does not leak into the header)."""
        b = QToolButton(self.header)
        b.setText(text)
        b.setToolTip(tip or action.toolTip())
        b.setEnabled(action.isEnabled())
        b.clicked.connect(action.trigger)
        action.enabledChanged.connect(b.setEnabled)
        return self.add_tool(b)

    def add_tool(self, widget: QWidget) -> QWidget:
        """Add a widget (button, slider...) at the right end of the header."""
        self._header_layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignVCenter)
        return widget

    def set_subtitle(self, text: str) -> None:
        self.subtitle_label.setText(text)

    def set_stale(self, stale: bool) -> None:
        """Mark the content out of date (header badge; panes without one show it in their body)."""
        self._stale = bool(stale)
        if self.stale_badge is not None:
            self.stale_badge.set_on(self._stale)

    @property
    def is_stale(self) -> bool:
        return self._stale
