"""The mean-face template: facial features for regions hidden on *both* sides of the face (§3.3).

When sunglasses cover both eyes or a mask covers the nose and mouth, the photo holds no visible
counterpart to mirror. The fallback is a mean face: a statistical average of several hundred
clean LFW training faces (identities A-P) in a canonical, symmetric MediaPipe-mesh frame, built
by ``tools/build_mean_face.py`` (provenance in ``resources/templates/README.md``).

At run time it is warped piecewise-affinely onto the target face through the same landmarks that
M_beta is drawn from (the 478-point mesh when present, else the 68 iBUG points plus M_beta's
forehead points), so its eyes, brows, nose and lips land where M_gamma puts the hidden features;
its colours are then matched to the person's visible skin (:func:`match_colour`) before Poisson
blending (``blend.py``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .. import labels as L
from ..errors import OccguiError
from ..resources import resource_path
from ..results import Landmarks
from .warp import PiecewiseAffine

TEMPLATE_PNG = "templates/mean_face.png"
TEMPLATE_JSON = "templates/mean_face.json"
SURFACE = 468


@dataclass(frozen=True)
class MeanFace:
    """The loaded template: colours, coverage and the canonical mesh points (template pixels)."""

    image: np.ndarray        # HxWx3 float32 RGB 0..255
    coverage: np.ndarray     # HxW bool: inside the averaged mesh
    points: np.ndarray       # (478,2) canonical mesh points
    mirror: np.ndarray       # (478,) mirror vertex map of the mesh topology
    skin: np.ndarray         # HxW bool: the template's skin (face minus features), for colour statistics
    meta: dict


@lru_cache(maxsize=None)
def load_mean_face() -> MeanFace:
    png, js = resource_path(TEMPLATE_PNG), resource_path(TEMPLATE_JSON)
    if not png.exists() or not js.exists():
        raise OccguiError(f"the mean-face template is missing ({png}); run tools/build_mean_face.py")
    rgba = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise OccguiError(f"cannot read the mean-face template {png}")
    rgba = cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA)
    meta = json.loads(js.read_text())
    pts = np.asarray(meta["points"], dtype=np.float64)
    mirror = np.asarray(meta["mirror"], dtype=np.int64)
    cover = rgba[:, :, 3] > 127
    from ..parsing.labelgen import face_region_labels

    regions = face_region_labels(np.concatenate([pts, np.zeros((len(pts), 1))], axis=1), rgba.shape[:2])
    skin = (regions == L.SKIN) & cover
    return MeanFace(rgba[:, :, :3].astype(np.float32), cover, pts, mirror, skin, meta)


@lru_cache(maxsize=None)
def blurred_mean_face() -> np.ndarray:
    """The mean face blurred by 0.15 inter-ocular distances (normalised inside its coverage)."""
    return blurred_template(load_mean_face())


def blurred_template(face: MeanFace) -> np.ndarray:
    """A template's colours blurred by 0.15 inter-ocular distances (normalised inside its coverage)."""
    sigma = 0.15 * float(face.meta.get("interocular_px", 100.0))
    cov = face.coverage.astype(np.float32)
    num = cv2.GaussianBlur(face.image * cov[:, :, None], (0, 0), sigma)
    den = cv2.GaussianBlur(cov, (0, 0), sigma)
    return np.where(den[:, :, None] > 1e-3, num / np.maximum(den, 1e-3)[:, :, None], face.image).astype(np.float32)


def template_correspondence(landmarks: Landmarks, face: MeanFace) -> tuple[np.ndarray, np.ndarray]:
    """Target points (crop pixels) and the matching canonical template points."""
    if landmarks.mesh is not None and len(landmarks.mesh) >= SURFACE:
        return np.asarray(landmarks.mesh, dtype=np.float64)[:SURFACE, :2], face.points[:SURFACE]
    from ..landmarks.correspondence import correspondence_matrix
    from ..parsing.landmark_map import forehead_points

    p68 = np.asarray(landmarks.points, dtype=np.float64)
    c68 = correspondence_matrix() @ face.points
    return np.vstack([p68, forehead_points(p68)]), np.vstack([c68, forehead_points(c68)])


class TemplateMap:
    """Samples the mean face at crop pixels of the target face."""

    def __init__(self, landmarks: Landmarks, face: MeanFace | None = None):
        self.face = face or load_mean_face()
        self._blurred: np.ndarray | None = None
        dst, src = template_correspondence(landmarks, self.face)
        self.warp = PiecewiseAffine(dst, src)

    def sample(self, xy: np.ndarray, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(N,2) crop pixels -> ((N,3) float RGB of the template, (N,) bool covered).

        ``strength`` < 1 draws the features fainter: the template's detail (its difference from
        a blurred copy, sigma 0.15 inter-ocular distances) is scaled by it."""
        from .warp import sample

        src, inside = self.warp.map(xy)
        rgb = sample(self.face.image, src)
        if strength != 1.0:
            if self._blurred is None:
                self._blurred = blurred_mean_face() if self.face is load_mean_face() else blurred_template(self.face)
            base = sample(self._blurred, src)
            rgb = base + float(strength) * (rgb - base)
        cov = sample(self.face.coverage.astype(np.float32), src) > 0.99
        return rgb.astype(np.float32), inside & cov


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float RGB 0-255 -> (N, 3) CIE Lab (OpenCV float convention)."""
    x = np.clip(np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0, 0, 1)
    return cv2.cvtColor(x, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def to_rgb(lab: np.ndarray) -> np.ndarray:
    """(N, 3) Lab -> (N, 3) float RGB clipped to 0-255."""
    x = cv2.cvtColor(np.asarray(lab, dtype=np.float32).reshape(-1, 1, 3), cv2.COLOR_LAB2RGB)
    return np.clip(x.reshape(-1, 3) * 255.0, 0, 255)


#: Clamp of the per-channel contrast gain of :func:`match_colour` (L, a, b): lightness may be
#: stretched more than the chroma, whose spread on small skin samples is mostly noise.
MAX_GAIN = (1.6, 1.25, 1.25)


def match_colour(values: np.ndarray, source_ref: np.ndarray, target_ref: np.ndarray) -> np.ndarray:
    """Transfer Lab mean and standard deviation from ``source_ref`` to ``target_ref`` statistics
    (Reinhard et al.), applied to ``values``; (N,3) float RGB in and out. The per-channel
    contrast gain is clamped to ``[1/MAX_GAIN, MAX_GAIN]``."""
    if len(source_ref) < 10 or len(target_ref) < 10:
        return np.asarray(values, dtype=np.float32)
    s, t = to_lab(source_ref), to_lab(target_ref)
    ms, ss = s.mean(axis=0), s.std(axis=0) + 1e-3
    mt, st = t.mean(axis=0), t.std(axis=0) + 1e-3
    mg = np.asarray(MAX_GAIN)
    gain = np.clip(st / ss, 1.0 / mg, mg)
    return to_rgb((to_lab(values) - ms) * gain + mt).astype(np.float32)
