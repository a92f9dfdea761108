"""A person-specific template: a linear face appearance model fitted to the visible pixels (I_out, §3.3).

The mean face (``template.py``) draws the same eyes, nose and lips for everybody. This module
replaces it, where both sides of a feature are hidden, by the *conditional* estimate of the
hidden appearance given the visible one, under a linear-Gaussian (probabilistic PCA) model of
shape-free face appearance:

    x = mu + U c + e,   c ~ N(0, diag(lambda)),   e ~ N(0, sigma^2 I)

``mu``, ``U`` (K components) and ``lambda`` are learned from clean training faces warped onto
the mean face's canonical mesh shape (``tools/build_appearance_model.py``; identities A-P only).
At run time the photo is warped into the same frame through the landmarks M_beta is drawn from;
with ``W`` the visible, unoccluded face pixels, the coefficients are the MAP estimate

    c = argmin_c  (x - mu - U c)^T W (x - mu - U c) / sigma^2  +  sum_k c_k^2 / lambda_k

(a texture fit with an occlusion mask and a Gaussian prior on the coefficients: the 2D counterpart,
on a linear image model instead of a rendered 3DMM, of the occlusion-masked photometric fit of the
paper's §3.5, whose 3D form is ``occgui.morphable``'s), re-weighted twice with Huber
weights so that pixels the parser missed (a glasses frame, a beard shadow) do not pull the fit.
``mu + U c`` over the whole canonical frame is the person's template: it carries the skin tone,
the lighting and whatever of the eye, nose and mouth region the visible face predicts.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import OccguiError
from ..resources import resource_path
from .settings import SymmetricSettings
from .template import MeanFace, load_mean_face
from .warp import PiecewiseAffine, sample

MODEL_NPZ = "templates/appearance_model.npz"
#: Huber threshold of the re-weighted fit, in units of the model's residual standard deviation
#: (``SymmetricSettings.appearance_huber``)
HUBER = SymmetricSettings.appearance_huber
#: Effective noise standard deviation of a visible value in the fit (0-255 scale); why this value:
#: ``SymmetricSettings.appearance_noise``
NOISE_STD = SymmetricSettings.appearance_noise


@dataclass(frozen=True)
class AppearanceModel:
    mean: np.ndarray         # (D,) float32, D = 3 x covered template pixels (RGB interleaved)
    components: np.ndarray   # (K, D) float32, orthonormal rows
    variances: np.ndarray    # (K,) float32
    residual: float          # per-value variance left out of the K components
    info: dict


def model_available() -> bool:
    return resource_path(MODEL_NPZ).exists()


def model_digest() -> str:
    """Short content digest of the bundled model (part of the synthesis backend's version)."""
    from ..resources import checkpoint_digest

    return checkpoint_digest(resource_path(MODEL_NPZ))


@lru_cache(maxsize=None)
def load_appearance_model() -> AppearanceModel:
    path = resource_path(MODEL_NPZ)
    if not path.exists():
        raise OccguiError(f"the face appearance model is missing ({path}); run tools/build_appearance_model.py")
    with np.load(path, allow_pickle=False) as z:
        model = AppearanceModel(z["mean"].astype(np.float32), z["components"].astype(np.float32),
                                z["variances"].astype(np.float32), float(z["residual"]),
                                json.loads(str(z["info"])))
    if model.mean.shape[0] != 3 * int(load_mean_face().coverage.sum()):
        raise OccguiError(f"the face appearance model {path} does not match the mean-face template")
    return model


def canonical_samples(image: np.ndarray, points: np.ndarray, face: MeanFace,
                      template_points: np.ndarray | None = None) -> np.ndarray:
    """``image`` (crop, H x W x C) resampled at the mean face's covered pixels through the
    piecewise-affine map between ``template_points`` (default: the first ``len(points)`` points of
    the canonical mesh) and the matching crop ``points``; ``(covered pixels, C)`` float32, NaN
    where the map leaves the mesh."""
    tp = face.points[:len(points)] if template_points is None else template_points
    warp = PiecewiseAffine(np.asarray(tp, dtype=np.float64), np.asarray(points, dtype=np.float64)[:, :2])
    ys, xs = np.nonzero(face.coverage)
    src, inside = warp.map(np.stack([xs, ys], axis=1).astype(np.float64))
    img = np.asarray(image, dtype=np.float32)
    vals = sample(img, src).reshape(len(src), -1)
    vals[~inside] = np.nan
    return vals


def mirror_index(face: MeanFace) -> np.ndarray:
    """Index of each covered template pixel's mirror partner (the canonical frame is symmetric
    about its centre column, so the mirror image is a left-right flip)."""
    h, w = face.coverage.shape
    idx = np.full((h, w), -1, np.int64)
    idx[face.coverage] = np.arange(int(face.coverage.sum()))
    return idx[:, ::-1][face.coverage]


def fit(values: np.ndarray, weights: np.ndarray, model: AppearanceModel | None = None,
        iterations: int = 2, noise_std: float = NOISE_STD, huber: float = HUBER) -> tuple[np.ndarray, dict]:
    """MAP coefficients of the model for ``values`` ((D,) as :func:`canonical_samples` gives) with
    per-pixel ``weights`` ((D/3,) in [0,1], 0 = hidden), Huber re-weighted ``iterations`` times
    (threshold ``huber``);
    ``noise_std`` (:data:`NOISE_STD`) weighs the data against the prior (larger: closer to the
    mean face). Returns (the
    model's reconstruction (D,), diagnostics)."""
    m = model or load_appearance_model()
    x = np.asarray(values, dtype=np.float32).reshape(-1, 3)
    w = np.asarray(weights, dtype=np.float32).copy()
    w[~np.all(np.isfinite(x), axis=1)] = 0.0
    d = (np.nan_to_num(x) - m.mean.reshape(-1, 3)).reshape(-1)            # (D,)
    u = m.components                                                       # (K, D)
    sigma2 = float(noise_std) ** 2
    reg = np.diag(sigma2 / np.maximum(m.variances, 1e-6))
    robust = np.ones_like(w)
    for it in range(iterations + 1):
        ww = np.repeat(w * robust, 3)                                     # (D,)
        uw = u * ww
        c = np.linalg.solve((uw @ u.T + reg).astype(np.float64), (uw @ d).astype(np.float64)).astype(np.float32)
        if it < iterations:                                               # Huber weights for the next solve
            r = np.sqrt(((d - c @ u).reshape(-1, 3) ** 2).mean(axis=1) / max(m.residual, 1.0))
            robust = np.where(r <= huber, 1.0, huber / np.maximum(r, 1e-6)).astype(np.float32)
    recon = m.mean + c @ u
    return recon, {"visible": float((w > 0.5).mean()), "coefficients": float(np.sqrt((c ** 2 / m.variances).sum()))}


def fitted_face(crop_rgb: np.ndarray, visible: np.ndarray, dst_points: np.ndarray,
                template_points: np.ndarray, face: MeanFace | None = None,
                noise_std: float = NOISE_STD, huber: float = HUBER, iterations: int = 2) -> tuple[MeanFace, dict]:
    """The mean-face template with its colours replaced by the model fitted to the crop's
    ``visible`` pixels (HxW bool); ``dst_points``/``template_points`` are the corresponding crop and
    template points (``template.template_correspondence``)."""
    face = face or load_mean_face()
    rgbv = np.dstack([np.asarray(crop_rgb[:, :, :3], dtype=np.float32), visible.astype(np.float32)])
    vals = canonical_samples(rgbv, dst_points, face, template_points)
    wts = np.where(np.isfinite(vals[:, 3]) & (vals[:, 3] > 0.99), 1.0, 0.0).astype(np.float32)
    recon, diag = fit(vals[:, :3].reshape(-1), wts, iterations=iterations, noise_std=noise_std, huber=huber)
    image = face.image.copy()
    image[face.coverage] = np.clip(recon.reshape(-1, 3), 0, 255)
    return dataclasses.replace(face, image=image), diag
