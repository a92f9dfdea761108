"""``occgui eval real`` and the labelled real-occlusion set (``resources/real_occlusions``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from occgui.errors import OccguiError
from occgui.training import real_occlusions as RO


def _doc(**kw):
    d = {"photo": "lfw-deepfunneled/A/A_0001.jpg", "type": "hand",
         "landmarks": [[float(i), float(i)] for i in range(68)],
         "occluder_polygons": [[[10, 10], [50, 10], [50, 40]]], "hidden": [3], "checked": True}
    d.update(kw)
    return d


def test_label_mask_and_validation():
    lab = RO.parse_label(_doc(), "A_0001", "test")
    m = lab.mask((60, 60))
    assert m.dtype == bool and m[12:38, 45:49].any() and not m[45:, :].any()
    assert lab.photo == "A/A_0001.jpg"
    for bad, msg in ((_doc(type="glove"), "type"), (_doc(landmarks=[[1, 2]] * 67), "68"),
                     (_doc(landmarks=[[float("nan"), 1.0]] * 68), "68"),
                     (_doc(occluder_polygons=[[[1, 2], [3, 4]]]), "at least 3"), (_doc(hidden=[70]), "0..67"),
                     ("nonsense", "JSON object")):
        with pytest.raises(OccguiError, match=msg):
            RO.parse_label(bad, "A_0001", "dev")


def test_the_bundled_set_is_valid_and_split():
    labels = RO.load_labels(checked_only=False)
    assert labels, "the label set is empty"
    splits = RO.read_splits(RO.default_folder())
    assert set(splits.values()) == {"dev", "test"}
    n_test = sum(v == "test" for v in splits.values())
    assert abs(n_test / len(splits) - 1 / 3) < 0.05                  # a third is the test split
    for lab in labels:
        assert lab.split == splits[lab.stem]


def test_overlap_and_landmark_measures():
    from occgui.eval.real import face_region, landmark_errors, overlap_counts, ratios

    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True
    b[:, 3:8] = True
    c = overlap_counts(a, b)
    r = ratios(c)
    assert c == {"inter": 20, "union": 80, "pred": 50, "gt": 50}
    assert r["iou"] == pytest.approx(0.25)
    assert r["precision"] == pytest.approx(0.4) and r["recall"] == pytest.approx(0.4)
    from occgui.landmarks.plausibility import mean_shape68

    gt = mean_shape68() * 50 + 128
    e = landmark_errors(gt + [0.0, 5.0], gt, hidden=[1, 2])
    outer = np.linalg.norm(gt[36] - gt[45])
    assert e["nme"] == pytest.approx(5.0 / outer) and e["nme_hidden"] == pytest.approx(5.0 / outer)
    assert e["max_iod"] == pytest.approx(5.0 / 50.0, rel=1e-6)
    assert np.isnan(landmark_errors(gt, gt, hidden=[])["nme_hidden"])
    region = face_region(gt, 256)
    assert region[int(gt[30, 1]), int(gt[30, 0])] and not region[5, 5]


def test_face_region_summary_counts_only_the_face():
    """An occluder found over the face but not beside it: whole-crop IoU is low, face-region IoU 1."""
    from occgui.eval.real import _group

    def rec(inter, union, pred, gt, f):
        return {"status": "ok", "type": "hand", "occluder_crop_fraction": 0.1, "iout_resynthesized_fraction": 0.1,
                "landmarks": {}, "occluder": {"inter": inter, "union": union, "pred": pred, "gt": gt,
                                              "iou": inter / union},
                "occluder_face": {"inter": f, "union": f, "pred": f, "gt": f, "iou": 1.0}}
    g = _group([rec(100, 1000, 100, 1000, 100), rec(50, 500, 50, 500, 50)])
    assert g["pooled"]["iou"] == pytest.approx(0.1) and g["found_rate"] == 0.0
    assert g["face_region"]["pooled"]["iou"] == 1.0 and g["face_region"]["found_rate"] == 1.0
    assert g["face_region"]["gt_share"] == pytest.approx(0.1)


def test_eval_real_on_a_small_labelled_sample(tmp_path, lfw_dir):
    """Three labelled photos, two clean ones: the report's keys, the per-case transform, the targets."""
    from occgui.cli import main
    from occgui.pipeline import backends

    if not backends.available("parse"):
        pytest.skip("needs the parser checkpoint")
    rc = main(["eval", "real", "--faces", str(lfw_dir), "-o", str(tmp_path), "--limit", "3", "--clean", "2",
               "--others", "0", "--samples", "2", "-q"])
    assert rc == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert len(rep["records"]) == 3 and rep["clean"]["photos"] == 2
    for r in rep["records"]:
        assert r["status"] == "ok"
        m = np.asarray(r["photo_to_crop"])
        assert m.shape == (2, 3)
        assert set(r["landmarks"]) == {"ours", "mediapipe", "dlib"}
        assert r["occluder"]["union"] == 0 or 0.0 <= r["occluder"]["iou"] <= 1.0
        # the face-region counts are the whole-crop counts restricted to a region: never larger
        for k in ("inter", "pred", "gt", "union"):
            assert 0 <= r["occluder_face"][k] <= r["occluder"][k]
    fr = rep["test"]["all"]["face_region"] if "test" in rep else rep["all"]["all"]["face_region"]
    assert {"pooled", "found_rate", "gt_share", "with_occluder_label"} <= set(fr)
    assert "within the face region" in (tmp_path / "report.md").read_text()
    assert rep["targets"] and all({"target", "value", "met"} <= set(t) for t in rep["targets"])
    assert (tmp_path / "report.md").read_text().startswith("# Real occlusions")
    assert rep["software"]["numpy"] and rep["software"]["onnxruntime"]
    assert sum(g["photos"] for g in rep["by_identity_group"].values()) == 3
    # the clean photos are only photos judged clean by eye (resources/clean_check), and the report says so
    from occgui.training.occlusion.clean_check import judged_clean

    assert {c["photo"] for c in rep["clean_records"]} <= judged_clean()
    assert rep["settings"]["clean_check"]["judged_occluded"] > 0
    assert "judged clean" in (tmp_path / "report.md").read_text()
