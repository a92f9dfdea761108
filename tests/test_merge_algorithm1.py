"""Algorithm 1 (M_gamma): every branch of both passes on tiny hand-built maps."""
from __future__ import annotations

import numpy as np

from occgui import labels as L
from occgui.parsing.merge import Algorithm1Merge, AlphaOnlyMerge, _pass, algorithm1

O, S = L.SKIN_IDS, L.FEATURE_IDS


def test_skin_pass_branches():
    a = np.array([[L.SKIN, L.OCCLUDER, L.OCCLUDER, L.NOSE]], np.uint8)
    b = np.array([[L.NOSE, L.SKIN, L.BACKGROUND, L.SKIN]], np.uint8)
    c = _pass(a, b, O)
    # line 3-4: A in O -> A ; line 5-6: A not in O and B in O -> B ; line 7: else -> A
    assert c.tolist() == [[L.SKIN, L.SKIN, L.OCCLUDER, L.SKIN]]


def test_feature_pass_branches():
    a = np.array([[L.L_EYE, L.SKIN, L.OCCLUDER, L.SKIN]], np.uint8)
    b = np.array([[L.SKIN, L.NOSE, L.U_LIP, L.BACKGROUND]], np.uint8)
    c = _pass(a, b, S)
    # line 14-15: A in S -> A ; line 16-17: A not in S and B in S -> B ; line 18: else -> A
    assert c.tolist() == [[L.L_EYE, L.NOSE, L.U_LIP, L.SKIN]]


def test_full_algorithm_table():
    rows = [  # (A, B, expected C)
        (L.SKIN, L.L_EYE, L.L_EYE),          # skin where the landmarks put a feature -> feature
        (L.SKIN, L.BACKGROUND, L.SKIN),
        (L.NOSE, L.SKIN, L.SKIN),            # pass 1 turns it to skin, pass 2 keeps skin
        (L.NOSE, L.BACKGROUND, L.NOSE),
        (L.NOSE, L.U_LIP, L.NOSE),           # A's feature wins over B's
        (L.OCCLUDER, L.SKIN, L.SKIN),        # occluder over skin -> skin
        (L.OCCLUDER, L.R_EYE, L.R_EYE),      # occluder over an eye -> eye from the landmarks
        (L.OCCLUDER, L.BACKGROUND, L.OCCLUDER),
        (L.HAIR, L.SKIN, L.SKIN),            # hair over the forehead -> skin (Fig. 2)
        (L.HAIR, L.BACKGROUND, L.HAIR),
        (L.BACKGROUND, L.SKIN, L.SKIN),
        (L.BACKGROUND, L.MOUTH, L.MOUTH),
    ]
    a = np.array([[r[0] for r in rows]], np.uint8)
    b = np.array([[r[1] for r in rows]], np.uint8)
    expected = [[r[2] for r in rows]]
    assert algorithm1(a, b).tolist() == expected
    assert Algorithm1Merge().merge(a, b).tolist() == expected


def test_2d_maps_and_ablation():
    a = np.full((3, 4), L.SKIN, np.uint8)
    a[1, 1:3] = L.OCCLUDER
    b = np.full((3, 4), L.SKIN, np.uint8)
    b[1, 2] = L.L_EYE
    c = algorithm1(a, b)
    assert c[1, 1] == L.SKIN and c[1, 2] == L.L_EYE and c.dtype == np.uint8 and c.shape == a.shape
    assert np.array_equal(AlphaOnlyMerge().merge(a, b), a)


def test_shape_mismatch_is_an_error():
    import pytest

    with pytest.raises(ValueError):
        algorithm1(np.zeros((2, 2), np.uint8), np.zeros((3, 3), np.uint8))
