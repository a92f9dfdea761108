"""Fuzzing of every reader of files a user may be sent (issue 17, point 1), with hypothesis.

Each reader must answer any input with its value or a one-line :class:`OccguiError` -- never
another exception, never a hang. The default run is bounded (``max_examples`` below, a few
seconds per reader); ``OCCGUI_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_readers.py`` runs the
long tier.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occgui.errors import OccguiError

EXAMPLES = int(os.environ.get("OCCGUI_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _one_line(e: OccguiError) -> None:
    assert str(e) and "\n" not in str(e) and "Traceback" not in str(e)


def _through_file(data: bytes, suffix: str, read) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"fuzz{suffix}"
        p.write_bytes(data)
        try:
            read(p)
        except OccguiError as e:
            _one_line(e)


def _png_bytes(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([".png", ".jpg", ".webp", ".tif", ".bmp", ".txt"]))
def test_image_loader_on_random_bytes(data, suffix):
    from occgui.imageio import load_image

    _through_file(data, suffix, load_image)


@FUZZ
@given(st.integers(0, 2**16), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=12))
def test_image_loader_on_mutated_pngs(seed, flips):
    """A valid PNG with bytes overwritten (headers, chunk lengths, pixel data)."""
    from occgui.imageio import load_image

    data = bytearray(_png_bytes(seed))
    for pos, value in flips:
        data[pos % len(data)] = value
    _through_file(bytes(data), ".png", load_image)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=70) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=200)


@FUZZ
@given(JSONISH)
def test_landmarks_reader_on_random_json(doc):
    from occgui.landmarks.landmarks_json import read_landmarks_json

    _through_file(json.dumps(doc).encode(), ".json", read_landmarks_json)


@FUZZ
@given(st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=2),
                min_size=68, max_size=68))
def test_landmarks_reader_on_68_points_with_nan_and_inf(points):
    from occgui.landmarks.landmarks_json import read_landmarks_json

    def read(p):
        pts = read_landmarks_json(p)
        assert pts.shape == (68, 2) and np.isfinite(pts).all()

    _through_file(json.dumps({"points": points}).encode(), ".json", read)


@FUZZ
@given(JSONISH, st.sampled_from(["landmarks", "alpha_edit", "photo_size", "crop_size", "photo_to_crop", None]))
def test_corrections_reader_on_random_json(doc, key):
    """Random documents, and a valid corrections document with one field replaced by random JSON."""
    from occgui.corrections import read_corrections

    _through_file(json.dumps(doc).encode(), ".json", read_corrections)
    base = {"format": "occgui.corrections", "version": 1, "landmarks": [[float(i), float(i)] for i in range(68)],
            "photo_size": [250, 250]}
    if key is not None:
        base[key] = doc
    _through_file(json.dumps(base).encode(), ".json", read_corrections)


@FUZZ
@given(st.binary(max_size=4096))
def test_onnx_reader_on_random_bytes(data):
    from occgui.onnx_runtime import open_session

    _through_file(data, ".onnx", lambda p: open_session(p, "fuzzed"))


@FUZZ
@given(st.binary(max_size=4096))
def test_dlib_model_reader_on_random_bytes(data):
    from occgui.identity.dlib_format import parse_dlib_network

    try:
        parse_dlib_network(data, "fuzzed")
    except OccguiError as e:
        _one_line(e)


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([".npz", ".mat"]))
def test_morphable_model_reader_on_random_bytes(data, suffix):
    from occgui.morphable import load_model

    _through_file(data, suffix, load_model)
