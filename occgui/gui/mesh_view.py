"""The 3D viewport: a pyvistaqt ``QtInteractor`` showing the textured face mesh.

Left-drag rotates, the wheel zooms, middle-drag pans (VTK's trackball camera). Header
buttons switch between *Texture*, *Shaded* and *Wireframe* and reset the view to face the mesh
(camera on +Z looking down -Z, Y up: the photo's own viewpoint). The mesh and its texture are
built in the worker thread (``view_data.MeshDisplay``); here they are only handed to VTK, so
the GUI thread stays responsive.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QButtonGroup, QToolButton, QVBoxLayout, QWidget

from . import theme
from .pane import Pane

MODES = ("texture", "shaded", "wireframe")
SKIN = "#d8b49c"
WIRE = "#8fd3ff"


class MeshView(Pane):
    """Pane with the 3D viewport and its display toggles."""

    def __init__(self, parent=None):
        super().__init__("3D face", None, "", parent)
        import pyvista as pv
        from pyvistaqt import QtInteractor

        # The interactor is a QOpenGLWidget. Inside an ordinary widget tree it would make Qt
        # composite the *whole* window through OpenGL on every repaint (30-60 ms per status-bar
        # update with software GL). A native holder window confines that composition to the 3D
        # view; the rest of the window keeps cheap raster repaints.
        self.gl_holder = QWidget(self)
        self.gl_holder.setAttribute(Qt.WidgetAttribute.WA_NativeWindow, True)
        self.gl_holder.setAttribute(Qt.WidgetAttribute.WA_DontCreateNativeAncestors, True)
        holder_layout = QVBoxLayout(self.gl_holder)
        holder_layout.setContentsMargins(0, 0, 0, 0)
        # No MSAA/FXAA: on software GL (llvmpipe) they triple the cost of every frame.
        self.plotter = QtInteractor(self.gl_holder, auto_update=False, multi_samples=0)
        self.plotter.setAcceptDrops(False)
        self.plotter.set_background(theme.VIEW_BG)
        # One light that follows the camera: half the per-frame cost of the default five-light kit
        # in software GL, and a face lit from the viewer reads well from every angle.
        self.plotter.renderer.remove_all_lights()
        self.plotter.add_light(pv.Light(light_type="headlight", intensity=1.0))
        holder_layout.addWidget(self.plotter)
        self.set_body(self.gl_holder)
        self._actor = None
        self._display = None
        self._texture = None
        self._mode = "texture"
        self._prewarmed = False
        self._placeholder = self.plotter.add_text("3D face appears here", position="upper_left", font_size=10,
                                                  color=theme.TEXT_DIM, name="placeholder")
        self.mode_group = QButtonGroup(self)
        self.mode_group.setExclusive(True)
        self.mode_buttons: dict[str, QToolButton] = {}
        for mode in MODES:
            b = QToolButton(self)
            b.setText(mode.capitalize())
            b.setCheckable(True)
            b.setChecked(mode == self._mode)
            b.setToolTip({"texture": "Textured mesh", "shaded": "Shaded geometry, no texture",
                          "wireframe": "Triangle wireframe"}[mode])
            b.clicked.connect(lambda _=False, m=mode: self.set_mode(m))
            self.mode_group.addButton(b)
            self.mode_buttons[mode] = b
            self.add_tool(b)
        self.reset_button = QToolButton(self)
        self.reset_button.setText("Reset view")
        self.reset_button.setToolTip("Face the mesh from the camera of the photo")
        self.reset_button.clicked.connect(self.reset_view)
        self.add_tool(self.reset_button)

    # -- content -----------------------------------------------------------------------------
    def prewarm(self) -> None:
        """Create the face actor now, on an invisible one-triangle mesh with normals, texture
        coordinates and a texture, and render once: the shaders compile and pyvista's actor set-up
        happen at start-up instead of when the first mesh arrives during a run."""
        if self._prewarmed:
            return
        import pyvista as pv

        self._prewarmed = True
        tri = pv.PolyData.from_regular_faces(np.zeros((3, 3)), np.array([[0, 1, 2]]))
        tri.active_texture_coordinates = np.zeros((3, 2), dtype=np.float32)
        tri = tri.compute_normals(point_normals=True, cell_normals=False)
        self._actor = self.plotter.add_mesh(tri, name="face", smooth_shading=False, scalars=None,
                                            show_scalar_bar=False, reset_camera=False, render=False)
        self._actor.mapper.scalar_visibility = False
        self._actor.texture = pv.Texture(np.full((4, 4, 3), 128, dtype=np.uint8))
        self.plotter.render()                       # the textured shader variant
        self._actor.texture = None
        self.plotter.render()                       # the untextured one (a new photo's first mesh)
        self._actor.SetVisibility(False)

    def clear(self) -> None:
        if self._actor is not None:
            self._actor.SetVisibility(False)
        self._display, self._texture = None, None
        self._placeholder.SetVisibility(True)
        self.set_subtitle("")
        self.set_stale(False)
        self.schedule_render()

    def set_display(self, display, *, reset_camera: bool | None = None) -> None:
        """Show a :class:`~occgui.gui.view_data.MeshDisplay`. A display without a texture keeps
        the previous texture while the topology is unchanged (no flicker during re-runs)."""
        first = self._display is None
        prev = self._display
        if display.texture is not None:
            self._texture = display.texture
        elif prev is not None and prev.n_vertices != display.n_vertices:
            self._texture = None
        self._display = display
        if self._actor is None:
            self._actor = self.plotter.add_mesh(display.polydata, name="face", smooth_shading=False,
                                                scalars=None, show_scalar_bar=False, reset_camera=False,
                                                render=False)
            self._actor.mapper.scalar_visibility = False
        else:
            self._actor.mapper.dataset = display.polydata
        self._actor.SetVisibility(True)
        self._placeholder.SetVisibility(False)
        self.set_subtitle(f"{display.n_vertices:,} vertices \u00b7 {display.n_faces:,} triangles")
        self._apply_mode(render=False)
        if reset_camera or (reset_camera is None and first):
            self.reset_view(render=False)
        self.schedule_render()

    @property
    def has_mesh(self) -> bool:
        return self._display is not None

    @property
    def has_texture(self) -> bool:
        return self._texture is not None

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        """``texture`` | ``shaded`` | ``wireframe``."""
        if mode not in MODES:
            raise ValueError(mode)
        self._mode = mode
        self.mode_buttons[mode].setChecked(True)
        self._apply_mode()

    def _apply_mode(self, render: bool = True) -> None:
        if self._actor is None or self._display is None:
            return
        prop = self._actor.prop
        textured = self._mode == "texture" and self._texture is not None
        self._actor.texture = self._texture if textured else None
        prop.style = "wireframe" if self._mode == "wireframe" else "surface"
        prop.color = "white" if textured else (WIRE if self._mode == "wireframe" else SKIN)
        prop.line_width = 1.0
        prop.ambient = 0.45 if textured else 0.2
        prop.diffuse = 0.65 if textured else 0.8
        prop.specular = 0.05 if textured else 0.3
        prop.specular_power = 20.0
        prop.interpolation = "flat" if self._mode == "wireframe" else "gouraud"
        if render:
            self.schedule_render()

    def reset_view(self, render: bool = True) -> None:
        """Camera on +Z looking at -Z with Y up, framing the mesh."""
        if self._display is None:
            return
        self.plotter.view_xy(render=False)
        self.plotter.reset_camera(render=False)
        self.plotter.camera.zoom(1.15)
        if render:
            self.schedule_render()

    def schedule_render(self) -> None:
        """Repaint at the next paint event (one VTK render, however many changes came first).
        An explicit ``plotter.render()`` plus the widget's own paint would render twice."""
        self.plotter.update()

    def showEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        super().showEvent(event)
        if not self._prewarmed:
            QTimer.singleShot(0, self.prewarm)

    # -- checks --------------------------------------------------------------------------------
    def grab_image(self) -> np.ndarray:
        """The rendered viewport as an HxWx3 uint8 array."""
        self.plotter.render()
        return np.asarray(self.plotter.screenshot(return_img=True))

    def rendered_variance(self) -> float:
        """Pixel variance of the rendered viewport: ~0 when blank (background only)."""
        img = self.grab_image().astype(np.float64)
        return float(img.var()) if img.size else 0.0

    def shutdown(self) -> None:
        """Release the VTK render window (call once, when the window closes)."""
        self.plotter.close()
