"""Unit tests of occgui.metrics on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from occgui import metrics as M


def _squares():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:4, 0:4] = True       # 16 px
    b[2:6, 2:6] = True       # 16 px, overlap 2x2 = 4
    return a, b


def test_binary_iou_known_value():
    a, b = _squares()
    assert M.binary_iou(a, b) == pytest.approx(4 / 28)
    assert M.binary_iou(a, a) == 1.0
    assert M.binary_iou(a, ~a) == 0.0


def test_binary_iou_empty_is_nan_and_shape_checked():
    z = np.zeros((3, 3), bool)
    assert math.isnan(M.binary_iou(z, z))
    with pytest.raises(ValueError):
        M.binary_iou(z, np.zeros((3, 4), bool))


def test_confusion_matrix_and_per_class_iou():
    gt = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 2]])
    cm = M.confusion_matrix(pred, gt, 4)
    assert cm.sum() == 8
    assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[2, 0] == 1 and cm[2, 2] == 3
    iou = M.per_class_iou(pred, gt, 4)
    assert iou[0] == pytest.approx(1 / 3)      # TP 1, FP 1 (a 2 predicted 0), FN 1
    assert iou[1] == pytest.approx(2 / 3)      # TP 2, FP 1
    assert iou[2] == pytest.approx(3 / 4)      # TP 3, FN 1
    assert math.isnan(iou[3])                  # class 3 absent everywhere


def test_ids_outside_range_are_ignored():
    gt = np.array([0, 1, 255])
    pred = np.array([0, 1, 1])
    assert M.confusion_matrix(pred, gt, 2).sum() == 2


def test_mean_iou_skips_nan_and_selects_classes():
    ious = np.array([1.0, 0.5, np.nan, 0.0])
    assert M.mean_iou(ious) == pytest.approx(0.5)
    assert M.mean_iou(ious, classes=[0, 1]) == pytest.approx(0.75)
    assert math.isnan(M.mean_iou(ious, classes=[2]))


def test_group_iou_merges_classes():
    gt = np.array([4, 5, 0, 0])
    pred = np.array([5, 4, 0, 4])
    g = M.group_iou(pred, gt, {"eyes": (4, 5)})
    assert g["eyes"] == pytest.approx(2 / 3)


def test_pooled_accumulators_differ_from_per_image_mean():
    acc = M.BinaryIoUAccumulator()
    big_p = np.ones((10, 10), bool)
    big_g = np.ones((10, 10), bool)
    small_p = np.zeros((10, 10), bool)
    small_g = np.zeros((10, 10), bool)
    small_g[0, 0] = True
    assert acc.add(big_p, big_g) == 1.0
    assert acc.add(small_p, small_g) == 0.0
    assert acc.pooled == pytest.approx(100 / 101)
    assert acc.mean_per_image == pytest.approx(0.5)

    multi = M.IoUAccumulator(3)
    multi.add(np.array([0, 1, 2]), np.array([0, 1, 2]))
    multi.add(np.array([0, 0, 0]), np.array([0, 1, 1]))
    iou = multi.per_class()
    assert iou[0] == pytest.approx(2 / 4) and iou[1] == pytest.approx(1 / 3) and iou[2] == 1.0
    assert multi.miou([1, 2]) == pytest.approx((1 / 3 + 1) / 2)


def test_group_iou_from_confusion_merges_classes():
    gt = np.array([[0, 1, 2], [2, 2, 0]])
    pred = np.array([[0, 2, 1], [2, 0, 0]])
    cm = M.confusion_matrix(pred, gt, 3)
    g = M.group_iou_from_confusion(cm, {"one_two": (1, 2), "zero": (0,), "none": ()})
    # classes 1 and 2 merged: gt {(0,1),(0,2),(1,0),(1,1)}, pred {(0,1),(0,2),(1,0)} -> 3 / 4
    assert g["one_two"] == pytest.approx(3 / 4)
    assert g["one_two"] == pytest.approx(M.group_iou(pred, gt, {"x": (1, 2)})["x"])
    assert g["zero"] == pytest.approx(M.per_class_iou(pred, gt, 3)[0])
    assert math.isnan(g["none"])
