"""A light image display: a numpy RGB image drawn aspect-fit, with an optional before/after wipe.

Used for the three parsing maps and the de-occluded face. Painting is cheap (the QImage is made
once per new image), hovering reports image pixels so panes can show what is under the cursor,
and in compare mode a vertical divider -- dragged with the mouse -- shows the second image
(the photo) on its left and the main image on its right.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from . import theme


def qimage_from_rgb(rgb: np.ndarray) -> QImage:
    """An owned QImage copy of an HxWx3 (RGB) or HxWx4 (RGBA) uint8 array."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = a.shape[:2]
    fmt = QImage.Format.Format_RGBA8888 if a.ndim == 3 and a.shape[2] == 4 else QImage.Format.Format_RGB888
    return QImage(a.data, w, h, int(a.strides[0]), fmt).copy()


class ImageCanvas(QWidget):
    """Shows one image scaled to fit; see the module docstring."""

    hovered = Signal(int, int)        # image pixel under the cursor (x, y); (-1, -1) when outside

    def __init__(self, placeholder: str = "", parent=None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._second: QImage | None = None
        self._array: np.ndarray | None = None
        self._placeholder = placeholder
        self._dim = False
        self._compare = False
        self._wipe = 0.5
        self._dragging_wipe = False
        self._tooltip = None
        self._labels = ("photo", "result")
        self._note = ""

    # -- content -----------------------------------------------------------------------------
    def set_image(self, rgb: np.ndarray | None) -> None:
        self._array = rgb
        self._image = qimage_from_rgb(rgb) if rgb is not None else None
        self.update()

    def set_second_image(self, rgb: np.ndarray | None) -> None:
        """The image shown left of the divider in compare mode (same size as the main one)."""
        self._second = qimage_from_rgb(rgb) if rgb is not None else None
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def set_note(self, text: str) -> None:
        """A short note drawn in a box at the bottom of the image ("" = none)."""
        if text != self._note:
            self._note = text
            self.update()

    @property
    def note(self) -> str:
        return self._note

    def set_dimmed(self, dim: bool) -> None:
        """Dim the image and show an "out of date" pill (its content is stale)."""
        if dim != self._dim:
            self._dim = dim
            self.update()

    @property
    def dimmed(self) -> bool:
        return self._dim

    def set_compare(self, on: bool, labels: tuple[str, str] | None = None) -> None:
        self._compare = bool(on)
        if labels:
            self._labels = labels
        self.update()

    def set_wipe(self, fraction: float) -> None:
        self._wipe = float(min(max(fraction, 0.0), 1.0))
        self.update()

    @property
    def wipe(self) -> float:
        return self._wipe

    def set_tooltip_provider(self, fn) -> None:
        """``fn(x, y) -> str | None``: text shown while hovering image pixel (x, y)."""
        self._tooltip = fn

    def has_image(self) -> bool:
        return self._image is not None

    # -- geometry ----------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        """Where the image is drawn (aspect-fit, centred) in widget coordinates."""
        if self._image is None:
            return QRectF()
        w, h = self._image.width(), self._image.height()
        s = min(self.width() / w, self.height() / h)
        dw, dh = w * s, h * s
        return QRectF((self.width() - dw) / 2, (self.height() - dh) / 2, dw, dh)

    def widget_to_image(self, pos: QPointF) -> tuple[int, int]:
        r = self.image_rect()
        if self._image is None or not r.contains(pos):
            return -1, -1
        x = int((pos.x() - r.left()) / r.width() * self._image.width())
        y = int((pos.y() - r.top()) / r.height() * self._image.height())
        return min(x, self._image.width() - 1), min(y, self._image.height() - 1)

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.VIEW_BG))
        if self._image is None:
            p.setPen(QColor(theme.TEXT_DIM))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        r = self.image_rect()
        p.drawImage(r, self._image)
        if self._compare and self._second is not None:
            split = r.left() + r.width() * self._wipe
            src_w = self._second.width() * self._wipe
            p.drawImage(QRectF(r.left(), r.top(), split - r.left(), r.height()), self._second,
                        QRectF(0, 0, src_w, self._second.height()))
            p.setPen(QPen(QColor("white"), 2))
            p.drawLine(QPointF(split, r.top()), QPointF(split, r.bottom()))
            p.setBrush(QColor("white"))
            p.drawEllipse(QPointF(split, r.center().y()), 6, 6)
            f = QFont(self.font())
            f.setBold(True)
            p.setFont(f)
            self._draw_tag(p, QPointF(r.left() + 6, r.top() + 6), self._labels[0], Qt.AlignmentFlag.AlignLeft)
            self._draw_tag(p, QPointF(r.right() - 6, r.top() + 6), self._labels[1], Qt.AlignmentFlag.AlignRight)
        if self._note:
            f = QFont(self.font())
            p.setFont(f)
            inner = r.adjusted(8, 0, -8, -8)
            text_w = max(int(inner.width()) - 12, 40)
            needed = p.fontMetrics().boundingRect(QRect(0, 0, text_w, 100_000), int(Qt.TextFlag.TextWordWrap),
                                                  self._note).height()
            box = QRectF(inner.left(), inner.bottom() - needed - 10, inner.width(), needed + 10)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(20, 22, 25, 215))
            p.drawRoundedRect(box, 5, 5)
            p.setPen(QColor("white"))
            p.drawText(box.adjusted(6, 5, -6, -5), int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                       self._note)
        if self._dim:
            p.fillRect(r, QColor(18, 19, 21, 120))
            f = QFont(self.font())
            f.setBold(True)
            p.setFont(f)
            fm = p.fontMetrics()
            text = "out of date"
            pill = QRectF(r.left() + 6, r.top() + 6, fm.horizontalAdvance(text) + 16, fm.height() + 4)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(theme.STALE))
            p.drawRoundedRect(pill, pill.height() / 2, pill.height() / 2)
            p.setPen(QColor("#1b1b1b"))
            p.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)

    @staticmethod
    def _draw_tag(p: QPainter, at: QPointF, text: str, align) -> None:
        fm = p.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 10, fm.height() + 4
        x = at.x() if align == Qt.AlignmentFlag.AlignLeft else at.x() - w
        box = QRectF(x, at.y(), w, h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 150))
        p.drawRoundedRect(box, 4, 4)
        p.setPen(QColor("white"))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # -- mouse -------------------------------------------------------------------------------
    def _near_divider(self, pos: QPointF) -> bool:
        r = self.image_rect()
        return self._compare and r.contains(pos) and abs(pos.x() - (r.left() + r.width() * self._wipe)) < 10

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        if self._compare and ev.button() == Qt.MouseButton.LeftButton and self.image_rect().contains(ev.position()):
            self._dragging_wipe = True
            self._move_wipe(ev.position())
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        pos = ev.position()
        if self._dragging_wipe:
            self._move_wipe(pos)
            return
        self.setCursor(Qt.CursorShape.SplitHCursor if self._near_divider(pos) else Qt.CursorShape.ArrowCursor)
        x, y = self.widget_to_image(pos)
        self.hovered.emit(x, y)
        if self._tooltip is not None:
            text = self._tooltip(x, y) if x >= 0 else None
            if text:
                QToolTip.showText(ev.globalPosition().toPoint(), text, self)
            else:
                QToolTip.hideText()

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        self._dragging_wipe = False
        super().mouseReleaseEvent(ev)

    def leaveEvent(self, ev) -> None:  # noqa: N802
        self.hovered.emit(-1, -1)
        super().leaveEvent(ev)

    def _move_wipe(self, pos: QPointF) -> None:
        r = self.image_rect()
        if r.width() > 0:
            self.set_wipe((pos.x() - r.left()) / r.width())
