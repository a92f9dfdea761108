"""M_beta (issue point 5): regions formed by connecting the landmarks, with M_alpha's label ids."""
from __future__ import annotations

import numpy as np

from occgui import labels as L
from occgui.parsing.landmark_map import LandmarkPolygonMap, render_landmark_map


def synthetic_landmarks(size=256) -> np.ndarray:
    """A plausible frontal 68-point layout built from the mirror structure (no detector needed)."""
    s = size / 256.0
    jaw = [(70 + 116 * (1 - np.cos(t)) / 2, 120 + 100 * np.sin(t)) for t in np.linspace(0, np.pi, 17)]
    pts = np.zeros((68, 2))
    pts[:17] = jaw
    pts[17:22] = [(85, 100), (95, 95), (105, 94), (115, 95), (122, 98)]
    pts[22:27] = [(256 - x, y) for x, y in pts[17:22][::-1]]
    pts[27:31] = [(128, 105), (128, 115), (128, 125), (128, 135)]
    pts[31:36] = [(116, 142), (122, 144), (128, 146), (134, 144), (140, 142)]
    pts[36:42] = [(92, 112), (98, 108), (106, 108), (112, 112), (106, 115), (98, 115)]
    pts[42:48] = [(256 - x, y) for x, y in pts[[39, 38, 37, 36, 41, 40]]]
    pts[48:60] = [(108, 170), (115, 165), (122, 163), (128, 164), (134, 163), (141, 165), (148, 170),
                  (141, 177), (134, 180), (128, 181), (122, 180), (115, 177)]
    pts[60:68] = [(112, 170), (122, 168), (128, 168), (134, 168), (144, 170), (134, 173), (128, 174), (122, 173)]
    return pts * s


def test_regions_and_ids():
    p = synthetic_landmarks()
    m = render_landmark_map(p, 256)
    assert m.shape == (256, 256) and m.dtype == np.uint8
    present = set(np.unique(m).tolist())
    for lab in (L.BACKGROUND, L.SKIN, L.L_BROW, L.R_BROW, L.L_EYE, L.R_EYE, L.NOSE, L.U_LIP, L.MOUTH, L.L_LIP):
        assert lab in present, L.NAMES[lab]
    assert L.OCCLUDER not in present and L.HAIR not in present
    # subject's right eye (iBUG 36-41) lies on the image left
    ys, xs = np.nonzero(m == L.R_EYE)
    assert xs.mean() < 128
    ys, xs = np.nonzero(m == L.L_EYE)
    assert xs.mean() > 128
    # eye centre pixel is an eye, nose tip region is nose, chin is skin, corner is background
    assert m[111, 102] == L.R_EYE and m[140, 128] == L.NOSE and m[210, 128] == L.SKIN and m[5, 5] == L.BACKGROUND
    # forehead above the brows is skin
    assert m[80, 128] == L.SKIN


def test_follows_moved_landmarks():
    p = synthetic_landmarks()
    m0 = render_landmark_map(p, 256)
    q = p.copy()
    q[42:48] += (0, -6)
    m1 = render_landmark_map(q, 256)
    assert (m0 != m1).any()
    assert np.nonzero(m1 == L.L_EYE)[0].mean() < np.nonzero(m0 == L.L_EYE)[0].mean() - 4
    assert np.array_equal(LandmarkPolygonMap().render(p, 256), m0)
