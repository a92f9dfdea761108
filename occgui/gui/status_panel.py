"""Status-bar widgets: the current stage, a progress bar, Cancel, and the compute device."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar


class RunStatus:
    """Adds the run widgets to a ``QStatusBar`` and updates them."""

    def __init__(self, bar: QStatusBar):
        # Fixed sizes: changing a fixed-size label's text repaints it without relayout.
        self.stage_label = QLabel("Ready")
        self.stage_label.setFixedSize(380, 22)
        self.progress = QProgressBar()
        self.progress.setRange(0, 9)
        self.progress.setValue(0)
        self.progress.setFixedSize(220, 18)
        self.progress.setFormat("%v / %m stages")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Cancel the run (within half a second, in any stage) \u2014 Esc")
        self.device_label = QLabel("Device: \u2026")
        self.device_label.setFixedSize(240, 22)
        self.device_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.device_label.setToolTip("Compute device (Edit \u25b8 Preferences)")
        bar.addWidget(self.stage_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.device_label)

    def set_progress(self, text: str, done: int, total: int) -> None:
        fm = self.stage_label.fontMetrics()
        self.stage_label.setText(fm.elidedText(text, Qt.TextElideMode.ElideMiddle, self.stage_label.width() - 8))
        self.stage_label.setToolTip(text)
        if self.progress.maximum() != total:
            self.progress.setMaximum(total)
        if done >= 0 and self.progress.value() != done:
            self.progress.setValue(done)

    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)

    def set_device(self, description: str) -> None:
        text = f"Device: {description}"
        fm = self.device_label.fontMetrics()
        self.device_label.setText(fm.elidedText(text, Qt.TextElideMode.ElideRight, self.device_label.width() - 8))
        self.device_label.setToolTip(f"{text} (Edit \u25b8 Preferences)")
