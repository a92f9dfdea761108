"""Edit \u25b8 Preferences: the compute device, automatic re-runs, the hand evidence and the forehead growth."""
from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout

DEVICE_LABELS = {"auto": "Automatic (CUDA when available, else CPU)", "cpu": "CPU", "cuda": "CUDA (NVIDIA GPU)"}


class SettingsDialog(QDialog):
    """A small dialog; read :attr:`device`, :attr:`auto_rerun`, :attr:`hand_evidence` and
    :attr:`forehead_growth` after ``exec()``."""

    def __init__(self, device: str, auto_rerun: bool, cuda_available: bool, current: str, parent=None, *,
                 hand_evidence: bool = False, forehead_growth: bool = False):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setMinimumWidth(440)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.device_combo = QComboBox(self)
        for key, text in DEVICE_LABELS.items():
            self.device_combo.addItem(text, key)
        self.device_combo.setCurrentIndex(list(DEVICE_LABELS).index(device if device in DEVICE_LABELS else "auto"))
        if not cuda_available:
            item = self.device_combo.model().item(list(DEVICE_LABELS).index("cuda"))
            item.setEnabled(False)
            item.setToolTip("No CUDA device is available on this machine")
        form.addRow("Compute device:", self.device_combo)
        note = QLabel(f"Now running on: {current or 'not started yet'}. "
                      "A new device applies from the next run (models are reloaded).")
        note.setWordWrap(True)
        note.setObjectName("PaneSubtitle")
        form.addRow("", note)
        self.auto_rerun_box = self._checkbox("Re-run automatically after a landmark edit", auto_rerun)
        form.addRow("Landmarks:", self.auto_rerun_box)
        self.hand_evidence_box = self._checkbox(
            "Also mark hands found by MediaPipe Hands as occluder", hand_evidence,
            "Finds real hands the parser misses (in the crop, and those touching the face in a wider view "
            "of the photo), but now and then marks a false hand (an ear, a cheek): "
            "check the occluder overlay, and erase with the brush where it is wrong.")
        form.addRow("Occluder:", self.hand_evidence_box)
        self.forehead_growth_box = self._checkbox(
            "Grow the occluder through the hair over the forehead", forehead_growth,
            "Finds the hats the parser half calls hair: an occluder above the brows takes the forehead's "
            "hair it touches, from temple to temple up to the estimated hairline. A fringe that touches a "
            "hat or band is then re-drawn too: turn this off, or erase with the brush where it is wrong.")
        form.addRow("", self.forehead_growth_box)
        lay.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def _checkbox(self, text: str, checked: bool, tip: str = "") -> QCheckBox:
        box = QCheckBox(text, self)
        box.setChecked(checked)
        if tip:
            box.setToolTip(tip)
        return box

    @property
    def device(self) -> str:
        return str(self.device_combo.currentData())

    @property
    def auto_rerun(self) -> bool:
        return self.auto_rerun_box.isChecked()

    @property
    def hand_evidence(self) -> bool:
        return self.hand_evidence_box.isChecked()

    @property
    def forehead_growth(self) -> bool:
        return self.forehead_growth_box.isChecked()
