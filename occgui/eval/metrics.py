"""Metrics of the evaluation suite (paper §5) that are not segmentation or image metrics.

* Landmarks: normalised mean error (NME) with the inter-ocular (outer eye corner) normaliser of
  300-W, :func:`occgui.landmarks.ibug68.nme`, re-exported here as :func:`landmark_nme`.
* 3D: similarity (Umeyama) alignment of corresponding points, scaling a face to a fixed eye
  distance, ICP on a reference surface, per-vertex distances and their mean and 90 %-largest
  error (the statistic of the paper's Fig. 4 heat maps).
* Verification (paper Table 1): ROC, equal error rate, normalised AUC and fold-wise accuracy in
  the LFW protocol (threshold chosen on the other folds).
* Embeddings: cosine similarity and Euclidean distance.

Conventions: distances are in the units of the inputs (millimetres for meshes); rates are
fractions in [0, 1] in the functions and percentages only in reports.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..landmarks.ibug68 import nme as landmark_nme  # noqa: F401  (re-export)

#: Mean adult inter-pupillary distance; faces are scaled so their eye-centre distance is this.
EYE_DISTANCE_MM = 63.0
#: The paper's error statistic (Fig. 4): the error that this fraction of the vertices do not exceed.
LARGEST_ERROR_FRACTION = 0.90


# ----------------------------------------------------------------------------- similarity
@dataclass(frozen=True)
class Similarity:
    """``x -> s * R @ x + t`` in 2D or 3D."""

    s: float
    R: np.ndarray
    t: np.ndarray

    @classmethod
    def identity(cls, dim: int = 3) -> "Similarity":
        return cls(1.0, np.eye(dim), np.zeros(dim))

    def apply(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return self.s * p @ self.R.T + self.t

    def then(self, other: "Similarity") -> "Similarity":
        """The transform that applies ``self`` first, then ``other``."""
        return Similarity(other.s * self.s, other.R @ self.R, other.s * other.R @ self.t + other.t)

    def matrix(self) -> np.ndarray:
        d = len(self.t)
        m = np.eye(d + 1)
        m[:d, :d] = self.s * self.R
        m[:d, d] = self.t
        return m


def fit_similarity(src: np.ndarray, dst: np.ndarray, *, weights: np.ndarray | None = None,
                   scale: bool = True) -> Similarity:
    """Least-squares similarity (Umeyama 1991) taking ``src`` onto ``dst`` (both (N, d)), no reflection.

    ``weights`` (N,) non-negative per-point weights; ``scale=False`` gives a rigid transform.
    """
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) < a.shape[1]:
        raise ValueError(f"need matching (N, d) point sets with N >= d, got {a.shape} and {b.shape}")
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / max(w.sum(), 1e-12)
    ma, mb = w @ a, w @ b
    ac, bc = a - ma, b - mb
    cov = (bc * w[:, None]).T @ ac
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(a.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    r = u @ np.diag(d) @ vt
    var_a = float(w @ (ac ** 2).sum(axis=1))
    s = float((sig * d).sum() / max(var_a, 1e-18)) if scale else 1.0
    return Similarity(s, r, mb - s * r @ ma)


def eye_centres(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left (36-41) and image-right (42-47) eyes of 68 iBUG points (2D or 3D)."""
    p = np.asarray(landmarks68, dtype=np.float64)
    return p[36:42].mean(axis=0), p[42:48].mean(axis=0)


def eye_distance(landmarks68: np.ndarray) -> float:
    """Distance between the two eye centres."""
    a, b = eye_centres(landmarks68)
    return float(np.linalg.norm(a - b))


def scale_to_eye_distance(vertices: np.ndarray, landmarks68: np.ndarray,
                          target: float = EYE_DISTANCE_MM) -> tuple[np.ndarray, float]:
    """Scale ``vertices`` (about the landmarks' centroid) so the eye-centre distance of
    ``landmarks68`` (the same object's points) becomes ``target``; returns (vertices, factor)."""
    f = target / max(eye_distance(landmarks68), 1e-12)
    c = np.asarray(landmarks68, dtype=np.float64).mean(axis=0)
    return (np.asarray(vertices, dtype=np.float64) - c) * f + c, f


# ----------------------------------------------------------------------------- 3D errors
def error_stats(distances: np.ndarray) -> dict[str, float]:
    """Mean, median, 90 %-largest (see :data:`LARGEST_ERROR_FRACTION`) and max of distances."""
    d = np.asarray(distances, dtype=np.float64).ravel()
    if d.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "p90": float("nan"), "max": float("nan")}
    return {"mean": float(d.mean()), "median": float(np.median(d)),
            "p90": float(np.quantile(d, LARGEST_ERROR_FRACTION)), "max": float(d.max())}


def aligned_vertex_distances(moving: np.ndarray, reference: np.ndarray, *, scale: bool = True,
                             weights: np.ndarray | None = None) -> tuple[np.ndarray, Similarity]:
    """Per-vertex distances between two meshes with the same vertex order after aligning
    ``moving`` onto ``reference`` with a least-squares similarity (rigid if ``scale=False``)."""
    t = fit_similarity(moving, reference, weights=weights, scale=scale)
    return np.linalg.norm(t.apply(moving) - np.asarray(reference, dtype=np.float64), axis=1), t


def closest_surface_points(points: np.ndarray, mesh) -> tuple[np.ndarray, np.ndarray]:
    """Closest points on a ``trimesh.Trimesh`` surface and their distances (points (N,3))."""
    import trimesh

    closest, dist, _ = trimesh.proximity.closest_point(mesh, np.asarray(points, dtype=np.float64))
    return np.asarray(closest), np.asarray(dist)


def icp(points: np.ndarray, mesh, initial: Similarity | None = None, *, scale: bool = False,
        iterations: int = 30, trim: float = 2.5, tolerance: float = 1e-6) -> tuple[Similarity, np.ndarray]:
    """Trimmed iterative closest point of ``points`` onto the surface of ``mesh`` (a trimesh).

    Each iteration pairs every transformed point with its closest surface point, drops pairs
    farther than ``trim`` times the median pair distance, and refits a rigid (or similarity,
    ``scale=True``) transform of the original points to the kept targets. Returns the transform
    (points -> mesh frame) and the final per-point distances to the surface (all points).
    """
    p = np.asarray(points, dtype=np.float64)
    t = initial or Similarity.identity(p.shape[1])
    prev = np.inf
    for _ in range(max(1, iterations)):
        moved = t.apply(p)
        target, dist = closest_surface_points(moved, mesh)
        keep = dist <= trim * max(float(np.median(dist)), 1e-12)
        if keep.sum() < 4:
            break
        if scale:
            t = fit_similarity(p[keep], target[keep], scale=True)
        else:
            # rigid refinement at the initial scale: fit R, t to the pre-scaled points
            base = Similarity(t.s, np.eye(p.shape[1]), np.zeros(p.shape[1]))
            r = fit_similarity(base.apply(p[keep]), target[keep], scale=False)
            t = Similarity(t.s, r.R, r.t)
        err = float(dist[keep].mean())
        if abs(prev - err) <= tolerance * max(err, 1e-12):
            break
        prev = err
    _, dist = closest_surface_points(t.apply(p), mesh)
    return t, dist


# ----------------------------------------------------------------------------- embeddings
def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def euclidean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64).ravel() - np.asarray(b, dtype=np.float64).ravel()))


# ----------------------------------------------------------------------------- verification
def roc(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of similarity ``scores`` (higher = more alike) for pairs labelled ``same`` (bool):
    false-positive rates, true-positive rates and thresholds (scikit-learn's ``roc_curve``)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(np.asarray(same, dtype=bool), np.asarray(scores, dtype=np.float64),
                              drop_intermediate=False)
    return fpr, tpr, thr


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The rate where false accepts equal false rejects (``fpr == 1 - tpr``), linearly interpolated."""
    fpr = np.asarray(fpr, dtype=np.float64)
    fnr = 1.0 - np.asarray(tpr, dtype=np.float64)
    diff = fnr - fpr                           # decreasing from 1 to -1 along the curve
    i = int(np.flatnonzero(diff <= 0)[0]) if np.any(diff <= 0) else len(diff) - 1
    if i == 0 or diff[i] == diff[i - 1]:
        return float((fpr[i] + fnr[i]) / 2)
    a = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + a * (fpr[i] - fpr[i - 1]))


def area_under_curve(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids), in [0, 1]; the paper's nAUC is this in percent."""
    return float(np.trapezoid(tpr, fpr))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising verification accuracy (``score >= threshold`` means "same")."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    cand = np.unique(s)
    cand = np.concatenate([cand, [cand[-1] + 1e-9]]) if len(cand) else np.array([0.0])
    order = np.argsort(s)
    ss, yy = s[order], y[order]
    # accuracy(threshold=c) = (#same with s >= c + #different with s < c) / n
    idx = np.searchsorted(ss, cand, side="left")
    pos_below = np.concatenate([[0], np.cumsum(yy)])[idx]
    neg_below = idx - pos_below
    correct = (yy.sum() - pos_below) + neg_below
    return float(cand[int(np.argmax(correct))])


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((np.asarray(scores) >= threshold) == np.asarray(same, dtype=bool)))


def verification_metrics(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """LFW-protocol verification results (paper Table 1) over the folds present in ``folds``.

    Per test fold: accuracy at the threshold that maximises accuracy on the *other* folds (on the
    fold itself when only one fold is given, then flagged ``threshold_from_same_fold``), 100 % - EER
    and nAUC computed on the fold's own pairs. Returns per-fold values and their mean and
    (population) standard deviation, all in percent, and the pooled ROC.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    f = np.asarray(folds)
    ids = sorted(set(f.tolist()))
    per = {"accuracy": [], "100-EER": [], "nAUC": [], "threshold": [], "pairs": []}
    for k in ids:
        test = f == k
        train = ~test if len(ids) > 1 else test
        thr = best_threshold(s[train], y[train])
        per["threshold"].append(thr)
        per["accuracy"].append(100.0 * accuracy_at(s[test], y[test], thr))
        if y[test].all() or not y[test].any():
            per["100-EER"].append(float("nan"))
            per["nAUC"].append(float("nan"))
        else:
            fpr, tpr, _ = roc(s[test], y[test])
            per["100-EER"].append(100.0 * (1.0 - equal_error_rate(fpr, tpr)))
            per["nAUC"].append(100.0 * area_under_curve(fpr, tpr))
        per["pairs"].append(int(test.sum()))
    out = {"folds": ids, "per_fold": per, "threshold_from_same_fold": len(ids) == 1}
    for key in ("accuracy", "100-EER", "nAUC"):
        v = np.array(per[key], dtype=np.float64)
        out[key] = {"mean": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"),
                    "std": float(np.nanstd(v)) if np.isfinite(v).any() else float("nan")}
    if y.any() and not y.all():
        fpr, tpr, _ = roc(s, y)
        out["pooled"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                         "100-EER": 100.0 * (1.0 - equal_error_rate(fpr, tpr)),
                         "nAUC": 100.0 * area_under_curve(fpr, tpr)}
    return out
