"""Hair over the forehead next to a found occluder is occluder too (issue 13 point 3; the parse setting
``occluder_into_forehead``, on by default since 2026-12-07; the measurements and the decision are in
``checkpoints/parsing_unet.md``).

Under a real hat the network says *hair* for much of the hat, and occluder for a patch of it. A hat, a
band or a fringe that covers the forehead hides the face there whatever its class, and the labelled
real occlusions mark it so: things on the head count where they lie in front of the face region,
below the natural hairline (``resources/real_occlusions/README.md``). So the occluder the map has
(the network's, and the hands') grows through the 8-connected *hair* pixels of the forehead: the
face region (:func:`occgui.metrics.face_region`, the hull of the 68 points with the brows raised by
a third of the brow-to-chin height, up to about the hairline) above the topmost brow point. The 68
points come from MediaPipe's face mesh of the crop itself (never from the user's landmarks: a
landmark edit must not change M_alpha). Hair that touches no occluder stays hair, and nothing grows
without a face mesh.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import labels as L
from ..metrics import face_region

#: Bump when the output for a given crop and map changes (part of the parse backend's version).
VERSION = 1


def forehead(points68: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` bool: the face region (:func:`occgui.metrics.face_region`) above the pixel row of
    the topmost brow point -- the forehead up to about the hairline. Empty for non-finite points."""
    p = np.asarray(points68, dtype=np.float64)[:, :2]
    if p.shape != (68, 2) or not np.isfinite(p).all():
        return np.zeros((size, size), bool)
    region = face_region(p, size)
    region[max(int(np.floor(p[17:27, 1].min())), 0):] = False
    return region


def grown_into_forehead(labels: np.ndarray, points68: np.ndarray | None) -> np.ndarray:
    """M_alpha (a copy) with every forehead hair pixel (:func:`forehead`) 8-connected through such pixels
    to an occluder pixel marked occluder; unchanged without ``points68`` or without an occluder."""
    out = np.array(labels, copy=True)
    occ = out == L.OCCLUDER
    if points68 is None or not occ.any():
        return out
    hair = (out == L.HAIR) & forehead(points68, out.shape[0])
    _, comp = cv2.connectedComponents((hair | occ).astype(np.uint8), connectivity=8)
    seeded = np.unique(comp[occ])
    out[hair & np.isin(comp, seeded[seeded > 0])] = L.OCCLUDER
    return out


def mesh_points68(crop_rgb: np.ndarray) -> np.ndarray | None:
    """The 68 points of MediaPipe's face mesh of the crop, as the ``mediapipe`` landmark backend gives them
    (the face nearest the crop's centre), or None without a face."""
    from ..errors import NoFaceError
    from ..landmarks.mediapipe_mesh import MediaPipeMeshLandmarks

    try:
        return MediaPipeMeshLandmarks().detect(np.ascontiguousarray(crop_rgb[..., :3])).points
    except NoFaceError:
        return None
