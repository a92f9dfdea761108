"""Stage ``geometry`` backend ``morphable``: the paper's 3D morphable-model reconstruction (§3.4-3.5).

The model (:func:`occgui.morphable.load_default_model`, the reduced ICT-FaceKit face shipped in
``resources/morphable``, or the file named by ``MorphableSettings.model``) is fitted by analysis by
synthesis (:class:`occgui.morphable.fit.MorphableFitter`) to what the earlier stages made of the
photo:

* **I_out** (the synthesize stage's de-occluded crop) is the photometric target of Eq. 13 and the
  identity target of Eq. 15 -- so de-occlusion now changes the mesh;
* the **68 landmarks** (the landmark stage's, or the user's corrections) drive Eq. 12 and, with
  ``initial="landmarks"``, the initial value (the landmark least squares of :mod:`occgui.morphable.init`);
  ``initial="rnet"`` starts a first fit from the trained R-Net's coefficients regressed from I_out
  (:class:`occgui.morphable.regressor.RNet`, ``checkpoints/recon_regressor.safetensors`` or
  ``rnet_weights``), ``"rnet-pose"`` from its shape and light with the pose re-estimated from the
  landmarks;
* **M_gamma** sets Eq. 13's attention (P = 1 on facial-feature pixels, 0.1 elsewhere) and **M_alpha
  as painted** excludes its occluder pixels.

A re-fit of the same photo and crop (a landmark edit, a painted occluder) starts from the previous
solution with fewer steps (``refit_iterations``): the GUI's warm start. The result is the full
model mesh in the photo's camera frame with the model's own UVs, plus :class:`~occgui.results.MorphableFit`
(coefficients, photo-frame head pose, per-term loss, per-vertex SH shading for de-lighting).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import OccguiError
from ..results import FaceCrop, FaceMesh, HeadPose, Landmarks, LoadedImage, MorphableFit, ParsingMap, Synthesis
from .settings import MorphableSettings

VERSION = "1"
#: Values of ``MorphableSettings.initial``: where a first fit starts.
INITIAL_VALUES = ("landmarks", "rnet", "rnet-pose")
#: Values of ``MorphableSettings.iout_landmarks``: which of Eq. 12's points are re-detected on I_out.
IOUT_LANDMARK_MODES = ("off", "hidden", "all", "blend")


def hidden_landmarks(points: np.ndarray, alpha_labels: np.ndarray | None) -> np.ndarray:
    """(68,) bool: the points M_alpha's occluder hides, as the fit decides it for
    ``occluded_landmark_weight`` (:func:`occgui.morphable.fit.occluded_landmarks`, the occluder dilated
    by ``OCCLUDED_LANDMARK_MARGIN`` reference pixels)."""
    from ..morphable.fit import OCCLUDED_LANDMARK_MARGIN, occluded_landmarks
    from ..morphable.losses import REFERENCE_SIZE

    pts = np.asarray(points, np.float64)
    if alpha_labels is None:
        return np.zeros(len(pts), bool)
    size = np.asarray(alpha_labels).shape[0]
    return occluded_landmarks(pts, alpha_labels, OCCLUDED_LANDMARK_MARGIN * size / REFERENCE_SIZE)


def iout_landmarks(image: np.ndarray, points: np.ndarray, alpha_labels: np.ndarray | None, mode: str,
                   detect=None, keep: np.ndarray | None = None) -> np.ndarray:
    """Eq. 12's 68 points (crop pixels) with landmarks re-detected on I_out (``image``, the
    de-occluded crop): ``mode`` "off" returns ``points``; "hidden" replaces the points M_alpha's
    occluder covers (:func:`hidden_landmarks`) by the re-detected ones, "all" every point, "blend"
    the hidden ones and the others by the mean of both detections. The
    detector (``detect(rgb) -> (68, 2)``; default MediaPipe's face mesh reduced to the 68 iBUG points,
    the landmark stage's detector without its occlusion refiner) finding no face leaves ``points``.
    ``keep`` ((68,) bool, e.g. the points the user moved) are never changed."""
    from ..errors import NoFaceError

    if mode not in IOUT_LANDMARK_MODES:
        raise OccguiError(f"geometry.iout_landmarks must be one of {', '.join(IOUT_LANDMARK_MODES)}, got {mode!r}")
    pts = np.asarray(points, np.float64).copy()
    if mode == "off":
        return pts
    hidden = hidden_landmarks(pts, alpha_labels) if mode != "all" else np.ones(len(pts), bool)
    kept = np.zeros(len(pts), bool) if keep is None else np.asarray(keep, bool)
    if (mode == "hidden" and not (hidden & ~kept).any()) or kept.all():
        return pts
    if detect is None:
        def detect(rgb):
            found = iout_detection(rgb)
            if found is None:
                raise NoFaceError("no face on I_out")
            return found.points
    try:
        new = np.asarray(detect(np.asarray(image)), np.float64)
    except NoFaceError:
        return pts
    if new.shape != pts.shape or not np.isfinite(new).all():
        return pts
    if mode == "blend":
        pts[~hidden & ~kept] = 0.5 * (pts[~hidden & ~kept] + new[~hidden & ~kept])
    pts[hidden & ~kept] = new[hidden & ~kept]
    return pts


def iout_detection(image: np.ndarray) -> Landmarks | None:
    """MediaPipe's face mesh (and its 68 points) on I_out, or None when it finds no face."""
    from ..errors import NoFaceError
    from ..landmarks.mediapipe_mesh import MediaPipeMeshLandmarks

    try:
        return MediaPipeMeshLandmarks().detect(np.ascontiguousarray(image))
    except NoFaceError:
        return None


def redetected_target(target, mode: str, detect=None, keep: np.ndarray | None = None, *, dense: bool = False,
                      stage_mesh: np.ndarray | None = None):
    """``target`` (a :class:`~occgui.morphable.fit.FitTarget`) as the backend fits it -- what
    ``occgui.eval.fit_drift`` re-fits too: :func:`iout_landmarks` applied and, with ``dense``, the
    dense term's target (:mod:`occgui.morphable.dense`): MediaPipe's mesh on I_out when ``mode``
    re-detects, else ``stage_mesh`` (the landmark stage's). MediaPipe runs once on I_out for both.
    ``detect`` (``rgb -> (68, 2)``) replaces MediaPipe's 68 points (tests)."""
    from ..errors import NoFaceError

    mesh = stage_mesh if dense else None
    if mode != "off" and detect is None and mode in IOUT_LANDMARK_MODES:
        found = iout_detection(target.image)
        if found is not None and dense:
            mesh = found.mesh

        def detect(_rgb, found=found):
            if found is None:
                raise NoFaceError("no face on I_out")
            return found.points
    if mesh is not None:
        target = replace(target, dense=np.asarray(mesh, np.float64))
    if mode == "off":
        return target
    return replace(target, landmarks=iout_landmarks(target.image, target.landmarks, target.alpha_labels, mode,
                                                    detect, keep))


def edited_points(landmarks: Landmarks) -> np.ndarray | None:
    """(68,) bool: the points the user moved away from the landmark backend's own, all of them when
    the user supplied the points (never re-detected); ``None`` for unedited landmarks."""
    if not landmarks.edited:
        return None
    p = np.asarray(landmarks.points, np.float64)
    d = None if landmarks.detected_points is None else np.asarray(landmarks.detected_points, np.float64)
    if d is None or d.shape != p.shape:
        return np.ones(len(p), bool)
    return np.abs(p - d).max(axis=1) > 1e-6


def crop_to_photo(image: LoadedImage, crop: FaceCrop) -> np.ndarray:
    """(2, 3) similarity from crop pixels to photo pixels."""
    return np.asarray(crop.from_crop, np.float64) / float(image.scale)


def fit_configuration(st: MorphableSettings, model, device: str = "cpu"):
    """``(FitSettings, ExpressionPrior | None, prior path | None)`` of the backend's settings: what
    the backend fits with, and what the evaluation's fits (``occgui eval verify-fit``) reproduce.
    With a learned expression prior (``geometry.expression_prior``) the fit uses
    :data:`occgui.morphable.fit.PRIOR_FIT_WEIGHTS` and leaves the landmarks M_alpha's occluder
    hides to the prior (:data:`occgui.morphable.fit.PRIOR_OCCLUDED_LANDMARK_WEIGHT`)."""
    from ..morphable import default_expression_prior_path
    from ..morphable.expression_prior import load_expression_prior
    from ..morphable.fit import PRIOR_FIT_WEIGHTS, PRIOR_OCCLUDED_LANDMARK_WEIGHT, FitSettings

    cell = 0.0 if device == "cuda" and st.cuda_full_topology else float(st.coarse_cell_mm)
    fs = FitSettings(iterations=st.iterations, image_iterations=st.image_iterations, use_identity=st.use_identity,
                     visibility_size=st.visibility_size, render_size=st.render_size, coarse_cell_mm=cell,
                     device=device, dense_weight=float(st.dense_weight))
    if st.expression_prior in ("", "off"):
        return fs, None, None
    path = default_expression_prior_path() if st.expression_prior == "learned" else Path(st.expression_prior)
    prior = load_expression_prior(path).check(model)
    return replace(fs, weights=PRIOR_FIT_WEIGHTS, occluded_landmark_weight=PRIOR_OCCLUDED_LANDMARK_WEIGHT), prior, path


class MorphableGeometry:
    """Stage ``geometry`` backend (see the module docstring)."""

    name = "morphable"

    def __init__(self, ctx=None):
        from ..morphable import load_default_model, load_model
        from ..morphable.fit import MorphableFitter

        st = getattr(ctx, "settings", None)
        self.settings = st if isinstance(st, MorphableSettings) else MorphableSettings()
        st = self.settings
        device = st.device or getattr(ctx, "device", "cpu") or "cpu"
        if device not in ("cpu", "cuda"):
            raise OccguiError(f"geometry.device must be cpu, cuda or empty, got {device!r}")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise OccguiError("geometry.device=cuda but CUDA is not available")
        self.model = load_model(st.model) if st.model else load_default_model()
        if self.model.uv is None:
            raise OccguiError(f"the morphable model {self.model.name!r} has no texture coordinates")
        for name in ("iterations", "image_iterations", "refit_iterations", "refit_image_iterations"):
            if getattr(st, name) < 0:
                raise OccguiError(f"geometry.{name} must be >= 0, got {getattr(st, name)}")
        if st.render_size < 16 or st.visibility_size < 16:
            raise OccguiError("geometry.render_size and geometry.visibility_size must be at least 16 px")
        self.device = device
        if st.dense_weight < 0:
            raise OccguiError(f"geometry.dense_weight must be >= 0, got {st.dense_weight:g}")
        self.fit_settings, self.expression_prior, prior_path = fit_configuration(st, self.model, device)
        self.fitter = MorphableFitter(self.model, self.fit_settings, self.expression_prior)
        self.version = f"{VERSION}+{self.model.name}"
        if self.expression_prior is not None:
            from ..resources import checkpoint_digest

            self.version += f"+eprior-{checkpoint_digest(prior_path)}"
        if st.initial not in INITIAL_VALUES:
            raise OccguiError(f"geometry.initial must be one of {', '.join(INITIAL_VALUES)}, got {st.initial!r}")
        if st.iout_landmarks not in IOUT_LANDMARK_MODES:
            raise OccguiError(f"geometry.iout_landmarks must be one of {', '.join(IOUT_LANDMARK_MODES)}, "
                              f"got {st.iout_landmarks!r}")
        if st.iout_landmarks != "off":
            self.version += f"+iolm-{st.iout_landmarks}"
        if self.fitter.dense_map is not None:
            self.version += f"+dense{st.dense_weight:g}"
        self.rnet = None
        if st.initial != "landmarks":
            from ..morphable.regressor import RNet
            from ..resources import checkpoint_digest

            self.rnet = RNet.load(st.rnet_weights or None)
            self.rnet.check_model(self.model)
            self.version += f"+{st.initial}-{checkpoint_digest(self.rnet.source)}"
        #: (photo digest, crop transform) -> the last fit's coefficients (pose in crop pixels)
        self._last: tuple[tuple, object] | None = None

    def _warm_key(self, image: LoadedImage, crop: FaceCrop) -> tuple:
        return (image.digest, crop.size, np.round(np.asarray(crop.to_crop, np.float64), 9).tobytes())

    def build(self, image: LoadedImage, crop: FaceCrop, landmarks: Landmarks, *, synthesis: Synthesis | None = None,
              alpha: ParsingMap | None = None, gamma: ParsingMap | None = None) -> FaceMesh:
        from ..morphable.fit import FitTarget

        if synthesis is None:
            raise OccguiError(f"the geometry backend {self.name!r} fits I_out, but the pipeline gave it none")
        st = self.settings
        edited = edited_points(landmarks)
        target = redetected_target(FitTarget.from_pipeline(synthesis, landmarks, gamma, alpha), st.iout_landmarks,
                                   keep=edited, dense=self.fitter.dense_map is not None and edited is None,
                                   stage_mesh=landmarks.mesh)
        if edited is not None:
            target = replace(target, trusted=edited)   # a moved point always counts in Eq. 12
        key = self._warm_key(image, crop)
        initial = self._last[1] if st.warm_start and self._last is not None and self._last[0] == key else None
        t0 = time.perf_counter()
        if initial is None:
            start = None
            if self.rnet is not None:
                lm = target.landmarks if st.initial == "rnet-pose" else None
                start = self.rnet.initial_value(self.model, target.image, lm)
            res = self.fitter.fit(target, start)
        else:
            res = self.fitter.fit(target, initial, iterations=st.refit_iterations,
                                  image_iterations=st.refit_image_iterations)
        seconds = time.perf_counter() - t0
        self._last = (key, res.coefficients)
        a = crop_to_photo(image, crop)
        mesh = res.face_mesh(self.model, a, backend=self.name)
        last = res.history[-1] if res.history else None
        loss = ({} if last is None else {k: float(getattr(last, k)) for k in
                                         ("total", "landmark", "photometric", "regularisation", "identity")})
        c = res.coefficients
        fit = MorphableFit(model=self.model.name, identity=c.identity, expression=c.expression, albedo=c.albedo,
                           gamma=c.gamma, pose=HeadPose(*res.photo_pose(a)), crop_pose=c.pose.as_array(),
                           loss=loss, shading=res.vertex_shading(self.model),
                           landmark_error=res.landmark_error(target.landmarks), iterations=len(res.history),
                           warm_start=initial is not None, seconds=seconds)
        return replace(mesh, fit=fit)
