"""The photo + landmarks editor (pyqtgraph): 68 draggable handles joined by the iBUG contours.

* The photo is the pipeline's *working* image; landmarks come and go in *photo* pixels and are
  drawn at ``photo * scale``. Pixel centres sit on integer coordinates, y points down.
* Hovering a handle enlarges it and shows its index and name; dragging moves it and the
  contours follow live; a drag that starts off a handle pans, the wheel zooms.
* Points moved away from their detected position are drawn in another colour, with a thin line
  back to a faint dot at the detected position, so every correction stays visible.
* Arrow keys nudge the hovered point by half a photo pixel (Shift: 5 px); double-clicking a point
  puts it back at its detected position.
* A parsing map can be overlaid (placed through the crop's affine transform) with an opacity.
* Painting the occluder: with the brush or eraser tool (:meth:`LandmarkEditor.set_tool`) a left
  drag on the photo paints instead of moving points or panning; the strokes go out in *crop*
  pixels (``strokeStarted``/``strokeMoved``/``strokeFinished``), a circle shows the brush, and
  the painted occluder is drawn over the photo (:meth:`LandmarkEditor.set_paint_overlay`).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QPen, QTransform
from PySide6.QtWidgets import QGraphicsEllipseItem, QVBoxLayout, QWidget

from ..landmarks import ibug68
from . import theme
from .undo_commands import landmark_name

#: Painting tools of the photo view ("" = edit the landmarks).
TOOLS = ("", "brush", "eraser")


def _crop_transform(from_crop) -> QTransform:
    """The QTransform placing a crop-pixel image (pixel centres on integers) on the view."""
    a = np.asarray(from_crop, dtype=np.float64)
    dx = a[0, 2] - 0.5 * (a[0, 0] + a[0, 1])
    dy = a[1, 2] - 0.5 * (a[1, 0] + a[1, 1])
    return QTransform(a[0, 0], a[1, 0], a[0, 1], a[1, 1], dx, dy)


class PhotoItem(pg.ImageItem):
    """The photo; with a paint tool active it takes left drags (strokes) and shows the brush."""

    def __init__(self, editor: "LandmarkEditor"):
        super().__init__(axisOrder="row-major")
        self._editor = editor

    def hoverEvent(self, ev) -> None:  # noqa: N802 -- pyqtgraph's name
        ed = self._editor
        if not ed.tool:
            return
        if ev.isExit():
            ed.brush_cursor.hide()
            return
        ev.acceptDrags(Qt.MouseButton.LeftButton)
        ev.acceptClicks(Qt.MouseButton.LeftButton)
        ed.move_brush_cursor(ed.vb.mapSceneToView(ev.scenePos()))

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        ed = self._editor
        if ed.tool and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = ed.vb.mapSceneToView(ev.scenePos())
            ed.stroke("start", p)
            ed.stroke("finish", p)
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev) -> None:  # noqa: N802
        ed = self._editor
        if not ed.tool or ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        p = ed.vb.mapSceneToView(ev.scenePos())
        ed.move_brush_cursor(p)
        if ev.isStart():
            ed.stroke("start", ed.vb.mapSceneToView(ev.buttonDownScenePos()))
        ed.stroke("move", p)
        if ev.isFinish():
            ed.stroke("finish", p)


#: Handle hit radius in screen pixels.
HIT_RADIUS_PX = 9.0
HANDLE_SIZE = 8
CONTOUR_EDGES = np.array([(c[i], c[i + 1]) for c in ibug68.CONTOURS for i in range(len(c) - 1)], dtype=np.int64)


class LandmarkHandles(pg.GraphItem):
    """The 68 handles and their contour lines, with hover and drag in view coordinates."""

    hoverChanged = Signal(int)                  # index under the cursor, -1 for none
    doubleClicked = Signal(int)
    dragStarted = Signal(int)
    dragMoved = Signal(int, float, float)       # index, view x, view y
    dragFinished = Signal(int)

    def __init__(self):
        super().__init__()
        self._pos = np.zeros((0, 2))
        self._edited = np.zeros(0, bool)
        self._hover = -1
        self._drag_index: int | None = None
        self._drag_offset = QPointF(0, 0)
        self.interactive = True             # False while a paint tool is active
        self.setZValue(20)

    def set_points(self, pos: np.ndarray, edited: np.ndarray | None = None) -> None:
        self._pos = np.array(pos, dtype=np.float64)
        self._edited = np.zeros(len(self._pos), bool) if edited is None else np.array(edited, bool)
        self._redraw()

    def _redraw(self) -> None:
        """Positions *and* style every time: pyqtgraph's GraphItem.setData(pos=...) alone resets the
        handles to its default blue, which is how colours used to get lost after every drag."""
        if len(self._pos) == 0:
            self.setData(pos=np.zeros((0, 2)), adj=None)
            return
        brushes = [pg.mkBrush(theme.HANDLE_EDITED if e else theme.HANDLE) for e in self._edited]
        self.setData(pos=self._pos, adj=CONTOUR_EDGES, pen=pg.mkPen(theme.CONTOUR, width=1.4),
                     size=HANDLE_SIZE, symbol="o", pxMode=True, symbolBrush=brushes,
                     symbolPen=pg.mkPen(20, 20, 20, 220, width=1.2))

    def move_handle(self, index: int, x: float, y: float) -> None:
        """Move one handle (a drag in progress): it is shown as edited at once."""
        self._pos[index] = (x, y)
        self._edited[index] = True
        self._redraw()

    @property
    def points(self) -> np.ndarray:
        """The handle positions (view coordinates = working-image pixels)."""
        return self._pos.copy()

    @property
    def hovered(self) -> int:
        """Index of the handle under the cursor, -1 for none."""
        return self._hover

    def nearest(self, pos: QPointF) -> int | None:
        """Index of the handle within :data:`HIT_RADIUS_PX` screen pixels of ``pos``, if any."""
        if len(self._pos) == 0 or not self.interactive:
            return None
        px = self.pixelSize()
        sx, sy = (px[0] or 1.0), (px[1] or 1.0)
        d = np.hypot((self._pos[:, 0] - pos.x()) / sx, (self._pos[:, 1] - pos.y()) / sy)
        i = int(np.argmin(d))
        return i if d[i] <= HIT_RADIUS_PX else None

    def _set_hover(self, index: int) -> None:
        if index != self._hover:
            self._hover = index
            self.hoverChanged.emit(index)

    def hoverEvent(self, ev) -> None:  # noqa: N802 -- pyqtgraph's name
        if self._drag_index is not None:
            return
        if ev.isExit():
            self._set_hover(-1)
            self.unsetCursor()
            return
        i = self.nearest(ev.pos())
        if i is not None:
            ev.acceptDrags(Qt.MouseButton.LeftButton)
            ev.acceptClicks(Qt.MouseButton.LeftButton)
            self.setCursor(QCursor(Qt.CursorShape.OpenHandCursor))
        else:
            self.unsetCursor()
        self._set_hover(-1 if i is None else i)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        i = self.nearest(ev.pos()) if ev.button() == Qt.MouseButton.LeftButton else None
        if i is None:
            ev.ignore()
            return
        ev.accept()
        if ev.double():
            self.doubleClicked.emit(i)

    def mouseDragEvent(self, ev) -> None:  # noqa: N802
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            i = self.nearest(ev.buttonDownPos())
            if i is None:
                ev.ignore()
                return
            self._drag_index = i
            self._drag_offset = QPointF(*self._pos[i]) - ev.buttonDownPos()
            self.setCursor(QCursor(Qt.CursorShape.ClosedHandCursor))
            self.dragStarted.emit(i)
        elif self._drag_index is None:
            ev.ignore()
            return
        i = self._drag_index
        p = ev.pos() + self._drag_offset
        self.move_handle(i, float(p.x()), float(p.y()))
        self.dragMoved.emit(i, float(p.x()), float(p.y()))
        ev.accept()
        if ev.isFinish():
            self._drag_index = None
            self.setCursor(QCursor(Qt.CursorShape.OpenHandCursor))
            self.dragFinished.emit(i)


class LandmarkEditor(QWidget):
    """The photo view with editable landmarks; emits edits in photo pixels."""

    dragStarted = Signal(int)
    pointDragged = Signal(int, float, float)     # index, photo x, photo y
    dragFinished = Signal(int)
    hoverChanged = Signal(int)
    pointResetRequested = Signal(int)            # double-click: back to the detected position
    nudgeRequested = Signal(int, float, float)   # arrow keys on the hovered point: dx, dy (photo px)
    strokeStarted = Signal(float, float)         # a paint stroke starts at (x, y) crop px
    strokeMoved = Signal(float, float)           # ... goes on to (x, y) crop px
    strokeFinished = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scale = 1.0
        self.tool = ""                          # "" (landmarks) | "brush" | "eraser"
        self.brush_radius = 6.0                 # crop pixels
        self._to_crop: np.ndarray | None = None  # 2x3 working px -> crop px (painting)
        self._stroking = False
        self._detected: np.ndarray | None = None
        self._image_size: tuple[int, int] | None = None
        self.view = pg.GraphicsView(self, background=theme.VIEW_BG)
        self.view.setAcceptDrops(False)
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.02)
        self.view.setCentralItem(self.vb)
        self.photo_item = PhotoItem(self)
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(5)
        self.overlay_item.setOpacity(0.5)
        self.overlay_item.hide()
        self.paint_item = pg.ImageItem(axisOrder="row-major")      # the painted occluder
        self.paint_item.setZValue(6)
        self.paint_item.setOpacity(0.6)
        self.paint_item.hide()
        self.brush_cursor = QGraphicsEllipseItem(-1.0, -1.0, 2.0, 2.0)
        pen = QPen(QColor(255, 255, 255, 230))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self.brush_cursor.setPen(pen)
        self.brush_cursor.setZValue(40)
        self.brush_cursor.hide()
        self.ghost_lines = pg.PlotCurveItem(pen=pg.mkPen(255, 255, 255, 150, width=1, style=Qt.PenStyle.DashLine),
                                            connect="pairs")
        self.ghost_lines.setZValue(15)
        self.ghosts = pg.ScatterPlotItem(size=6, symbol="o", pen=pg.mkPen(255, 255, 255, 170),
                                         brush=pg.mkBrush(0, 0, 0, 0), pxMode=True)
        self.ghosts.setZValue(16)
        self.handles = LandmarkHandles()
        self.hover_marker = pg.ScatterPlotItem(size=17, symbol="o", pen=pg.mkPen(theme.HOVER, width=2),
                                               brush=pg.mkBrush(0, 0, 0, 0), pxMode=True)
        self.hover_marker.setZValue(25)
        self.hover_label = pg.TextItem("", color="w", fill=pg.mkBrush(20, 22, 25, 215), anchor=(-0.15, 1.15))
        self.hover_label.setZValue(30)
        self.hover_label.hide()
        for item in (self.photo_item, self.overlay_item, self.paint_item, self.ghost_lines, self.ghosts, self.handles,
                     self.hover_marker, self.hover_label, self.brush_cursor):
            self.vb.addItem(item)
        self.placeholder = pg.TextItem("Drop a photo here, or File \u25b8 Open (Ctrl+O)", color=theme.TEXT_DIM,
                                       anchor=(0.5, 0.5))
        self.vb.addItem(self.placeholder)
        self.vb.setRange(QRectF(-100, -100, 200, 200))
        self.placeholder.setPos(0, 0)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.handles.dragStarted.connect(self.dragStarted)
        self.handles.dragMoved.connect(self._on_drag_moved)
        self.handles.dragFinished.connect(self.dragFinished)
        self.handles.hoverChanged.connect(self._on_hover)
        self.handles.doubleClicked.connect(self.pointResetRequested)
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.view.installEventFilter(self)

    # -- content -----------------------------------------------------------------------------
    def clear(self) -> None:
        self.photo_item.clear()
        self.overlay_item.hide()
        self.paint_item.hide()
        self._to_crop = None
        self.handles.set_points(np.zeros((0, 2)))
        self.ghosts.setData([])
        self.ghost_lines.setData([], [])
        self._detected = None
        self._image_size = None
        self._on_hover(-1)
        self.placeholder.setText("Loading\u2026")
        self.placeholder.show()

    def set_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.setVisible(bool(text) and self._image_size is None)

    def set_photo(self, rgb: np.ndarray, scale: float) -> None:
        """Show the working image ``rgb`` (photo downscaled by ``scale``) and fit it."""
        self._scale = float(scale)
        h, w = rgb.shape[:2]
        self.photo_item.setImage(rgb, autoLevels=False)
        self.photo_item.setRect(QRectF(-0.5, -0.5, w, h))
        self._image_size = (w, h)
        self.placeholder.hide()
        self.fit()

    def fit(self) -> None:
        """Zoom to show the whole photo."""
        if self._image_size is not None:
            w, h = self._image_size
            self.vb.setRange(QRectF(-0.5, -0.5, w, h), padding=0.01)

    def zoom_to_points(self, photo_points: np.ndarray | None = None, margin: float = 0.45) -> None:
        """Zoom to the landmarks (default: those shown) with ``margin`` of their extent around."""
        pts = self.handles.points if photo_points is None else np.asarray(photo_points) * self._scale
        if len(pts) == 0:
            self.fit()
            return
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        size = float(max(hi[0] - lo[0], hi[1] - lo[1], 8.0))
        c = (lo + hi) / 2
        half = size * (0.5 + margin)
        self.vb.setRange(QRectF(c[0] - half, c[1] - half, 2 * half, 2 * half), padding=0.0)

    def set_points(self, photo_points: np.ndarray | None, detected_photo: np.ndarray | None = None) -> None:
        """Show the 68 points (photo px); ``detected_photo`` marks which ones were moved."""
        if photo_points is None:
            self.handles.set_points(np.zeros((0, 2)))
            self.ghosts.setData([])
            self.ghost_lines.setData([], [])
            return
        pts = np.asarray(photo_points, dtype=np.float64) * self._scale
        edited = np.zeros(len(pts), bool)
        if detected_photo is not None:
            det = np.asarray(detected_photo, dtype=np.float64) * self._scale
            edited = np.hypot(*(np.asarray(photo_points) - np.asarray(detected_photo)).T) > 0.05
            moved = np.flatnonzero(edited)
            self.ghosts.setData(pos=det[moved]) if len(moved) else self.ghosts.setData([])
            if len(moved):
                xy = np.empty((2 * len(moved), 2))
                xy[0::2], xy[1::2] = det[moved], pts[moved]
                self.ghost_lines.setData(xy[:, 0], xy[:, 1])
            else:
                self.ghost_lines.setData([], [])
        self.handles.set_points(pts, edited)
        if self.handles.hovered >= 0:
            self._on_hover(self.handles.hovered)

    def set_overlay(self, rgba: np.ndarray | None, from_crop: np.ndarray | None = None) -> None:
        """Overlay an RGBA map given in crop pixels (``from_crop``: crop px -> working px)."""
        if rgba is None:
            self.overlay_item.hide()
            return
        self.overlay_item.setImage(rgba, autoLevels=False)
        self.overlay_item.setTransform(_crop_transform(from_crop))
        self.overlay_item.show()

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay_item.setOpacity(float(opacity))

    # -- painting the occluder -----------------------------------------------------------------
    def set_paint_frame(self, to_crop: np.ndarray | None) -> None:
        """The 2x3 transform working px -> crop px of the crop being painted (None: no crop yet)."""
        self._to_crop = None if to_crop is None else np.asarray(to_crop, dtype=np.float64)

    def set_paint_overlay(self, rgba: np.ndarray | None, from_crop: np.ndarray | None = None) -> None:
        """Show the painted occluder (RGBA, crop px; ``from_crop``: crop px -> working px)."""
        if rgba is None:
            self.paint_item.hide()
            return
        self.paint_item.setImage(rgba, autoLevels=False)
        self.paint_item.setTransform(_crop_transform(from_crop))
        self.paint_item.show()

    def set_tool(self, tool: str) -> None:
        """"brush" or "eraser" paint the occluder with left drags; "" edits the landmarks."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        self.handles.interactive = not tool
        if tool:
            self.handles._set_hover(-1)
            self.view.viewport().setCursor(QCursor(Qt.CursorShape.CrossCursor))
        else:
            self.brush_cursor.hide()
            self.view.viewport().unsetCursor()

    def set_brush_radius(self, radius_crop_px: float) -> None:
        self.brush_radius = float(radius_crop_px)
        if self.brush_cursor.isVisible():
            r = self.brush_cursor.rect()
            self.move_brush_cursor(QPointF(r.center()))

    def working_to_crop(self, p: QPointF) -> tuple[float, float]:
        a = self._to_crop
        return (float(a[0, 0] * p.x() + a[0, 1] * p.y() + a[0, 2]), float(a[1, 0] * p.x() + a[1, 1] * p.y() + a[1, 2]))

    def move_brush_cursor(self, p: QPointF) -> None:
        """Centre the brush circle on view point ``p`` (its radius: the brush's, in crop px)."""
        if self._to_crop is None or not self.tool:
            self.brush_cursor.hide()
            return
        r = self.brush_radius / float(np.sqrt(abs(np.linalg.det(self._to_crop[:, :2]))))
        self.brush_cursor.setRect(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
        self.brush_cursor.show()

    def stroke(self, phase: str, p: QPointF) -> None:
        """A stroke event at view point ``p``: "start", "move" or "finish" (crop px go out)."""
        if self._to_crop is None:
            return
        if phase == "start":
            self._stroking = True
            self.strokeStarted.emit(*self.working_to_crop(p))
        elif phase == "move" and self._stroking:
            self.strokeMoved.emit(*self.working_to_crop(p))
        elif phase == "finish" and self._stroking:
            self._stroking = False
            self.strokeFinished.emit()

    def crop_to_widget(self, xy) -> QPointF:
        """Position of crop pixel ``xy`` in ``self.view.viewport()`` coordinates (tests)."""
        a = np.vstack([self._to_crop, [0.0, 0.0, 1.0]])
        w = np.linalg.inv(a) @ np.array([float(xy[0]), float(xy[1]), 1.0])
        return self.photo_to_widget((w[0] / self._scale, w[1] / self._scale))

    # -- coordinates (also used by tests and the self-test) ------------------------------------
    def photo_to_view(self, xy) -> QPointF:
        return QPointF(float(xy[0]) * self._scale, float(xy[1]) * self._scale)

    def photo_to_widget(self, xy) -> QPointF:
        """Position of photo pixel ``xy`` in ``self.view.viewport()`` coordinates."""
        scene = self.vb.mapViewToScene(self.photo_to_view(xy))
        return QPointF(self.view.mapFromScene(scene))

    # -- events ------------------------------------------------------------------------------
    NUDGE_KEYS = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 -- Qt's name
        """Arrow keys nudge the hovered point by half a photo pixel (Shift: 5 px)."""
        if obj is self.view and ev.type() == QEvent.Type.KeyPress and ev.key() in self.NUDGE_KEYS:
            i = self.handles.hovered
            if i >= 0:
                step = 5.0 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 0.5
                dx, dy = self.NUDGE_KEYS[ev.key()]
                self.nudgeRequested.emit(i, dx * step, dy * step)
                return True
        return super().eventFilter(obj, ev)

    @property
    def has_points(self) -> bool:
        return len(self.handles.points) > 0

    def _on_drag_moved(self, index: int, x: float, y: float) -> None:
        self._on_hover(index)
        self.pointDragged.emit(index, x / self._scale, y / self._scale)

    def _on_hover(self, index: int) -> None:
        pts = self.handles.points
        if index < 0 or index >= len(pts):
            self.hover_marker.setData([])
            self.hover_label.hide()
            self.hoverChanged.emit(-1)
            return
        x, y = pts[index]
        self.hover_marker.setData(pos=[(x, y)])
        self.hover_label.setText(f"{index}  {landmark_name(index)}  ({x / self._scale:.1f}, {y / self._scale:.1f})")
        self.hover_label.setPos(x, y)
        self.hover_label.show()
        self.hoverChanged.emit(index)

    def hovered_point(self) -> int:
        return self.handles.hovered
