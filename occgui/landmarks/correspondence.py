"""The 478-point MediaPipe face mesh -> 68 iBUG points correspondence, derived by this project.

Each iBUG point is a convex combination of a few mesh vertices, stored as a sparse (68 x 478)
weight matrix in ``resources/landmarks/mediapipe478_to_ibug68.json``. ``tools/derive_landmark_
correspondence.py`` derives it from clean LFW photos by fitting, for every iBUG point, non-negative
weights summing to one (over the mesh vertices nearest to it) to dlib's 68-point predictions,
and records the fit's NME; see docs/landmarks.md.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from ..resources import resource_path

CORRESPONDENCE_FILE = "landmarks/mediapipe478_to_ibug68.json"
MESH_VERTICES = 468  # surface vertices of the MediaPipe mesh (478 minus the 10 iris points)


@lru_cache(maxsize=None)
def correspondence_matrix() -> np.ndarray:
    """The (68, 478) weight matrix W; ``W @ mesh[:, :2]`` gives the 68 points."""
    data = json.loads(resource_path(CORRESPONDENCE_FILE).read_text())
    w = np.zeros((68, 478))
    for i, row in enumerate(data["weights"]):
        for v, wt in row:
            w[i, int(v)] = float(wt)
    return w


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(478, 2|3) mesh points -> (68, 2) iBUG points."""
    return correspondence_matrix() @ np.asarray(mesh, dtype=np.float64)[:, :2]


def fit_point_weights(mesh_xy: np.ndarray, target_xy: np.ndarray, *, candidates: int = 12,
                      min_weight: float = 0.03) -> list[tuple[int, float]]:
    """Fit convex weights over the ``candidates`` vertices nearest (on average) to one target point.

    ``mesh_xy``: (N, V, 2) normalised mesh points of N faces; ``target_xy``: (N, 2) the same
    faces' target point. Solves min ||sum_v w_v mesh_v - target||^2, w >= 0, sum w = 1, by NNLS
    with the sum constraint as a heavily weighted extra row.
    """
    dist = np.linalg.norm(mesh_xy - target_xy[:, None, :], axis=2).mean(axis=0)
    dist[MESH_VERTICES:] = np.inf  # iris points move with the gaze: surface vertices only
    cand = np.argsort(dist)[:candidates]
    n = mesh_xy.shape[0]
    a = np.concatenate([mesh_xy[:, cand, 0], mesh_xy[:, cand, 1]], axis=0)  # (2N, C)
    b = np.concatenate([target_xy[:, 0], target_xy[:, 1]])
    lam = 100.0 * np.sqrt(n)
    a = np.vstack([a, lam * np.ones((1, len(cand)))])
    b = np.append(b, lam)
    from scipy.optimize import nnls  # only when deriving weights: scipy.optimize costs ~0.6 s to import

    w, _ = nnls(a, b)
    keep = w >= min_weight
    if not keep.any():
        keep = w == w.max()
    w = np.where(keep, w, 0.0)
    w /= w.sum()
    return [(int(cand[j]), round(float(w[j]), 5)) for j in np.flatnonzero(w)]
