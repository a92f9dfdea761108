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

import numpy as np

from ..errors import OccguiError
from ..results import FaceCrop, FaceMesh, HeadPose, Landmarks, LoadedImage, MorphableFit, ParsingMap, Synthesis
from .settings import MorphableSettings

VERSION = "1"
#: Values of ``MorphableSettings.initial``: where a first fit starts.
INITIAL_VALUES = ("landmarks", "rnet", "rnet-pose")


def crop_to_photo(image: LoadedImage, crop: FaceCrop) -> np.ndarray:
    """(2, 3) similarity from crop pixels to photo pixels."""
    return np.asarray(crop.from_crop, np.float64) / float(image.scale)


class MorphableGeometry:
    """Stage ``geometry`` backend (see the module docstring)."""

    name = "morphable"

    def __init__(self, ctx=None):
        from ..morphable import load_default_model, load_model
        from ..morphable.fit import FitSettings, MorphableFitter

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
        cell = 0.0 if device == "cuda" and st.cuda_full_topology else float(st.coarse_cell_mm)
        self.device = device
        self.fit_settings = FitSettings(iterations=st.iterations, image_iterations=st.image_iterations,
                                        use_identity=st.use_identity, visibility_size=st.visibility_size,
                                        render_size=st.render_size, coarse_cell_mm=cell, device=device)
        self.fitter = MorphableFitter(self.model, self.fit_settings)
        self.version = f"{VERSION}+{self.model.name}"
        if st.initial not in INITIAL_VALUES:
            raise OccguiError(f"geometry.initial must be one of {', '.join(INITIAL_VALUES)}, got {st.initial!r}")
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
        target = FitTarget.from_pipeline(synthesis, landmarks, gamma, alpha)
        st = self.settings
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
