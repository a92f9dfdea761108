"""Face-aligned mirroring for de-occlusion (paper §3.3's "visible counterpart" of a hidden feature).

A naive flip of the image about its centre puts the visible eye far from the hidden one as soon
as the face is off-centre or turned. Instead the mirror is defined *on the face*: every point
of the face is mapped to its mirror partner through the landmarks,

* with the 478-point MediaPipe mesh: vertex ``v`` corresponds to ``MESH_MIRROR[v]``, a vertex map
  derived from the mesh's own symmetry (:func:`derive_mirror_map`, stored with the mean-face
  template in ``resources/templates/mean_face.json`` by ``tools/build_mean_face.py``);
* without a mesh (dlib landmarks): the 68 iBUG points with ``ibug68.MIRROR`` plus the estimated
  forehead points of M_beta (``parsing.landmark_map.forehead_points``, symmetric by
  construction).

The destination points are triangulated (Delaunay) and each triangle maps affinely onto the
triangle of the partner vertices (a piecewise-affine, orientation-reversing warp), so a pixel of
the hidden eye samples the corresponding pixel of the visible eye wherever the two lie in the
image. Outside the triangulation the best global reflection (least-squares affine of all the
correspondences) is used.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..landmarks import ibug68
from ..results import Landmarks
from .warp import PiecewiseAffine, fit_affine

#: Surface vertices of the MediaPipe mesh (the last 10 of 478 are iris points, which follow
#: the gaze and are not used for mirroring).
SURFACE = 468
#: MediaPipe mesh vertices used to set up a face frame: outer eye corners (image left, image
#: right), chin, top of the forehead.
EYE_OUTER_IMAGE_LEFT, EYE_OUTER_IMAGE_RIGHT, CHIN, FOREHEAD_TOP = 33, 263, 152, 10


# ----------------------------------------------------------------------------- mesh symmetry
def face_frame(mesh3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, 3x3 rotation whose rows are the face's x (image-left -> image-right eye), y (chin
    -> forehead) and z axes) of a (478,3) mesh."""
    p = np.asarray(mesh3d, dtype=np.float64)
    x = p[EYE_OUTER_IMAGE_RIGHT] - p[EYE_OUTER_IMAGE_LEFT]
    x /= np.linalg.norm(x)
    y = p[FOREHEAD_TOP] - p[CHIN]
    y -= x * np.dot(x, y)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return p[:SURFACE].mean(axis=0), np.stack([x, y, z])


def _kabsch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising ||a R^T + t - b||."""
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, cb - ca @ r.T


def frontalise(mesh3d: np.ndarray) -> np.ndarray:
    """The mesh expressed in its own face frame (x right, y up, z towards the camera), centred."""
    c, r = face_frame(mesh3d)
    return (np.asarray(mesh3d, dtype=np.float64) - c) @ r.T


def derive_mirror_map(mesh3d: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, float]:
    """The mirror vertex map of a (preferably mean, frontalised) 478-point mesh.

    The mesh is reflected about its face frame's x = 0 plane, rigidly re-aligned to itself by
    ICP (nearest vertices), and the reflected vertices are matched one-to-one to the original
    ones (Hungarian assignment; surface and iris vertices separately). Returns the map
    (``map[v]`` = partner of ``v``) and the RMS residual of the match in the mesh's units.
    """
    from scipy.optimize import linear_sum_assignment  # derivation only (tools/): slow to import
    from scipy.spatial import cKDTree

    p = frontalise(mesh3d)
    q = p * np.array([-1.0, 1.0, 1.0])
    tree = cKDTree(p[:SURFACE])
    for _ in range(iterations):
        _, nn = tree.query(q[:SURFACE])
        r, t = _kabsch(q[:SURFACE], p[nn])
        q = q @ r.T + t
    out = np.empty(len(p), dtype=np.int64)
    for lo, hi in ((0, SURFACE), (SURFACE, len(p))):
        cost = np.linalg.norm(q[lo:hi, None, :] - p[None, lo:hi, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        out[lo + rows] = lo + cols
    res = float(np.sqrt(np.mean(np.sum((q - p[out]) ** 2, axis=1))))
    return out, res


@lru_cache(maxsize=None)
def mesh_mirror_map() -> np.ndarray:
    """The stored 478-vertex mirror map (see ``resources/templates/README.md``)."""
    from .template import load_mean_face

    return load_mean_face().mirror


# ----------------------------------------------------------------------------- correspondences
def forehead_points(points68: np.ndarray) -> np.ndarray:
    """M_beta's forehead points (image right to image left; point ``i`` mirrors ``-1 - i``)."""
    from ..parsing.landmark_map import forehead_points as fp

    return fp(np.asarray(points68, dtype=np.float64))


def mirror_correspondence(landmarks: Landmarks) -> tuple[np.ndarray, np.ndarray]:
    """Face points and their mirror partners' positions, both (N,2) in crop pixels.

    Every point is used, the eye and lip contours included: the visible counterpart is warped to
    the region the landmarks (hence M_beta and M_gamma) give the hidden feature, even where the
    landmark stage guessed a shape that differs from the visible one (e.g. a wider-open eye).
    """
    if landmarks.mesh is not None and len(landmarks.mesh) >= SURFACE:
        pts = np.asarray(landmarks.mesh, dtype=np.float64)[:SURFACE, :2]
        return pts, pts[mesh_mirror_map()[:SURFACE]]
    p68 = np.asarray(landmarks.points, dtype=np.float64)
    fh = forehead_points(p68)
    return np.vstack([p68, fh]), np.vstack([p68[ibug68.MIRROR], fh[::-1]])


class MirrorMap:
    """Where each crop pixel's mirror partner on the face lies (see the module docstring)."""

    def __init__(self, landmarks: Landmarks):
        dst, src = mirror_correspondence(landmarks)
        self.warp = PiecewiseAffine(dst, src)
        self.reflection = fit_affine(dst, src)

    def sources(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,2) pixels -> ((N,2) mirror partners, (N,) bool: inside the face triangulation)."""
        src, inside = self.warp.map(xy)
        if not inside.all():
            h = np.concatenate([xy[~inside], np.ones((int((~inside).sum()), 1))], axis=1)
            src[~inside] = h @ self.reflection.T
        return src, inside
