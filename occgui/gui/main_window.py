"""The occgui main window: photo + landmarks, the three parsing maps, I_out and the 3D face.

Layout (1600x1000 by default)::

    [stage chips ....................................... Re-run  Export]
    [message line (only when there is something to say)               ]
    +-------------------------------------+---------------------------+
    | Photo + landmarks (editable)        | 3D face (pyvista)         |
    +-------------------------------------+---------------------------+
    | M_alpha | M_beta | M_gamma | labels | I_out (compare)           |
    +-------------------------------------+---------------------------+
    [stage name .......................... progress  Cancel  Device   ]

The window is a view: every action goes through :class:`~occgui.gui.session.Session`, which
owns the document, the undo stack and the pipeline worker thread.

No correction is lost without asking: opening another photo (File > Open, a drop, Open Recent),
picking another face of a group photo and closing the window first ask, when the landmarks or
the painted occluder have unsaved changes, whether to save them (corrections.json), discard
them or cancel (:meth:`MainWindow.confirm_discard`). A file that turns out not to load leaves
the current photo and its corrections untouched and never enters Open Recent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..corrections import FILE_NAME as CORRECTIONS_FILE
from ..imageio import IMAGE_SUFFIXES
from ..pipeline.runner import STAGES, PipelineConfig
from ..pipeline.stages import STAGE_TABLE
from ..results import FaceCrop, FaceMesh, Landmarks, LoadedImage, Synthesis, Texture
from . import document as D
from .deoccluded_view import DeoccludedView
from .geometry_choice import install as install_geometry_choice
from .landmark_editor import LandmarkEditor
from .maps_panel import MAPS, STAGE_TO_KIND, MapsPanel
from .mesh_view import MeshView
from .message_banner import MessageBanner
from .pane import Pane
from .session import Session
from .settings import AppSettings
from .settings_dialog import SettingsDialog
from .stage_strip import StageStrip
from .status_panel import RunStatus
from .view_data import occluder_overlay

DEFAULT_SIZE = QSize(1600, 1000)
IMAGE_FILTER = "Images ({});;All files (*)".format(" ".join(f"*{s}" for s in IMAGE_SUFFIXES))
CORRECTIONS_FILTER = "Corrections (*.json);;All files (*)"
#: Brush sizes (radius, crop pixels of the 256-pixel face crop).
BRUSH_RADIUS_RANGE = (1, 60)
DEFAULT_BRUSH_RADIUS = 8


class MainWindow(QMainWindow):
    """The application window; ``open_photo``, ``rerun`` and ``export_to`` are its scriptable API."""

    def __init__(self, config: PipelineConfig | None = None, settings: AppSettings | None = None,
                 device: str | None = None, compute: str | None = None, warm_up: bool = True, parent=None):
        super().__init__(parent)
        self.settings = settings or AppSettings()
        self.session = Session(config, self, compute)
        self.session.auto_rerun = self.settings.auto_rerun()
        self.session.hand_evidence = self.settings.hand_evidence()
        self.session.forehead_growth = self.settings.forehead_growth()
        self.setAcceptDrops(True)
        self.setWindowTitle("occgui")
        self._closed = False
        self.unsaved_box: QMessageBox | None = None      # the save/discard/cancel question while it is open
        self._export_folder: Path | None = None           # the last export's per-photo folder
        self._build_views()
        self._build_actions()
        self._build_menus()
        self._connect()
        self._init_synthesis_switch(config)
        self.geometry_choice = install_geometry_choice(self)
        self._restore_layout()
        self.session.set_device(device or self.settings.device())
        if warm_up:
            self.session.warm_up()

    # -- construction --------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.editor = LandmarkEditor()
        self.photo_pane = Pane("Photo  \u00b7  landmarks", self.editor,
                               "drag a point to correct it \u00b7 wheel zooms \u00b7 drag elsewhere pans")
        self.maps = MapsPanel()
        self.deoccluded = DeoccludedView()
        self.mesh_view = MeshView()
        self.mesh_view.set_mode(self.settings.mesh_mode())
        self.stage_strip = StageStrip()
        self.banner = MessageBanner()
        self.face_combo = QComboBox()
        self.face_combo.setToolTip("Several faces were found: pick the one to reconstruct (largest first)")
        self.face_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.face_combo.hide()
        self.brush_size = QSpinBox()
        self.brush_size.setRange(*BRUSH_RADIUS_RANGE)
        self.brush_size.setValue(DEFAULT_BRUSH_RADIUS)
        self.brush_size.setSuffix(" px")
        self.brush_size.setPrefix("size ")
        self.brush_size.setToolTip("Brush and eraser radius, in pixels of the face crop ([ and ] change it)")
        self.editor.set_brush_radius(DEFAULT_BRUSH_RADIUS)

        self.top_split = QSplitter(Qt.Orientation.Horizontal)
        self.top_split.addWidget(self.photo_pane)
        self.top_split.addWidget(self.mesh_view)
        self.bottom_split = QSplitter(Qt.Orientation.Horizontal)
        self.bottom_split.addWidget(self.maps)
        self.bottom_split.addWidget(self.deoccluded)
        for sp in (self.top_split, self.bottom_split):
            sp.setChildrenCollapsible(False)
            sp.setHandleWidth(6)
        # The two rows share their columns: each column's narrowest width is that of its wider
        # pane, so a restored or resized layout is clamped the same way in both rows.
        for a, b in ((self.photo_pane, self.maps), (self.mesh_view, self.deoccluded)):
            w = max(a.minimumSizeHint().width(), b.minimumSizeHint().width(), a.minimumWidth(), b.minimumWidth())
            a.setMinimumWidth(w)
            b.setMinimumWidth(w)
        self.top_split.splitterMoved.connect(lambda *_: self._sync_columns(self.top_split, self.bottom_split))
        self.bottom_split.splitterMoved.connect(lambda *_: self._sync_columns(self.bottom_split, self.top_split))
        self.main_split = QSplitter(Qt.Orientation.Vertical)
        self.main_split.addWidget(self.top_split)
        self.main_split.addWidget(self.bottom_split)
        self.main_split.setChildrenCollapsible(False)
        self.main_split.setHandleWidth(6)

        self.rerun_button = QPushButton("Re-run")
        self.rerun_button.setToolTip("Recompute what the landmark edits changed (Ctrl+R)")
        self.export_button = QPushButton("Export\u2026")
        self.export_button.setToolTip("Write mesh, texture, maps, I_out and landmarks to a folder (Ctrl+E)")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.stage_strip, 1)
        top.addWidget(self.face_combo)
        top.addWidget(self.rerun_button)
        top.addWidget(self.export_button)

        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(8, 6, 8, 4)
        lay.setSpacing(6)
        lay.addLayout(top)
        lay.addWidget(self.banner)
        lay.addWidget(self.main_split, 1)
        self.setCentralWidget(central)
        self.status = RunStatus(self.statusBar())

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        s = self.session
        self.open_action = self._action("&Open Photo\u2026", self.choose_photo, QKeySequence.StandardKey.Open,
                                        "Open a photo and reconstruct its face")
        self.save_corrections_action = self._action(
            "&Save Corrections\u2026", self.choose_save_corrections, "Ctrl+S",
            "Save the corrected landmarks and the painted occluder in one file (corrections.json)")
        self.load_corrections_action = self._action(
            "&Load Corrections\u2026", self.choose_load_corrections, "Ctrl+L",
            "Replace the landmarks and the painted occluder with those of a corrections file")
        self.save_landmarks_action = self._action("Save Landmarks Only\u2026", self.choose_save_landmarks, None,
                                                  "Save the 68 landmarks (photo pixels) as landmarks.json")
        self.load_landmarks_action = self._action("Load Landmarks Only\u2026", self.choose_load_landmarks, None,
                                                  "Replace the landmarks with those of a landmarks.json")
        self.export_action = self._action("&Export\u2026", self.choose_export, "Ctrl+E",
                                          "Export mesh (OBJ/MTL/PNG, PLY, GLB), maps, I_out and landmarks")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.undo_action = s.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.redo_action = s.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.addAction(self.undo_action)
        self.addAction(self.redo_action)
        self.reset_landmarks_action = self._action("Reset Landmarks to &Detected", s.reset_landmarks,
                                                   "Ctrl+Shift+R", "Undo every landmark correction in one step")
        self.clear_paint_action = self._action("&Clear Painted Occluder", s.clear_paint, None,
                                               "Drop every brush and eraser stroke (undoable)")
        self.tool_group = QActionGroup(self)
        self.tool_group.setExclusive(True)
        self.tool_actions = {}
        for tool, text, key, tip in (
                ("", "&Points", "P", "Drag the landmarks (P)"),
                ("brush", "&Brush", "B", "Paint the occluder on the photo where the parser missed it (B)"),
                ("eraser", "&Eraser", "E", "Erase occluder pixels the parser marked wrongly (E)")):
            a = self._action(text, lambda _=False, t=tool: self.set_tool(t), key, tip)
            a.setCheckable(True)
            self.tool_group.addAction(a)
            self.tool_actions[tool] = a
        self.tool_actions[""].setChecked(True)
        self.smaller_brush_action = self._action("Smaller Brush", lambda: self.brush_size.stepBy(-1), "[")
        self.larger_brush_action = self._action("Larger Brush", lambda: self.brush_size.stepBy(1), "]")
        self.preferences_action = self._action("&Preferences\u2026", self.show_preferences, "Ctrl+,")
        self.rerun_action = self._action("&Re-run", self.rerun, "Ctrl+R",
                                         "Recompute the stages downstream of the landmarks")
        self.cancel_action = self._action("&Cancel Run", s.cancel, "Esc")
        self.cancel_action.setEnabled(False)
        self.auto_rerun_action = self._action("Re-run &Automatically After Edits", self._toggle_auto_rerun)
        self.auto_rerun_action.setCheckable(True)
        self.auto_rerun_action.setChecked(s.auto_rerun)
        self.fit_action = self._action("&Fit Photo", self.editor.fit, "Ctrl+0")
        self.face_action = self._action("Zoom to F&ace", lambda: self.editor.zoom_to_points(), "Ctrl+1")
        self.reset_view_action = self._action("Reset &3D View", self.mesh_view.reset_view, "Ctrl+3")
        self.mode_actions = {m: self._action(f"3D: {m.capitalize()}", lambda _=False, m=m: self._set_mesh_mode(m))
                             for m in ("texture", "shaded", "wireframe")}
        self.about_action = self._action("&About occgui", self.show_about)

        for a in (self.save_landmarks_action, self.load_landmarks_action, self.export_action,
                  self.reset_landmarks_action, self.rerun_action, self.save_corrections_action,
                  self.load_corrections_action, self.clear_paint_action, self.tool_actions["brush"],
                  self.tool_actions["eraser"]):
            a.setEnabled(False)

        for action, text, tip in (
                (self.undo_action, "\u21b6 Undo", "Undo the last landmark edit (Ctrl+Z)"),
                (self.redo_action, "\u21b7 Redo", "Redo (Ctrl+Shift+Z)"),
                (self.reset_landmarks_action, "Reset", "Reset landmarks to detected (Ctrl+Shift+R)"),
                (self.face_action, "Face", "Zoom to the face (Ctrl+1)"),
                (self.fit_action, "Fit", "Show the whole photo (Ctrl+0)")):
            self.photo_pane.add_action_button(action, text, tip)
        self.tool_buttons = {}
        for tool, text in (("", "Points"), ("brush", "Brush"), ("eraser", "Eraser")):
            b = self.photo_pane.add_action_button(self.tool_actions[tool], text)
            b.setCheckable(True)
            b.setChecked(self.tool_actions[tool].isChecked())
            self.tool_actions[tool].toggled.connect(b.setChecked)
            self.tool_buttons[tool] = b
        self.photo_pane.add_tool(self.brush_size)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        f.addAction(self.open_action)
        self.recent_menu = QMenu("Open &Recent", self)
        f.addMenu(self.recent_menu)
        f.addSeparator()
        f.addAction(self.load_corrections_action)
        f.addAction(self.save_corrections_action)
        f.addAction(self.load_landmarks_action)
        f.addAction(self.save_landmarks_action)
        f.addSeparator()
        f.addAction(self.export_action)
        f.addSeparator()
        f.addAction(self.quit_action)
        e = mb.addMenu("&Edit")
        e.addAction(self.undo_action)
        e.addAction(self.redo_action)
        e.addAction(self.reset_landmarks_action)
        e.addAction(self.clear_paint_action)
        e.addSeparator()
        for a in self.tool_actions.values():
            e.addAction(a)
        e.addAction(self.smaller_brush_action)
        e.addAction(self.larger_brush_action)
        e.addSeparator()
        e.addAction(self.preferences_action)
        r = mb.addMenu("&Run")
        r.addAction(self.rerun_action)
        r.addAction(self.cancel_action)
        r.addSeparator()
        r.addAction(self.auto_rerun_action)
        v = mb.addMenu("&View")
        v.addAction(self.face_action)
        v.addAction(self.fit_action)
        v.addAction(self.reset_view_action)
        v.addSeparator()
        for a in self.mode_actions.values():
            v.addAction(a)
        h = mb.addMenu("&Help")
        h.addAction(self.about_action)
        self._refresh_recent_menu()

    # -- I_out backend switch (FISN vs classical) ----------------------------------------------
    def _init_synthesis_switch(self, config: PipelineConfig | None) -> None:
        from ..pipeline import backends as B

        chosen = (config.backends.get("synthesize") if config is not None else None)
        name = B.resolve("synthesize", chosen)
        if name == "fisn" and config is not None and config.settings.get("synthesize") is not None:
            self.session.synthesis_settings["fisn"] = config.settings["synthesize"]
        self.deoccluded.show_backend(name)
        self._update_fisn_switch()

    def set_fisn_settings(self, settings) -> None:
        """The typed settings (``FISNSettings``: which checkpoint) the I_out switch uses for FISN."""
        self.session.synthesis_settings["fisn"] = settings
        self._update_fisn_switch()

    def _update_fisn_switch(self) -> None:
        """Enable the I_out backend switch when the FISN checkpoint is there; else say which file is missing."""
        from ..synthesis.fisn_backend import checkpoint_file

        path = checkpoint_file(self.session.synthesis_settings.get("fisn"))
        self.deoccluded.set_fisn_available(
            path.is_file(), f"FISN is not available: no trained generator at {path} (it ships as "
                            "checkpoints/fisn_generator.safetensors; `occgui train fisn` trains one). "
                            "I_out uses the classical de-occlusion.")

    def _connect(self) -> None:
        s = self.session
        s.photoOpened.connect(self._on_photo_opened)
        s.photoRejected.connect(self._on_photo_rejected)
        s.alphaEditChanged.connect(self._on_alpha_edit_changed)
        s.exportFinished.connect(self._on_export_finished)
        s.undo_stack.cleanChanged.connect(lambda _clean: self._update_title())
        s.stageResult.connect(self._on_stage_result)
        s.stageStateChanged.connect(self._on_stage_state)
        s.landmarksChanged.connect(self._on_landmarks_changed)
        s.stalenessChanged.connect(self._on_staleness)
        s.progress.connect(self.status.set_progress)
        s.busyChanged.connect(self._on_busy)
        s.runFinished.connect(self._on_run_finished)
        s.message.connect(self.banner.show_message)
        s.succeeded.connect(lambda _what: self.banner.clear_problem())
        s.deviceReady.connect(lambda _dev, desc, _cuda: self.status.set_device(desc))
        self.deoccluded.backendRequested.connect(s.set_synthesis_backend)
        self.status.cancel_button.clicked.connect(s.cancel)
        self.rerun_button.clicked.connect(self.rerun)
        self.export_button.clicked.connect(self.choose_export)
        self.rerun_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.editor.dragStarted.connect(self._on_drag_started)
        self.editor.pointDragged.connect(self._on_point_dragged)
        self.editor.dragFinished.connect(lambda _i: s.end_drag())
        self.editor.pointResetRequested.connect(self._reset_point)
        self.editor.nudgeRequested.connect(self._nudge_point)
        self.editor.strokeStarted.connect(self._on_stroke_started)
        self.editor.strokeMoved.connect(lambda x, y: s.stroke_to((x, y)))
        self.editor.strokeFinished.connect(s.end_stroke)
        self.brush_size.valueChanged.connect(lambda v: self.editor.set_brush_radius(float(v)))
        self.face_combo.activated.connect(self._on_face_chosen)
        self.maps.overlayChanged.connect(self._on_overlay_changed)
        self.maps.opacityChanged.connect(self.editor.set_overlay_opacity)
        self.editor.set_overlay_opacity(self.maps.opacity)
        for b in self.mesh_view.mode_buttons.values():
            b.clicked.connect(lambda _=False: self.settings.set_mesh_mode(self.mesh_view.mode))
        self._drag_id = 0

    def _restore_layout(self) -> None:
        geom = self.settings.geometry()
        if geom is None or not self.restoreGeometry(geom):
            self.resize(DEFAULT_SIZE)
        restored = False
        for name, sp in (("main", self.main_split), ("top", self.top_split), ("bottom", self.bottom_split)):
            st = self.settings.splitter_state(name)
            if st is not None:
                restored = sp.restoreState(st) or restored
        if not restored:
            self.reset_layout()

    def reset_layout(self) -> None:
        """The default proportions: photo and 3D on top, maps and I_out below."""
        w, h = max(self.width(), 800), max(self.height(), 600)
        left = int(w * 0.6)
        self.top_split.setSizes([left, w - left])
        self.bottom_split.setSizes([left, w - left])
        self.main_split.setSizes([int(h * 0.64), int(h * 0.36)])

    def _sync_columns(self, src: QSplitter, dst: QSplitter) -> None:
        if dst.sizes() != src.sizes():
            dst.blockSignals(True)
            dst.setSizes(src.sizes())
            dst.blockSignals(False)

    # -- scriptable API ------------------------------------------------------------------------
    def open_photo(self, path, face_index: int = 0) -> bool:
        """Open ``path`` and start the pipeline (False and a message line when it is not a photo,
        or when the user keeps unsaved corrections). It enters Open Recent once it has loaded."""
        from .session import check_photo_path

        reason = check_photo_path(path)
        if reason:                         # nothing would be discarded: say why, ask nothing
            self.banner.show_message("error", reason)
            return False
        if not self.confirm_discard(f"Opening {Path(path).name}"):
            return False
        return self.session.open_photo(path, face_index)

    def select_face(self, index: int) -> bool:
        """Reconstruct face ``index`` (0 = largest) of the open photo (asks about unsaved corrections)."""
        if index == self.session.document.face_index:
            return False
        if not self.confirm_discard(f"Switching to face {index + 1}"):
            self._sync_face_combo()
            return False
        return self.session.select_face(index)

    def set_tool(self, tool: str) -> None:
        """"" (drag the landmarks), "brush" or "eraser" (paint the occluder)."""
        if tool and not self.session.document.can_paint:
            tool = ""
        self.editor.set_tool(tool)
        self.tool_actions[tool].setChecked(True)
        self._refresh_paint_overlay()
        self._update_photo_subtitle()

    def confirm_discard(self, what: str) -> bool:
        """True when the corrections on screen may be dropped: none are unsaved, or the user saved
        them or chose to discard them; False when the user cancels."""
        s = self.session
        if not s.unsaved_corrections:
            return True
        name = s.document.photo.name if s.document.photo else "this photo"
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved corrections",
                          f"The corrections of {name} (landmarks, painted occluder) are not saved.", parent=self)
        box.setInformativeText(f"{what} discards them. Save them to a corrections file first?")
        box.setStandardButtons(QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        self.unsaved_box = box
        try:
            answer = box.exec()
        finally:
            self.unsaved_box = None
        if answer == QMessageBox.StandardButton.Save:
            path = self.corrections_path_to_save()
            return bool(path) and s.save_corrections(path)
        return answer == QMessageBox.StandardButton.Discard

    def rerun(self) -> bool:
        return self.session.rerun()

    def export_to(self, folder) -> bool:
        """Export into ``folder`` (no dialog); the files land in ``folder/<photo stem>/``."""
        ok = self.session.export_to(folder)
        if ok:
            self.settings.set_last_folder(folder)
        return ok

    # -- dialogs -------------------------------------------------------------------------------
    def choose_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", self.settings.last_folder(), IMAGE_FILTER)
        if path:
            self.open_photo(path)

    def choose_export(self) -> None:
        if not self.session.document.has_photo:
            self.banner.show_message("warning", "Nothing to export: open a photo first.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.settings.last_folder())
        if folder:
            self.export_to(folder)

    def default_corrections_path(self) -> Path:
        """Where corrections are saved by default: in the photo's last export folder, else next to
        the photo as ``<stem>.corrections.json``."""
        doc = self.session.document
        if self._export_folder is not None and doc.photo is not None and self._export_folder.name == doc.photo.stem:
            return self._export_folder / CORRECTIONS_FILE
        if doc.photo is not None:
            return doc.photo.parent / f"{doc.photo.stem}.{CORRECTIONS_FILE}"
        return Path(self.settings.last_folder()) / CORRECTIONS_FILE

    def corrections_path_to_save(self) -> str:
        """Ask where to save the corrections ('' when the user cancels)."""
        path, _ = QFileDialog.getSaveFileName(self, "Save corrections", str(self.default_corrections_path()),
                                              CORRECTIONS_FILTER)
        return path

    def choose_save_corrections(self) -> None:
        path = self.corrections_path_to_save()
        if path and self.session.save_corrections(path):
            self.settings.set_last_folder(Path(path).parent)

    def choose_load_corrections(self) -> None:
        start = self.default_corrections_path()
        path, _ = QFileDialog.getOpenFileName(self, "Load corrections", str(start if start.exists() else start.parent),
                                              CORRECTIONS_FILTER)
        if path and self.session.load_corrections(path):
            self.settings.set_last_folder(Path(path).parent)

    def choose_save_landmarks(self) -> None:
        doc = self.session.document
        stem = doc.photo.stem if doc.photo else "landmarks"
        start = str(Path(self.settings.last_folder()) / f"{stem}_landmarks.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save landmarks", start, "Landmarks JSON (*.json)")
        if path:
            if self.session.save_landmarks(path):
                self.settings.set_last_folder(Path(path).parent)

    def choose_load_landmarks(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load landmarks", self.settings.last_folder(),
                                              "Landmarks JSON (*.json);;All files (*)")
        if path:
            if self.session.load_landmarks(path):
                self.settings.set_last_folder(Path(path).parent)

    def show_preferences(self) -> None:
        s = self.session
        dlg = SettingsDialog(self.settings.device(), s.auto_rerun, s.cuda_available, s.device_description, self,
                             hand_evidence=s.hand_evidence, forehead_growth=s.forehead_growth)
        if dlg.exec():
            self.apply_preferences(dlg.device, dlg.auto_rerun, dlg.hand_evidence, dlg.forehead_growth)

    def apply_preferences(self, device: str, auto_rerun: bool, hand_evidence: bool | None = None,
                          forehead_growth: bool | None = None) -> None:
        if device != self.settings.device():
            self.settings.set_device(device)
            self.session.set_device(device)
            self.status.set_device("\u2026 (applies to the next run)")
        self._set_auto_rerun(auto_rerun)
        if hand_evidence is not None:
            self.settings.set_hand_evidence(bool(hand_evidence))
        if forehead_growth is not None:
            self.settings.set_forehead_growth(bool(forehead_growth))
        # one re-run from M_alpha when a photo is open and either changed
        self.session.set_parse_options(hand_evidence=hand_evidence, forehead_growth=forehead_growth)

    def show_about(self) -> None:
        QMessageBox.about(self, "About occgui",
                          "<b>occgui</b> \u2014 a complete textured 3D face from one partly occluded photo.<br>"
                          "Generative face parsing map guided 3D face reconstruction: M\u03b1 (U-Net), "
                          "M\u03b2 (landmarks), M\u03b3 (Algorithm 1), I_out (de-occlusion), mesh and texture."
                          "<br><br>Drag landmarks to correct them; Ctrl+R recomputes only what they change.")

    # -- recent files ----------------------------------------------------------------------------
    def _refresh_recent_menu(self) -> None:
        m = self.recent_menu
        m.clear()
        files = self.settings.recent_files()
        for n, f in enumerate(files):
            a = m.addAction(f"&{n + 1}  {Path(f).name}" if n < 9 else Path(f).name)
            a.setToolTip(f)
            a.setStatusTip(f)
            a.triggered.connect(lambda _=False, f=f: self._open_recent(f))
        if files:
            m.addSeparator()
            m.addAction("Clear Recent", self._clear_recent)
        m.setEnabled(bool(files))

    def _open_recent(self, path: str) -> None:
        if not Path(path).exists():
            self.settings.remove_recent_file(path)
            self._refresh_recent_menu()
        self.open_photo(path)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._refresh_recent_menu()

    # -- drag and drop ---------------------------------------------------------------------------
    def dragEnterEvent(self, ev) -> None:  # noqa: N802 -- Qt's name
        md = ev.mimeData()
        if md.hasUrls() or md.hasText() or md.hasImage():
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev) -> None:  # noqa: N802
        ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:  # noqa: N802
        md = ev.mimeData()
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()] if md.hasUrls() else []
        ev.acceptProposedAction()
        if not paths:
            self.banner.show_message("error", "Dropped item is not an image file: drop a photo file (JPEG, PNG, ...).")
            return
        if len(paths) > 1:
            self.banner.show_message("info", f"{len(paths)} files dropped: opening the first one, "
                                             f"{Path(paths[0]).name}.")
        self.open_photo(paths[0])

    # -- session events --------------------------------------------------------------------------
    def _on_photo_opened(self, path: str) -> None:
        p = Path(path)
        self.settings.add_recent_file(p)
        self.settings.set_last_folder(p.parent)
        self._refresh_recent_menu()
        self.editor.clear()
        self.maps.clear()
        self.deoccluded.clear()
        self.mesh_view.clear()
        self.banner.hide()
        self.set_tool("")
        self._sync_face_combo()
        self._update_title()
        for a in (self.save_landmarks_action, self.load_landmarks_action, self.reset_landmarks_action,
                  self.save_corrections_action, self.load_corrections_action, self.clear_paint_action,
                  self.tool_actions["brush"], self.tool_actions["eraser"]):
            a.setEnabled(False)
        self.export_action.setEnabled(True)
        self.export_button.setEnabled(True)
        self.rerun_action.setEnabled(True)
        self.rerun_button.setEnabled(True)

    def _on_photo_rejected(self, path: str, message: str) -> None:
        """The file did not load: the current photo stays; a stale Open Recent entry goes."""
        if path in self.settings.recent_files():
            self.settings.remove_recent_file(path)
            self._refresh_recent_menu()

    def _on_stage_result(self, stage: str, value, display) -> None:
        """Route a stage result to its view by the result's type (``pipeline.stages.STAGE_TABLE``)."""
        if isinstance(value, LoadedImage):
            self.editor.set_photo(value.rgb, value.scale)
            w, h = value.photo_size
            self.photo_pane.set_subtitle(f"{w}\u00d7{h} px \u00b7 drag a point to correct it \u00b7 wheel zooms")
        elif isinstance(value, FaceCrop):
            self.editor.set_paint_frame(value.to_crop)
            self._sync_face_combo()
            if value.num_faces > 1:
                self.banner.show_message("info", f"{value.num_faces} faces found: reconstructing face "
                                                 f"{value.face_index + 1} "
                                                 f"({'the largest' if value.face_index == 0 else 'by size'}); "
                                                 f"pick another with the face selector next to Re-run.")
        elif stage in STAGE_TO_KIND:
            self.maps.set_map(STAGE_TO_KIND[stage], display)
        elif isinstance(value, Synthesis):
            occ = self.session.document.occluder_mask()
            self.deoccluded.set_display(display, value.backend, None if occ is None else int(occ.sum()))
        elif isinstance(value, (FaceMesh, Texture)):
            self.mesh_view.set_display(display)
        if isinstance(value, Landmarks):
            for a in (self.save_landmarks_action, self.load_landmarks_action, self.load_corrections_action):
                a.setEnabled(True)

    def _on_stage_state(self, stage: str) -> None:
        doc = self.session.document
        state = doc.states[stage]
        seconds = doc.elapsed.get(stage) if state in (D.CANCELLED, D.FAILED) else doc.seconds.get(stage)
        if stage in doc.stale_stages() and state in (D.DONE, D.CACHED):
            state = "stale"
        self.stage_strip.set_state(stage, state, seconds)

    def _on_staleness(self, stale: frozenset) -> None:
        for kind, (stage, *_rest) in MAPS.items():
            self.maps.set_stale(kind, stage in stale)
        self.deoccluded.set_stale(any(s.result is Synthesis for s in STAGE_TABLE if s.name in stale))
        self.mesh_view.set_stale(any(s.result in (FaceMesh, Texture) for s in STAGE_TABLE if s.name in stale))
        for s in STAGES:
            self._on_stage_state(s)
        name = "Primary" if stale else ""
        if self.rerun_button.objectName() != name:      # restyle only on change: it relayouts
            self.rerun_button.setObjectName(name)
            self.rerun_button.style().unpolish(self.rerun_button)
            self.rerun_button.style().polish(self.rerun_button)
        self._update_title()

    def _on_landmarks_changed(self) -> None:
        doc = self.session.document
        first = doc.landmarks is not None and not self.editor.has_points
        self.editor.set_points(doc.landmarks, doc.detected)
        if first:
            self.editor.zoom_to_points()
        self.reset_landmarks_action.setEnabled(doc.edited)
        self.save_corrections_action.setEnabled(doc.has_corrections)
        self._update_photo_subtitle()

    def _update_photo_subtitle(self) -> None:
        doc = self.session.document
        if self.editor.tool:
            verb = "paint the occluder" if self.editor.tool == "brush" else "erase occluder pixels"
            self.photo_pane.set_subtitle(f"{self.editor.tool}: drag to {verb} \u00b7 middle-drag pans \u00b7 "
                                         f"[ ] size \u00b7 P back to the points")
        elif doc.landmarks is not None and doc.detected is not None:
            n = int(np.sum(np.hypot(*(doc.landmarks - doc.detected).T) > 0.05))
            self.photo_pane.set_subtitle(f"{n} of 68 points corrected \u00b7 Ctrl+Z undoes" if n else
                                         "68 detected points \u00b7 drag one to correct it \u00b7 wheel zooms")

    def _on_alpha_edit_changed(self) -> None:
        doc = self.session.document
        can = doc.can_paint
        for t in ("brush", "eraser"):
            self.tool_actions[t].setEnabled(can)
        if not can and self.editor.tool:
            self.set_tool("")
        self.clear_paint_action.setEnabled(doc.painted)
        self.save_corrections_action.setEnabled(doc.has_corrections)
        self._refresh_paint_overlay()
        if doc.alpha is not None:
            e = doc.alpha_edit
            self.maps.panes["alpha"].set_subtitle(
                "N\u03b1 U-Net" + (" + MediaPipe hands" if self.session.hand_evidence else "")
                + (" + forehead hair" if self.session.forehead_growth else "")
                + (f" \u00b7 painted +{int(e.added.sum())} / erased {int(e.erased.sum())} px" if e is not None else ""))
        self._update_title()

    def _refresh_paint_overlay(self) -> None:
        """The occluder overlay on the photo: shown while painting or when something is painted."""
        doc = self.session.document
        if not doc.can_paint or not (self.editor.tool or doc.painted):
            self.editor.set_paint_overlay(None)
            return
        self.editor.set_paint_overlay(occluder_overlay(doc.alpha, doc.alpha_edit), doc.crop.from_crop)

    def _on_stroke_started(self, x: float, y: float) -> None:
        if self.session.begin_stroke(self.editor.tool == "eraser", float(self.brush_size.value())):
            self.session.stroke_to((x, y))

    def _sync_face_combo(self) -> None:
        """The face selector: shown with one entry per face when the photo has several."""
        crop = self.session.document.crop
        n = crop.num_faces if crop is not None else 0
        combo = self.face_combo
        combo.blockSignals(True)
        combo.clear()
        for i in range(n):
            combo.addItem(f"Face {i + 1} of {n}" + (" (largest)" if i == 0 else ""))
        if n:
            combo.setCurrentIndex(self.session.document.face_index)
        combo.blockSignals(False)
        combo.setVisible(n > 1)

    def _on_face_chosen(self, index: int) -> None:
        self.select_face(index)

    def _on_export_finished(self, folder: str) -> None:
        self._export_folder = Path(folder)

    def _on_busy(self, busy: bool) -> None:
        self.status.set_busy(busy)
        self.cancel_action.setEnabled(busy)

    def _on_run_finished(self, outcome) -> None:
        self._on_staleness(self.session.document.stale_stages())

    def _on_overlay_changed(self, kind: str) -> None:
        d = self.maps.display(kind) if kind else None
        self.editor.set_overlay(d.overlay if d is not None else None, d.from_crop if d is not None else None)

    def _on_drag_started(self, index: int) -> None:
        self._drag_id = self.session.begin_drag()

    def _on_point_dragged(self, index: int, x: float, y: float) -> None:
        self.session.move_landmark(index, (x, y), self._drag_id)

    def _reset_point(self, index: int) -> None:
        doc = self.session.document
        if doc.detected is not None:
            self.session.move_landmark(index, doc.detected[index])

    def _nudge_point(self, index: int, dx: float, dy: float) -> None:
        doc = self.session.document
        if doc.landmarks is not None:
            self.session.move_landmark(index, doc.landmarks[index] + (dx, dy))

    def _toggle_auto_rerun(self) -> None:
        self._set_auto_rerun(self.auto_rerun_action.isChecked())

    def _set_auto_rerun(self, on: bool) -> None:
        self.session.auto_rerun = bool(on)
        self.settings.set_auto_rerun(bool(on))
        self.auto_rerun_action.setChecked(bool(on))

    def _set_mesh_mode(self, mode: str) -> None:
        self.mesh_view.set_mode(mode)
        self.settings.set_mesh_mode(mode)

    def _update_title(self) -> None:
        doc = self.session.document
        if doc.photo is None:
            self.setWindowTitle("occgui")
            return
        flags = []
        if doc.edited:
            flags.append("landmarks edited")
        if doc.painted:
            flags.append("occluder painted")
        if self.session.unsaved_corrections:
            flags.append("unsaved")
        if doc.is_stale:
            flags.append("out of date")
        self.setWindowTitle(f"{doc.photo.name} \u2014 occgui" + (f"  [{', '.join(flags)}]" if flags else ""))

    # -- closing ---------------------------------------------------------------------------------
    def closeEvent(self, ev) -> None:  # noqa: N802
        if self._closed:
            super().closeEvent(ev)
            return
        if not self.confirm_discard("Closing the window"):
            ev.ignore()
            return
        self._closed = True
        self.settings.set_geometry(self.saveGeometry())
        for name, sp in (("main", self.main_split), ("top", self.top_split), ("bottom", self.bottom_split)):
            self.settings.set_splitter_state(name, sp.saveState())
        self.settings.sync()
        self.session.shutdown()
        self.mesh_view.shutdown()
        super().closeEvent(ev)

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        if self.settings.splitter_state("main") is None:
            QTimer.singleShot(0, self.reset_layout)
