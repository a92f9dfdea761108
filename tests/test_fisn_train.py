"""FISN's trainer: a tiny run overfits a handful of pairs; resuming equals an uninterrupted run;
batches are seeded; (slow) a real pair from LFW + occluders + the pipeline."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from occgui import labels as L
from occgui.synthesis.fisn import FISNConfig, load_generator
from occgui.training.fisn.data import CROP_SIZE, PairSampler, PairSet, save_pairs
from occgui.training.fisn.losses import LossWeights
from occgui.training.fisn.train import Trainer, main

TINY = FISNConfig(size=32, channels=8, downsamples=2, blocks=4, style_dim=8, cond_hidden=8)
#: landmarks of a frontal face in the 256 px crop (eye corners, nose base: what dlib's chip uses)
LMK = np.zeros((68, 2), np.float32)
LMK[:, :] = (128, 150)
LMK[36:42], LMK[42:48], LMK[30:36] = (90, 110), (166, 110), (128, 160)


def synthetic_pairs(n: int = 4, seed: int = 0) -> PairSet:
    """Cartoon faces: skin disc, two eyes, a mouth; a grey block hides one eye and part of the face."""
    rng = np.random.default_rng(seed)
    s = CROP_SIZE
    items = {k: [] for k in ("occluded", "clean", "alpha", "gamma", "landmarks", "paste")}
    for i in range(n):
        gamma = np.zeros((s, s), np.uint8)
        cv2.ellipse(gamma, (128, 140), (80, 100), 0, 0, 360, L.SKIN, -1)
        cv2.ellipse(gamma, (90, 110), (16, 8), 0, 0, 360, L.R_EYE, -1)
        cv2.ellipse(gamma, (166, 110), (16, 8), 0, 0, 360, L.L_EYE, -1)
        cv2.ellipse(gamma, (128, 195), (30, 10), 0, 0, 360, L.U_LIP, -1)
        palette = rng.integers(30, 230, size=(L.NUM_CLASSES, 3)).astype(np.uint8)
        clean = palette[gamma]
        clean = cv2.GaussianBlur(clean, (0, 0), 2)
        paste = np.zeros((s, s), bool)
        x0 = 50 if i % 2 == 0 else 130
        paste[85:150, x0:x0 + 75] = True
        occluded = clean.copy()
        occluded[paste] = (120, 120, 120)
        alpha = gamma.copy()
        alpha[paste] = L.OCCLUDER
        for k, v in (("occluded", occluded), ("clean", clean), ("alpha", alpha), ("gamma", gamma),
                     ("landmarks", LMK), ("paste", paste)):
            items[k].append(v)
    return PairSet(*(np.stack(items[k]) for k in ("occluded", "clean", "alpha", "gamma", "landmarks", "paste")),
                   names=[f"synthetic/{i}" for i in range(n)], families=["block"] * n)


def test_batches_are_seeded_and_mirrored_consistently():
    pairs = synthetic_pairs(3)
    s = PairSampler(pairs, 32, seed=5)
    a, b = s.batch(7, 4), s.batch(7, 4)
    assert all(torch.equal(getattr(a, k), getattr(b, k))
               for k in ("masked", "hole", "alpha", "gamma", "target", "chip"))
    assert not torch.equal(s.batch(8, 4).hole, a.hole) or not torch.equal(s.batch(8, 4).masked, a.masked)
    assert a.masked.shape == (4, 3, 32, 32) and a.alpha.shape == (4, L.NUM_CLASSES, 32, 32)
    assert a.chip.shape == (4, 2, 3)
    # the mirrored sample: image flipped, the subject's left eye becomes the right one
    plain = s.fixed([0])
    from occgui.training.fisn.data import sample_arrays
    flipped = sample_arrays(pairs, 0, 32, flip=True)
    np.testing.assert_allclose(flipped["target"], plain.target[0].numpy()[:, :, ::-1])
    np.testing.assert_allclose(flipped["gamma"][L.L_EYE], plain.gamma[0, L.R_EYE].numpy()[:, ::-1])
    # the chip affine maps the chip's centre near the face centre in both
    c = np.array([74.5, 74.5, 1.0])
    assert abs((flipped["chip"] @ c)[0] - (31 - (plain.chip[0].numpy() @ c)[0])) < 0.5
    # the real image differs from the occluded input only inside the hole
    real = plain.real()[0]
    outside = plain.hole[0, 0] == 0
    assert torch.equal(real[:, outside], plain.masked[0][:, outside])


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a shared machine the threads' barriers
    can cost far more than the work."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_tiny_training_run_overfits_a_handful_of_pairs(one_thread):
    torch.manual_seed(0)
    pairs = synthetic_pairs(4)
    sampler = PairSampler(pairs, TINY.size, seed=0, flip=False)
    val = sampler.fixed(range(4))
    trainer = Trainer(TINY, LossWeights(id=0.0), lr=1e-3, ndf=8, seed=0)
    before, _ = trainer.validate(val)
    rec = []
    for step in range(100):
        losses = trainer.step(sampler.batch(step, 4))
        assert all(np.isfinite(v) for v in losses.values())
        rec.append(losses["rec"])
    after, grid = trainer.validate(val)
    assert np.mean(rec[-10:]) < np.mean(rec[:10]) / 3, rec    # the training hole L1 falls by 3x
    assert after < before / 3, (before, after)                 # and so does the eval-mode one (0-255)
    assert grid.shape == (4 * 32, 6 * 32, 3) and grid.dtype == np.uint8


def test_main_writes_the_run_and_resume_equals_an_uninterrupted_run(tmp_path):
    pairs_dir = save_pairs(tmp_path / "pairs", synthetic_pairs(3))
    common = ["--pairs-dir", str(pairs_dir), "--steps", "4", "--size", "32", "--channels", "4", "--style-dim", "4",
              "--ndf", "4", "--batch-size", "2", "--lambda-id", "0", "--lambda-per", "0", "--val-every", "2",
              "--val-pairs", "2", "--quiet", "--threads", "1"]
    assert main(["-o", str(tmp_path / "a"), *common]) == 0
    assert main(["-o", str(tmp_path / "b"), *common, "--stop-after", "3"]) == 0
    assert main(["-o", str(tmp_path / "b"), *common]) == 2                    # exists: needs --resume
    assert main(["-o", str(tmp_path / "b"), *common, "--resume"]) == 0
    ga, ha = load_generator(tmp_path / "a" / "fisn_generator.safetensors")
    gb, hb = load_generator(tmp_path / "b" / "fisn_generator.safetensors")
    assert ha["meta"]["steps"] == hb["meta"]["steps"] == 4
    for k, v in ga.state_dict().items():
        assert torch.allclose(v, gb.state_dict()[k], atol=1e-6), k
    assert sorted(p.name for p in (tmp_path / "a" / "val").iterdir()) == ["step_000002.png", "step_000004.png"]
    log = [json.loads(l) for l in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "total" in r] == [1, 2, 3, 4]
    assert {"gan", "fea", "rec", "d"} <= set(log[0])
    assert main(["-o", str(tmp_path / "c"), *common[2:]]) == 2               # no data given


@pytest.mark.slow
def test_a_real_pair_from_lfw(lfw_dir, occluders_dir):
    from occgui.imageio import load_image
    from occgui.pipeline.runner import Pipeline, PipelineConfig
    from occgui.synthesis.fisn.composite import hole_mask
    from occgui.training.fisn.data import make_pair, photo_order, split_identities, training_library

    train, val = split_identities(lfw_dir, "train"), split_identities(lfw_dir, "val")
    assert not set(train) & set(val) and all(p.name[0] in "ABCDEFGHIJKLMNOP" for p in train + val)
    photos = photo_order(lfw_dir, "val", seed=0)
    assert len({p.parent for p in photos[: len(val)]}) == len(val)            # one photo per identity first
    pipe = Pipeline(PipelineConfig(device="cpu"))
    lib = training_library(occluders_dir)
    assert {"hand", "mask", "sunglasses", "glasses", "hat", "cup"} <= set(lib.families())
    pair = None
    for k, photo in enumerate(photos[:6]):
        pair = make_pair(pipe, lib, load_image(photo).rgb, np.random.default_rng([0, 1, k]))
        if pair is not None:
            break
    assert pair is not None
    hole = hole_mask(pair.alpha)
    assert hole.sum() >= 150 and pair.occluded.shape == pair.clean.shape == (256, 256, 3)
    assert (hole & pair.paste).sum() > 0.5 * pair.paste.sum()                # the parser found the occluder
    far = cv2.dilate(pair.paste.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    diff = np.abs(pair.occluded.astype(int) - pair.clean.astype(int))[far].mean()
    assert diff < 3.0                                                         # same frame outside the occluder
