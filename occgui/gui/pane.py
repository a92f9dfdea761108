"""A titled panel: a header (title, subtitle, "out of date" badge, tool widgets) over a body.

Every view of the main window sits in one, so staleness looks the same everywhere: the amber
badge in the header says the content was computed from other landmarks than those on screen.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget


class Pane(QFrame):
    """A panel with a header row and one body widget."""

    def __init__(self, title: str, body: QWidget | None = None, subtitle: str = "", parent=None):
        super().__init__(parent)
        self.setObjectName("Pane")
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
        self.subtitle_label = QLabel(subtitle, self.header)
        self.subtitle_label.setObjectName("PaneSubtitle")
        self.stale_badge = QLabel("out of date", self.header)
        self.stale_badge.setObjectName("StaleBadge")
        self.stale_badge.setToolTip("Computed from other landmarks than those shown: Run \u25b8 Re-run (Ctrl+R)")
        self.stale_badge.hide()
        self._header_layout.addWidget(self.title_label)
        self._header_layout.addWidget(self.subtitle_label)
        self._header_layout.addWidget(self.stale_badge)
        self._header_layout.addStretch(1)
        self._tools_index = self._header_layout.count()
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

    def add_tool(self, widget: QWidget) -> QWidget:
        """Add a widget (button, slider...) at the right end of the header."""
        self._header_layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignVCenter)
        return widget

    def set_subtitle(self, text: str) -> None:
        self.subtitle_label.setText(text)

    def set_stale(self, stale: bool) -> None:
        self.stale_badge.setVisible(stale)

    @property
    def is_stale(self) -> bool:
        return not self.stale_badge.isHidden()
