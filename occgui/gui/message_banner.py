"""One non-modal message line at the top of the window (errors, warnings, notes).

A new message replaces the current one -- there is never a stack of dialogs. Errors and
warnings stay until closed, replaced, or a later action succeeds (:meth:`MessageBanner.clear_problem`);
notes fade after a few seconds.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

from . import theme

LEVEL_COLORS = {"error": theme.ERROR, "warning": "#b9822a", "info": "#2f5f8f"}
LEVEL_ICONS = {"error": "\u2716", "warning": "\u26a0", "info": "\u2139"}
INFO_TIMEOUT_MS = 6000


class MessageBanner(QFrame):
    """The message line; :meth:`show_message` (level, text)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("Banner")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        self.icon = QLabel(self)
        self.icon.setObjectName("BannerText")
        self.text = QLabel(self)
        self.text.setObjectName("BannerText")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setText("\u2715")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(self.icon)
        lay.addWidget(self.text, 1)
        lay.addWidget(close)
        self.level = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        """Show one line (the first line of ``text``), replacing any current message."""
        line = (text or "").strip().splitlines()[0] if text and text.strip() else ""
        self.level = level
        self.setStyleSheet(f"QFrame#Banner {{ background: {LEVEL_COLORS.get(level, LEVEL_COLORS['info'])}; }}")
        self.icon.setText(LEVEL_ICONS.get(level, ""))
        self.text.setText(line)
        self.text.setToolTip(text)
        self.show()
        if level == "info":
            self._timer.start(INFO_TIMEOUT_MS)
        else:
            self._timer.stop()

    def clear_problem(self) -> None:
        """A later action succeeded: an error or warning shown is no longer true, hide it."""
        if not self.isHidden() and self.level in ("error", "warning"):
            self._timer.stop()
            self.hide()

    @property
    def message(self) -> str:
        return "" if self.isHidden() else self.text.text()
