"""Tests of occgui.parsing.labelgen: mesh contour walks and the generated clean-crop labels."""
from __future__ import annotations

import numpy as np
import pytest

from occgui import labels as L
from occgui.errors import NoFaceError
from occgui.parsing import labelgen


def test_components_orders_cycles_and_paths():
    cycle = np.array([[3, 1], [1, 7], [7, 9], [9, 3]])
    path = np.array([[20, 21], [22, 21], [22, 23]])
    walks = labelgen._components(np.vstack([cycle, path]))
    assert sorted(map(len, walks)) == [4, 4]
    p = next(w for w in walks if 20 in w or 23 in w)
    assert p in ([20, 21, 22, 23], [23, 22, 21, 20])           # a path starts at an end
    c = next(w for w in walks if 3 in w)
    for a, b in zip(c, c[1:] + c[:1]):                           # consecutive vertices are edges
        assert {a, b} in [set(e) for e in cycle.tolist()]


def test_contour_walks_of_the_mesh():
    w = labelgen.contour_walks()
    assert len(w["face_oval"]) == 1 and len(w["face_oval"][0]) == 36
    assert len(w["lips"]) == 2 and sorted(map(len, w["lips"])) == [20, 20]
    assert len(w["left_eye"]) == 1 and len(w["left_eyebrow"]) == 2


@pytest.fixture(scope="module")
def astronaut_crop():
    """The clean scikit-image astronaut photo, cropped like the pipeline does."""
    skimage_data = pytest.importorskip("skimage.data")
    from occgui.detection.crop import aligned_crop
    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector

    rgb = skimage_data.astronaut()
    det = max(MediaPipeFaceDetector().detect(rgb), key=lambda d: d.area)
    crop = aligned_crop(rgb, det, 256).image
    return crop, labelgen.crop_mesh(crop)


def _centroid(lab, cls):
    ys, xs = np.nonzero(lab == cls)
    assert len(xs), f"class {L.NAMES[cls]} missing"
    return xs.mean(), ys.mean()


def test_generated_labels_have_a_sound_layout(astronaut_crop):
    crop, mesh = astronaut_crop
    lab = labelgen.generate_labels(crop, mesh)
    assert lab.shape == (256, 256) and lab.dtype == np.uint8
    for cls in (L.SKIN, L.L_BROW, L.R_BROW, L.L_EYE, L.R_EYE, L.NOSE, L.U_LIP, L.L_LIP, L.HAIR):
        assert np.count_nonzero(lab == cls) > 10, L.NAMES[cls]
    assert not np.any(lab == L.OCCLUDER)
    (lex, ley), (rex, rey) = _centroid(lab, L.L_EYE), _centroid(lab, L.R_EYE)
    assert lex > rex                                   # subject's left eye on the image's right
    assert _centroid(lab, L.L_BROW)[0] > _centroid(lab, L.R_BROW)[0]
    assert _centroid(lab, L.L_BROW)[1] < ley and _centroid(lab, L.R_BROW)[1] < rey
    nose_y = _centroid(lab, L.NOSE)[1]
    assert max(ley, rey) < nose_y < _centroid(lab, L.U_LIP)[1] < _centroid(lab, L.L_LIP)[1]
    face = np.isin(lab, (L.SKIN,) + L.FEATURE_IDS)
    assert np.count_nonzero(lab == L.SKIN) > 0.5 * np.count_nonzero(face)
    assert face[128, 128]                              # the aligned crop's centre is face
    assert _centroid(lab, L.HAIR)[1] < ley             # hair is mostly above the eyes
    assert np.count_nonzero(lab == L.BACKGROUND) > 0.1 * lab.size


def test_labels_are_deterministic_and_hair_optional(astronaut_crop):
    crop, mesh = astronaut_crop
    a = labelgen.generate_labels(crop)                 # computes its own mesh
    b = labelgen.generate_labels(crop, mesh)
    assert np.array_equal(a, b)
    no_hair = labelgen.generate_labels(crop, mesh, hair=False)
    assert not np.any(no_hair == L.HAIR)
    assert np.array_equal(no_hair, labelgen.face_region_labels(mesh, 256))


def test_feature_polygons_follow_the_mesh(astronaut_crop):
    _, mesh = astronaut_crop
    polys = labelgen.feature_polygons(mesh)
    assert set(polys) == {"face", "nose", "l_brow", "r_brow", "l_eye", "r_eye", "u_lip", "l_lip", "mouth"}
    shifted = labelgen.feature_polygons(mesh + np.array([10.0, 5.0, 0.0]))
    for k in polys:
        assert np.allclose(shifted[k][0], polys[k][0] + [10.0, 5.0])


def test_no_face_raises():
    with pytest.raises(NoFaceError):
        labelgen.generate_labels(np.full((256, 256, 3), 127, np.uint8))


def test_lfw_labels(lfw_dir):
    from occgui.training.parsing.dataset import clean_set_from_photos, list_photos

    photos = list_photos(lfw_dir, "test")[::400][:4]
    cs = clean_set_from_photos(photos)
    assert len(cs) >= 3
    for lab in cs.labels:
        for cls in (L.SKIN, L.L_EYE, L.R_EYE, L.NOSE, L.U_LIP, L.L_LIP, L.L_BROW, L.R_BROW):
            assert np.any(lab == cls)
    assert cs.lmk68.shape[1:] == (68, 2) and cs.crops.shape[1:] == (256, 256, 3)
