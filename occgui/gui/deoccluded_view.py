"""The de-occluded face I_out, with a before/after comparison against the photo crop.

"Compare" splits the view with a divider the user drags: the photo crop (I_fac) on the left,
I_out on the right. "Filled" tints the re-synthesized pixels so it is clear what was invented.
When M_alpha (as painted) has no occluder pixel, nothing was re-synthesized: the pane says so
and points to the brush (:data:`NO_OCCLUDER_NOTE`).

The backend selector switches I_out between the FISN generator and the classical de-occlusion for
comparison (:data:`BACKEND_CHOICES`); it emits :attr:`DeoccludedView.backendRequested` and the
session re-runs only ``synthesize`` and what reads it. Without FISN weights the selector is
disabled and its tooltip says why (:meth:`DeoccludedView.set_fisn_available`).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QToolButton

from .image_canvas import ImageCanvas
from .pane import Pane

FILL_TINT = np.array([80, 160, 255], dtype=np.float32)
NO_OCCLUDER_NOTE = ("No occluder found in M\u03b1: I_out is the photo unchanged. If something covers the face, "
                    "paint it with the Brush (B) on the photo, then Re-run (Ctrl+R).")


#: The I_out backends the pane switches between: (``synthesize`` backend name, label).
BACKEND_CHOICES: tuple[tuple[str, str], ...] = (("symmetric", "Classical"), ("fisn", "FISN"))
BACKEND_TIP = ("I_out from the classical de-occlusion (mirror + fitted appearance template + Poisson blending) or "
               "from the FISN generator (paper \u00a73.3); switching re-runs I_out and the texture only")


class DeoccludedView(Pane):
    """Pane showing I_out; see the module docstring."""

    backendRequested = Signal(str)          # the synthesize backend the user picked

    def __init__(self, parent=None):
        super().__init__("I_out  de-occluded", None, "", parent, header_badge=False)
        self.canvas = ImageCanvas("de-occluded face (I_out)")
        self.set_body(self.canvas)
        self.compare_button = QToolButton(self)
        self.compare_button.setText("Compare")
        self.compare_button.setCheckable(True)
        self.compare_button.setToolTip("Compare with the photo: drag the divider (photo left, I_out right)")
        self.compare_button.toggled.connect(self._update)
        self.filled_button = QToolButton(self)
        self.filled_button.setText("Filled")
        self.filled_button.setCheckable(True)
        self.filled_button.setToolTip("Tint the pixels that were re-synthesized")
        self.filled_button.toggled.connect(self._update)
        self.backend_combo = QComboBox(self)
        for name, label in BACKEND_CHOICES:
            self.backend_combo.addItem(label, name)
        self.backend_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.backend_combo.setToolTip(BACKEND_TIP)
        self.backend_combo.currentIndexChanged.connect(self._on_backend_picked)
        self._syncing = False
        self.fisn_reason = ""
        self.add_tool(self.backend_combo)
        self.add_tool(self.filled_button)
        self.add_tool(self.compare_button)
        self._display = None

    # -- backend switch --------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The ``synthesize`` backend the selector shows."""
        return str(self.backend_combo.currentData())

    def show_backend(self, name: str) -> None:
        """Show ``name`` in the selector without requesting a run (a backend the selector does
        not list, e.g. one chosen on the command line, is added)."""
        i = self.backend_combo.findData(name)
        self._syncing = True
        try:
            if i < 0:
                self.backend_combo.addItem(name, name)
                i = self.backend_combo.count() - 1
            self.backend_combo.setCurrentIndex(i)
        finally:
            self._syncing = False

    def set_fisn_available(self, available: bool, reason: str = "") -> None:
        """Enable the switch when the FISN weights are there; else disable it, with ``reason``
        (one line: which file is missing) as its tooltip."""
        self.fisn_reason = "" if available else reason
        self.backend_combo.setEnabled(available)
        self.backend_combo.setToolTip(BACKEND_TIP if available else reason)

    def _on_backend_picked(self, _index: int) -> None:
        if not self._syncing:
            self.backendRequested.emit(self.backend)

    def clear(self) -> None:
        self._display = None
        self.canvas.set_note("")
        self.canvas.set_image(None)
        self.canvas.set_second_image(None)
        self.set_subtitle("")
        self.set_stale(False)

    def set_display(self, display, backend: str = "", occluder_pixels: int | None = None) -> None:
        """Show a :class:`~occgui.gui.view_data.SynthesisDisplay`; ``occluder_pixels``: how many
        occluder pixels M_alpha (as painted) had -- 0 shows :data:`NO_OCCLUDER_NOTE`."""
        self._display = display
        share = float(display.filled.mean()) * 100.0 if display.filled.size else 0.0
        text = "no occluder found" if occluder_pixels == 0 else f"{share:.1f}% re-synthesized"
        self.set_subtitle(f"{backend}  \u00b7  {text}" if backend else text)
        self.canvas.set_note(NO_OCCLUDER_NOTE if occluder_pixels == 0 else "")
        self.canvas.set_second_image(display.photo_crop)
        if backend:
            self.show_backend(backend)
        self._update()

    def _update(self) -> None:
        d = self._display
        if d is None:
            return
        img = d.image
        if self.filled_button.isChecked() and d.filled.any():
            img = img.astype(np.float32)
            img[d.filled] = 0.55 * img[d.filled] + 0.45 * FILL_TINT
            img = img.astype(np.uint8)
        self.canvas.set_image(img)
        self.canvas.set_compare(self.compare_button.isChecked(), ("photo", "I_out"))

    def set_stale(self, stale: bool) -> None:  # also dims the image
        super().set_stale(stale)
        self.canvas.set_dimmed(stale)

    @property
    def note(self) -> str:
        return self.canvas.note

    @property
    def comparing(self) -> bool:
        return self.compare_button.isChecked()
