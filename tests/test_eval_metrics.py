"""Evaluation-suite metrics on constructed inputs with known answers (issue point 8): IoU of
known masks, NME of shifted points, similarity/ICP alignment recovering known transforms,
EER/AUC/accuracy on toy score sets, SSIM, the renderer, protocol parsing, caching and seeds."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from occgui import labels as L
from occgui.eval import harness as H
from occgui.eval import lfw
from occgui.eval import metrics as M
from occgui.eval import report as R
from occgui.eval.render import (
    OrthoCamera,
    front_facing,
    rasterize_view,
    render_mesh,
    rotation_yaw_pitch_roll,
    texel_raster,
)
from occgui.landmarks import ibug68


def _rotation(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


# ----------------------------------------------------------------------------- landmarks
def test_nme_of_shifted_points_is_shift_over_interocular():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 200, size=(68, 2))
    iod = ibug68.interocular(gt)
    assert M.landmark_nme(gt + [3.0, 4.0], gt) == pytest.approx(5.0 / iod)
    assert M.landmark_nme(gt, gt) == 0.0


def test_eye_distance_scaling_reaches_63_mm():
    rng = np.random.default_rng(2)
    lm = rng.normal(size=(68, 3)) * 20
    scaled, f = M.scale_to_eye_distance(lm, lm)
    assert M.eye_distance(scaled) == pytest.approx(M.EYE_DISTANCE_MM)
    assert f == pytest.approx(63.0 / M.eye_distance(lm))


# ----------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("dim", [2, 3])
def test_similarity_recovers_known_transform(dim):
    rng = np.random.default_rng(3)
    src = rng.normal(size=(50, dim))
    r = _rotation(rng)[:dim, :dim] if dim == 3 else np.array([[0.6, -0.8], [0.8, 0.6]])
    dst = 1.7 * src @ r.T + rng.normal(size=dim)
    t = M.fit_similarity(src, dst)
    assert t.s == pytest.approx(1.7)
    assert np.allclose(t.R, r, atol=1e-9)
    assert np.allclose(t.apply(src), dst, atol=1e-9)
    rigid = M.fit_similarity(src, dst, scale=False)
    assert rigid.s == 1.0 and np.allclose(rigid.R, r, atol=1e-9)


def test_similarity_never_reflects():
    rng = np.random.default_rng(4)
    src = rng.normal(size=(30, 3))
    t = M.fit_similarity(src, src * [-1, 1, 1])
    assert np.linalg.det(t.R) == pytest.approx(1.0)


def test_aligned_vertex_distances_zero_for_transformed_copy_and_known_offset():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(200, 3)) * 30
    moved = (ref @ _rotation(rng).T) * 0.5 + [10, -4, 2]
    d, _ = M.aligned_vertex_distances(moved, ref)
    assert d.max() < 1e-8
    bumped = ref.copy()
    bumped[0] += [0, 0, 100.0]      # one outlier vertex: every distance stays small except its own
    d, _ = M.aligned_vertex_distances(bumped, ref)
    assert np.argmax(d) == 0


def test_error_stats_90_percent_largest():
    s = M.error_stats(np.arange(1, 11, dtype=float))
    assert s["mean"] == 5.5 and s["max"] == 10.0
    assert s["p90"] == pytest.approx(np.quantile(np.arange(1, 11), 0.9))


def test_surface_closest_points_match_brute_force():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2)
    idx = M.SurfaceIndex(m)
    q = np.random.default_rng(6).normal(size=(60, 3)) * 0.6
    _, d = idx.closest(q)
    f, v = m.faces, m.vertices
    brute = [np.linalg.norm(M.closest_points_on_triangles(np.repeat(p[None], len(f), 0), v[f[:, 0]], v[f[:, 1]],
                                                            v[f[:, 2]]) - p, axis=1).min() for p in q]
    assert np.allclose(d, brute, atol=1e-12)
    # a point on a face plane, above the face's interior, is at its height from it
    a, b, c = np.eye(3)
    p = (a + b + c) / 3 + 0.1 * np.ones(3) / math.sqrt(3)
    cp = M.closest_points_on_triangles(p[None], a[None], b[None], c[None])
    assert np.allclose(cp[0], (a + b + c) / 3)


def _bumpy_surface(n: int = 41):
    """A face-sized height field (mm) with a "nose" and two "eye sockets": no sliding symmetry."""
    import trimesh

    x, y = np.meshgrid(np.linspace(-60, 60, n), np.linspace(-70, 70, n))
    z = (-0.004 * (x ** 2 + 0.6 * y ** 2) + 25 * np.exp(-(x ** 2 + (y + 5) ** 2) / 200)
         - 8 * np.exp(-((x - 30) ** 2 + (y - 25) ** 2) / 150) - 8 * np.exp(-((x + 30) ** 2 + (y - 25) ** 2) / 150))
    v = np.column_stack([x.ravel(), y.ravel(), z.ravel()])
    i = np.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1].ravel(), i[:-1, 1:].ravel(), i[1:, 1:].ravel(), i[1:, :-1].ravel()
    return trimesh.Trimesh(v, np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])]), process=False)


def test_icp_recovers_a_known_rigid_motion():
    m = _bumpy_surface()
    pts = m.vertices[np.linalg.norm(m.vertices[:, :2], axis=1) < 45]     # the central "face"
    ang = np.radians(4.0)
    r = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    moved = pts @ r.T + [2.0, -1.5, 1.0]
    t, dist = M.icp(moved, M.SurfaceIndex(m), scale=False)
    assert dist.mean() < 0.05 and np.quantile(dist, 0.9) < 0.1
    assert np.abs(t.apply(moved) - pts).max() < 0.3


# ----------------------------------------------------------------------------- verification
def test_eer_auc_and_accuracy_on_a_toy_score_set():
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    fpr, tpr, _ = M.roc(scores, same)
    assert M.area_under_curve(fpr, tpr) == pytest.approx(8 / 9)
    assert M.equal_error_rate(fpr, tpr) == pytest.approx(1 / 3)
    thr = M.best_threshold(scores, same)
    assert M.accuracy_at(scores, same, thr) == pytest.approx(5 / 6)
    perfect = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    fpr, tpr, _ = M.roc(perfect, same)
    assert M.equal_error_rate(fpr, tpr) == pytest.approx(0.0) and M.area_under_curve(fpr, tpr) == pytest.approx(1.0)
    assert M.accuracy_at(perfect, same, M.best_threshold(perfect, same)) == 1.0


def test_verification_metrics_use_the_other_folds_threshold():
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.6, 0.5, 0.55, 0.4])
    same = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    out = M.verification_metrics(scores, same, folds)
    assert out["folds"] == [0, 1] and not out["threshold_from_same_fold"]
    # fold 0's best threshold (0.8) applied to fold 1 accepts nothing: 50 %; fold 1's (0.6) on fold 0: 100 %
    assert out["per_fold"]["accuracy"] == pytest.approx([100.0, 50.0])
    assert out["accuracy"]["mean"] == pytest.approx(75.0) and out["accuracy"]["std"] == pytest.approx(25.0)
    assert out["nAUC"]["mean"] == pytest.approx((100.0 + 75.0) / 2)
    single = M.verification_metrics(scores[:4], same[:4], folds[:4])
    assert single["threshold_from_same_fold"] and single["accuracy"]["mean"] == 100.0


def test_cosine_and_euclidean():
    assert M.cosine_similarity([1, 0], [0, 2]) == pytest.approx(0.0)
    assert M.cosine_similarity([1, 1], [2, 2]) == pytest.approx(1.0)
    assert M.euclidean_distance([0, 0], [3, 4]) == pytest.approx(5.0)


# ----------------------------------------------------------------------------- image metrics
def test_ssim_inside_mask():
    rng = np.random.default_rng(8)
    img = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    assert M.ssim_inside(img, img, mask) == pytest.approx(1.0)
    assert M.ssim_inside(img, 255 - img, mask) < 0.0
    assert math.isnan(M.ssim_inside(img, img, np.zeros_like(mask)))


def _fake_run(labels: np.ndarray, to_crop: np.ndarray | None = None):
    crop = SimpleNamespace(to_crop=np.eye(3)[:2] if to_crop is None else to_crop, size=labels.shape[0])
    return SimpleNamespace(alpha=SimpleNamespace(labels=labels), crop=crop,
                           gamma=SimpleNamespace(labels=labels))


def test_parsing_metrics_on_known_masks():
    from occgui.eval.occlusion import parsing_metrics

    clean = np.zeros((64, 64), np.uint8)
    clean[10:54, 10:54] = L.SKIN
    clean[20:30, 15:30] = L.R_EYE
    paste = np.zeros((64, 64), bool)
    paste[20:30, 15:30] = True                     # the occluder exactly covers the eye
    occ = clean.copy()
    occ[paste] = L.OCCLUDER
    out = parsing_metrics(_fake_run(occ), _fake_run(clean), paste)
    assert out["occluder_iou"] == pytest.approx(1.0)
    assert out["miou_other"] == pytest.approx(1.0)            # outside the paste, identical maps
    half = occ.copy()
    half[20:25, 15:30] = L.SKIN                               # the parser finds half of the occluder
    out = parsing_metrics(_fake_run(half), _fake_run(clean), paste)
    assert out["occluder_iou"] == pytest.approx(0.5)
    # a crop shifted by 2 px: labels are moved into the clean crop before comparing
    shift = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    moved = np.zeros_like(occ)
    moved[:, 2:] = occ[:, :-2]
    out = parsing_metrics(_fake_run(moved, shift), _fake_run(clean), paste)
    assert out["miou_other"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- renderer
def test_rasterizer_culls_back_faces_and_interpolates():
    quad = np.array([[10, 10, 0], [50, 10, 0], [50, 50, 0], [10, 50, 0]], float)   # view coords, y down
    ccw = np.array([[0, 3, 2], [0, 2, 1]])          # counter-clockwise as seen by the viewer
    assert front_facing(quad, ccw).all() and not front_facing(quad, ccw[:, ::-1]).any()
    r = rasterize_view(quad, ccw, (64, 64))
    assert (r.triangle[12:48, 12:48] >= 0).all() and (r.triangle[:8] < 0).all()
    assert (rasterize_view(quad, ccw[:, ::-1], (64, 64)).triangle < 0).all()
    assert np.allclose(r.bary[30, 30].sum(), 1.0)


def test_render_mesh_samples_texture_with_a_known_camera():
    # a unit square facing the camera, textured left half red, right half blue
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    uv = (v[:, :2] + 1) / 2
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[:, :4] = (255, 0, 0)
    tex[:, 4:] = (0, 0, 255)
    cam = OrthoCamera(R=np.eye(3), t=np.zeros(3), k=20.0, centre=(32, 32), size=(64, 64))
    img, r = render_mesh(v, f, cam, uv=uv, texture=tex)
    assert tuple(img[32, 20]) == (255, 0, 0) and tuple(img[32, 44]) == (0, 0, 255)
    assert tuple(img[2, 2]) == (128, 128, 128)
    assert np.allclose(cam.project(np.array([[1.0, 1.0, 0.0]])), [[52, 12]])
    # yaw +90 turns the square edge-on: nothing is drawn
    cam90 = OrthoCamera(R=rotation_yaw_pitch_roll(90, 0), t=np.zeros(3), k=20.0, centre=(32, 32), size=(64, 64))
    _, r90 = render_mesh(v, f, cam90, uv=uv, texture=tex)
    assert (r90.triangle < 0).all()


def test_texel_raster_covers_a_full_square_layout():
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    r = texel_raster(uv, f, 16)
    assert len(r.rows) == 256
    vals = r.interpolate(uv)                      # texel centres back in uv
    assert np.allclose(vals[:, 0], (r.cols + 0.5) / 16) and np.allclose(vals[:, 1], 1 - (r.rows + 0.5) / 16)


# ----------------------------------------------------------------------------- protocol files
def test_read_pairs_skips_and_counts_absent_photos(tmp_path):
    faces = tmp_path / "lfw"
    for name, n in (("Ann", 2), ("Bob", 1)):
        (faces / name).mkdir(parents=True)
        for i in range(1, n + 1):
            (faces / name / f"{name}_{i:04d}.jpg").write_bytes(b"x")
    (tmp_path / "pairs.txt").write_text("2\t1\nAnn\t1\t2\nAnn\t1\tBob\t1\nCid\t1\t2\nAnn\t2\tBob\t3\n")
    pl = lfw.read_pairs(tmp_path / "pairs.txt", faces)
    assert pl.folds == 2 and pl.skipped == 2 and len(pl.pairs) == 2
    assert pl.pairs[0].same and not pl.pairs[1].same and pl.pairs[1].fold == 0
    assert pl.pairs[0].b.name == "Ann_0002.jpg"


def test_select_pairs_interleaves_folds_and_labels():
    from occgui.eval.verify import select_pairs

    pairs = [lfw.Pair(f, s, lfw.Path(f"{f}{s}{k}a"), lfw.Path(f"{f}{s}{k}b")) for f in (0, 1) for s in (True, False)
             for k in range(3)]
    four = select_pairs(pairs, (), 4)
    assert [(p.fold, p.same) for p in four] == [(0, True), (0, False), (1, True), (1, False)]
    assert len(select_pairs(pairs, (1,), None)) == 6 and all(p.fold == 1 for p in select_pairs(pairs, (1,), None))


def test_spread_selection_and_natural_list(tmp_path):
    photos = [lfw.Path(f"/x/{p}/{p}_{i:04d}.jpg") for p in ("A", "B", "C", "D") for i in range(1, 4)]
    two = lfw.spread_selection(photos, 2)
    assert [p.parent.name for p in two] == ["A", "C"]
    six = lfw.spread_selection(photos, 6)
    assert six[:4] == [lfw.Path(f"/x/{p}/{p}_0001.jpg") for p in "ABCD"] and len(set(six)) == 6
    (tmp_path / "Ann").mkdir()
    (tmp_path / "Ann" / "Ann_0001.jpg").write_bytes(b"x")
    csv = tmp_path / "n.csv"
    csv.write_text("path,occluder,region,severity\nlfw/Ann/Ann_0001.jpg,hand,eyes,large\nlfw/Zed/Zed_0001.jpg,hat,forehead,small\n")
    cases, missing = lfw.read_natural_list(csv, tmp_path)
    assert [(c.occluder, c.severity) for c in cases] == [("hand", "large")] and missing == ["lfw/Zed/Zed_0001.jpg"]


# ----------------------------------------------------------------------------- seeds, cache, report
def test_seeds_are_stable_and_distinct():
    assert H.stable_int("A/A_0001.jpg") == H.stable_int("A/A_0001.jpg")
    a = H.case_rng(0, "A/A_0001.jpg", 3).random(4)
    assert np.array_equal(a, H.case_rng(0, "A/A_0001.jpg", 3).random(4))
    assert not np.array_equal(a, H.case_rng(1, "A/A_0001.jpg", 3).random(4))
    assert not np.array_equal(a, H.case_rng(0, "A/A_0001.jpg", 4).random(4))


def test_item_cache_round_trip_and_fingerprint(tmp_path):
    c = H.ItemCache(tmp_path, H.fingerprint({"seed": 0}))
    c.save("A/A_0001.jpg", {"x": np.float64(1.5), "nan": float("nan"), "arr": np.arange(3)})
    assert c.load("A/A_0001.jpg") == {"x": 1.5, "nan": None, "arr": [0, 1, 2]}
    other = H.ItemCache(tmp_path, H.fingerprint({"seed": 1}))
    assert other.load("A/A_0001.jpg") is None


def test_recorded_settings_select_the_run_with_most_items(tmp_path):
    a = H.open_cache(tmp_path, {"seed": 0}, device="cpu")
    b = H.open_cache(tmp_path, {"seed": 1}, device="cuda")
    a.save("x", {"v": 1})
    b.save("y", {"v": 2})
    b.save("z", {"v": 3})
    cache, settings, device = H.cached_run(tmp_path)
    assert settings == {"seed": 1} and device == "cuda" and cache.load("z") == {"v": 3} and cache.load("x") is None
    with pytest.raises(Exception, match="no recorded run"):
        H.cached_run(tmp_path / "empty")


def test_report_helpers(tmp_path):
    d = R.describe([1.0, 2.0, float("nan"), None, 3.0])
    assert d["n"] == 3 and d["missing"] == 1 and d["mean"] == 2.0
    table = R.md_table(["a", "b"], [["x", 1.23456], ["y", None]], digits=2)
    assert "| x | 1.23 |" in table and "| y | - |" in table
    R.write_json(tmp_path / "r.json", {"v": float("inf"), "p": tmp_path})
    assert json.loads((tmp_path / "r.json").read_text())["v"] is None
    sw = R.software_versions()
    assert "numpy" in sw and "git" in sw
    R.bar_chart(tmp_path / "b.png", ["f1", "f2"], {"raw": [1.0, None], "full": [0.5, 0.7]}, ylabel="x")
    R.roc_plot(tmp_path / "roc.png", {"a": ([0, 0.5, 1], [0, 0.9, 1])})
    R.image_grid(tmp_path / "g.png", [[np.zeros((10, 10, 3), np.uint8), None]], col_titles=["a", "b"], row_titles=["r"])
    assert all((tmp_path / n).stat().st_size > 0 for n in ("b.png", "roc.png", "g.png"))
