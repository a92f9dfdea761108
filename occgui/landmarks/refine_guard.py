"""Rules that keep the learned landmark refiner honest on real photos (issue: real occlusions).

The refiner (``refiner.py``) learned from pasted occluders. On real photos the parser may mark a
few stray occluder pixels, and the network then moved points that nothing hides, sometimes off
the face. Three rules bound what it may do:

1. **Gate**: it runs only when M_alpha's occluder, after removing specks (a morphological opening
   of :data:`SPECK_IOD` inter-ocular distances), covers at least :data:`MIN_FACE_FRACTION` of the
   face region (the hull of MediaPipe's surface points).
2. **Only hidden points move**: a point keeps MediaPipe's position unless the cleaned occluder,
   dilated by :data:`HIDDEN_MARGIN_IOD`, covers it.
3. **Bounded moves**: a moved point travels at most :data:`MAX_SHIFT_IOD` inter-ocular distances
   and stays inside the face region grown by :data:`FACE_GROWTH` about its centre.
4. **Only when it looks more like a face** (:func:`accept_refinement`): the refined 68 points are kept
   only when their shape residual against the mean face (``plausibility.shape_residual``) is not above
   MediaPipe's by more than :data:`RESIDUAL_SLACK`; otherwise MediaPipe's points stand.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..metrics import hull_mask

SURFACE = 468
SPECK_IOD = 0.04
MIN_FACE_FRACTION = 0.01
HIDDEN_MARGIN_IOD = 0.08
MAX_SHIFT_IOD = 0.6
FACE_GROWTH = 1.15
#: How much more than MediaPipe's shape residual (mean-face eye distances) the refined points may have.
RESIDUAL_SLACK = 0.0
#: MediaPipe mesh vertices at the eye centres' neighbourhood (iris centres 468 and 473).
_IRIS = (468, 473)


def interocular(mesh_xy: np.ndarray) -> float:
    p = np.asarray(mesh_xy, dtype=np.float64)
    if len(p) > max(_IRIS):
        return float(np.linalg.norm(p[_IRIS[0], :2] - p[_IRIS[1], :2]))
    xs = p[:SURFACE, 0]
    return float((xs.max() - xs.min()) * 0.45)


def _disk(radius_px: float) -> np.ndarray:
    r = max(int(round(radius_px)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def face_hull(mesh_xy: np.ndarray, shape: tuple[int, int], growth: float = 1.0) -> np.ndarray:
    """Boolean mask of the convex hull of the mesh's surface points (scaled by ``growth``)."""
    p = np.asarray(mesh_xy, dtype=np.float64)[:SURFACE, :2]
    c = p.mean(axis=0)
    p = c + (p - c) * growth
    return hull_mask(p, shape)


def cleaned_occluder(occluder: np.ndarray, mesh_xy: np.ndarray) -> np.ndarray:
    """M_alpha's occluder without specks smaller than :data:`SPECK_IOD` inter-ocular distances."""
    occ = np.asarray(occluder, dtype=np.uint8)
    if not occ.any():
        return occ.astype(bool)
    k = _disk(SPECK_IOD * interocular(mesh_xy))
    return cv2.morphologyEx(occ, cv2.MORPH_OPEN, k).astype(bool)


def occluder_on_face(occluder: np.ndarray, mesh_xy: np.ndarray) -> float:
    """Fraction of the face region the cleaned occluder covers."""
    face = face_hull(mesh_xy, np.shape(occluder))
    occ = cleaned_occluder(occluder, mesh_xy)
    return float((occ & face).sum() / max(face.sum(), 1))


def hidden_vertices(occluder: np.ndarray, mesh_xy: np.ndarray) -> np.ndarray:
    """(N,) bool: the mesh points the cleaned, dilated occluder covers."""
    occ = cleaned_occluder(occluder, mesh_xy).astype(np.uint8)
    occ = cv2.dilate(occ, _disk(HIDDEN_MARGIN_IOD * interocular(mesh_xy))).astype(bool)
    h, w = occ.shape
    p = np.asarray(mesh_xy, dtype=np.float64)[:, :2]
    xi = np.clip(np.rint(p[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(p[:, 1]).astype(int), 0, h - 1)
    inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    return inside & occ[yi, xi]


def should_refine(occluder: np.ndarray, mesh_xy: np.ndarray) -> bool:
    """Rule 1: is there enough occluder on the face for the refiner to run at all?"""
    return occluder_on_face(occluder, mesh_xy) >= MIN_FACE_FRACTION


def bound_refinement(before: np.ndarray, after: np.ndarray, occluder: np.ndarray) -> np.ndarray:
    """Rules 2 and 3 applied to the refiner's output ``after`` of MediaPipe's mesh ``before``
    (both (478, 3), crop pixels); returns the bounded mesh (z is ``before``'s)."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    out = before.copy()
    hidden = hidden_vertices(occluder, before[:, :2])
    if not hidden.any():
        return out
    iod = interocular(before)
    d = after[:, :2] - before[:, :2]
    n = np.linalg.norm(d, axis=1, keepdims=True)
    cap = MAX_SHIFT_IOD * iod
    d = np.where(n > cap, d * (cap / np.maximum(n, 1e-9)), d)
    moved = before[:, :2] + d
    c = before[:SURFACE, :2].mean(axis=0)
    region = face_hull(before[:, :2], np.shape(occluder), FACE_GROWTH)
    h, w = region.shape
    for i in np.flatnonzero(hidden):
        p = moved[i]
        # pull a point that left the grown face region back towards the face centre until it is inside
        for t in np.linspace(1.0, 0.0, 11):
            q = c + (p - c) * t
            xi, yi = int(round(q[0])), int(round(q[1]))
            if 0 <= xi < w and 0 <= yi < h and region[yi, xi]:
                p = q
                break
        out[i, :2] = p
    return out


def accept_refinement(before68: np.ndarray, after68: np.ndarray, slack: float = RESIDUAL_SLACK) -> bool:
    """Rule 4: keep the refined 68 points only if they are at least as plausible a face as MediaPipe's
    (shape residual against the mean face no higher, up to ``slack``)."""
    from .plausibility import shape_residual

    return shape_residual(after68) <= shape_residual(before68) + slack
