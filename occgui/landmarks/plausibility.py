"""Is a set of 68 landmarks a plausible face? (warnings in ``report.json`` and the GUI)

The 68 points are aligned to the mean face (``resources/templates/mean_face.json``, MediaPipe's
mesh reduced to the 68 iBUG points) by a similarity (Procrustes); the root-mean-square residual, in
inter-ocular distances of the mean face, measures how far the shape is from a face. Clean faces,
including turned heads, stay below :data:`RESIDUAL_WARN` (on the 182 listed natural-occlusion
photos, MediaPipe's and dlib's points reach at most 0.23). A shape can be plausible yet off the face;
the face detector's own four keypoints catch that (:func:`detector_disagreement`).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

#: RMS residual (inter-ocular distances) above which the landmarks are reported as implausible.
RESIDUAL_WARN = 0.3
#: Points this far outside the crop (fraction of its side) are reported.
OUTSIDE_MARGIN = 0.05
#: Mean distance (detector's inter-ocular distances) between the landmarks' eye centres, nose tip and
#: mouth centre and the face detector's own four keypoints above which the two disagree.
DETECTOR_DISAGREEMENT = 0.5


@lru_cache(maxsize=1)
def mean_shape68() -> np.ndarray:
    """The mean face's 68 points, normalised to an inter-ocular (eye-centre) distance of 1."""
    from ..resources import resource_path
    from .correspondence import mesh_to_ibug68

    data = json.loads(resource_path("templates/mean_face.json").read_text())
    p = mesh_to_ibug68(np.asarray(data["points"], dtype=np.float64))
    iod = np.linalg.norm(p[36:42].mean(axis=0) - p[42:48].mean(axis=0))
    return (p - p.mean(axis=0)) / iod


def shape_residual(points68: np.ndarray) -> float:
    """RMS distance (mean-face inter-ocular units) between the points, similarity-aligned, and the mean face."""
    from .alignment import fit_similarity

    p = np.asarray(points68, dtype=np.float64)
    ref = mean_shape68()
    t = fit_similarity(p, ref)
    return float(np.sqrt(((t.apply(p) - ref) ** 2).sum(axis=1).mean()))


def detector_disagreement(points68: np.ndarray, keypoints: np.ndarray) -> float:
    """Mean distance, in the detector's eye distances, between the landmarks' image-left eye centre,
    image-right eye centre, nose tip (30) and mouth centre and the detector's keypoints
    (right eye, left eye, nose tip, mouth centre: :class:`~occgui.results.FaceDetection`)."""
    p = np.asarray(points68, dtype=np.float64)
    k = np.asarray(keypoints, dtype=np.float64)[:4]
    ours = np.stack([p[36:42].mean(axis=0), p[42:48].mean(axis=0), p[30], p[48:68].mean(axis=0)])
    iod = max(float(np.linalg.norm(k[0] - k[1])), 1e-6)
    return float(np.linalg.norm(ours - k, axis=1).mean() / iod)


def check(points68: np.ndarray, crop_size: int, keypoints: np.ndarray | None = None) -> list[str]:
    """One-line warnings about the landmarks (empty when they look like a face). ``keypoints``: the
    face detector's four keypoints in the same frame, when known."""
    p = np.asarray(points68, dtype=np.float64)
    out = []
    m = OUTSIDE_MARGIN * crop_size
    outside = np.flatnonzero((p[:, 0] < -m) | (p[:, 1] < -m) | (p[:, 0] > crop_size + m) | (p[:, 1] > crop_size + m))
    if len(outside):
        out.append(f"{len(outside)} landmark(s) lie outside the face crop (e.g. point {int(outside[0])}): "
                   "check the landmarks and drag them back")
    r = shape_residual(p)
    if r > RESIDUAL_WARN:
        out.append(f"the landmarks do not look like a face (shape residual {r:.2f} eye distances, above "
                   f"{RESIDUAL_WARN}): check them and drag any wrong point")
    if keypoints is not None:
        d = detector_disagreement(p, keypoints)
        if d > DETECTOR_DISAGREEMENT:
            out.append(f"the landmarks are {d:.1f} eye distances away from where the face detector sees the eyes, "
                       "nose and mouth: check them and drag them onto the face")
    return out
