"""The teacher's pseudo-labels of real occluders in the clean training photos
(occgui.training.parsing.teacher, ``occgui train parsing --teacher``)."""
from __future__ import annotations

import argparse
import json
import pickle

import numpy as np
import pytest

from occgui import labels as L
from occgui.errors import OccguiError
from occgui.training.parsing import teacher as T
from occgui.training.parsing.dataset import CleanSet, load_clean_set

S = 64


def _clean_set(folder) -> CleanSet:
    """Three 64 px photos in a cache folder laid out as ``dataset.build_clean_set`` writes it."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.full((3, S, S), L.SKIN, np.uint8)
    labels[:, :10] = L.HAIR
    np.save(folder / "crops.npy", rng.integers(0, 255, (3, S, S, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", labels)
    np.save(folder / "lmk68.npy", rng.random((3, 68, 2), dtype=np.float32))
    np.save(folder / "mesh.npy", rng.random((3, 478, 3), dtype=np.float32))
    names = ["A/A_0001.jpg", "B/B_0001.jpg", "C/C_0001.jpg"]
    (folder / "meta.json").write_text(json.dumps({"version": 1, "count": 3, "photos": names, "complete": True}))
    return load_clean_set(folder)


def _teacher(calls):
    """A fake parse stage: a 20x20 occluder (9.8 % of the crop) on photo 1, one occluder pixel on photo 2."""
    def parse_batch(crops):
        calls.append(len(crops))
        out = np.full(crops.shape[:3], L.SKIN, np.uint8)
        out[1, 5:25, 30:50] = L.OCCLUDER
        out[2, 40, 40] = L.OCCLUDER
        return out
    return parse_batch


def test_the_teacher_writes_its_occluder_where_it_marks_enough_of_the_crop(tmp_path):
    clean = _clean_set(tmp_path / "set")
    calls = []
    out = T.with_teacher_occluders(clean, _teacher(calls), "fake@1", min_fraction=0.01)
    assert calls == [3]
    assert out.source != clean.source and len(out) == 3 and out.names == clean.names
    assert np.array_equal(out.crops, clean.crops) and np.array_equal(out.lmk68, clean.lmk68)
    want = np.array(clean.labels)
    want[1, 5:25, 30:50] = L.OCCLUDER                       # the cap on the forehead, over the generated hair
    assert np.array_equal(out.labels, want)                 # the speck on photo 2 is left alone
    assert np.array_equal(clean.labels[1], np.load(tmp_path / "set" / "labels.npy")[1])   # the source untouched
    rec = T.teacher_record(out)
    assert rec == json.loads((tmp_path / "set").parent.joinpath(out.source, "meta.json").read_text())["teacher"]
    assert T.teacher_record(clean) == {}
    assert rec["photos"] == 1 and rec["photo_names"] == ["B/B_0001.jpg"] and rec["digest"] == "fake@1"
    assert rec["pixel_share"] == pytest.approx(400 / S ** 2)
    # training processes get the set as its folder: the pseudo-labels travel with it
    assert np.array_equal(pickle.loads(pickle.dumps(out)).labels, want)


def test_the_pseudo_labels_are_cached_per_teacher_and_threshold(tmp_path):
    clean = _clean_set(tmp_path / "set")
    calls = []
    first = T.with_teacher_occluders(clean, _teacher(calls), "fake@1", 0.01)

    def refuse(crops):
        raise AssertionError("the cached pseudo-labels should have been used")
    again = T.with_teacher_occluders(clean, refuse, "fake@1", 0.01)
    assert again.source == first.source and np.array_equal(again.labels, first.labels)
    every = T.with_teacher_occluders(clean, _teacher(calls), "fake@1", 0.0)       # every find, the speck too
    assert every.source != first.source and every.labels[2, 40, 40] == L.OCCLUDER
    other = T.with_teacher_occluders(clean, _teacher(calls), "fake@2", 0.01)
    assert other.source not in (first.source, every.source)
    assert calls == [3, 3, 3]


def test_bad_teacher_settings_are_one_line_errors(tmp_path):
    clean = _clean_set(tmp_path / "set")
    with pytest.raises(OccguiError, match="teacher-min-fraction"):
        T.with_teacher_occluders(clean, _teacher([]), "fake@1", 1.5)
    loose = CleanSet(np.array(clean.crops), np.array(clean.labels), np.array(clean.lmk68), np.array(clean.mesh),
                     clean.names)
    with pytest.raises(OccguiError, match="cached clean set"):
        T.with_teacher_occluders(loose, _teacher([]), "fake@1", 0.01)


def test_a_tiny_run_records_its_teacher(tmp_path, lfw_dir):
    from occgui.parsing import unet_parser
    from occgui.training.parsing import train

    data = lfw_dir.parent.parent.parent
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    common = ["--data", str(data), "--cache", str(tmp_path / "cache"), "--limit", "4", "--batch-size", "4",
              "--input-size", "64", "--lr", "0.005", "--eval-photos", "0", "--eval-every", "0", "--workers", "1",
              "--threads", "1", "--quiet", "--steps", "2"]
    init = tmp_path / "init"
    assert train.run(p.parse_args(common + ["-o", str(init), "--widths", "8,16,32,32,64"])) == 0
    ckpt = init / unet_parser.CHECKPOINT_NAME
    run = tmp_path / "run"
    assert train.run(p.parse_args(common + ["-o", str(run), "--init", str(ckpt), "--teacher", str(ckpt),
                                            "--teacher-min-fraction", "0.02"])) == 0
    rec = unet_parser.load_checkpoint(run / unet_parser.CHECKPOINT_NAME)[1]["meta"]["teacher"]
    assert rec["checkpoint"] == str(ckpt) and rec["min_fraction"] == 0.02
    assert rec["parse"].startswith("unet@") and "+hands" in rec["parse"] and "+forehead" in rec["parse"]
    assert 0 <= rec["photos"] <= 4
    assert any(f.name.startswith("parsing_lfw_train_") and "_teacher" in f.name for f in (tmp_path / "cache").iterdir())


def test_the_teacher_is_the_parse_stage_or_the_network_alone():
    from occgui.resources import checkpoint_path

    ckpt = checkpoint_path("parsing_unet.onnx")
    _, whole = T.teacher_parse_batch(ckpt)
    parse_alone, alone = T.teacher_parse_batch(ckpt, rules=False)
    assert "+hands" in whole and "+forehead" in whole
    assert alone.startswith("unet@") and "+" not in alone            # another digest: another cache folder
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    assert parse_alone(crops).shape == (2, 64, 64)
