"""The I_out pane's switch between the FISN generator and the classical de-occlusion (issue 16
point 4): it re-runs only ``synthesize`` and what reads it, and without FISN weights it is
disabled with a tooltip naming the missing file (no run, no traceback).

The FISN generator is a tiny randomly initialised one in a temporary folder (never committed)."""
from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import wait_run_end

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import torch

    from occgui.synthesis.fisn import FISNConfig, FISNGenerator, save_generator

    torch.manual_seed(0)
    g = FISNGenerator(FISNConfig(size=64, channels=8, downsamples=2, blocks=2, style_dim=8, cond_hidden=8))
    return save_generator(tmp_path_factory.mktemp("fisn") / "tiny.safetensors", g, {"note": "tests only"})


def test_switch_is_disabled_with_a_reason_without_weights(window, tmp_path):
    from occgui.synthesis.settings import FISNSettings

    missing = tmp_path / "no_such_generator.safetensors"
    window.set_fisn_settings(FISNSettings(checkpoint=str(missing)))
    combo = window.deoccluded.backend_combo
    assert not combo.isEnabled()
    assert str(missing) in combo.toolTip() and "not available" in combo.toolTip()
    assert window.deoccluded.backend == "symmetric"          # the classical backend stays in use
    assert window.deoccluded.fisn_reason == combo.toolTip()


def test_switch_reruns_only_synthesis_and_texture(qtbot, ran_window, tiny_checkpoint):
    from occgui.synthesis.settings import FISNSettings

    window = ran_window
    s, doc, view = window.session, window.session.document, window.deoccluded
    classical = doc.results["synthesize"]
    assert classical.backend == "symmetric" and view.backend == "symmetric"
    window.set_fisn_settings(FISNSettings(checkpoint=str(tiny_checkpoint)))
    assert view.backend_combo.isEnabled()
    crop, alpha = doc.results["detect"], doc.results["parse"]
    counts = dict(s.last_outcome.run_counts)

    kind, outcome = wait_run_end(qtbot, window, lambda: view.backend_combo.setCurrentIndex(
        view.backend_combo.findData("fisn")))
    assert kind == "finished", outcome
    assert outcome.recomputed == ("synthesize", "texture")
    for stage in ("load", "detect", "parse", "landmarks", "landmark_map", "merge", "geometry"):
        assert outcome.run_counts[stage] == counts[stage], f"{stage} was recomputed"
    fisn = doc.results["synthesize"]
    assert fisn.backend == "fisn" and view.backend == "fisn" and s.synthesis_backend == "fisn"
    assert view.subtitle_label.text().startswith("fisn")
    assert doc.results["detect"] is crop and doc.results["parse"] is alpha
    assert np.array_equal(fisn.filled, classical.filled)
    outside = ~fisn.filled
    assert np.array_equal(fisn.image[outside], crop.image[outside])
    assert not np.array_equal(fisn.image[fisn.filled], classical.image[classical.filled])
    assert view.canvas.has_image() and not view.is_stale

    kind, outcome = wait_run_end(qtbot, window, lambda: view.backend_combo.setCurrentIndex(
        view.backend_combo.findData("symmetric")))
    assert kind == "finished", outcome
    assert outcome.recomputed == ("synthesize", "texture")
    assert doc.results["synthesize"].backend == "symmetric" and view.backend == "symmetric"
    assert np.array_equal(doc.results["synthesize"].image, classical.image)
