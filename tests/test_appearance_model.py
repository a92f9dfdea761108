"""The face appearance model behind the person-specific template (``synthesis/appearance.py``)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from occgui.synthesis import appearance as A
from occgui.synthesis.template import load_mean_face

REPO = Path(__file__).resolve().parents[1]

if not A.model_available():
    pytest.skip("needs resources/templates/appearance_model.npz", allow_module_level=True)


def _builder():
    spec = importlib.util.spec_from_file_location("build_appearance_model",
                                                  REPO / "tools" / "build_appearance_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _eye_band(face) -> np.ndarray:
    """(covered pixels,) bool: the template's band from the brows to below the eyes."""
    pts = face.points
    y0, y1 = pts[[105, 334], 1].mean() - 4, pts[[145, 374], 1].mean() + 8
    ys, _ = np.nonzero(face.coverage)
    return (ys >= y0) & (ys <= y1)


def test_bundled_model_matches_the_template_and_is_small():
    m = A.load_appearance_model()
    face = load_mean_face()
    assert m.mean.shape == (3 * int(face.coverage.sum()),)
    k = len(m.components)
    assert 16 <= k <= 128 and m.components.shape[1] == m.mean.shape[0]
    gram = m.components @ m.components.T
    assert np.allclose(gram, np.eye(k), atol=2e-2), "components must be orthonormal (float16 storage)"
    assert np.all(np.diff(m.variances) <= 0) and m.variances[-1] > 0
    assert m.info["identities"] == "ABCDEFGHIJKLMNOP", "built from the training identities only"
    assert A.resource_path(A.MODEL_NPZ).stat().st_size < 8_000_000
    # the mean is a face: darker eyes than cheeks, as the mean-face template
    mu = m.mean.reshape(-1, 3).mean(axis=1)
    assert mu[_eye_band(face)].mean() < mu[~_eye_band(face)].mean()


def test_mirror_index_is_an_involution():
    face = load_mean_face()
    idx = A.mirror_index(face)
    assert np.array_equal(idx[idx], np.arange(len(idx)))


def test_fit_predicts_hidden_pixels_of_a_face_drawn_from_the_model():
    """Conditional estimate: with the eye band hidden, the fit's hidden pixels are much closer
    to the truth than the mean's; with every pixel visible and little noise it recovers the face."""
    m = A.load_appearance_model()
    band = _eye_band(load_mean_face())
    rng = np.random.default_rng(0)
    gains_hidden, errs_full = [], []
    for _ in range(6):
        c = rng.standard_normal(len(m.variances)) * np.sqrt(m.variances)
        x = m.mean + c @ m.components
        w = (~band).astype(np.float32)
        rec, diag = A.fit(x, w)
        hid = np.repeat(band, 3)
        gains_hidden.append(np.abs(rec - x)[hid].mean() / np.abs(m.mean - x)[hid].mean())
        rec_all, _ = A.fit(x, np.ones_like(w), noise_std=1.0)
        errs_full.append(np.abs(rec_all - x).mean())
        assert 0.0 < diag["visible"] < 1.0
    assert np.mean(gains_hidden) < 0.6, gains_hidden
    assert max(errs_full) < 0.5


def test_large_noise_gives_the_mean_and_nan_values_are_ignored():
    m = A.load_appearance_model()
    x = m.mean + 30.0 * m.components[0] * np.sqrt(len(m.mean))
    rec, _ = A.fit(x, np.ones(len(x) // 3, np.float32), noise_std=1e7)
    assert np.abs(rec - m.mean).max() < 0.5
    y = x.copy()
    y[:300] = np.nan
    r1, _ = A.fit(y, np.ones(len(x) // 3, np.float32))
    w = np.ones(len(x) // 3, np.float32)
    w[:100] = 0
    r2, _ = A.fit(x, w)
    assert np.allclose(r1, r2, atol=1e-3), "a NaN value counts as hidden"


def test_principal_components_of_the_builder_match_an_exact_svd():
    b = _builder()
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((400, 5)))[0].T
    x = (rng.standard_normal((300, 5)) * [50, 30, 20, 10, 5]) @ basis + rng.standard_normal((300, 400)) * 0.1
    x = (x - x.mean(axis=0)).astype(np.float32)
    comps, var = b.principal_components(x, 3)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    assert np.allclose(var, s[:3] ** 2 / 299, rtol=1e-3)
    assert np.allclose(np.abs(np.sum(comps * vt[:3], axis=1)), 1.0, atol=1e-4)


def test_fit_on_real_held_out_crops_beats_the_mean_face(lfw_dir):
    """Clean held-out LFW crops (identities Q-S) with the eye band hidden: the fitted template's
    hidden pixels are closer to the photo's than the mean face's, after the same colour matching
    to the visible skin that the synthesis applies to the mean face."""
    from occgui.detection.crop import aligned_crop
    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
    from occgui.eval.deocclusion import heldout_photos
    from occgui.imageio import load_image
    from occgui.parsing.labelgen import crop_mesh
    from occgui.synthesis.template import match_colour

    face = load_mean_face()
    band = _eye_band(face)
    det = MediaPipeFaceDetector()
    ratios = []
    for path in heldout_photos(lfw_dir, seed=11)[:12]:
        img = load_image(path).rgb
        found = sorted(det.detect(img), key=lambda d: -d.area)
        if not found:
            continue
        crop = aligned_crop(img, found[0], 256).image
        mesh = crop_mesh(crop)
        truth = A.canonical_samples(crop, mesh[:468, :2], face)
        ok = np.all(np.isfinite(truth), axis=1)
        w = (ok & ~band).astype(np.float32)
        rec, _ = A.fit(truth.reshape(-1), w)
        rec = rec.reshape(-1, 3)
        hid = ok & band
        vis = ok & ~band
        mean = match_colour(face.image[face.coverage], face.image[face.coverage][vis], truth[vis])
        ratios.append(np.abs(rec[hid] - truth[hid]).mean() / np.abs(mean[hid] - truth[hid]).mean())
    assert len(ratios) >= 8
    assert np.mean(ratios) < 0.9, ratios
