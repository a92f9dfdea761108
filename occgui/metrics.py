"""Generic evaluation metrics (segmentation first; the evaluation suite adds more here).

Conventions: label maps are integer arrays of equal shape; IoU = |P n G| / |P u G|. A class
absent from both prediction and ground truth has an undefined IoU (NaN), which means-of-IoU
skip. "Pooled" metrics accumulate intersections and unions over a whole set before dividing
(the usual dataset-level mIoU); per-image metrics divide per image.
"""
from __future__ import annotations

import cv2
import numpy as np


def binary_iou(pred, gt) -> float:
    """IoU of two boolean masks; NaN when both are empty."""
    p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch {p.shape} vs {g.shape}")
    union = np.count_nonzero(p | g)
    return float("nan") if union == 0 else float(np.count_nonzero(p & g)) / union


def confusion_matrix(pred, gt, num_classes: int) -> np.ndarray:
    """``(C,C)`` int64 counts, rows = ground truth, columns = prediction (ids outside [0,C) ignored)."""
    p, g = np.asarray(pred).ravel().astype(np.int64), np.asarray(gt).ravel().astype(np.int64)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch {np.shape(pred)} vs {np.shape(gt)}")
    ok = (g >= 0) & (g < num_classes) & (p >= 0) & (p < num_classes)
    return np.bincount(g[ok] * num_classes + p[ok], minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU from a confusion matrix: TP / (TP + FP + FN); NaN where the class never occurs."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def per_class_iou(pred, gt, num_classes: int) -> np.ndarray:
    """Per-class IoU of one label map pair (length ``num_classes``, NaN for absent classes)."""
    return iou_from_confusion(confusion_matrix(pred, gt, num_classes))


def mean_iou(ious, classes=None) -> float:
    """Mean of the defined (non-NaN) IoUs of ``classes`` (all when None); NaN if none is defined."""
    v = np.asarray(ious, dtype=np.float64)
    if classes is not None:
        v = v[list(classes)]
    v = v[~np.isnan(v)]
    return float("nan") if v.size == 0 else float(v.mean())


def group_iou(pred, gt, groups: dict) -> dict[str, float]:
    """IoU of unions of classes, e.g. ``{"eyes": (4, 5)}`` -> ``{"eyes": iou}``."""
    p, g = np.asarray(pred), np.asarray(gt)
    return {name: binary_iou(np.isin(p, ids), np.isin(g, ids)) for name, ids in groups.items()}


class IoUAccumulator:
    """Pooled (dataset-level) IoU: add label-map pairs, then read per-class IoU and mIoU."""

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)
        self.cm = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, pred, gt) -> None:
        self.cm += confusion_matrix(pred, gt, self.num_classes)

    def per_class(self) -> np.ndarray:
        return iou_from_confusion(self.cm)

    def miou(self, classes=None) -> float:
        return mean_iou(self.per_class(), classes)


class BinaryIoUAccumulator:
    """Pooled binary IoU (sum of intersections / sum of unions) plus the per-image mean."""

    def __init__(self):
        self.inter = 0
        self.union = 0
        self.per_image: list[float] = []

    def add(self, pred, gt) -> float:
        p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
        i, u = int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g))
        self.inter += i
        self.union += u
        v = float("nan") if u == 0 else i / u
        self.per_image.append(v)
        return v

    @property
    def pooled(self) -> float:
        return float("nan") if self.union == 0 else self.inter / self.union

    @property
    def mean_per_image(self) -> float:
        v = np.asarray(self.per_image, dtype=np.float64)
        v = v[~np.isnan(v)]
        return float("nan") if v.size == 0 else float(v.mean())


def group_iou_from_confusion(cm: np.ndarray, groups: dict) -> dict[str, float]:
    """Pooled IoU of unions of classes from a confusion matrix (rows = ground truth), e.g.
    ``{"lips": (7, 8, 9)}``: confusions *inside* a group count as correct. NaN when a group never occurs."""
    cm = np.asarray(cm, dtype=np.float64)
    out = {}
    for name, ids in groups.items():
        ids = list(ids)
        tp = cm[np.ix_(ids, ids)].sum()
        union = cm[ids, :].sum() + cm[:, ids].sum() - tp
        out[name] = float(tp / union) if union > 0 else float("nan")
    return out


def hull_mask(points: np.ndarray, shape) -> np.ndarray:
    """Boolean mask of shape ``shape`` (``size`` or ``(rows, cols)``) filled inside the convex hull of
    ``points`` (``(N, 2)`` pixel coordinates, rasterised at 1/8 pixel)."""
    shape = (shape, shape) if np.isscalar(shape) else tuple(shape)[:2]
    hull = cv2.convexHull(np.round(np.asarray(points, dtype=np.float64)[:, :2] * 8).astype(np.int32))
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, hull, 1, lineType=cv2.LINE_8, shift=3)
    return m.astype(bool)


def face_region(points68: np.ndarray, size: int) -> np.ndarray:
    """Boolean mask of the face in a ``size`` x ``size`` crop (the false-occluder-area region of
    ``occgui eval real`` and of the parser calibration): the hull of the 68 points with the brows
    raised by a third of the brow-to-chin height (up to about the hairline)."""
    p = np.asarray(points68, dtype=np.float64)
    up = p[8] - p[17:27].mean(axis=0)
    raised = p[17:27] - up / 3.0
    return hull_mask(np.vstack([p, raised]), size)
