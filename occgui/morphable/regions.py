"""Vertex regions of a morphable model, derived from its 68 landmark vertices.

In a frontal view of the mean shape (X, Y of the model frame), the landmark contours delimit the
facial features; each vertex gets an :mod:`occgui.labels` id (skin, brows, eyes, nose, lips, inner
mouth) and the face region M of Eq. 13 is the jaw line (points 0-16) closed over the forehead by
the eyebrows (17-26) raised by half the distance between the eye centres.
"""
from __future__ import annotations

import numpy as np
from skimage.measure import points_in_poly

from .. import labels as L

#: Height of the forehead above the brows in the face region, in units of the eye-centre distance.
FOREHEAD_RAISE = 0.5
#: Brow band: from this far above the brow landmarks to this far below (eye-centre distances).
BROW_ABOVE, BROW_BELOW = 0.04, 0.16


def _band(points: np.ndarray, up: float, down: float) -> np.ndarray:
    """A polygon: the polyline raised by ``up`` then back lowered by ``down`` (Y up)."""
    top = points + (0.0, up)
    bottom = points[::-1] - (0.0, down)
    return np.concatenate([top, bottom])


def face_region_polygon(lm_xy: np.ndarray) -> np.ndarray:
    """The face region M in the frontal (X, Y) plane from the 68 landmark positions (Y up)."""
    eye_dist = float(np.linalg.norm(lm_xy[36:42].mean(0) - lm_xy[42:48].mean(0)))
    brows = lm_xy[[26, 25, 24, 23, 22, 21, 20, 19, 18, 17]] + (0.0, FOREHEAD_RAISE * eye_dist)
    return np.concatenate([lm_xy[0:17], brows])


def vertex_regions(vertices: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) uint8, face mask (N,) bool) of a frontal mesh (N, 3) with landmark ids (68,)."""
    xy = np.asarray(vertices, np.float64)[:, :2]
    lm = xy[np.asarray(landmarks)]
    eye_dist = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    face = points_in_poly(xy, face_region_polygon(lm))
    labels = np.full(len(xy), L.SKIN, np.uint8)
    up, down = BROW_ABOVE * eye_dist, BROW_BELOW * eye_dist
    # Subject's right brow / eye appear on the image's left (iBUG 17-21, 36-41).
    for ids, label in ((range(17, 22), L.R_BROW), (range(22, 27), L.L_BROW)):
        labels[points_in_poly(xy, _band(lm[list(ids)], up, down))] = label
    # Nose: the bridge (27) widened to the nostril base (31-35).
    w = 0.12 * eye_dist
    nose = np.array([lm[27] - (w, 0), lm[31] - (0.3 * w, 0), *lm[31:36], lm[35] + (0.3 * w, 0), lm[27] + (w, 0)])
    labels[points_in_poly(xy, nose)] = L.NOSE
    for ids, label in ((range(36, 42), L.R_EYE), (range(42, 48), L.L_EYE)):
        labels[points_in_poly(xy, lm[list(ids)])] = label
    outer = points_in_poly(xy, lm[48:60])
    inner = points_in_poly(xy, lm[60:68])
    mid_y = 0.5 * (lm[62, 1] + lm[66, 1])
    labels[outer & (xy[:, 1] >= mid_y)] = L.U_LIP
    labels[outer & (xy[:, 1] < mid_y)] = L.L_LIP
    labels[inner] = L.MOUTH
    return labels, face


#: Hand-set mean reflectances (linear RGB in [0, 1]) of the region albedo model (models without
#: a measured albedo basis): skin, brows, eyes, lips, inner mouth.
REGION_ALBEDO = {
    "skin": ((L.SKIN, L.NOSE, L.BACKGROUND, L.HAIR, L.OCCLUDER), (0.72, 0.53, 0.44)),
    "brows": ((L.L_BROW, L.R_BROW), (0.40, 0.29, 0.24)),
    "eyes": ((L.L_EYE, L.R_EYE), (0.45, 0.38, 0.35)),
    "lips": ((L.U_LIP, L.L_LIP), (0.66, 0.40, 0.38)),
    "mouth": ((L.MOUTH,), (0.35, 0.18, 0.17)),
}
#: Standard deviation of each region's reflectance per channel.
REGION_ALBEDO_STD = 0.15


def region_albedo_model(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A piecewise-constant albedo model over the vertex regions: (mean (N,3), basis (K,N,3), std (K,)),
    one component per region and colour channel (K = 15)."""
    n = len(labels)
    mean = np.zeros((n, 3), np.float32)
    basis = []
    for ids, rgb in REGION_ALBEDO.values():
        sel = np.isin(labels, ids)
        mean[sel] = rgb
        for c in range(3):
            b = np.zeros((n, 3), np.float32)
            b[sel, c] = REGION_ALBEDO_STD
            basis.append(b)
    return mean, np.stack(basis), np.full(len(basis), REGION_ALBEDO_STD, np.float32)
