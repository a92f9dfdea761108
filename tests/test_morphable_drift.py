"""Issue 15 point 9: the fit's occlusion-aware settings (occluded landmark weight, image terms
that leave the shape alone), the drift harness (occgui.eval.fit_drift) and Table 1's protocol
with the identity coefficients (occgui.eval.verify_fit)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from occgui import labels as L
from occgui.errors import OccguiError
from occgui.morphable import CoefficientLayout, Coefficients, Pose, load_default_model


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def test_occluded_landmarks_marks_points_on_the_dilated_occluder():
    from occgui.morphable.fit import occluded_landmarks

    alpha = np.full((64, 64), L.SKIN, np.uint8)
    alpha[40:, :] = L.OCCLUDER
    pts = np.zeros((68, 2))
    pts[:, 0] = 30
    pts[:34, 1] = 10          # far above
    pts[34:60, 1] = 50        # on the occluder
    pts[60:, 1] = 38          # 2 px above it: hidden with a 3 px margin only
    pts[0] = (500, 500)       # outside the image: not hidden
    plain = occluded_landmarks(pts, alpha, 0.0)
    assert not plain[:34].any() and plain[34:60].all() and not plain[60:].any()
    wide = occluded_landmarks(pts, alpha, 3.0)
    assert wide[34:].all() and not wide[:34].any()


def test_initialisation_ignores_landmarks_with_zero_weight(model):
    from occgui.morphable.init import initialise_from_landmarks

    pose = Pose(math.radians(5), math.radians(-20), math.radians(3), 1.1, 112.0, 120.0)
    pts = pose.project(model.mean_shape[model.landmarks])
    bad = pts.copy()
    bad[48:68] += (0.0, 25.0)                       # the mouth guessed 25 px too low
    w = np.ones(68)
    w[48:68] = 0.0

    def err(p):
        return np.degrees(np.abs(p.as_array()[:3] - pose.as_array()[:3])).max()

    p_all, *_ = initialise_from_landmarks(model, bad)
    p_w, ident, _ = initialise_from_landmarks(model, bad, point_weights=w)
    assert err(p_w) < 0.5 and abs(p_w.scale - pose.scale) < 0.01 * pose.scale
    assert err(p_all) > 2 * err(p_w) + 0.5
    assert np.abs(ident).max() < 0.5


def _target(model, size=128):
    from occgui.morphable.fit import FitTarget

    pose = Pose(0.0, 0.2, 0.0, 0.55, 64.0, 66.0)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (size, size, 3)).astype(np.uint8)      # texture: the image terms have gradients
    return FitTarget(img, pose.project(model.mean_shape[model.landmarks])), pose


def test_image_terms_leave_the_shape_alone_when_photometric_shape_is_off(model):
    from occgui.morphable.fit import FitSettings, fit_morphable
    from occgui.morphable.losses import LossWeights

    target, pose = _target(model)
    layout = CoefficientLayout.of(model)
    start = Coefficients.neutral(layout, pose)
    w = LossWeights(landmark=0.0, regularisation=0.0)           # only the image terms act
    common = dict(iterations=8, image_iterations=1, use_identity=False, weights=w)
    off = fit_morphable(model, target, start.to_vector(), FitSettings(photometric_shape=False, **common))
    on = fit_morphable(model, target, start.to_vector(), FitSettings(photometric_shape=True, **common))
    assert np.abs(off.coefficients.identity).max() < 1e-6 and np.abs(off.coefficients.expression).max() < 1e-6
    assert np.abs(on.coefficients.identity).max() > 1e-3
    assert not np.allclose(off.coefficients.pose.as_array(), pose.as_array())    # the pose still moves


def test_occluded_landmark_weight_changes_the_fit_only_with_an_occluder(model):
    from occgui.morphable.fit import FitSettings, FitTarget, fit_morphable

    target, _ = _target(model)
    lm = np.asarray(target.landmarks).copy()
    lm[48:68, 1] += 12.0                              # the mouth points guessed too low ...
    alpha = np.full((128, 128), L.SKIN, np.uint8)
    y0 = int(lm[48:68, 1].min()) - 2
    alpha[y0:, :] = L.OCCLUDER                        # ... under an occluder
    from occgui.morphable.losses import LossWeights

    st = dict(iterations=10, image_iterations=0, weights=LossWeights(photometric=0.0))  # landmarks + prior only
    occ = FitTarget(target.image, lm, alpha_labels=alpha)
    free = FitTarget(target.image, lm)
    full = fit_morphable(model, occ, settings=FitSettings(occluded_landmark_weight=1.0, **st))
    low = fit_morphable(model, occ, settings=FitSettings(occluded_landmark_weight=0.05, **st))
    none = fit_morphable(model, free, settings=FitSettings(occluded_landmark_weight=0.05, **st))
    ref = fit_morphable(model, free, settings=FitSettings(occluded_landmark_weight=1.0, **st))
    assert np.allclose(none.vertices, ref.vertices)  # no M_alpha: the setting does nothing
    truth = np.asarray(target.landmarks)
    # the down-weighted fit follows the visible points and leaves the guessed mouth alone
    assert np.linalg.norm(low.landmarks2d[48:68] - truth[48:68], axis=1).mean() < \
        np.linalg.norm(full.landmarks2d[48:68] - truth[48:68], axis=1).mean() - 2.0


def test_drift_stats_is_zero_up_to_a_similarity_and_measures_a_bump(model):
    from occgui.eval.fit_drift import drift_stats
    from occgui.eval.metrics import scale_to_eye_distance

    v = model.mean_shape.astype(np.float64)
    c, s = math.cos(0.3), math.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    moved = 1.7 * v @ rot.T + (3.0, -2.0, 5.0)
    assert drift_stats(v, moved, model.landmarks)["mean"] < 1e-6
    scaled, f = scale_to_eye_distance(v, v[model.landmarks])
    bump = v.copy()
    bump[:, 2] += 2.0 * (np.arange(len(v)) % 2 == 0)  # every other vertex 2 mm forwards
    d = drift_stats(v, bump, model.landmarks)
    assert 0.7 * f < d["mean"] < 1.3 * f              # about 1 mm (x the eye-distance scale) on average
    assert drift_stats(v, bump, model.landmarks, np.arange(0, len(v), 2))["mean"] < 1e-6


def test_fit_cases_round_trip_through_npz(tmp_path: Path, model):
    from occgui.eval.fit_drift import CLEAN, FitCase, load_cases, save_cases

    target, _ = _target(model, size=32)
    alpha = np.zeros((32, 32), np.uint8)
    alpha[:4] = L.OCCLUDER
    from occgui.morphable.fit import FitTarget

    cases = [FitCase("A/A_0001.jpg", CLEAN, "full", FitTarget(target.image, target.landmarks)),
             FitCase("A/A_0001.jpg", "surgical_mask", "raw", FitTarget(target.image, target.landmarks, alpha, alpha))]
    save_cases(tmp_path / "c.npz", cases)
    back = load_cases(tmp_path / "c.npz")
    assert [(c.photo, c.family, c.variant) for c in back] == [(c.photo, c.family, c.variant) for c in cases]
    assert back[0].target.alpha_labels is None and np.array_equal(back[1].target.alpha_labels, alpha)
    assert np.array_equal(back[1].target.image, target.image)
    assert np.allclose(back[1].target.landmarks, target.landmarks)


def test_identity_coefficient_verification_on_a_constructed_case():
    """One fold of 8 pairs (the threshold is then chosen on it: exact); clean features separate
    the people perfectly, person C's occluded fit looks like D, and one photo has no occluded fit
    (scored -1)."""
    from occgui.eval.lfw import Pair
    from occgui.eval.verify_fit import drops, evaluate, pair_scores

    base = {n: np.eye(6)[i] + 0.05 for i, n in enumerate("ABCDEF")}
    feats = {}
    for n, v in base.items():
        feats[f"{n}/{n}_0001.jpg"] = {"clean": v, "occluded_full": v}
        feats[f"{n}/{n}_0002.jpg"] = {"clean": v + 0.1, "occluded_full": v + 0.1}
    feats["C/C_0002.jpg"]["occluded_full"] = base["D"]
    del feats["E/E_0002.jpg"]["occluded_full"]

    def pair(fold, same, a, b):
        return Pair(fold, same, Path(f"x/{a[0]}/{a}.jpg"), Path(f"x/{b[0]}/{b}.jpg"))

    pairs = [pair(0, True, "A_0001", "A_0002"), pair(0, True, "C_0001", "C_0002"),
             pair(0, False, "A_0001", "B_0001"), pair(0, False, "C_0001", "E_0001"),
             pair(0, True, "E_0001", "E_0002"), pair(0, True, "F_0001", "F_0002"),
             pair(0, False, "D_0001", "F_0001"), pair(0, False, "B_0002", "E_0001")]
    sc = pair_scores(pairs, feats, "full", "occluded")
    assert sc[4] == -1.0 and sc[1] < 0.5 and sc[0] > 0.9
    assert np.allclose(pair_scores(pairs, feats, "full", "clean")[[0, 1, 5]], sc[[0, 0, 5]], atol=0.05)
    rep = {"results": evaluate(pairs, feats, ("full",))}
    assert rep["results"]["identity_full/clean"]["accuracy"]["mean"] == 100.0
    assert rep["results"]["identity_full/occluded"]["accuracy"]["mean"] == 75.0   # C and E's pairs fail
    assert drops(rep)["identity_full"] > 0


def test_verify_fit_command_refuses_bad_input_in_one_line(tmp_path: Path, capsys):
    from occgui.cli import main

    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 1\nAlice 1 2\nAlice 1 Bob 1\n")
    faces = tmp_path / "faces"
    faces.mkdir()
    occ = tmp_path / "occluders"
    occ.mkdir()
    common = ["eval", "verify-fit", "--faces", str(faces), "--pairs", str(pairs), "--occluders", str(occ),
              "-o", str(tmp_path / "out")]
    assert main(common + ["--variants", "full,blurry"]) != 0
    assert "--variants takes full and/or raw" in capsys.readouterr().err
    assert main(common) != 0                                   # no photo of the pairs exists
    err = capsys.readouterr().err
    assert "no pair of" in err and "Traceback" not in err


def test_iout_landmarks_setting_changes_the_backend_id():
    from dataclasses import replace

    from occgui.errors import OccguiError
    from occgui.geometry.morphable_mesh import MorphableGeometry
    from occgui.geometry.settings import MorphableSettings

    class Ctx:
        def __init__(self, st):
            self.settings, self.device = st, "cpu"

    fast = MorphableSettings(iterations=3, image_iterations=0)
    assert fast.iout_landmarks == "all"   # the default since the held-out measurement (docs/morphable.md)
    versions = {m: MorphableGeometry(Ctx(replace(fast, iout_landmarks=m))).version
                for m in ("off", "hidden", "all", "blend")}
    assert "iolm" not in versions["off"] and len(set(versions.values())) == 4
    assert versions["hidden"].endswith("+iolm-hidden")
    with pytest.raises(OccguiError, match="geometry.iout_landmarks"):
        MorphableGeometry(Ctx(replace(fast, iout_landmarks="some")))


def test_iout_landmarks_redetects_on_the_sample_and_replaces_only_hidden_points():
    from PIL import Image

    from occgui.errors import OccguiError
    from occgui.eval.fit_drift import FitCase, redetect_cases
    from occgui.geometry.morphable_mesh import hidden_landmarks, iout_landmarks
    from occgui.morphable.fit import FitTarget
    from occgui.resources import sample_photo

    rgb = np.ascontiguousarray(np.asarray(Image.open(sample_photo()).convert("RGB")))
    h, w = rgb.shape[:2]
    given = np.zeros((68, 2))                      # no landmark stage here: any 68 points will do
    detected = iout_landmarks(rgb, given, None, "all")
    assert detected.shape == (68, 2) and np.isfinite(detected).all()
    assert (detected[:, 0] > 0).all() and (detected[:, 0] < w).all() and (detected[:, 1] < h).all()
    assert np.array_equal(iout_landmarks(rgb, given, None, "off"), given)
    assert np.array_equal(iout_landmarks(rgb, given, None, "hidden"), given)   # no M_alpha: nothing hidden

    stage = detected + 7.0                         # the landmark stage's points, off by 7 px
    alpha = np.full((h, w), L.SKIN, np.uint8)
    alpha[int(stage[48:68, 1].min()):, :] = L.OCCLUDER   # an occluder over the mouth and chin
    hidden = hidden_landmarks(stage, alpha)
    assert 0 < hidden.sum() < 68 and not hidden[17:27].any() and not hidden[36:48].any() \
        and hidden[48:68].all()
    out = iout_landmarks(rgb, stage, alpha, "hidden")
    np.testing.assert_allclose(out[hidden], detected[hidden], atol=1e-9)
    assert np.array_equal(out[~hidden], stage[~hidden])
    np.testing.assert_allclose(iout_landmarks(rgb, stage, alpha, "all"), detected, atol=1e-9)
    moved = np.zeros(68, bool)
    moved[[50, 10]] = True                         # points the user moved stay where they are
    kept = iout_landmarks(rgb, stage, alpha, "all", keep=moved)
    assert np.array_equal(kept[moved], stage[moved]) and np.allclose(kept[~moved], detected[~moved])
    blend = iout_landmarks(rgb, stage, alpha, "blend")
    np.testing.assert_allclose(blend[hidden], detected[hidden], atol=1e-9)
    np.testing.assert_allclose(blend[~hidden], detected[~hidden] + 3.5, atol=1e-9)

    blank = np.zeros((128, 128, 3), np.uint8)      # no face on I_out: the given points stay
    assert np.array_equal(iout_landmarks(blank, given + 3, None, "all"), given + 3)
    with pytest.raises(OccguiError, match="iout_landmarks"):
        iout_landmarks(rgb, given, None, "every")

    # the drift harness applies the backend's function
    side = min(h, w)
    t = FitTarget(image=rgb[:side, :side].copy(), landmarks=stage, alpha_labels=alpha[:side, :side])
    (case,) = redetect_cases([FitCase("p", "hand_over_eye", "full", t)], "hidden")
    np.testing.assert_allclose(case.target.landmarks,
                               iout_landmarks(t.image, stage, t.alpha_labels, "hidden"), atol=1e-9)


def test_edited_points_are_the_ones_the_user_moved():
    from occgui.geometry.morphable_mesh import edited_points
    from occgui.results import Landmarks

    det = np.arange(136, dtype=np.float64).reshape(68, 2)
    assert edited_points(Landmarks(det.copy(), None, "mediapipe", detected_points=det)) is None
    moved = det.copy()
    moved[[3, 40]] += 5.0
    e = edited_points(Landmarks(moved, None, "mediapipe", edited=True, detected_points=det))
    assert e.sum() == 2 and e[3] and e[40]
    assert edited_points(Landmarks(moved, None, "file", edited=True)).all()   # supplied by the user


def test_verify_fit_fits_what_the_backend_fits_with_the_iout_landmarks(tmp_path: Path, model, monkeypatch):
    """``eval verify-fit`` re-detects Eq. 12's landmarks on I_out as the morphable backend does (its
    setting by default), and keeps the fits of each mode apart."""
    import json

    import occgui.geometry.morphable_mesh as mm
    from occgui.eval.fit_drift import CLEAN, FitCase, save_cases
    from occgui.eval.verify_fit import VerifyFitSettings, run
    from occgui.geometry.settings import MorphableSettings
    from occgui.morphable.fit import FitSettings

    faces = tmp_path / "faces"
    names = ["Alice/Alice_0001.jpg", "Alice/Alice_0002.jpg", "Bob/Bob_0001.jpg"]
    for n in names:
        (faces / n).parent.mkdir(parents=True, exist_ok=True)
        (faces / n).write_bytes(b"not read: the fit inputs are collected already")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 1\nAlice 1 2\nAlice 1 Bob 1\n")
    out = tmp_path / "out"
    out.mkdir()
    target, _ = _target(model, size=64)
    save_cases(out / "cases.npz", [FitCase(n, CLEAN, "full", target) for n in names])
    (out / "cases.json").write_text(json.dumps({"seed": 0, "variants": ["full"], "families": [], "photos": names}))
    seen = []

    def spy(t, mode, detect=None, keep=None, *, dense=False, stage_mesh=None):
        seen.append(mode)
        assert dense is False                                 # dense_weight 0: no dense target
        return t

    monkeypatch.setattr(mm, "redetected_target", spy)
    fast = FitSettings(iterations=2, image_iterations=0, use_identity=False)
    common = dict(faces=faces, pairs=pairs, occluders=tmp_path, out=out, fit=fast, quiet=True)
    rep = run(VerifyFitSettings(**common))
    default = MorphableSettings().iout_landmarks
    assert seen == [default] * 3 and rep["settings"]["iout_landmarks"] == default
    seen.clear()
    rep = run(VerifyFitSettings(**common, iout_landmarks="off"))
    assert seen == ["off"] * 3, "another mode's fits are not reused"
    assert len(list(out.glob("fits-*.json"))) == 2
    assert rep["settings"]["expression_prior"] == ""          # the backend's default: off
    seen.clear()
    rep = run(VerifyFitSettings(**common, iout_landmarks="off", expression_prior="learned"))
    assert seen == ["off"] * 3, "a prior's fits are not those without it"
    assert rep["settings"]["expression_prior"].endswith("ict_face_reduced_expression_prior.npz")
    assert len(list(out.glob("fits-*.json"))) == 3
    with pytest.raises(Exception, match="--iout-landmarks must be one of"):
        run(VerifyFitSettings(**common, iout_landmarks="sideways"))


def test_dense_target_comes_from_mediapipe_on_iout_and_enters_the_backend_id():
    """geometry.dense_weight (not in the paper): MediaPipe's mesh on I_out becomes the fit's dense
    target when the mode re-detects, the landmark stage's mesh otherwise, none when disabled."""
    from dataclasses import replace

    from PIL import Image

    from occgui.geometry.morphable_mesh import MorphableGeometry, iout_detection, redetected_target
    from occgui.geometry.settings import MorphableSettings
    from occgui.morphable.fit import FitTarget
    from occgui.resources import sample_photo

    rgb = np.asarray(Image.open(sample_photo()).convert("RGB"))
    side = min(rgb.shape[:2])
    img = np.ascontiguousarray(rgb[:side, :side])
    found = iout_detection(img)
    assert found is not None and found.mesh.shape == (478, 3)
    t = FitTarget(image=img, landmarks=found.points + 5.0)
    stage_mesh = found.mesh + 9.0
    assert redetected_target(t, "all").dense is None                                  # off unless asked
    on = redetected_target(t, "all", dense=True, stage_mesh=stage_mesh)
    np.testing.assert_allclose(on.dense, found.mesh, atol=1e-9)                       # I_out's mesh
    np.testing.assert_allclose(on.landmarks, found.points, atol=1e-9)                 # one detection for both
    off = redetected_target(t, "off", dense=True, stage_mesh=stage_mesh)
    assert np.array_equal(off.dense, stage_mesh) and np.array_equal(off.landmarks, t.landmarks)
    blank = FitTarget(image=np.zeros((128, 128, 3), np.uint8), landmarks=np.zeros((68, 2)))
    assert redetected_target(blank, "all", dense=True).dense is None                  # no face: no target

    class Ctx:
        def __init__(self, st):
            self.settings, self.device = st, "cpu"

    fast = MorphableSettings(iterations=3, image_iterations=0)
    assert fast.dense_weight == 0.0 and "dense" not in MorphableGeometry(Ctx(fast)).version
    geo = MorphableGeometry(Ctx(replace(fast, dense_weight=1.0)))
    assert geo.version.endswith("+dense1") and geo.fitter.dense_map is not None
    with pytest.raises(OccguiError, match="dense_weight"):
        MorphableGeometry(Ctx(replace(fast, dense_weight=-1.0)))
