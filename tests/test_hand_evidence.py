"""Hands as occluder evidence (``parse.hand_evidence``, occgui.parsing.hand_evidence)."""
from __future__ import annotations

import numpy as np
import pytest

from occgui import labels as L
from occgui.parsing import hand_evidence as HE


def _hand_points(cx=100.0, cy=120.0, s=40.0):
    """21 points of a flat open hand, wrist at the bottom (MediaPipe's order: wrist, then 4 per finger)."""
    pts = [(cx, cy + s)]
    for f, dx in enumerate((-0.9, -0.4, 0.0, 0.4, 0.8)):
        for j in range(1, 5):
            pts.append((cx + dx * s * (0.5 + 0.15 * j), cy + s * (0.6 - 0.45 * j) + (0.5 * s if f == 0 else 0.0)))
    return np.array(pts)


def test_hand_region_is_the_dilated_hull_of_the_points():
    p = _hand_points()
    m = HE.hand_region(p, 256)
    assert m.dtype == bool and m.shape == (256, 256)
    assert m[int(p[:, 1].mean()), int(p[:, 0].mean())]            # inside the hand
    assert m[int(p[0, 1]) + 3, int(p[0, 0])]                       # the dilation reaches past the wrist point
    assert not m[5, 5] and not m[250, 250]                         # nowhere near the hand
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    pad = np.linalg.norm(p[0] - p[9]) * HE.DILATION
    ys, xs = np.nonzero(m)
    assert xs.min() >= x0 - pad - 1 and xs.max() <= x1 + pad + 1 and ys.min() >= y0 - pad - 1
    for bad in (p[:20], np.full((21, 2), np.nan)):
        with pytest.raises(ValueError, match="21"):
            HE.hand_region(bad, 256)


def test_a_hand_counts_only_when_the_mirror_image_shows_it_too(monkeypatch):
    """The mirror check: a detection the model repeats in the mirrored crop (mirrored back onto it)
    is kept; one it does not repeat, or repeats elsewhere, is dropped."""
    real, false = _hand_points(80.0, 120.0), _hand_points(190.0, 60.0, 25.0)
    mirror = lambda p: np.c_[256 - p[:, 0], p[:, 1]]  # noqa: E731
    crop = np.zeros((256, 256, 3), np.uint8)
    crop[0, 0] = 1                                   # tells the original from its mirror image
    seen = {"original": [real, false], "mirror": [mirror(real), _hand_points(40.0, 200.0, 20.0)]}
    monkeypatch.setattr(HE, "_detect_once", lambda img: seen["original" if img[0, 0, 0] == 1 else "mirror"])
    kept = HE.detect_hands(crop)
    assert len(kept) == 1 and np.array_equal(kept[0], real)
    seen["mirror"] = []
    assert HE.detect_hands(crop) == []


def test_without_a_hand_the_map_is_unchanged():
    rng = np.random.default_rng(0)
    crop = np.full((256, 256, 3), 128, np.uint8)
    labels = rng.integers(0, L.NUM_CLASSES, (256, 256)).astype(np.uint8)
    out = HE.with_hands(labels, crop)
    assert np.array_equal(out, labels) and out is not labels


def test_a_hand_the_parser_missed_becomes_occluder_one_it_found_is_left_alone(sample_photo):
    """The bundled sample's cartoon hand over the eye (image right): MediaPipe finds it. Over a map
    without occluder it is marked (only occluder is added); where the parser already marks the hand,
    its own outline stands -- as the shipped parser does on this photo."""
    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
    from occgui.parsing.settings import UNetSettings
    from occgui.pipeline.backends import BackendContext, create
    from occgui.pipeline.stages import detect, load

    crop = detect(MediaPipeFaceDetector(), load(sample_photo, max_side=2048), face_index=0, crop_size=256)
    hands = HE.hands_mask(crop.image)
    assert hands.sum() > 0.03 * hands.size
    assert np.nonzero(hands)[1].mean() > 128
    skin = np.full((256, 256), L.SKIN, np.uint8)
    marked = HE.with_hands(skin, crop.image)
    assert np.array_equal(marked == L.OCCLUDER, hands) and (marked[~hands] == L.SKIN).all()
    covered = np.where(hands, L.OCCLUDER, L.SKIN).astype(np.uint8)
    covered[hands & (np.arange(256)[None, :] % 3 == 0)] = L.SKIN    # two thirds of the hand found
    assert np.array_equal(HE.with_hands(covered, crop.image), covered)
    with_ev = create("parse", None, BackendContext(device="cpu", crop_size=256, texture_size=512))
    plain = create("parse", None, BackendContext(device="cpu", crop_size=256, texture_size=512,
                                                 settings=UNetSettings(hand_evidence=False)))
    assert UNetSettings().hand_evidence                       # on by default
    assert with_ev.version == plain.version + f"+hands{HE.VERSION}"
    a, b = plain.parse(crop.image), with_ev.parse(crop.image)
    assert np.array_equal(b, HE.with_hands(a, crop.image))


def test_a_real_hand_is_found_where_the_label_says(lfw_dir):
    """A labelled real hand (dev split, James_Wattana_0001: a hand at the cheek): the evidence lies on it."""
    from occgui.eval import harness as H
    from occgui.eval.real import labelled_face, mask_photo_to_crop
    from occgui.training.real_occlusions import load_labels

    lab = next(x for x in load_labels(split="dev") if x.stem == "James_Wattana_0001")
    v = H.Variants("cpu", {}, {})
    v.full.config.face_index, _ = labelled_face(v, lab.photo_path(lfw_dir), lab.landmarks)
    res = v.full.run(lab.photo_path(lfw_dir), stop_after="detect")
    w, h = res.image.photo_size
    gt = mask_photo_to_crop(res, lab.mask((h, w)))
    hands = HE.hands_mask(res.crop.image)          # no parser map: every hand found counts
    assert hands.any(), "MediaPipe found no hand"
    precision = (hands & gt).sum() / hands.sum()
    assert precision > 0.7, precision
