"""``occgui train recon`` (occgui/training/recon): pose bookkeeping of the distilled samples,
the augmentation, and tiny training runs through the CLI's code path (fit, save, load, resume)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occgui.errors import OccguiError
from occgui.morphable import load_default_model
from occgui.morphable.camera import Pose
from occgui.morphable.coefficients import CoefficientLayout, Coefficients
from occgui.morphable.regressor import RNet, load_regressor, pose_from_unit, pose_to_unit
from occgui.training.recon import train as recon_train
from occgui.training.recon.data import STORE_SIZE, SampleSet, compose, load_samples, save_samples, transform_pose

LAYOUT = CoefficientLayout.of(load_default_model())


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def _similarity(angle: float, scale: float, t) -> np.ndarray:
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[c, -s, t[0]], [s, c, t[1]]])


def test_transform_pose_is_the_similarity_after_the_projection(model):
    pose = Pose(math.radians(8), math.radians(-20), math.radians(5), 1.7, 120.0, 140.0)
    pts = model.shape(np.zeros(model.num_identity), np.zeros(model.num_expression))[model.landmarks]
    a = _similarity(math.radians(12), 0.8, (-30.0, 17.0))
    moved = pose.project(pts) @ a[:, :2].T + a[:, 2]
    p2 = transform_pose(pose, a)
    assert np.abs(p2.project(pts) - moved).max() < 1e-9
    assert p2.scale == pytest.approx(1.7 * 0.8)
    b = _similarity(-0.3, 1.3, (5.0, -2.0))
    both = compose(a, b)
    assert np.allclose(transform_pose(p2, b).project(pts), transform_pose(pose, both).project(pts))


def test_unit_crop_pose_round_trip_and_meaning():
    v = np.zeros(LAYOUT.size)
    p0 = LAYOUT.slices()["pose"].start
    v[p0:p0 + 6] = [0.1, -0.2, 0.05, 1.5, 127.5, 140.0]
    u = pose_to_unit(v, LAYOUT, 256)
    assert u[p0 + 3] == pytest.approx(1.5 / 256) and u[p0 + 4] == pytest.approx(0.5)   # crop centre
    assert np.allclose(pose_from_unit(u, LAYOUT, 256), v)
    # the same unit pose in a 128 px crop: half the scale, pixel centres remapped
    half = pose_from_unit(u, LAYOUT, 128)
    assert half[p0 + 3] == pytest.approx(0.75) and half[p0 + 4] == pytest.approx((127.5 + 0.5) / 2 - 0.5)


def test_augmentation_moves_the_image_and_the_pose_together():
    """A bright pixel at the projected model origin (tx, ty) stays at the augmented pose's origin."""
    s = STORE_SIZE
    img = np.zeros((s, s, 3), np.uint8)
    ox, oy = 70, 52
    img[oy - 1:oy + 2, ox - 1:ox + 2] = 255
    v = np.zeros(LAYOUT.size, np.float32)
    p0 = LAYOUT.slices()["pose"].start
    v[p0:p0 + 6] = pose_to_unit(np.r_[np.zeros(LAYOUT.size - 6), [0, 0, 0.1, 1.0, ox, oy]], LAYOUT, s)[p0:]
    for seed in range(5):
        out, t = recon_train.augment_sample(img, v, LAYOUT, np.random.default_rng(seed))
        px = pose_from_unit(t.astype(np.float64), LAYOUT, s)[p0 + 4:p0 + 6]
        w = out[..., 0].astype(np.float64)
        yy, xx = np.mgrid[0:s, 0:s]
        centroid = np.array([(xx * w).sum(), (yy * w).sum()]) / w.sum()
        assert np.abs(centroid - px).max() < 0.6, (seed, centroid, px)
        assert abs(t[p0 + 2] - v[p0 + 2]) <= math.radians(6.0) + 1e-6     # roll moved by the rotation only
        assert t[p0] == pytest.approx(v[p0]) and t[p0 + 1] == pytest.approx(v[p0 + 1])


def _toy_samples(model, n: int = 6, seed: int = 0) -> SampleSet:
    """``n`` samples whose targets are a function of the image: a square's position and size give
    the pose translation and scale, its colour the first identity coefficient."""
    rng = np.random.default_rng(seed)
    s = STORE_SIZE
    images = np.zeros((n, s, s, 3), np.uint8)
    targets = np.zeros((n, LAYOUT.size), np.float32)
    lms = np.zeros((n, 68, 2), np.float32)
    p0 = LAYOUT.slices()["pose"].start
    for i in range(n):
        cx, cy = rng.uniform(0.35, 0.65, 2)
        scale = rng.uniform(0.0032, 0.0042)
        half = int(scale * s * 60)
        colour = rng.uniform(0.2, 1.0)
        x0, y0 = int(cx * s), int(cy * s)
        rgb = (np.array([colour, 0.5, 1 - colour]) * 255).astype(np.uint8)
        images[i, y0 - half:y0 + half, x0 - half:x0 + half] = rgb
        vec = np.zeros(LAYOUT.size)
        vec[0] = 3 * (colour - 0.6)
        vec[p0:p0 + 6] = [0.0, 0.0, 0.0, scale, cx, cy]
        targets[i] = vec
        c = Coefficients.from_vector(vec, LAYOUT)
        lms[i] = c.pose.project(model.shape(c.identity, c.expression)[model.landmarks])
    return SampleSet(images, targets, lms, np.arange(n, dtype=np.int32), [f"toy/{i}.jpg" for i in range(n)],
                     ["clean"] * n, (LAYOUT.num_identity, LAYOUT.num_expression, LAYOUT.num_albedo), model.name)


def _args(tmp_path, samples_dir, out, *extra):
    return ["--samples-dir", str(samples_dir), "-o", str(out), "--size", "32", "--batch-size", "6", "--lr", "3e-4",
            "--quiet", "--val-every", "1000", "--cache", str(tmp_path / "cache"), *extra]


def test_a_tiny_run_fits_its_samples_and_ships_loadable_weights(tmp_path, model):
    folder = save_samples(tmp_path / "samples", _toy_samples(model))
    samples = load_samples(folder)
    assert len(samples) == 6 and samples.images.shape[1:] == (STORE_SIZE, STORE_SIZE, 3)
    out = tmp_path / "run"
    assert recon_train.main(_args(tmp_path, folder, out, "--steps", "400")) == 0
    import json

    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"total"' in line]
    first, last = log[0]["total"], np.mean([x["total"] for x in log[-10:]])
    assert last < 0.2 * first, (first, last)
    net, header = load_regressor(out / "recon_regressor.safetensors")
    assert header["stages"] == 2 and header["input_size"] == 32
    assert header["layout"] == [LAYOUT.num_identity, LAYOUT.num_expression, LAYOUT.num_albedo]
    assert net.head.weight.dtype == torch.float32       # stored fp16, loaded as float32
    rnet = RNet(net, header, str(out / "recon_regressor.safetensors"))
    rnet.check_model(model)
    # the network reproduces its training samples' poses (pixels of a 256 px crop)
    p0 = LAYOUT.slices()["pose"].start
    truth = pose_from_unit(np.asarray(samples.targets, np.float64), LAYOUT, STORE_SIZE)[:, p0 + 4:p0 + 6]
    pred = np.stack([rnet.predict(np.asarray(samples.images[i])) for i in range(len(samples))])
    err = np.linalg.norm(pred[:, p0 + 4:p0 + 6] - truth, axis=1)
    baseline = np.linalg.norm(truth - truth.mean(0), axis=1)          # predicting the mean position
    assert err.mean() < 0.4 * baseline.mean(), (err, baseline)
    assert np.all(pred[:, p0 + 3] > 0) and np.isfinite(pred).all()


def test_resume_continues_the_same_run(tmp_path, model):
    folder = save_samples(tmp_path / "samples", _toy_samples(model, n=4, seed=1))
    straight, split = tmp_path / "a", tmp_path / "b"
    assert recon_train.main(_args(tmp_path, folder, straight, "--steps", "4")) == 0
    assert recon_train.main(_args(tmp_path, folder, split, "--steps", "4", "--stop-after", "2")) == 0
    assert recon_train.main(_args(tmp_path, folder, split, "--steps", "4", "--resume")) == 0
    a, _ = load_regressor(straight / "recon_regressor.safetensors")
    b, _ = load_regressor(split / "recon_regressor.safetensors")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va.float(), vb.float(), atol=1e-3), k
    # a second run into the same folder, or a resume with other options, is one error line
    assert recon_train.main(_args(tmp_path, folder, straight, "--steps", "4")) == 2
    assert recon_train.main(_args(tmp_path, folder, split, "--steps", "4", "--resume", "--lr", "1e-2")) == 2


def test_missing_data_is_one_error_line(tmp_path, capsys):
    assert recon_train.main(["-o", str(tmp_path / "r"), "--quiet"]) == 2
    assert "give --data" in capsys.readouterr().err
    with pytest.raises(OccguiError):
        recon_train.run(recon_train_args(tmp_path))


def recon_train_args(tmp_path):
    import argparse

    p = argparse.ArgumentParser()
    recon_train.add_arguments(p)
    return p.parse_args(["-o", str(tmp_path / "r2"), "--data", str(tmp_path / "nowhere"), "--quiet"])


def test_pose_outliers_are_dropped_before_training():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(200, LAYOUT.size)).astype(np.float32)
    p0 = LAYOUT.slices()["pose"].start
    t[7, p0 + 3] = 40.0                      # a scale far off: an occluded run framed differently
    t[50, p0 + 5] = -25.0
    t[90, 0] = 30.0                          # identity outliers are kept (only the pose is screened)
    keep = recon_train.robust_keep(t, LAYOUT)
    assert not keep[7] and not keep[50] and keep[90]
    assert keep.sum() >= 195
