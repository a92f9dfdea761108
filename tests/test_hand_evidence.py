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
    def backend(**kw):
        return create("parse", None, BackendContext(device="cpu", crop_size=256, texture_size=512,
                                                    settings=UNetSettings(occluder_into_forehead=False, **kw)))

    with_ev, plain = backend(), backend(hand_evidence=False)
    s = UNetSettings()
    assert s.hand_evidence and s.hand_context and s.occluder_into_forehead    # all on by default
    assert with_ev.version == plain.version + f"+hands{HE.VERSION}+context{HE.CONTEXT_VERSION}"
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


def _context_on_and_off(lfw_dir, stem):
    """For the dev photo ``stem``: the label's mask in crop pixels, the occluder of M_alpha without and
    with the context view (the forehead growth off), and the last run's result."""
    from occgui.eval import harness as H
    from occgui.eval.real import labelled_face, mask_photo_to_crop
    from occgui.parsing.settings import UNetSettings
    from occgui.training.real_occlusions import load_labels

    lab = next(x for x in load_labels(split="dev") if x.stem == stem)
    occ = {}
    for on in (False, True):
        v = H.Variants("cpu", {}, {"parse": UNetSettings(hand_context=on, occluder_into_forehead=False)})
        v.full.config.face_index, _ = labelled_face(v, lab.photo_path(lfw_dir), lab.landmarks)
        res = v.full.run(lab.photo_path(lfw_dir), stop_after="parse")
        w, h = res.image.photo_size
        gt = mask_photo_to_crop(res, lab.mask((h, w))).astype(bool)
        occ[on] = res.alpha.labels == L.OCCLUDER
        assert ("+context" in res.backends["parse"]) == on
    return gt, occ, res


@pytest.mark.parametrize("stem, covered", [("Carson_Daly_0002", 0.8), ("Fidel_Castro_0003", 0.9)])
def test_a_hand_at_the_face_is_found_in_the_context_view(lfw_dir, stem, covered):
    """Two dev photos whose hand MediaPipe finds only in the wider view (parse.hand_context):
    Carson_Daly_0002 (fingers over the chin and lips, the palm below the crop) and Fidel_Castro_0003 (a
    finger from the beard to the nose; the beard is parsed as background, and the finger counts because its
    fingertip lies on the face's hull). The hand's region covers most of the labelled hand (the dilated
    hull also takes the mouth between thumb and finger), and with the context on the occluder covers at
    least what it covers without. (Whether the region is written into M_alpha depends on the network:
    where it already marks half of the hand's hull, its own outline stands -- ``FOUND_SHARE``: parser v5
    on Carson_Daly_0002, v6c on both; v5 marked under 1 % of the crop on Fidel_Castro_0003 and the
    context view added the region.)"""
    gt, occ, res = _context_on_and_off(lfw_dir, stem)
    assert not HE.hands_in_crop(res.crop.image)
    context = HE.context_view(res.image.rgb, res.crop.to_crop, res.crop.size)
    found = HE.hands_in_crop(res.crop.image, context, HE.face_area(res.alpha.labels))
    assert len(found) == 1
    region = HE.hand_region(found[0], res.crop.size)
    assert (region & gt).sum() > covered * gt.sum() and (region & gt).sum() > 0.4 * region.sum()
    assert (occ[True] & gt).sum() >= (occ[False] & gt).sum() > 0.3 * gt.sum()


def test_the_context_view_is_twice_as_wide_and_maps_back_to_crop_pixels():
    """context_view: a photo point lands in the view where view_to_crop takes it to its crop pixel."""
    img = np.zeros((300, 400, 3), np.uint8)
    img[148:153, 198:203] = 255                                  # a dot at working (200, 150)
    to_crop = np.array([[0.8, 0.1, -30.0], [-0.1, 0.8, 20.0]])
    view, view_to_crop = HE.context_view(img, to_crop, 256)
    assert view.shape == (256, 256, 3) and view.dtype == np.uint8
    ys, xs = np.nonzero(view[..., 0] > 60)
    q = np.array([xs.mean(), ys.mean()])
    p = to_crop[:, :2] @ [200.0, 150.0] + to_crop[:, 2]
    assert np.allclose(view_to_crop[:, :2] @ q + view_to_crop[:, 2], p, atol=1.0)
    assert np.isclose(abs(np.linalg.det(view_to_crop[:, :2])), HE.CONTEXT_FIELD ** 2)   # a view pixel: 2 crop pixels


def test_hands_found_in_the_context_view_are_moved_into_the_crop(monkeypatch):
    """A hand found only in the wider view counts, in crop pixels; without a view only the crop's count."""
    crop = np.zeros((256, 256, 3), np.uint8)
    view = np.ones((256, 256, 3), np.uint8)
    found_in_view = _hand_points(150.0, 200.0, 30.0)
    monkeypatch.setattr(HE, "detect_hands", lambda rgb: [found_in_view.copy()] if rgb[0, 0, 0] == 1 else [])
    view_to_crop = np.array([[2.0, 0.0, -128.0], [0.0, 2.0, -128.0]])
    assert HE.hands_in_crop(crop) == []
    (pts,) = HE.hands_in_crop(crop, (view, view_to_crop))
    assert np.allclose(pts, found_in_view * 2.0 - 128.0)
    assert HE.hands_mask(crop, context=(view, view_to_crop)).any()


def test_the_face_area_is_the_hull_of_skin_and_features_plus_the_occluder():
    """face_area: a beard parsed as background between the skin's cheeks and chin lies inside the hull."""
    lab = np.zeros((100, 100), np.uint8)
    lab[20:80, 20:35] = L.SKIN                  # left cheek
    lab[20:80, 65:80] = L.SKIN                  # right cheek
    lab[30:35, 40:60] = L.L_EYE
    lab[90:95, 10:15] = L.OCCLUDER              # outside the hull, still counts
    face = HE.face_area(lab)
    assert face[70, 50] and face[25, 50]        # between the cheeks: the hull
    assert face[92, 12] and not face[5, 5] and not face[85, 50]
    assert not HE.face_area(np.zeros((10, 10), np.uint8)).any()


def test_a_hand_touches_the_face_with_a_fingertip_only():
    face = np.zeros((256, 256), bool)
    p = _hand_points(100.0, 120.0, 40.0)
    tip = np.round(p[8]).astype(int)            # the index fingertip
    assert not HE.touches(p, face)
    face[tip[1], tip[0]] = True
    assert HE.touches(p, face)
    face[:] = False
    face[int(p[0, 1]), int(p[0, 0])] = True     # the wrist is not a fingertip
    assert not HE.touches(p, face)
    assert not HE.touches(p + 1000.0, np.ones((256, 256), bool))   # tips outside the crop


def test_a_context_hand_counts_only_when_it_touches_the_face(monkeypatch):
    """with_hands with a context view: the hand found in the view is marked only when one of its
    fingertips lies on the parser's face (face_area) -- not a hand at the chest or at another person."""
    crop = np.zeros((256, 256, 3), np.uint8)
    view = np.ones((256, 256, 3), np.uint8)
    at = {"hand": _hand_points(128.0, 160.0, 30.0)}
    monkeypatch.setattr(HE, "detect_hands", lambda rgb: [at["hand"].copy()] if rgb[0, 0, 0] == 1 else [])
    ident = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = np.zeros((256, 256), np.uint8)
    labels[60:150, 80:180] = L.SKIN             # the face, above the hand's wrist, reached by its fingers
    out = HE.with_hands(labels, crop, (view, ident))
    assert (out == L.OCCLUDER).any()
    at["hand"] = _hand_points(128.0, 230.0, 15.0)   # a small hand low in the view, fingers below the face
    assert not HE.touches(at["hand"], HE.face_area(labels))
    assert np.array_equal(HE.with_hands(labels, crop, (view, ident)), labels)


def test_the_parse_stage_hands_the_photo_only_to_a_backend_that_reads_it():
    from types import SimpleNamespace

    from occgui.pipeline.stages import parse

    calls = []

    class Backend:
        name, version = "fake", "1"

        def __init__(self, reads_photo):
            self.reads_photo = reads_photo

        def parse(self, crop_rgb, **kw):
            calls.append(sorted(kw))
            return np.zeros(crop_rgb.shape[:2], np.uint8)

    crop = SimpleNamespace(image=np.zeros((8, 8, 3), np.uint8), to_crop=np.eye(2, 3))
    image = SimpleNamespace(rgb=np.zeros((20, 20, 3), np.uint8))
    parse(Backend(False), crop, image)
    parse(Backend(True), crop, image)
    parse(Backend(True), crop, None)
    assert calls == [[], ["photo", "to_crop"], []]
