"""Real-photo occluder cut-outs (occgui.training.occlusion.real_cutouts) and the real-occlusion mix of
``occgui train parsing --real-labels`` (occgui.training.parsing.real_mix)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from occgui import labels as L
from occgui.training.occlusion import real_cutouts as RC
from occgui.training.real_occlusions import parse_label


def _face68(shift=(0.0, 0.0), scale=1.0) -> np.ndarray:
    """A plausible frontal 68-point face in a 256 px crop (the mean-ish iBUG layout)."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([128 - 80 * np.cos(t), 120 + 90 * np.sin(t)], 1)
    brows = np.stack([np.r_[np.linspace(70, 115, 5), np.linspace(141, 186, 5)], np.full(10, 95.0)], 1)
    nose = np.r_[np.stack([np.full(4, 128.0), np.linspace(110, 150, 4)], 1),
                 np.stack([np.linspace(112, 144, 5), np.full(5, 158.0)], 1)]
    eye = lambda cx: np.stack([cx + 14 * np.cos(np.linspace(np.pi, -np.pi, 7)[:6]),  # noqa: E731
                               115 + 5 * np.sin(np.linspace(np.pi, -np.pi, 7)[:6])], 1)
    lips = np.stack([128 + 30 * np.cos(np.linspace(np.pi, -np.pi, 13)[:12]),
                     185 + 10 * np.sin(np.linspace(np.pi, -np.pi, 13)[:12])], 1)
    inner = np.stack([128 + 18 * np.cos(np.linspace(np.pi, -np.pi, 9)[:8]),
                      185 + 4 * np.sin(np.linspace(np.pi, -np.pi, 9)[:8])], 1)
    p = np.vstack([jaw, brows, nose, eye(95), eye(161), lips, inner])
    assert p.shape == (68, 2)
    return (p - 128) * scale + 128 + np.asarray(shift)


def _real_crop(polygon, rng=None) -> RC.RealCrop:
    rng = rng or np.random.default_rng(0)
    pts = _face68()
    doc = {"type": "hand", "photo": "X/X_0001.jpg", "landmarks": pts.tolist(), "occluder_polygons": [polygon]}
    label = parse_label(doc, "X_0001", "dev")
    crop = rng.integers(0, 255, size=(256, 256, 3), dtype=np.uint8)
    return RC.RealCrop("X_0001", "hand", crop, label.mask((256, 256)), pts)


def test_cutout_alpha_is_the_polygon_mask():
    poly = [[100, 150], [160, 148], [170, 210], [128, 230], [95, 205]]
    rc = _real_crop(poly)
    cut = RC.make_cutout(rc, feather=0.0, margin=3)
    x0, y0 = (rc.landmarks68 - cut.landmarks68)[0].astype(int)      # the cut-out's offset in the crop
    h, w = cut.occluder.rgba.shape[:2]
    alpha = np.zeros((256, 256), np.uint8)
    alpha[y0:y0 + h, x0:x0 + w] = cut.occluder.rgba[:, :, 3]
    assert np.array_equal(alpha > 0, rc.mask) and set(np.unique(alpha)) == {0, 255}
    assert np.array_equal(cut.occluder.rgba[:, :, :3], rc.crop[y0:y0 + h, x0:x0 + w])  # the photo's own pixels
    # feathered: the 50 % level stays on the polygon's edge, nothing leaks farther than a few pixels
    soft = RC.cutout_alpha(rc.mask, feather=0.7)
    half = soft >= 128
    assert (half & rc.mask).sum() / (half | rc.mask).sum() > 0.97
    import cv2
    far = cv2.dilate(rc.mask.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert soft[far].max() == 0
    assert RC.make_cutout(_real_crop([[0, 0], [1, 0], [1, 1]])) is None       # empty mask: no cut-out
    assert cut.type == "hand" and cut.occluder.family == "real_hand"


def test_similarity_recovers_a_known_transform():
    src = _face68()
    a = 1.3 * np.exp(1j * np.radians(12))
    z = a * (src[:, 0] + 1j * src[:, 1]) + (5 - 7j)
    ea, eb = RC.similarity(src, np.stack([z.real, z.imag], 1))
    assert abs(ea - a) < 1e-9 and abs(eb - (5 - 7j)) < 1e-6


def test_paste_lands_in_the_same_place_on_another_face():
    # a band over the mouth, symmetric about the face's axis (so a mirrored paste lands there too)
    rc = _real_crop([[88, 170], [168, 170], [168, 200], [88, 200]])
    cut = RC.make_cutout(rc, feather=0.5)
    target = _face68(shift=(6, -10), scale=0.85)
    expected = np.zeros((256, 256), np.uint8)
    import cv2
    band = (np.array([[88, 170], [168, 170], [168, 200], [88, 200]], float) - 128) * 0.85 + 128 + [6, -10]
    cv2.fillPoly(expected, [np.round(band).astype(np.int32)], 1)
    rgb = np.full((256, 256, 3), 120, np.uint8)
    for seed in range(6):
        out, mask, pl = RC.paste_real_cutout(np.random.default_rng(seed), rgb, target, cut)
        iou = (mask & (expected > 0)).sum() / (mask | (expected > 0)).sum()
        assert iou > 0.5, (seed, iou)
        away = ~cv2.dilate(mask.astype(np.uint8), np.ones((61, 61), np.uint8)).astype(bool)   # beyond shadow and blur
        assert np.any(out[mask] != 120) and np.abs(out[away].astype(int) - 120).max() <= 2
        assert pl.anchor == "real"


def test_pseudo_labels_put_the_label_over_the_parser():
    from occgui.training.parsing.real_mix import pseudo_labels

    pred = np.full((8, 8), L.SKIN, np.uint8)
    pred[0, 0] = L.OCCLUDER                       # a stray occluder pixel outside the label
    pred[5, 5] = L.HAIR
    mask = np.zeros((8, 8), bool)
    mask[4:, 4:] = True
    lab = pseudo_labels(pred, mask)
    assert lab[0, 0] == L.SKIN and np.all(lab[mask] == L.OCCLUDER) and lab[1, 1] == L.SKIN
    assert (lab == L.OCCLUDER).sum() == mask.sum()


@pytest.mark.slow
def test_dev_crops_hold_the_labelled_occluders(tmp_path, lfw_dir):
    from occgui.training.real_occlusions import load_labels

    crops = RC.real_crops_for_training(None, lfw_dir, cache_dir=tmp_path)
    dev = {lab.stem for lab in load_labels(split="dev")}
    test = {lab.stem for lab in load_labels(split="test")}
    stems = {c.stem for c in crops}
    assert stems <= dev and not stems & test and len(stems) >= 0.95 * len(dev)
    assert (tmp_path / "real_dev_crops_256.npz").is_file()
    assert sum(c.mask.any() for c in crops) >= 100
    # cached: the same crops again
    again = RC.real_crops_for_training(None, lfw_dir, cache_dir=tmp_path)
    assert [c.stem for c in again] == [c.stem for c in crops]
    cuts = RC.make_cutouts(crops)
    assert {"hand", "hat", "sunglasses", "microphone"} <= {c.type for c in cuts}


@pytest.mark.slow
def test_tiny_run_with_real_cutouts(tmp_path, lfw_dir, occluders_dir):
    from occgui.parsing import unet_parser
    from occgui.training.parsing import train
    from occgui.training.parsing.real_mix import RealMixSampler

    data = lfw_dir.parent.parent.parent
    init = tmp_path / "init"
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    common = ["--data", str(data), "--cache", str(tmp_path / "cache"), "--limit", "4", "--batch-size", "4",
              "--input-size", "64", "--lr", "0.005", "--eval-photos", "0", "--eval-every", "0", "--workers", "1",
              "--threads", "1", "--quiet"]
    assert train.run(p.parse_args(common + ["-o", str(init), "--widths", "8,16,32,32,64", "--steps", "2"])) == 0
    with pytest.raises(Exception, match="needs --init"):
        train.run(p.parse_args(common + ["-o", str(tmp_path / "x"), "--steps", "2", "--real-labels", "bundled"]))
    run = tmp_path / "run"
    args = p.parse_args(common + ["-o", str(run), "--steps", "6", "--real-labels", "bundled",
                                  "--init", str(init / unet_parser.CHECKPOINT_NAME), "--real-photo-weight", "0.5",
                                  "--real-cutout-weight", "0.5", "--real-val", "20", "--real-val-every", "4",
                                  "--real-photo-warp", "1"])
    assert train.run(args) == 0
    header = unet_parser.load_checkpoint(run / unet_parser.CHECKPOINT_NAME)[1]
    real = header["meta"]["real_occlusions"]
    assert real["split"] == "dev" and real["cutouts"] > 50 and len(real["photos"]) > 90
    # dev-val: held out of the training photos, scored at step 4 and at the end, snapshots kept
    val = set(real["dev_val"]["photos"])
    assert len(val) == 20 and not val & set(real["photos"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "done" and log[-1]["step"] == 6
    scored = [r for r in log if r.get("event") == "dev_val"]
    assert [r["step"] for r in scored] == [4, 6] and all(0 <= r["pooled_iou"] <= 1 for r in scored)
    assert (run / "snapshots" / "step_00004.onnx").is_file() and (run / "best_devval.onnx").is_file()
    assert real["best_dev_val"]["step"] in (4, 6)
    # the mixed stream: every sample real (a dev photo or a pasted real cut-out), with occluder pixels
    from occgui.training.occlusion.occluders import load_library
    from occgui.training.parsing.dataset import build_clean_set

    clean = build_clean_set(lfw_dir, tmp_path / "cache", "train", limit=4, workers=1, progress=False)
    crops = RC.real_crops_for_training(None, lfw_dir, cache_dir=tmp_path / "cache")
    targets = np.stack([np.where(c.mask, L.OCCLUDER, L.SKIN).astype(np.uint8) for c in crops])
    s = RealMixSampler(clean, load_library(occluders_dir), seed=0, input_size=64, real_photos=crops,
                       real_targets=targets, cutouts=RC.make_cutouts(crops), p_photo=0.0, p_cutout=1.0, augment=False)
    x, y = s.batch(0, 4)
    assert x.shape == (4, 64, 64, 3) and all((yy == L.OCCLUDER).any() for yy in y)
    x2, y2 = s.batch(0, 4)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)             # batch t depends only on (seed, t)


class _Item:
    def __init__(self, stem, type_):
        self.stem, self.type = stem, type_


def test_dev_val_is_seeded_stratified_and_disjoint():
    items = [_Item(f"h{i:02d}", "hand") for i in range(20)] + [_Item(f"t{i:02d}", "hat") for i in range(50)] + \
        [_Item(f"m{i:02d}", "microphone") for i in range(10)] + [_Item("o0", "other_person")]
    val = RC.dev_val_stems(items, 20, seed=3)
    assert len(val) == len(set(val)) == 20 and val == sorted(val)
    types = {it.stem: it.type for it in items}
    count = {t: sum(types[s] == t for s in val) for t in ("hand", "hat", "microphone", "other_person")}
    assert count["hat"] in (12, 13) and count["hand"] == 5 and count["microphone"] in (2, 3)
    assert RC.dev_val_stems(list(reversed(items)), 20, seed=3) == val      # order of the input does not matter
    assert RC.dev_val_stems(items, 20, seed=4) != val
    assert RC.dev_val_stems(items, 0) == []
    with pytest.raises(Exception, match="leaves none"):
        RC.dev_val_stems(items, len(items))


def test_occluder_scores_pool_pixels_and_count_found_photos():
    g1 = np.zeros((10, 10), bool)
    g1[:5] = True                                   # 50 px
    p1 = np.zeros_like(g1)
    p1[:4] = True                                   # 40 px inside: IoU 0.8
    g2 = np.zeros_like(g1)
    g2[:, :2] = True                                # 20 px, missed
    p2 = np.zeros_like(g1)
    p2[9, 9] = True
    empty = np.zeros_like(g1)
    sc = RC.occluder_scores([p1, p2, empty], [g1, g2, empty])
    assert sc["photos"] == 2 and sc["found"] == 0.5
    assert sc["pooled_iou"] == pytest.approx(40 / 71) and sc["precision"] == pytest.approx(40 / 41)
    assert sc["recall"] == pytest.approx(40 / 70)


def test_warp_photo_brings_background_in_and_keeps_labels_aligned():
    from occgui.training.parsing.real_mix import warp_photo

    rgb = np.full((64, 64, 3), 128, np.uint8)
    lab = np.full((64, 64), L.SKIN, np.uint8)
    lab[20:40, 20:40] = L.OCCLUDER
    rgb[20:40, 20:40] = 255
    seen_bg = False
    for seed in range(6):
        r, y = warp_photo(np.random.default_rng(seed), rgb, lab, 1.0)
        assert r.shape == rgb.shape and y.shape == lab.shape and set(np.unique(y)) <= {L.BACKGROUND, L.SKIN, L.OCCLUDER}
        bright = r[..., 0] > 200
        occ = y == L.OCCLUDER
        assert (bright & occ).sum() >= 0.9 * occ.sum()          # the image and its labels move together
        seen_bg |= bool((y == L.BACKGROUND).any())
    assert seen_bg
    r0, y0 = warp_photo(np.random.default_rng(0), rgb, lab, 0.0)
    assert np.array_equal(y0, lab) and np.array_equal(r0, rgb)


def test_dev_folds_partition_the_dev_photos_stratified_and_seeded():
    items = [_Item(f"h{i:02d}", "hand") for i in range(19)] + [_Item(f"t{i:02d}", "hat") for i in range(53)] + \
        [_Item(f"m{i:02d}", "microphone") for i in range(10)] + [_Item("o0", "other_person")]
    folds = RC.dev_folds(items, 5, seed=2)
    flat = [s for f in folds for s in f]
    assert sorted(flat) == sorted(it.stem for it in items) and len(flat) == len(set(flat))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1 and all(f == sorted(f) for f in folds)
    for prefix, n in (("h", 19), ("t", 53), ("m", 10)):
        per = [sum(s.startswith(prefix) for s in f) for f in folds]
        assert max(per) - min(per) <= 1 and sum(per) == n
    assert RC.dev_folds(list(reversed(items)), 5, seed=2) == folds
    assert RC.dev_folds(items, 5, seed=3) != folds
    with pytest.raises(Exception, match="folds"):
        RC.dev_folds(items, 1)


def test_a_fold_is_given_as_i_of_k():
    assert RC.parse_fold("2/5") == (2, 5)
    for bad in ("5/5", "-1/5", "1/1", "x", "1-5"):
        with pytest.raises(Exception, match="I/K"):
            RC.parse_fold(bad)


def test_the_trainer_holds_out_one_fold_or_n_photos():
    from types import SimpleNamespace

    from occgui.training.parsing.train import held_out_stems

    items = [_Item(f"h{i:02d}", "hand") for i in range(20)] + [_Item(f"t{i:02d}", "hat") for i in range(30)]
    folds = RC.dev_folds(items, 5, seed=0)
    got = [held_out_stems(SimpleNamespace(real_fold=f"{i}/5", real_val=0, real_val_seed=0), items) for i in range(5)]
    assert got == [set(f) for f in folds]
    assert held_out_stems(SimpleNamespace(real_fold=None, real_val=10, real_val_seed=0), items) == \
        set(RC.dev_val_stems(items, 10, 0))
    assert held_out_stems(SimpleNamespace(real_val=0), items) == set()
    with pytest.raises(Exception, match="not both"):
        held_out_stems(SimpleNamespace(real_fold="0/5", real_val=10, real_val_seed=0), items)


def test_a_malformed_fold_is_refused_when_the_command_line_is_read(capsys):
    import argparse

    from occgui.training.parsing.train import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    base = ["--data", "D", "-o", "O"]
    assert p.parse_args(base + ["--real-fold", "1/5"]).real_fold == "1/5"
    with pytest.raises(SystemExit):
        p.parse_args(base + ["--real-fold", "5/5"])
    assert "I/K" in capsys.readouterr().err
