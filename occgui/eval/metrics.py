"""Metrics of the evaluation suite (paper §5) that are not segmentation or image metrics.

* Landmarks: normalised mean error (NME) with the inter-ocular (outer eye corner) normaliser of
  300-W, :func:`occgui.landmarks.ibug68.nme`, re-exported here as :func:`landmark_nme`.
* 3D: similarity (Umeyama) alignment of corresponding points, scaling a face to a fixed eye
  distance, ICP on a reference surface, per-vertex distances and their mean and 90 %-largest
  error (the statistic of the paper's Fig. 4 heat maps).
* Verification (paper Table 1): ROC, equal error rate, normalised AUC and fold-wise accuracy in
  the LFW protocol (threshold chosen on the other folds).
* Embeddings: cosine similarity and Euclidean distance.
* Images: SSIM averaged inside a mask (the de-occlusion L1 and feature IoU are
  :mod:`occgui.eval.deocclusion`'s).

Conventions: distances are in the units of the inputs (millimetres for meshes); rates are
fractions in [0, 1] in the functions and percentages only in reports.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..landmarks.alignment import Similarity, eye_centres, fit_similarity  # noqa: F401  (re-export)
from ..landmarks.ibug68 import nme as landmark_nme  # noqa: F401  (re-export)

#: Mean adult inter-pupillary distance; faces are scaled so their eye-centre distance is this.
EYE_DISTANCE_MM = 63.0
#: The paper's error statistic (Fig. 4): the error that this fraction of the vertices do not exceed.
LARGEST_ERROR_FRACTION = 0.90


# ----------------------------------------------------------------------------- similarity
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


def closest_points_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest point to each ``p`` on the triangle ``(a, b, c)`` (all (N,3)), by the Voronoi-region
    case analysis of Ericson, *Real-Time Collision Detection* §5.1.5, vectorised."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    den = va + vb + vc
    den = np.where(np.abs(den) < 1e-300, 1e-300, den)
    v, w = vb / den, vc / den
    out = a + ab * v[:, None] + ac * w[:, None]                       # interior
    with np.errstate(divide="ignore", invalid="ignore"):
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)              # edge BC
        out[m] = b[m] + (c[m] - b[m]) * t_bc[m, None]
        t_ac = d2 / (d2 - d6)
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)                         # edge AC
        out[m] = a[m] + ac[m] * t_ac[m, None]
        t_ab = d1 / (d1 - d3)
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)                         # edge AB
        out[m] = a[m] + ab[m] * t_ab[m, None]
    m = (d6 >= 0) & (d5 <= d6)
    out[m] = c[m]                                                     # vertex C
    m = (d3 >= 0) & (d4 <= d3)
    out[m] = b[m]                                                     # vertex B
    m = (d1 <= 0) & (d2 <= 0)
    out[m] = a[m]                                                     # vertex A
    return out


class SurfaceIndex:
    """Closest points on a triangle surface (``mesh.vertices``, ``mesh.faces``, e.g. a trimesh).

    ``query(points, exact=False)`` is fast and approximate: a k-d tree over a deterministic dense
    sampling (a barycentric grid of ``per_edge`` steps on every triangle). ``exact=True`` (and
    :meth:`closest`) is exact up to the candidate set: the closest point on each of the
    ``candidates`` triangles whose centroids are nearest to the query, the best of them (exact
    whenever the query lies within a few triangle sizes of the surface, as aligned face vertices
    do). Both also return the unit normal of the triangle the closest point lies on.
    """

    def __init__(self, mesh, per_edge: int = 6, candidates: int = 24):
        from scipy.spatial import cKDTree

        self.vertices = np.asarray(mesh.vertices, dtype=np.float64)
        self.faces = np.asarray(mesh.faces, dtype=np.int64)
        tri = self.vertices[self.faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.normals = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-18)
        k = max(1, int(per_edge))
        bary = np.array([(i / k, j / k, 1.0 - (i + j) / k) for i in range(k + 1) for j in range(k + 1 - i)])
        self.points = np.einsum("bk,fkc->fbc", bary, tri).reshape(-1, 3)
        self.point_face = np.repeat(np.arange(len(self.faces)), len(bary))
        self.tree = cKDTree(self.points)
        self.centroid_tree = cKDTree(tri.mean(axis=1))
        self.candidates = int(min(candidates, len(self.faces)))

    def query(self, points: np.ndarray, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(closest point, distance, normal of its triangle) for every point (N,3)."""
        p = np.asarray(points, dtype=np.float64)
        if not exact:
            d, i = self.tree.query(p)
            return self.points[i], d, self.normals[self.point_face[i]]
        _, idx = self.centroid_tree.query(p, k=self.candidates)
        idx = idx.reshape(len(p), -1)
        k = idx.shape[1]
        f = self.faces[idx.ravel()]
        q = np.repeat(p, k, axis=0)
        cp = closest_points_on_triangles(q, self.vertices[f[:, 0]], self.vertices[f[:, 1]], self.vertices[f[:, 2]])
        d = np.linalg.norm(cp - q, axis=1).reshape(len(p), k)
        best = np.argmin(d, axis=1)
        rows = np.arange(len(p))
        return cp.reshape(len(p), k, 3)[rows, best], d[rows, best], self.normals[idx[rows, best]]

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(exact closest surface point, distance) for every point (N,3)."""
        cp, d, _ = self.query(points, exact=True)
        return cp, d


def _rodrigues(w: np.ndarray) -> np.ndarray:
    th = float(np.linalg.norm(w))
    if th < 1e-15:
        return np.eye(3)
    k = w / th
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * kx + (1 - np.cos(th)) * kx @ kx


def icp(points: np.ndarray, surface: SurfaceIndex, initial: Similarity | None = None, *, scale: bool = False,
        iterations: int = 30, refine: int = 5, trim: float = 2.5, tolerance: float = 1e-6
        ) -> tuple[Similarity, np.ndarray]:
    """Trimmed iterative closest point of 3D ``points`` onto a surface (:class:`SurfaceIndex`).

    Each iteration pairs every transformed point with its closest surface point, drops pairs
    farther than ``trim`` times the median pair distance, and updates the transform: rigidly at
    the initial scale by point-to-plane least squares (Chen & Medioni 1991; converges where
    point-to-point ICP slides), or, with ``scale=True``, by a point-to-point similarity
    (Umeyama). Up to ``iterations`` use the fast sampled surface (until the update is below
    ``tolerance`` relative to the point cloud's size), then ``refine`` use exact closest points.
    Returns the transform (points -> surface frame) and the final per-point distances to the
    surface (:meth:`SurfaceIndex.closest`).
    """
    p = np.asarray(points, dtype=np.float64)
    t = initial or Similarity.identity(3)
    size = float(np.ptp(p, axis=0).max()) or 1.0

    def step(t: Similarity, exact: bool) -> tuple[Similarity, float] | None:
        x = t.apply(p)
        q, d, n = surface.query(x, exact=exact)
        keep = d <= trim * max(float(np.median(d)), 1e-12)
        if keep.sum() < 6:
            return None
        if scale:
            nt = fit_similarity(p[keep], q[keep], scale=True)
            return nt, float(np.abs(nt.apply(p) - x).max()) / size
        xk, qk, nk = x[keep], q[keep], n[keep]
        a = np.hstack([np.cross(xk, nk), nk])
        b = -((xk - qk) * nk).sum(axis=1)
        sol, *_ = np.linalg.lstsq(a, b, rcond=None)
        dr = _rodrigues(sol[:3])
        nt = Similarity(t.s, dr @ t.R, dr @ t.t + sol[3:])
        return nt, float(np.linalg.norm(sol[:3]) + np.linalg.norm(sol[3:]) / size)

    done_fast, done_exact, exact = 0, 0, iterations <= 0
    while done_exact < refine:
        res = step(t, exact)
        if res is None:
            break
        t, change = res
        if exact:
            done_exact += 1
        else:
            done_fast += 1
            exact = change <= tolerance or done_fast >= iterations
    _, dist = surface.closest(t.apply(p))
    return t, dist


# ----------------------------------------------------------------------------- images
def ssim_inside(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean structural similarity (scikit-image defaults: 7x7 uniform windows, on the grey images)
    of two uint8 RGB images over the pixels of ``mask``; NaN for an empty mask."""
    from skimage.metrics import structural_similarity

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return float("nan")
    ga = cv2.cvtColor(np.asarray(a, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(np.asarray(b, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    _, smap = structural_similarity(ga, gb, data_range=255, full=True)
    return float(smap[m].mean())


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
    try:
        from sklearn.metrics import roc_curve
    except ImportError:
        from ..errors import OccguiError

        raise OccguiError("verification metrics need scikit-learn; install the evaluation extra: "
                          "pip install 'occgui[eval]'") from None
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
