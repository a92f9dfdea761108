"""The occlusion-aware landmark refiner (``occgui/landmarks/refiner.py``; paper §3.1, Eq. 1)."""
from __future__ import annotations

import numpy as np
import pytest

from occgui.landmarks import refiner as R


def _mean():
    from occgui.synthesis.mirror import mesh_mirror_map

    if R.checkpoint_exists():
        return R.default_weights().mean_xy, mesh_mirror_map()
    pytest.skip("needs checkpoints/landmark_refiner.onnx")


def test_similarity_round_trip():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 2))
    ang, s, t = 0.3, 1.7, np.array([4.0, -2.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    b = s * a @ rot.T + t
    m = R.similarity(a, b)
    assert np.allclose(R.apply(m, a), b, atol=1e-9)
    assert np.allclose(R.apply(R.invert(m), b), a, atol=1e-9)


def test_occluder_grid_follows_the_face_frame():
    """The canonical grid reads the mask where the face is: a box over the lower face fills the
    bottom rows of the grid, whatever the crop's scale and rotation."""
    mean, _ = _mean()
    for scale, ang in ((90.0, 0.0), (60.0, 0.4)):
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        mesh = scale * mean @ rot.T + 256
        occ = np.zeros((512, 512), bool)
        can = np.mgrid[0:512, 0:512][::-1].reshape(2, -1).T.astype(float)
        back = (can - 256) @ rot / scale                          # crop pixel -> canonical
        occ.reshape(-1)[back[:, 1] > 0.9] = True                  # everything below the nose
        v, g = R.occluder_features(occ, R.similarity(mesh[:R.SURFACE], mean[:R.SURFACE]), mesh)
        rows = R.grid_to_canonical()[1, 2] + R.grid_to_canonical()[1, 1] * np.arange(R.GRID)
        assert g[rows > 1.0].mean() > 0.95 and g[rows < 0.8].mean() < 0.05
        assert np.all(v[mean[:, 1] > 1.0] > 0.9) and np.all(v[mean[:, 1] < 0.8] < 0.1)


def test_flip_is_an_involution():
    mean, mirror = _mean()
    rng = np.random.default_rng(1)
    x = rng.normal(size=R.INPUT_DIM).astype(np.float32)
    assert np.allclose(R.flip_input(R.flip_input(x, mirror), mirror), x)
    d = rng.normal(size=(3, R.N_POINTS, 2))
    assert np.allclose(R.flip_offsets(R.flip_offsets(d, mirror), mirror), d)
    assert np.allclose(mean[mirror] * [-1, 1], mean, atol=1e-6)   # the mean face is symmetric


def test_no_occluder_leaves_the_mesh_alone():
    mean, _ = _mean()
    mesh = np.zeros((R.N_POINTS, 3))
    mesh[:, :2] = 80 * mean + 128
    mesh[:, 2] = np.linspace(-5, 5, R.N_POINTS)
    out = R.refine(R.default_weights(), mesh, np.zeros((256, 256), bool))
    assert np.array_equal(out, mesh)


def test_refiner_backend_reads_m_alpha_and_is_not_the_default():
    from occgui import labels as L
    from occgui.pipeline import backends as B
    from occgui.pipeline.default_backends import REFINER_IS_DEFAULT

    if not R.checkpoint_exists():
        pytest.skip("needs checkpoints/landmark_refiner.onnx")
    assert "mediapipe-refined" in B.available("landmarks")
    assert (B.available("landmarks")[0] == "mediapipe-refined") == REFINER_IS_DEFAULT
    assert B.available("landmarks")[0] == "mediapipe"          # real photos: MediaPipe's guess of hidden points
    from occgui.pipeline.stages import STAGES, stage

    assert STAGES.index("parse") < STAGES.index("landmarks") and "parse" in stage("landmarks").inputs
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks
    from occgui.pipeline.runner import Pipeline, PipelineConfig
    from occgui.resources import resource_path

    p = Pipeline(PipelineConfig(device="cpu", backends={"landmarks": "mediapipe-refined"}))
    r = p.run(resource_path("samples/astronaut_mask.png"), stop_after="landmarks")
    mp = MediaPipeMeshLandmarks().detect(r.crop.image)
    occ = r.alpha.labels == L.OCCLUDER
    moved = np.linalg.norm(r.landmarks.mesh[:, :2] - mp.mesh[:, :2], axis=1)
    xi = np.clip(np.rint(mp.mesh[:, :2]).astype(int), 0, 255)
    hidden = occ[xi[:, 1], xi[:, 0]]
    assert hidden.sum() > 50
    # the hidden points move more than the visible ones, which stay close to MediaPipe's
    assert np.median(moved[hidden]) > 2 * np.median(moved[~hidden])
    assert np.median(moved[~hidden]) < 2.0


def test_refiner_places_hidden_points_better_than_mediapipe(lfw_dir, occluders_dir):
    """On held-out photos (identities Q-S) with a pasted occluder, the hidden points (under the
    paste mask) are closer to MediaPipe's points on the clean photo than MediaPipe's own guess."""
    from occgui.eval import deocclusion as D
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks
    from occgui.training.occlusion.occluders import load_library

    if not R.checkpoint_exists():
        pytest.skip("needs checkpoints/landmark_refiner.onnx")
    stages = D.Stages(parser="auto", landmarks="mediapipe-refined")
    plain = MediaPipeMeshLandmarks()
    library = load_library(occluders_dir)
    for fam in ("sunglasses", "surgical_mask"):
        e_mp, e_ref = [], []
        for case in D.iter_cases(stages, lfw_dir, library, fam, 8, seed=5):
            if case.clean_landmarks is None:
                continue
            truth = case.clean_landmarks.mesh[:, :2]
            xi = np.clip(np.rint(truth).astype(int), 0, 255)
            hidden = case.paste[xi[:, 1], xi[:, 0]]
            iod = np.linalg.norm(case.clean_landmarks.points[36:42].mean(0)
                                 - case.clean_landmarks.points[42:48].mean(0))
            mp = plain.detect(case.occluded).mesh[:, :2]
            e_mp.append(np.linalg.norm(mp - truth, axis=1)[hidden].mean() / iod)
            e_ref.append(np.linalg.norm(case.landmarks.mesh[:, :2] - truth, axis=1)[hidden].mean() / iod)
        assert len(e_mp) >= 6
        assert np.mean(e_ref) < 0.85 * np.mean(e_mp), (fam, np.mean(e_ref), np.mean(e_mp))


def test_tiny_training_run_fits_its_samples_and_round_trips(tmp_path):
    """`train_refiner` end to end on one face (the astronaut) with procedural hands: samples are
    made, a small network fits them better than MediaPipe's own points, and the checkpoint it
    writes reads back as the same network."""
    from skimage import data

    from occgui.detection.crop import aligned_crop
    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks
    from occgui.synthesis.mirror import mesh_mirror_map
    from occgui.training.landmarks import train_refiner as T
    from occgui.training.occlusion.occluders import procedural_hand_library

    rgb = np.ascontiguousarray(data.astronaut())
    det = sorted(MediaPipeFaceDetector().detect(rgb), key=lambda d: -d.area)[0]
    crop = aligned_crop(rgb, det, 256).image
    lm = MediaPipeMeshLandmarks().detect(crop)
    mirror = mesh_mirror_map()
    mean = T.mean_shape(lm.mesh[None], mirror)
    assert np.allclose(mean[mirror] * [-1, 1], mean, atol=1e-9)
    lib = procedural_hand_library(4, seed=0)
    samples = []
    for k in range(24):
        s = T.make_sample(np.random.default_rng([3, k]), crop, lm.points, lm.mesh, lib, mean,
                          "hand_over_eye" if k % 2 else "hand_over_mouth", second=0.0)
        if s is not None:
            samples.append(s)
    assert len(samples) >= 16
    d = {"x": np.stack([s[0] for s in samples]), "t": np.stack([s[1] for s in samples]),
         "hidden": np.stack([s[2] for s in samples]), "family": np.array(["hand"] * len(samples))}
    layers = T.train(d, mirror, hidden=64, epochs=60, batch=8, lr=3e-3, progress=False)
    path = tmp_path / "r.onnx"
    T.save(path, mean, mirror, layers, {"test": True})
    w = R.load_weights(path)
    before = T.errors(d, np.zeros_like(d["t"]))["hand"]["hidden"]
    after = T.errors(d, T.predict(layers, mirror, d["x"]))["hand"]["hidden"]
    assert after < 0.7 * before, (before, after)
    # the stored network is the trained one (fp16 weights: close, not bit-equal), the mean face exactly
    x = d["x"][:2].astype(np.float32)
    assert np.allclose(R.forward(w, x), T.predict(layers, mirror, x), atol=2e-3)
    assert np.array_equal(w.mean_xy, mean.astype(np.float32).astype(np.float64))
