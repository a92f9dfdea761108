"""Warnings for implausible landmarks (``occgui/landmarks/plausibility.py``)."""
from __future__ import annotations

import numpy as np

from occgui.landmarks import plausibility as P


def _face(scale=60.0, centre=(128.0, 128.0)) -> np.ndarray:
    return P.mean_shape68() * scale + np.asarray(centre)


def _keypoints(p: np.ndarray) -> np.ndarray:
    return np.stack([p[36:42].mean(axis=0), p[42:48].mean(axis=0), p[30], p[48:68].mean(axis=0)])


def test_the_mean_face_is_plausible_at_any_similarity():
    p = _face()
    ang = 0.4
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    q = (p - 128) @ rot.T * 1.3 + 128
    assert P.shape_residual(q) < 1e-6
    assert P.check(q, 256, _keypoints(q)) == []


def test_a_scrambled_shape_is_reported():
    p = _face()
    rng = np.random.default_rng(0)
    q = p + rng.normal(scale=40.0, size=p.shape)
    w = P.check(q, 256)
    assert any("do not look like a face" in x for x in w)


def test_points_outside_the_crop_are_reported():
    p = _face()
    p[8] = [128.0, 5000.0]
    assert any("outside the face crop" in x for x in P.check(p, 256))


def test_a_plausible_shape_off_the_face_is_reported():
    """The failure seen on real photos: a whole, face-shaped set of points moved off the face."""
    p = _face(scale=40.0)
    kp = _keypoints(p)
    moved = p + [60.0, 0.0]                                           # 1.5 eye distances to the right
    assert P.shape_residual(moved) < 1e-6
    w = P.check(moved, 256, kp)
    assert len(w) == 1 and "away from where the face detector" in w[0]
