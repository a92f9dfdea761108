"""FISN as one more variant of ``occgui eval deocclusion`` and ``occgui eval verify`` (issue 16
point 5): the ``--fisn`` option, a smoke run of each with a tiny random generator (written to a
temporary folder, never committed), and the verification features with and without FISN."""
from __future__ import annotations

import json

import numpy as np
import pytest

from occgui.cli import main
from occgui.errors import OccguiError
from occgui.eval.fisn_variant import fisn_settings


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import torch

    from occgui.synthesis.fisn import FISNConfig, FISNGenerator, save_generator

    torch.manual_seed(0)
    g = FISNGenerator(FISNConfig(size=64, channels=8, downsamples=2, blocks=2, style_dim=8, cond_hidden=8))
    return save_generator(tmp_path_factory.mktemp("fisn") / "tiny.safetensors", g, {"note": "tests only"})


@pytest.fixture(scope="module")
def pipeline_ready():
    from occgui.pipeline import backends

    if not backends.available("parse"):
        pytest.skip("the trained parser is not available here")


def test_fisn_option(tiny_checkpoint, tmp_path):
    from occgui.synthesis.fisn_backend import shipped_checkpoint_exists
    from occgui.synthesis.settings import FISNSettings

    assert fisn_settings("off") is None
    assert fisn_settings(str(tiny_checkpoint)) == FISNSettings(checkpoint=str(tiny_checkpoint.resolve()))
    assert (fisn_settings("auto") is not None) == shipped_checkpoint_exists()
    assert (fisn_settings(None) is not None) == shipped_checkpoint_exists()
    with pytest.raises(OccguiError, match="no FISN generator checkpoint at"):
        fisn_settings(str(tmp_path / "absent.safetensors"))


def test_verify_features_include_fisn_only_when_every_photo_has_it():
    from occgui.eval.verify import FEATURES, FISN_FEATURE, features_of

    def rec(with_fisn):
        feats = {k: [0.0] for k in FEATURES + ((FISN_FEATURE,) if with_fisn else ())}
        return {"status": "ok", "features": {"clean": feats, "occluded": feats}}

    assert features_of({"a": rec(True), "b": rec(True), "c": {"status": "failed"}}) == FEATURES + (FISN_FEATURE,)
    assert features_of({"a": rec(True), "b": rec(False)}) == FEATURES
    assert features_of({}) == FEATURES


@pytest.mark.slow
def test_deocclusion_with_fisn(lfw_dir, occluders_dir, pipeline_ready, tiny_checkpoint, tmp_path):
    out = tmp_path / "deocc"
    assert main(["eval", "deocclusion", "--faces", str(lfw_dir), "--occluders", str(occluders_dir),
                 "--families", "sunglasses", "--per-family", "1", "--fisn", str(tiny_checkpoint),
                 "-o", str(out), "-q"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["protocol"]["fisn"].startswith("fisn@") and rep["protocol"]["synthesizer"].startswith("symmetric@")
    row = rep["table"]["sunglasses"]
    for k in ("identity_fisn", "l1_fisn", "l1_ratio_fisn", "fisn_ms_median", "identity_ours"):
        assert np.isfinite(row[k]), k
    case = rep["cases"][0]
    assert {"occluded", "telea", "ours", "fisn"} <= set(case["metrics"]) and case["fisn_ms"] > 0
    assert "identity FISN" in (out / "report.md").read_text()
    # the rule's reader accepts it (the hidden-feature IoU needs 3 cases: one case is too few)
    from occgui.eval.fisn_decision import identity_and_iou

    with pytest.raises(OccguiError, match="hidden in at least"):
        identity_and_iou(rep)


@pytest.mark.slow
def test_verify_with_fisn(lfw_dir, shared_data, tiny_checkpoint, pipeline_ready, tmp_path):
    out = tmp_path / "ver"
    args = ["eval", "verify", "--faces", str(lfw_dir), "--pairs", str(shared_data / "faces" / "lfw" / "pairs.txt"),
            "-o", str(out), "--limit", "2", "--device", "cpu", "-q"]
    assert main(args + ["--fisn", str(tiny_checkpoint)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["settings"]["backends"]["fisn"]["synthesize"].startswith("fisn@")
    for cond in ("clean", "occluded", "one_occluded"):
        assert "accuracy" in rep["results"][f"render_fisn/{cond}"]
    md = (out / "report.md").read_text()
    assert "render (full, FISN)" in md
    drop = md.split("## Occlusion drop")[1].split("##")[0]
    assert "| render (full, FISN) |" in drop and "| render (full) |" in drop       # full labels in the drop table
    assert main(args + ["--report-only"]) == 0            # re-reported from the cache: FISN kept
    assert "render_fisn/occluded" in json.loads((out / "report.json").read_text())["results"]
