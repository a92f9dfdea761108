"""The by-eye check of the held-out "clean" photos (resources/clean_check) and its use by the guard rails."""
from __future__ import annotations

import numpy as np
import pytest

from occgui.errors import OccguiError
from occgui.training.occlusion import clean_check as CC


def test_bundled_check_is_consistent():
    v = CC.clean_check()
    assert len(v) >= 500
    occ, ok = CC.judged_occluded(), CC.judged_clean()
    assert occ and ok and not occ & ok and occ | ok == set(v)
    assert all(p.split("/")[0][0] in "QRS" and p.endswith(".jpg") for p in v)      # held-out identities only
    for p in occ:
        assert v[p].occluders and set(v[p].occluders) <= {"hat", "hand", "microphone", "object", "sunglasses",
                                                            "glasses_thick", "scarf_or_mask", "hair", "other_person"}
    assert all(not v[p].occluders for p in ok)
    # thin glasses are noted but count as clean (the measure stays as strict as before for them)
    assert any("glasses_thin" in v[p].notes for p in ok)


def test_reader_rejects_bad_rows(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("photo,verdict,occluders,notes\nA/A_0001.jpg,occluded,,\n")
    with pytest.raises(OccguiError, match="names its occluders"):
        CC.read_clean_check(f)
    f.write_text("photo,verdict,occluders,notes\nA/A_0001.jpg,maybe,,\n")
    with pytest.raises(OccguiError, match="verdict"):
        CC.read_clean_check(f)
    f.write_text("photo,verdict,occluders,notes\nA/A_0001.jpg,clean,,\nA/A_0001.jpg,clean,,\n")
    with pytest.raises(OccguiError, match="twice"):
        CC.read_clean_check(f)
    f.write_text("photo,verdict,occluders,notes\nA/A_0001.jpg,occluded,hat;hand,\nB/B_0001.jpg,clean,,glasses_thin\n")
    v = CC.read_clean_check(f)
    assert v["A/A_0001.jpg"].occluders == ("hat", "hand") and v["B/B_0001.jpg"].clean
    assert CC.judged_occluded(f) == {"A/A_0001.jpg"} and CC.judged_clean(f) == {"B/B_0001.jpg"}


def test_eval_real_clean_photos_are_checked_and_clean(tmp_path):
    from occgui.eval.real import clean_check_counts, clean_photos

    unchecked = "Quincy_Unchecked/Quincy_Unchecked_0001.jpg"
    names = sorted(CC.judged_clean())[:6] + sorted(CC.judged_occluded())[:6] + [unchecked]
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_bytes(b"")
    chosen = clean_photos(tmp_path, set(), 100)
    rel = {p.relative_to(tmp_path).as_posix() for p in chosen}
    assert rel == set(sorted(CC.judged_clean())[:6])              # neither the occluded nor the unchecked photo
    listed = {tmp_path / sorted(CC.judged_clean())[0]}
    assert len(clean_photos(tmp_path, listed, 100)) == 5
    c = clean_check_counts()
    assert c["checked"] == len(CC.clean_check()) and c["judged_occluded"] == len(CC.judged_occluded())


def test_pasted_protocol_excludes_photos_but_keeps_the_others_occluders(occluders_dir):
    from occgui.training.occlusion.occluders import load_library
    from occgui.training.parsing.dataset import CleanSet
    from occgui.training.parsing.evaluate import evaluate_parser

    rng = np.random.default_rng(0)
    n = 5
    crops = rng.integers(0, 255, (n, 256, 256, 3), dtype=np.uint8)
    labels = np.full((n, 256, 256), 1, np.uint8)
    pts = np.stack([np.linspace(70, 186, 68), np.concatenate([np.linspace(100, 210, 17), np.full(51, 130.0)])], 1)
    lmk = np.tile(pts, (n, 1, 1))
    clean = CleanSet(crops, labels, lmk, np.zeros((n, 478, 3)), [f"P/P_{i:04d}.jpg" for i in range(n)])
    lib = load_library(occluders_dir)
    seen: list[np.ndarray] = []

    def parse(x):
        seen.append(x.copy())
        return np.zeros(x.shape[:3], np.uint8)

    full = evaluate_parser(parse, clean, lib, n=None, batch_size=1)
    before = list(seen)
    seen.clear()
    part = evaluate_parser(parse, clean, lib, n=None, batch_size=1, exclude={"P/P_0002.jpg"})
    assert full["photos"] == 5 and full["photos_excluded"] == 0
    assert part["photos"] == 4 and part["photos_excluded"] == 1
    # the remaining photos are occluded exactly as before (same k, same occluders): batches 0,1,3,4
    assert len(seen) == 4
    for a, b in zip(seen, [before[i] for i in (0, 1, 3, 4)]):
        assert np.array_equal(a, b)
