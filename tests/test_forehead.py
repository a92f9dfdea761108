"""parse.occluder_into_forehead (occgui.parsing.forehead): the occluder grows through the forehead's hair."""
from __future__ import annotations

import numpy as np

from occgui import labels as L
from occgui.metrics import face_region
from occgui.parsing import forehead as F


def _face68(size=128):
    """68 points of a frontal face: jaw 0-16 (a U from ear to ear), brows 17-26 at y=50, the rest inside."""
    t = np.linspace(np.pi, 0, 17)
    jaw = np.c_[64 + 40 * np.cos(t), 60 + 50 * np.sin(t)]
    brows = np.c_[np.linspace(30, 98, 10), np.full(10, 50.0)]
    inner = np.c_[np.linspace(40, 88, 41), np.linspace(60, 100, 41)]
    return np.vstack([jaw, brows, inner])


def test_the_forehead_spans_the_temples_up_to_the_hairline():
    p = _face68()                                               # brows at y=50, chin (point 8) at y=110
    fh = F.forehead(p, 128)
    ys, xs = np.nonzero(fh)
    hairline = 50 - F.HAIRLINE_SHARE * (110 - 50)
    assert ys.max() < 50 and abs(ys.min() - hairline) <= 1.5    # from the brows up to the hairline
    assert 23 <= xs.min() <= 26 and 102 <= xs.max() <= 105     # temple to temple: points 0 and 16 (x 24, 104)
    region = face_region(p, 128)
    above = np.nonzero(region[:50].any(axis=1))[0]
    assert ys.min() < above.min() and (fh & ~region).sum() > 0.1 * fh.sum()   # higher and wider than the
    bad = p.copy()                                              # metrics' face region
    bad[20, 1] = np.nan
    assert not F.forehead(bad, 128).any()                       # non-finite points: no forehead
    assert np.array_equal(F.forehead(np.c_[p, np.zeros(68)], 128), fh)   # (68, 3) mesh points: x, y used
    tilted = p.copy()
    tilted[8, 1] = 40                                           # a chin above the brows (broken points):
    assert F.forehead(tilted, 128).sum() < fh.sum() / 3         # no height, nothing above the brow band


def test_forehead_hair_joins_a_touching_occluder_only():
    p = _face68()
    lab = np.full((128, 128), L.SKIN, np.uint8)
    fh = F.forehead(p, 128)
    lab[fh] = L.HAIR                                            # a hat the network calls hair ...
    lab[44:52, 55:70] = L.OCCLUDER                              # ... and occluder at its brim, above the brows
    lab[100:110, 60:70] = L.HAIR                                # a beard: not the forehead
    lab[50:60, 40:55] = L.HAIR                                  # hair beside the brim, below the brows
    out = F.grown_into_forehead(lab, p)
    brim_px = np.zeros_like(fh)
    brim_px[44:52, 55:70] = True
    assert out is not lab and (lab[fh & ~brim_px] == L.HAIR).all()
    assert (out[fh] == L.OCCLUDER).all()                        # all the forehead's hair touches the brim
    brim = lab[44:52, 55:70].copy()
    rest = ~fh
    assert np.array_equal(out[rest], lab[rest])                 # the beard, the hair below the brows: unchanged
    assert (out[50:60, 40:55] == L.HAIR).all()
    split = lab.copy()                                          # a skin gap cuts the forehead's right part off
    split[:, 75:78] = np.where(fh[:, 75:78], L.SKIN, split[:, 75:78])
    out = F.grown_into_forehead(split, p)
    right, left = fh.copy(), fh.copy()
    right[:, :78] = False
    left[:, 75:] = False
    assert (out[right] == L.HAIR).all() and (out[left] == L.OCCLUDER).all()
    hand = np.where(lab == L.OCCLUDER, L.HAIR, lab).astype(np.uint8)   # a hand over the eye whose top edge
    hand[45:75, 35:60] = L.OCCLUDER                             # reaches into the forehead's hair: its centroid
    assert np.array_equal(F.grown_into_forehead(hand, p), hand)  # lies below the brows, so nothing grows
    both = hand.copy()
    both[44:52, 65:80] = L.OCCLUDER                             # with a band above the brows, the hair grows
    out = F.grown_into_forehead(both, p)
    assert (out[fh & (both == L.HAIR)] == L.OCCLUDER).any() and (brim == L.OCCLUDER).all()
    none = np.where(lab == L.OCCLUDER, L.SKIN, lab).astype(np.uint8)
    assert np.array_equal(F.grown_into_forehead(none, p), none)   # no occluder found: nothing grows
    assert np.array_equal(F.grown_into_forehead(lab, None), lab)  # no face mesh: nothing grows


def test_seeds_are_the_occluder_components_above_the_brows():
    p = _face68()
    occ = np.zeros((128, 128), bool)
    occ[30:48, 40:60] = True                                    # centroid row 38.5: above the brows (50)
    occ[46:80, 70:90] = True                                    # centroid row 62.5: a hand over an eye
    s = F.seeds(occ, p)
    assert s[30:48, 40:60].all() and not s[46:80, 70:90].any()
    assert not F.seeds(np.zeros_like(occ), p).any()
    speck = np.zeros_like(occ)
    speck[20:26, 60:66] = True                                  # 36 px < 0.3 % of 128x128 (49.2 px): a speck
    assert not F.seeds(speck, p).any()
    speck[20:28, 60:68] = True                                  # 64 px: a seed
    assert F.seeds(speck, p)[20:28, 60:68].all()
    bad = p.copy()
    bad[0, 0] = np.inf
    assert not F.seeds(occ, bad).any()


def test_a_hat_the_network_half_calls_hair_is_found(lfw_dir):
    """Billy_Andrade_0001 (dev split: a cap the network labels partly hair): with the option the occluder
    grows over the forehead, only from hair, and covers more of the labelled cap at a better IoU (parser
    v6c: 0.64 -> 0.70; v6c's network alone finds more of the cap than v5's, so the growth adds less)."""
    from occgui.eval import harness as H
    from occgui.eval.real import mask_photo_to_crop
    from occgui.parsing.settings import UNetSettings
    from occgui.training.real_occlusions import load_labels

    lab = next(x for x in load_labels(split="dev") if x.stem == "Billy_Andrade_0001")
    maps, iou = {}, {}
    for on in (False, True):
        v = H.Variants("cpu", {}, {"parse": UNetSettings(occluder_into_forehead=on, hand_context=False)})
        res = v.full.run(lab.photo_path(lfw_dir), stop_after="parse")
        assert ("+forehead" in res.backends["parse"]) == on
        w, h = res.image.photo_size
        gt = mask_photo_to_crop(res, lab.mask((h, w))).astype(bool)
        maps[on] = res.alpha.labels
        occ = maps[on] == L.OCCLUDER
        iou[on] = (occ & gt).sum() / (occ | gt).sum()
    changed = maps[True] != maps[False]
    assert changed.mean() > 0.01
    assert (maps[False][changed] == L.HAIR).all() and (maps[True][changed] == L.OCCLUDER).all()
    assert iou[True] > iou[False] + 0.04, iou


def test_the_face_mesh_runs_only_when_the_map_has_an_occluder(monkeypatch):
    """parse_batch asks MediaPipe for the face mesh only when something could grow; a photo that is not
    HxWx3 is refused with a clear error (the context view needs colour)."""
    from types import SimpleNamespace

    import pytest

    from occgui.parsing import unet_parser

    calls = []
    monkeypatch.setattr(unet_parser, "mesh_points68", lambda crop: calls.append(1) or None)
    maps = {"occ": False}

    def labels(logits, threshold):
        out = np.full(logits.shape[:-1], L.SKIN, np.uint8)
        if maps["occ"]:
            out[:, 10:20, 10:20] = L.OCCLUDER
        return out

    monkeypatch.setattr(unet_parser, "labels_from_logits", labels)
    parser = unet_parser.UNetParser(SimpleNamespace(device="cpu"), occluder_into_forehead=True)
    crop = np.full((256, 256, 3), 128, np.uint8)
    parser.parse(crop)
    assert calls == []
    maps["occ"] = True
    parser.parse(crop)
    assert calls == [1]
    with pytest.raises(ValueError, match="HxWx3 photo"):
        parser.parse(crop, photo=np.zeros((50, 50), np.uint8), to_crop=np.eye(2, 3))
