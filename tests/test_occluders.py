"""Tests of occgui.training.occlusion.occluders: placements, deterministic compositing, the occluder library."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from occgui.training.occlusion import occluders as O


def fake_landmarks(size: int = 256) -> np.ndarray:
    """A plausible upright frontal iBUG-68 layout in a ``size`` crop (eye distance = size / 4)."""
    s = size / 256.0
    p = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    p[0:17] = np.stack([128 - 70 * np.cos(t), 120 + 80 * np.sin(t)], 1)           # jaw, image left -> right
    p[0:17, 0] = 128 - 70 * np.cos(np.linspace(0, np.pi, 17))
    p[17:22] = np.stack([np.linspace(78, 118, 5), [100, 95, 93, 94, 97]], 1)       # brow (image left)
    p[22:27] = np.stack([np.linspace(138, 178, 5), [97, 94, 93, 95, 100]], 1)
    p[27:31] = np.stack([[128] * 4, np.linspace(110, 150, 4)], 1)                  # nose bridge
    p[31:36] = np.stack([np.linspace(114, 142, 5), [155, 158, 160, 158, 155]], 1)  # nostrils
    for k, cx in ((36, 96.0), (42, 160.0)):                                         # eyes
        a = np.linspace(np.pi, -np.pi, 7)[:6]
        p[k:k + 6] = np.stack([cx + 15 * np.cos(a), 112 - 6 * np.sin(a)], 1)
    a = np.linspace(np.pi, -np.pi, 13)[:12]
    p[48:60] = np.stack([128 + 28 * np.cos(a), 182 - 10 * np.sin(a)], 1)           # outer lips
    a = np.linspace(np.pi, -np.pi, 9)[:8]
    p[60:68] = np.stack([128 + 20 * np.cos(a), 182 - 3 * np.sin(a)], 1)            # inner lips
    return p * s


def square_occluder(side: int = 40, name: str = "square", family: str = "object") -> O.Occluder:
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[:, :, 0] = 200
    rgba[:, :, 3] = 255
    return O.Occluder(name=name, kind=name, family=family, variant="default", rgba=rgba)


def plain_placement(centre=(100.0, 100.0), size=40.0, rotation=0.0, **kw) -> O.Placement:
    return O.Placement(occluder="square", family="object", anchor="mouth", centre=centre, size=size,
                       rotation=rotation, feather=0.0, colour={}, **kw)


def test_composite_mask_matches_geometry():
    img = np.full((256, 256, 3), 90, np.uint8)
    out, mask = O.composite(img, fake_landmarks(), square_occluder(), plain_placement())
    assert mask.dtype == bool and mask.shape == (256, 256)
    assert abs(int(mask.sum()) - 1600) <= 120
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 100) < 1.0 and abs(ys.mean() - 100) < 1.0
    assert out[100, 100, 0] > 150 and out[100, 100, 1] < 60      # red pasted
    far = np.ones_like(mask)
    far[70:131, 70:131] = False
    assert np.array_equal(out[far], img[far])                     # nothing changes far away

    _, rot = O.composite(img, fake_landmarks(), square_occluder(), plain_placement(rotation=45.0))
    assert abs(int(rot.sum()) - 1600) <= 120
    # a 45-degree diamond reaches farther along the axes and not into the square's corners
    assert rot[100, 126] and not mask[100, 126]
    assert mask[82, 82] and not rot[82, 82]


def test_composite_is_deterministic_and_json_round_trips():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    pts = fake_landmarks()
    occ = square_occluder()
    pl = O.sample_placement(np.random.default_rng(1), occ, pts, kind="one_eye")
    text = json.dumps(pl.to_dict())
    pl2 = O.Placement.from_dict(json.loads(text))
    assert pl2 == pl
    a, ma = O.composite(img, pts, occ, pl)
    b, mb = O.composite(img, pts, occ, pl2)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    # the same seed gives the same placement
    assert O.sample_placement(np.random.default_rng(1), occ, pts, kind="one_eye") == pl


def test_placement_scales_with_the_image():
    pts = fake_landmarks(256)
    occ = square_occluder()
    pl = O.sample_placement(np.random.default_rng(3), occ, pts, kind="mouth")
    _, m1 = O.composite(np.zeros((256, 256, 3), np.uint8), pts, occ, pl)
    _, m2 = O.composite(np.zeros((128, 128, 3), np.uint8), pts / 2, occ, pl.scaled(0.5))
    up = np.kron(m2, np.ones((2, 2), bool))
    inter, union = np.count_nonzero(up & m1), np.count_nonzero(up | m1)
    assert inter / union > 0.85


@pytest.mark.parametrize("kind", O.ANCHORS[:-2] + ("forehead",))
def test_anchor_kinds_land_where_they_should(kind):
    pts = fake_landmarks()
    f = O.FaceFrame.of(pts)
    targets = {"eyes": (f.eye_l + f.eye_r) / 2, "one_eye": None, "mouth": pts[48:60].mean(0), "nose": pts[30],
               "cheek": None, "hand_over_face": pts[30] + (pts[8] - pts[30]) * 0.3, "forehead": pts[17:27].mean(0)}
    for seed in range(10):
        pl = O.sample_placement(np.random.default_rng(seed), square_occluder(), pts, kind=kind)
        assert pl.anchor == kind
        c = np.array(pl.centre)
        if kind == "one_eye":
            assert min(np.linalg.norm(c - f.eye_l), np.linalg.norm(c - f.eye_r)) < 0.5 * f.iod
        elif kind == "cheek":
            assert 0.3 * f.iod < abs(c[0] - 128) < 1.6 * f.iod
        elif kind == "forehead":
            assert c[1] < targets[kind][1]                       # above the brows
        else:
            assert np.linalg.norm(c - targets[kind]) < 0.8 * f.iod


def test_unknown_anchor_is_an_error():
    with pytest.raises(O.OccguiError):
        O.sample_placement(np.random.default_rng(0), square_occluder(), fake_landmarks(), kind="elbow")


def test_head_view():
    pts = fake_landmarks()
    assert O.head_view(pts) == "front"
    turned = pts.copy()
    turned[27:36, 0] -= 50
    assert O.head_view(turned) == "left"


# ----------------------------------------------------------------------------- with the shared data
@pytest.fixture(scope="module")
def library(occluders_dir):
    return O.load_library(occluders_dir)


def test_library_loads_families_and_mask_anchors(library):
    fams = set(library.families())
    assert {"hand", "mask", "sunglasses", "glasses", "hat", "cup", "food"} <= fams
    assert fams <= set(O.FAMILIES)
    masks = [o for o in library if o.family == "mask"]
    assert len(masks) >= 9 and all(o.anchors is not None and o.anchors.shape == (6, 2) for o in masks)
    assert {o.variant for o in masks} == {"front", "left", "right"}
    hands = library.filter(families=["hand"])
    assert len(hands.kinds()) >= 8 and len(hands) >= 6 * len(hands.kinds()) - 6   # 6 skin tones each
    assert max(max(o.size) for o in library) <= 320
    assert "mobile_phone" not in library.kinds() or library.get("mobile_phone").family == "phone"


def test_library_filter_and_choose(library):
    sub = library.filter(exclude_kinds=["goggles", "KN95"])
    assert "goggles" not in sub.kinds() and "KN95" not in sub.kinds()
    rng = np.random.default_rng(0)
    pts = fake_landmarks()
    for _ in range(20):
        assert sub.choose(rng, family="mask", landmarks68=pts).variant == "front"   # frontal face -> front view


def test_eval_families(library):
    names = O.available_eval_families(library)
    assert {"hand_over_eye", "sunglasses", "surgical_mask"} <= set(names)
    pts = fake_landmarks()
    img = np.full((256, 256, 3), 128, np.uint8)
    f = O.FaceFrame.of(pts)
    eye_l, eye_r = np.round(f.eye_l).astype(int), np.round(f.eye_r).astype(int)
    mouth = np.round(pts[62]).astype(int)
    one_eye_only = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        occ, pl = O.sample_eval_family(rng, library, "surgical_mask", pts)
        assert occ.kind.startswith("surgical") and pl.anchor == "mask"
        _, m = O.composite(img, pts, occ, pl)
        assert m[mouth[1], mouth[0]] and m[pts[8].astype(int)[1] - 5, 128]           # mouth and chin covered
        assert not m[eye_l[1], eye_l[0]] and not m[eye_r[1], eye_r[0]]
        occ, pl = O.sample_eval_family(rng, library, "sunglasses", pts)
        _, m = O.composite(img, pts, occ, pl)
        assert m[eye_l[1], eye_l[0]] and m[eye_r[1], eye_r[0]] and not m[mouth[1], mouth[0]]
        occ, pl = O.sample_eval_family(rng, library, "hand_over_eye", pts)
        assert occ.family == "hand"
        _, m = O.composite(img, pts, occ, pl)
        one_eye_only += int(m[eye_l[1], eye_l[0]] != m[eye_r[1], eye_r[0]])
    assert one_eye_only >= 8
    with pytest.raises(O.OccguiError):
        O.sample_eval_family(np.random.default_rng(0), library, "nonexistent", pts)


# ----------------------------------------------------------------------------- procedural hands
@pytest.fixture(scope="module")
def hands():
    return O.procedural_hand_library(6, seed=3)


def test_procedural_hands_are_seeded_skin_tinted_hands(hands):
    assert len(hands) == 6 and hands.kinds() == [O.PROCEDURAL_HAND_KIND] and hands.families() == ["hand"]
    assert all(o.skin_tinted and o.palm_width > 0 and o.rgba.shape == (512, 512, 4) for o in hands)
    again = O.procedural_hand_library(2, seed=3)
    assert np.array_equal(again.get("procedural_hand_3_1").rgba, hands.get("procedural_hand_3_1").rgba)
    other = O.procedural_hand_library(2, seed=4)
    assert not np.array_equal(other.get("procedural_hand_4_1").rgba, hands.get("procedural_hand_3_1").rgba)
    shapes = [o.rgba[:, :, 3] > 127 for o in hands]
    assert len({int(s.sum()) for s in shapes}) == len(shapes)             # every hand has its own shape
    for o, s in zip(hands, shapes):
        assert s[256, 256] or s[262:300, 240:272].any()                   # the knuckles sit at the canvas centre
        assert 60 < o.palm_width < 120


def test_procedural_hand_takes_the_face_colour_and_covers_the_anchor(hands):
    pts = fake_landmarks()
    f = O.FaceFrame.of(pts)
    covered, colours = 0, {}
    for face in ((190, 130, 100), (95, 60, 45)):
        img = np.empty((256, 256, 3), np.uint8)
        img[:] = face
        for seed in range(8):
            rng = np.random.default_rng(seed)
            occ = hands.choose(rng)
            pl = O.sample_placement(rng, occ, pts, kind="one_eye")
            assert pl.anchor == "one_eye" and pl.opacity == 1.0 and pl.shadow > 0
            assert O.Placement.from_dict(json.loads(json.dumps(pl.to_dict()))) == pl
            out, m = O.composite(img, pts, occ, pl)
            assert m.sum() > 0.5 * f.iod ** 2                                # a hand-sized paste
            covered += int(any(m[int(round(e[1])), int(round(e[0]))] for e in (f.eye_l, f.eye_r)))
            inner = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            colours.setdefault(face, []).append(np.median(out[inner], axis=0))
            a, ma = O.composite(img, pts, occ, pl)
            assert np.array_equal(a, out) and np.array_equal(ma, m)
    assert covered >= 6
    for face, cols in colours.items():
        med = np.median(np.array(cols), axis=0)
        assert np.all(np.abs(med - np.array(face)) < 0.35 * np.array(face) + 10), (face, med)
        assert med[0] > med[1] > med[2]                                      # a skin hue, like the face's


def test_kind_weights_and_merged_library(hands):
    emoji = O.OccluderLibrary([square_occluder(name=n, family=fam)
                               for n, fam in (("a", "hand"), ("b", "hand"), ("c", "cup"))])
    # a library without the weighted kind draws exactly as without weights (backward compatible streams)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    picks = [emoji.choose(r1).name for _ in range(30)]
    assert picks == [emoji.choose(r2, kind_weights={O.PROCEDURAL_HAND_KIND: 6.0}).name for _ in range(30)]
    both = emoji.merged(hands)
    assert len(both) == len(emoji) + len(hands)
    with pytest.raises(O.OccguiError, match="names in both"):
        both.merged(hands)
    rng = np.random.default_rng(0)
    kinds = [both.choose(rng, family="hand", kind_weights={O.PROCEDURAL_HAND_KIND: 6.0}).kind for _ in range(400)]
    share = kinds.count(O.PROCEDURAL_HAND_KIND) / len(kinds)
    assert 0.65 < share < 0.85                                                # 6 / (6 + 1 + 1)
    rng = np.random.default_rng(0)
    kinds = [both.choose(rng, family="hand").kind for _ in range(300)]
    assert 0.2 < kinds.count(O.PROCEDURAL_HAND_KIND) / len(kinds) < 0.45     # uniform over the 3 kinds


def test_load_library_has_no_procedural_hands(library):
    assert O.PROCEDURAL_HAND_KIND not in library.kinds()
    assert not any(o.skin_tinted for o in library)
