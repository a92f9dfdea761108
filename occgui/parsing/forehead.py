"""Hair over the forehead next to a found occluder is occluder too (issue 13 point 3; the parse setting
``occluder_into_forehead``, on by default since 2026-12-07; the measurements and the decision are in
``checkpoints/parsing_unet.md``).

Under a real hat the network says *hair* for much of the hat, and occluder for a patch of it. A hat, a
band or a fringe that covers the forehead hides the face there whatever its class, and the labelled
real occlusions mark it so: things on the head count where they lie in front of the face region,
below the natural hairline (``resources/real_occlusions/README.md``). So the occluder the map has
(the network's, and the hands') grows through the 8-connected *hair* pixels of the forehead -- from
its parts that lie above the brows and are more than specks (:func:`seeds`, since VERSION 2: a hand
over an eye or glasses that reach the brows took the fringe beside them with VERSION 1) -- in the
forehead from temple to temple up to the estimated hairline (:func:`forehead`, since VERSION 3; before,
the narrower and lower face region of :func:`occgui.metrics.face_region`), above the topmost brow point. The 68
points come from MediaPipe's face mesh of the crop itself (never from the user's landmarks: a
landmark edit must not change M_alpha). Hair that touches no occluder stays hair, and nothing grows
without a face mesh.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import labels as L
from ..metrics import hull_mask

#: A seed covers at least this share of the crop: specks of occluder in a fringe grow nothing (a hat's
#: patch covered 0.5-14 % of the crop on the dev split's hats, the specks under 0.05 %).
MIN_SEED_SHARE = 0.003

#: The hairline's height above the topmost brow point, as a share of the brow-to-chin height: the median
#: top edge of the labelled hat and hair masks of the dev split (0.39; quartiles 0.37-0.42), which the
#: labellers placed where the natural hairline would be.
HAIRLINE_SHARE = 0.39

#: Bump when the output for a given crop and map changes (part of the parse backend's version).
VERSION = 3


def forehead(points68: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` bool: the forehead from temple to temple up to the estimated hairline -- the hull
    of the face contour's top ends (points 0 and 16) and the brows (17-26), with the same points raised by
    :data:`HAIRLINE_SHARE` of the brow-to-chin height -- above the pixel row of the topmost brow point.
    Empty for non-finite points."""
    p = np.asarray(points68, dtype=np.float64)[:, :2]
    if p.shape != (68, 2) or not np.isfinite(p).all():
        return np.zeros((size, size), bool)
    brow_top = p[17:27, 1].min()
    top = p[[0, 16, *range(17, 27)]]
    raised = top - np.array([0.0, HAIRLINE_SHARE * max(p[8, 1] - brow_top, 0.0)])
    region = hull_mask(np.vstack([top, raised]), size)
    region[max(int(np.floor(brow_top)), 0):] = False
    return region


def grown_into_forehead(labels: np.ndarray, points68: np.ndarray | None) -> np.ndarray:
    """M_alpha (a copy) with every forehead hair pixel (:func:`forehead`) 8-connected through such pixels
    to a *seed* marked occluder; unchanged without ``points68`` or without a seed. The seeds are the occluder
    components (8-connected) whose centroid lies above the topmost brow point -- a hat's or a band's, not the
    hand over an eye or the glasses whose top edge merely reaches the brows, nor specks in a fringe
    (:func:`seeds`)."""
    out = np.array(labels, copy=True)
    if points68 is None:
        return out
    occ = seeds(out == L.OCCLUDER, points68)
    if not occ.any():
        return out
    hair = (out == L.HAIR) & forehead(points68, out.shape[0])
    _, comp = cv2.connectedComponents((hair | occ).astype(np.uint8), connectivity=8)
    seeded = np.unique(comp[occ])
    out[hair & np.isin(comp, seeded[seeded > 0])] = L.OCCLUDER
    return out


def seeds(occluder: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """The components (8-connected) of the ``occluder`` mask whose centroid row lies above the topmost
    brow point of ``points68`` and which cover at least :data:`MIN_SEED_SHARE` of the mask; empty for
    non-finite points."""
    p = np.asarray(points68, dtype=np.float64)[:, :2]
    keep = np.zeros(occluder.shape, bool)
    if p.shape != (68, 2) or not np.isfinite(p).all() or not occluder.any():
        return keep
    n, comp, stats, centroids = cv2.connectedComponentsWithStats(occluder.astype(np.uint8), connectivity=8)
    min_area = MIN_SEED_SHARE * occluder.size
    above = [c for c in range(1, n)
             if centroids[c, 1] < p[17:27, 1].min() and stats[c, cv2.CC_STAT_AREA] >= min_area]
    return np.isin(comp, above) if above else keep


def mesh_points68(crop_rgb: np.ndarray) -> np.ndarray | None:
    """The 68 points of MediaPipe's face mesh of the crop, as the ``mediapipe`` landmark backend gives them
    (the face nearest the crop's centre), or None without a face."""
    from ..errors import NoFaceError
    from ..landmarks.mediapipe_mesh import MediaPipeMeshLandmarks

    try:
        return MediaPipeMeshLandmarks().detect(np.ascontiguousarray(crop_rgb[..., :3])).points
    except NoFaceError:
        return None
