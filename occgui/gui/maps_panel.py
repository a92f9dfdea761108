"""The three parsing maps side by side -- M_alpha (raw), M_beta (landmarks), M_gamma (merged) --
with one shared legend of labels and the controls to overlay one of them on the photo.

Hovering a map names the label under the cursor; each map's "on photo" toggle overlays it on
the landmark editor (at most one at a time) with the shared opacity slider.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget

from .. import labels as L
from ..pipeline.stages import stage_of_field
from .image_canvas import ImageCanvas
from .pane import Pane

#: kind (the result field of the stage table) -> (stage, title, subtitle, placeholder)
MAPS = {
    kind: (stage_of_field(kind).name, *texts) for kind, texts in (
        ("alpha", ("M\u03b1 raw", "N\u03b1 U-Net", "raw parsing map")),
        ("beta", ("M\u03b2 landmarks", "68 points", "landmark parsing map")),
        ("gamma", ("M\u03b3 merged", "Algorithm 1", "merged parsing map")))
}
STAGE_TO_KIND = {v[0]: k for k, v in MAPS.items()}

_PRETTY = {"background": "background", "skin": "skin", "l_brow": "left brow", "r_brow": "right brow",
           "l_eye": "left eye", "r_eye": "right eye", "nose": "nose", "u_lip": "upper lip", "mouth": "mouth",
           "l_lip": "lower lip", "hair": "hair", "occluder": "occluder"}


def pretty_label(name: str) -> str:
    return _PRETTY.get(name, name.replace("_", " "))


class LegendWidget(QWidget):
    """Colour swatches and names of every parsing label, in two columns."""

    def __init__(self, parent=None):
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        items = L.legend_items()
        rows = (len(items) + 1) // 2
        for n, (_id, name, rgb) in enumerate(items):
            sw = QPixmap(14, 14)
            sw.fill(QColor(*rgb))
            swatch = QLabel(self)
            swatch.setPixmap(sw)
            swatch.setFixedSize(14, 14)
            swatch.setStyleSheet("border: 1px solid #555; border-radius: 2px;")
            text = QLabel(pretty_label(name), self)
            text.setObjectName("LegendName")
            r, c = n % rows, (n // rows) * 2
            grid.addWidget(swatch, r, c)
            grid.addWidget(text, r, c + 1)
        grid.setRowStretch(rows, 1)


class MapsPanel(QWidget):
    """Three map panes and a legend/overlay pane in a row."""

    overlayChanged = Signal(str)        # kind ("alpha" | "beta" | "gamma") or "" for none
    opacityChanged = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.canvases: dict[str, ImageCanvas] = {}
        self.panes: dict[str, Pane] = {}
        self.overlay_buttons: dict[str, QToolButton] = {}
        self._displays: dict[str, object] = {}
        self._overlay = ""
        for kind, (_stage, title, subtitle, placeholder) in MAPS.items():
            canvas = ImageCanvas(placeholder)
            canvas.set_tooltip_provider(lambda x, y, k=kind: self._label_at(k, x, y))
            pane = Pane(title, canvas, subtitle, header_badge=False)
            pane.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
            pane.setMinimumWidth(140)
            btn = QToolButton(pane)
            btn.setText("on photo")
            btn.setCheckable(True)
            btn.setToolTip(f"Overlay {title.split()[0]} on the photo (opacity: slider at the right)")
            btn.toggled.connect(lambda on, k=kind: self._toggle_overlay(k, on))
            pane.add_tool(btn)
            self.canvases[kind], self.panes[kind], self.overlay_buttons[kind] = canvas, pane, btn
            row.addWidget(pane, 1)

        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(2, 2, 2, 2)
        sl.addWidget(LegendWidget(side), 1)
        hint = QLabel("Hover a map to read the label under the cursor; \u201con photo\u201d overlays it.", side)
        hint.setObjectName("PaneSubtitle")
        hint.setWordWrap(True)
        hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        sl.addWidget(hint)
        op_row = QHBoxLayout()
        op_label = QLabel("Overlay opacity", side)
        op_label.setObjectName("PaneSubtitle")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, side)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(55)
        self.opacity_slider.setToolTip("Opacity of the parsing map overlaid on the photo")
        self.opacity_slider.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        op_row.addWidget(op_label)
        op_row.addWidget(self.opacity_slider, 1)
        sl.addLayout(op_row)
        self.legend_pane = Pane("Labels", side, header_badge=False)
        self.legend_pane.setFixedWidth(236)
        row.addWidget(self.legend_pane, 0)

    # -- content -----------------------------------------------------------------------------
    def clear(self) -> None:
        self._displays.clear()
        for kind, canvas in self.canvases.items():
            canvas.set_image(None)
            self.panes[kind].set_stale(False)
            canvas.set_dimmed(False)
        if self._overlay:
            self.overlayChanged.emit(self._overlay)

    def set_map(self, kind: str, display) -> None:
        """Show a :class:`~occgui.gui.view_data.MapDisplay`."""
        self._displays[kind] = display
        self.canvases[kind].set_image(display.rgb)
        if kind == self._overlay:
            self.overlayChanged.emit(kind)

    def display(self, kind: str):
        return self._displays.get(kind)

    def set_stale(self, kind: str, stale: bool) -> None:
        self.panes[kind].set_stale(stale)
        self.canvases[kind].set_dimmed(stale)

    @property
    def overlay(self) -> str:
        return self._overlay

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    def set_overlay(self, kind: str) -> None:
        """Overlay ``kind`` on the photo ("" = none)."""
        for k, b in self.overlay_buttons.items():
            b.blockSignals(True)
            b.setChecked(k == kind)
            b.blockSignals(False)
        self._overlay = kind
        self.overlayChanged.emit(kind)

    def _toggle_overlay(self, kind: str, on: bool) -> None:
        self.set_overlay(kind if on else ("" if self._overlay == kind else self._overlay))

    def _label_at(self, kind: str, x: int, y: int) -> str | None:
        d = self._displays.get(kind)
        if d is None or not (0 <= y < d.labels.shape[0] and 0 <= x < d.labels.shape[1]):
            return None
        lab = int(d.labels[y, x])
        name = L.NAMES[lab] if 0 <= lab < L.NUM_CLASSES else str(lab)
        return f"{pretty_label(name)}  (id {lab})"
