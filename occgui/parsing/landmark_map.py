"""M_beta: the landmark parsing map (paper §3.2), "regions formed by connecting the landmarks".

Facial skin (jaw line closed over an estimated forehead), eyebrows, eyes, nose, upper lip, inner
mouth and lower lip are filled polygons of the 68 iBUG points, with the label ids of
``occgui.labels`` (so Algorithm 1 can merge M_alpha and M_beta). The landmarks carry no forehead
or eyebrow thickness, so two derived quantities are documented here:

* forehead: the brow line lifted along the face's vertical axis by 0.8 x the brow-to-nose-base
  distance (facial thirds), with a rounded profile (full lift at the centre, 60 % at the ends);
* eyebrow thickness: 0.085 x the inter-ocular distance at the brow's head, tapered to 40 % at its
  tail, 10 % of it above the 5 points and 90 % below;
* eyes: the 6-point contour widened 1.15 x along the eye line about its centre (the corners the
  68-point scheme marks lie inside the visible eye's outline).

The last two were fitted to the label generator's brows and eyes (``labelgen``, the classes N_alpha
learns, so that Algorithm 1 merges like with like): on 300 training photos (identities A-P, with
the same mesh's 68 points) the brow IoU between M_beta and those labels went from 0.63 (a 0.12 band,
35 % above) to 0.72 and the eye IoU from 0.72 to 0.76 (grid search, ``docs/landmarks.md``).
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import labels as L
from ..landmarks import ibug68 as I

_SHIFT = 4                 # cv2 fixed-point bits: polygons are drawn with 1/16 px precision
_ONE = 1 << _SHIFT


def _axes(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the face: x along the eye line (image left -> right), y downwards."""
    x = p[list(I.EYE_IMAGE_RIGHT)].mean(0) - p[list(I.EYE_IMAGE_LEFT)].mean(0)
    x = x / max(np.linalg.norm(x), 1e-9)
    return x, np.array([-x[1], x[0]])


def forehead_points(p: np.ndarray) -> np.ndarray:
    """Points closing the skin region above the brows (image right to image left)."""
    _, y = _axes(p)
    brows = p[list(range(26, 16, -1))]
    lift = 0.8 * abs(float(np.dot(p[33] - brows.mean(0), y)))
    t = np.linspace(-1.0, 1.0, len(brows))
    profile = 0.6 + 0.4 * np.cos(t * np.pi / 2)
    return brows - y[None, :] * (lift * profile)[:, None]


def skin_polygon(p: np.ndarray) -> np.ndarray:
    return np.vstack([p[list(I.JAW)], forehead_points(p)])


#: M_beta's brow band and eye widening (fitted to the label generator, see the module docstring)
BROW_THICKNESS, BROW_ABOVE, BROW_TAIL = 0.085, 0.1, 0.4
EYE_WIDEN = 1.15


def brow_polygon(p: np.ndarray, idx, thickness: float) -> np.ndarray:
    """A tapered band along the 5 brow points (they lie on the brow's upper edge)."""
    _, y = _axes(p)
    pts = p[list(idx)]
    inner_first = idx[0] == 22  # image-right brow runs inner -> outer
    taper = np.linspace(BROW_TAIL, 1.0, len(pts)) if not inner_first else np.linspace(1.0, BROW_TAIL, len(pts))
    up = pts - y * (BROW_ABOVE * thickness * taper)[:, None]
    down = pts + y * ((1 - BROW_ABOVE) * thickness * taper)[:, None]
    return np.vstack([up, down[::-1]])


def eye_polygon(p: np.ndarray, idx) -> np.ndarray:
    """The 6 eye points, widened by ``EYE_WIDEN`` along the eye line about their centre."""
    x, _ = _axes(p)
    pts = p[list(idx)]
    c = pts.mean(0)
    return pts + np.outer((pts - c) @ x * (EYE_WIDEN - 1.0), x)


def nose_polygon(p: np.ndarray) -> np.ndarray:
    x, _ = _axes(p)
    w = np.linalg.norm(p[35] - p[31])
    return np.vstack([p[27] - 0.18 * w * x, p[29] - 0.38 * w * x, p[31] - 0.12 * w * x,
                      p[[32, 33, 34]], p[35] + 0.12 * w * x, p[29] + 0.38 * w * x, p[27] + 0.18 * w * x])


def _fill(canvas: np.ndarray, poly: np.ndarray, value: int) -> None:
    cv2.fillPoly(canvas, [np.round(poly * _ONE).astype(np.int32)], int(value), lineType=cv2.LINE_8, shift=_SHIFT)


def render_landmark_map(points: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Rasterise M_beta for (68,2) landmarks in crop pixels; returns an HxW uint8 label map."""
    p = np.asarray(points, dtype=np.float64)
    h, w = (size, size) if np.isscalar(size) else size
    m = np.full((h, w), L.BACKGROUND, np.uint8)
    _fill(m, skin_polygon(p), L.SKIN)
    _fill(m, nose_polygon(p), L.NOSE)
    thick = BROW_THICKNESS * I.interocular(p)
    _fill(m, brow_polygon(p, I.BROW_IMAGE_LEFT, thick), L.R_BROW)    # subject's right brow
    _fill(m, brow_polygon(p, I.BROW_IMAGE_RIGHT, thick), L.L_BROW)   # subject's left brow
    _fill(m, eye_polygon(p, I.EYE_IMAGE_LEFT), L.R_EYE)
    _fill(m, eye_polygon(p, I.EYE_IMAGE_RIGHT), L.L_EYE)
    _fill(m, p[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]], L.U_LIP)
    _fill(m, p[[54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]], L.L_LIP)
    _fill(m, p[list(I.INNER_LIPS)], L.MOUTH)
    return m


class LandmarkPolygonMap:
    """Stage ``landmark_map`` backend (M_beta)."""

    name = "polygons"
    version = "2"  # 2: brow band and eye width fitted to the label generator

    def render(self, points: np.ndarray, size: int) -> np.ndarray:
        return render_landmark_map(points, size)
