"""The iBUG 300-W 68-point layout: index groups, drawing contours and the mirror permutation.

Indices are 0-based. Image-left/right refers to an upright frontal face:
jaw 0-16 (image left to right), brows 17-21 (image left) and 22-26 (image right), nose bridge
27-30, nostrils 31-35, eyes 36-41 (image left) and 42-47 (image right), outer lips 48-59,
inner lips 60-67.
"""
from __future__ import annotations

import numpy as np

from ..errors import OccguiError

JAW = tuple(range(0, 17))
BROW_IMAGE_LEFT = tuple(range(17, 22))     # subject's right brow
BROW_IMAGE_RIGHT = tuple(range(22, 27))    # subject's left brow
NOSE_BRIDGE = tuple(range(27, 31))
NOSTRILS = tuple(range(31, 36))
EYE_IMAGE_LEFT = tuple(range(36, 42))      # subject's right eye
EYE_IMAGE_RIGHT = tuple(range(42, 48))     # subject's left eye
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))

#: Poly-lines drawn between landmarks (closed ones repeat their first index).
CONTOURS: tuple[tuple[int, ...], ...] = (
    JAW, BROW_IMAGE_LEFT, BROW_IMAGE_RIGHT, NOSE_BRIDGE, NOSTRILS,
    EYE_IMAGE_LEFT + (36,), EYE_IMAGE_RIGHT + (42,), OUTER_LIPS + (48,), INNER_LIPS + (60,),
)

#: ``MIRROR[i]`` is the landmark that mirrors ``i`` about the face's symmetry axis.
MIRROR = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,          # jaw
     26, 25, 24, 23, 22, 21, 20, 19, 18, 17,                             # brows
     27, 28, 29, 30,                                                     # bridge
     35, 34, 33, 32, 31,                                                 # nostrils
     45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,                     # eyes
     54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,                     # outer lips
     64, 63, 62, 61, 60, 67, 66, 65],                                    # inner lips
    dtype=np.int64)

OUTER_EYE_CORNERS = (36, 45)


def interocular(points: np.ndarray) -> float:
    """Outer-eye-corner distance, the usual 300-W normaliser of NME."""
    p = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(p[36] - p[45]))


def nme(pred: np.ndarray, gt: np.ndarray, norm: float | None = None) -> float:
    """Normalised mean error: mean point-to-point distance over the inter-ocular distance of ``gt``."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    d = norm if norm is not None else interocular(gt)
    return float(np.mean(np.linalg.norm(pred - gt, axis=1)) / max(d, 1e-9))


def read_pts(path) -> np.ndarray:
    """Read an iBUG ``.pts`` file into a (68,2) array (0-based pixel coordinates)."""
    lines = open(path, encoding="utf-8").read().split("{")[1].split("}")[0].split()
    pts = np.array(lines, dtype=np.float64).reshape(-1, 2)
    return pts - 1.0  # .pts files are 1-based (Matlab convention)


def checked_points68(points, where: str) -> np.ndarray:
    """``points`` as a (68, 2) float64 array, or a one-line :class:`OccguiError` that says what is
    wrong: not numbers, the wrong count or shape, or which points are NaN / infinite."""
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise OccguiError(f"{where}: landmarks must be a list of [x, y] numbers") from None
    if pts.ndim != 2 or pts.shape[1:] != (2,):
        raise OccguiError(f"{where}: expected 68 [x, y] points, got an array of shape {pts.shape}")
    if len(pts) != 68:
        raise OccguiError(f"{where}: expected 68 [x, y] points, got {len(pts)}")
    bad = np.flatnonzero(~np.isfinite(pts).all(axis=1))
    if len(bad):
        kinds = "NaN" if np.isnan(pts[bad]).any() else "infinite"
        listed = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise OccguiError(f"{where}: {len(bad)} landmark(s) are {kinds} (point{'s' if len(bad) > 1 else ''} {listed})")
    return pts
