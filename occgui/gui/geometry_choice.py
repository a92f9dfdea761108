"""The geometry choice of the window (issue 15, point 8): MediaPipe's mesh or the morphable-model fit.

* A combo box in the status bar picks ``mediapipe`` (the ``mediapipe-mesh`` backend) or
  ``morphable`` (the fit of §3.4-3.5, backend ``morphable``); the choice is stored in the
  preferences (``compute/geometry``) and applies from the next run -- at once when a photo is open
  (a re-run recomputes only the geometry and the texture: the rest is cached).
* With ``morphable`` the pipeline runs MediaPipe's mesh first as its *preview geometry*
  (``PipelineConfig.preview_geometry``): the 3D view shows that mesh and its texture as soon as
  they exist and replaces them when the fit finishes. The fit runs in the compute process, so the
  window never waits on it; a landmark edit or a painted occluder re-fits from the previous
  solution (the backend's warm start).
* A label beside the combo shows the fitted head pose and the fit's loss per term
  (:func:`fit_status_text`), or that the fit is running.

Only :func:`install` touches the window (status bar, session signals); the rest is plain Python.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QComboBox, QLabel

#: choice -> (geometry backend, preview backend shown while it computes, combo text)
CHOICES: dict[str, tuple[str, str | None, str]] = {
    "mediapipe": ("mediapipe-mesh", None, "3D: MediaPipe mesh"),
    "morphable": ("morphable", "mediapipe-mesh", "3D: morphable model fit"),
}
DEFAULT_CHOICE = "mediapipe"
SETTINGS_KEY = "compute/geometry"


def stored_choice(qsettings) -> str:
    v = str(qsettings.value(SETTINGS_KEY, DEFAULT_CHOICE) or DEFAULT_CHOICE)
    return v if v in CHOICES else DEFAULT_CHOICE


def choice_of_backend(backend: str | None) -> str:
    """The choice whose geometry backend is ``backend`` (the default choice for any other)."""
    return next((k for k, (b, _p, _t) in CHOICES.items() if b == backend), DEFAULT_CHOICE)


def fit_status_text(mesh, choice: str) -> str:
    """One line about the geometry on screen: the fitted pose and loss, or what is running."""
    if mesh is None:
        return ""
    fit = getattr(mesh, "fit", None)
    if fit is None:
        if choice == "morphable":
            return "Fitting the morphable model\u2026 (MediaPipe mesh shown)"
        return "MediaPipe mesh"
    p, loss = fit.pose, fit.loss
    terms = ", ".join(f"{name} {loss[key]:.3g}" for key, name in
                      (("landmark", "lmk"), ("photometric", "pix"), ("regularisation", "reg"), ("identity", "id"))
                      if key in loss)
    return (f"Pose yaw {p.yaw:+.1f}\u00b0 pitch {p.pitch:+.1f}\u00b0 roll {p.roll:+.1f}\u00b0 \u00b7 fit loss "
            f"{loss.get('total', float('nan')):.3f} ({terms}) \u00b7 {fit.iterations} steps, {fit.seconds:.1f} s"
            + (" (warm start)" if fit.warm_start else ""))


class GeometryChoice(QObject):
    """The combo and the pose label in the window's status bar (see the module docstring)."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.combo = QComboBox()
        self.combo.setObjectName("GeometryChoice")
        for key, (_b, _p, text) in CHOICES.items():
            self.combo.addItem(text, key)
        self.combo.setToolTip("The 3D face: MediaPipe's mesh (fast), or the morphable model fitted to the "
                              "de-occluded face (paper \u00a73.4-3.5; shown when the fit finishes)")
        self.label = QLabel("")
        self.label.setObjectName("GeometryFitStatus")
        self.label.setFixedSize(520, 22)
        self.label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.choice = stored_choice(window.settings.qs)
        self.combo.setCurrentIndex(list(CHOICES).index(self.choice))
        self.combo.currentIndexChanged.connect(self._on_combo)
        window.statusBar().addPermanentWidget(self.label)
        window.statusBar().addPermanentWidget(self.combo)
        window.session.stageResult.connect(self._on_stage_result)
        self._apply(rerun=False)

    def set_choice(self, choice: str) -> None:
        """Select ``choice`` (``mediapipe`` | ``morphable``) as the combo does."""
        self.combo.setCurrentIndex(list(CHOICES).index(choice))

    def _on_combo(self, index: int) -> None:
        choice = str(self.combo.itemData(index))
        if choice == self.choice:
            return
        self.choice = choice
        self.window.settings.qs.setValue(SETTINGS_KEY, choice)
        self._apply(rerun=True)

    def _apply(self, *, rerun: bool) -> None:
        backend, preview, _text = CHOICES[self.choice]
        session = self.window.session
        session.set_geometry(backend, preview)
        if rerun and session.document.has_photo and session.document.results:
            session.rerun()

    def _on_stage_result(self, stage: str, value, _display) -> None:
        if stage == "geometry":
            text = fit_status_text(value, self.choice)
            fm = self.label.fontMetrics()
            self.label.setText(fm.elidedText(text, Qt.TextElideMode.ElideRight, self.label.width() - 8))
            self.label.setToolTip(text)


def install(window) -> GeometryChoice:
    """Add the geometry choice to ``window`` (a :class:`~occgui.gui.main_window.MainWindow`)."""
    return GeometryChoice(window)
