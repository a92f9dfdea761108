"""The ``fisn`` backend of the ``synthesize`` stage (issue 16 point 4): same inputs and typed
result as the classical backend, only the hole changes, the checkpoint's digest in the backend
id, one-line errors naming a missing or malformed checkpoint, the thread rule, and a CPU pipeline
that does not select it stays torch-free.

The generator here is a tiny randomly initialised one written to a temporary folder (never
committed): the tests check the plumbing, not the quality of the synthesis."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from occgui import labels as L
from occgui.device import cuda_driver_present
from occgui.errors import CheckpointError, OccguiError
from occgui.pipeline import backends as B
from occgui.pipeline.runner import Pipeline, PipelineConfig
from occgui.synthesis.fisn_backend import FISNDeocclusion, auto_threads, checkpoint_file, cpu_threads
from occgui.synthesis.settings import FISN_CHECKPOINT_NAME, FISNSettings

TINY = dict(size=64, channels=8, downsamples=2, blocks=2, style_dim=8, cond_hidden=8)


def make_checkpoint(path, seed: int = 0):
    import torch

    from occgui.synthesis.fisn import FISNConfig, FISNGenerator, save_generator

    torch.manual_seed(seed)
    return save_generator(path, FISNGenerator(FISNConfig(**TINY)), {"note": "random weights, tests only"})


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("fisn") / "tiny.safetensors")


def fisn_pipeline(checkpoint, **extra) -> Pipeline:
    items = [f"synthesize.checkpoint={checkpoint}"] + [f"synthesize.{k}={v}" for k, v in extra.items()]
    choice = {"synthesize": "fisn"}
    return Pipeline(PipelineConfig(device="cpu", backends=choice, settings=B.parse_settings(items, choice)))


@pytest.fixture(scope="module")
def fisn_run(tiny_checkpoint, sample_photo):
    p = fisn_pipeline(tiny_checkpoint, threads=1)
    return p, p.run(sample_photo, stop_after="synthesize")


def test_only_the_hole_changes_and_the_result_is_typed(fisn_run):
    from occgui.synthesis.fisn.composite import hole_mask

    _, res = fisn_run
    s = res.synthesis
    crop = res.crop.image
    assert s.backend == "fisn" and s.image.dtype == np.uint8 and s.image.shape == crop.shape
    hole = hole_mask(res.alpha.labels)
    assert hole.sum() > 1000, "the sample photo's hand should be found"
    assert np.array_equal(s.filled, hole)
    changed = np.any(s.image != crop, axis=2)
    assert not np.any(changed & ~hole), "a pixel outside the hole changed"
    assert changed[hole].mean() > 0.5, "the generator's output was not pasted into the hole"
    d = s.details
    assert d["hole_px"] == int(hole.sum()) and d["sources"] == {"generated": 1.0}
    assert d["network_size"] == TINY["size"] and d["device"] == "cpu" and d["threads"] == 1
    # the features M_gamma draws in the hole (the hand covers an eye and a brow) are listed
    assert set(d["features"]) <= set(L.FEATURE_GROUPS) and d["features"]


def test_same_protocol_as_the_classical_backend(fisn_run):
    """Called like the stage calls any synthesis backend, with the same inputs as ``symmetric``."""
    from occgui.pipeline import stages as S

    p, res = fisn_run
    classical = B.create("synthesize", "symmetric", B.BackendContext("cpu", 256, 1024))
    a = S.synthesize(p.backend("synthesize"), res.crop, res.landmarks, res.alpha, res.beta, res.gamma)
    b = S.synthesize(classical, res.crop, res.landmarks, res.alpha, res.beta, res.gamma)
    assert type(a) is type(b)
    assert np.array_equal(a.filled, b.filled), "both fill M_alpha's occluder dilated by 2 px"
    assert a.image.shape == b.image.shape and {"hole_px", "sources", "features"} <= set(a.details) & set(b.details)
    assert np.array_equal(a.image, res.synthesis.image), "eval mode: one face's output is deterministic"


def test_no_occluder_returns_the_photo(tiny_checkpoint):
    from occgui.results import Landmarks

    backend = FISNDeocclusion(B.BackendContext("cpu", 64, 256, FISNSettings(checkpoint=str(tiny_checkpoint))))
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    labels = np.full((64, 64), L.SKIN, np.uint8)
    s = backend.synthesize(rgb, Landmarks(np.zeros((68, 2)), None, "test"), labels, labels, labels)
    assert np.array_equal(s.image, rgb) and not s.filled.any() and s.details["hole_px"] == 0


def test_backend_id_carries_the_checkpoint_digest(tiny_checkpoint, tmp_path):
    from occgui.resources import checkpoint_digest

    p = fisn_pipeline(tiny_checkpoint)
    ident = p.backend_id("synthesize")
    assert ident.startswith(f"fisn@{checkpoint_digest(tiny_checkpoint)}+s")
    other = make_checkpoint(tmp_path / "tiny.safetensors", seed=1)    # other weights, same file name
    other_id = fisn_pipeline(other).backend_id("synthesize")
    assert other_id.split("+")[0] != ident.split("+")[0], "new weights must change the stage's cache key"
    # a typed setting other than the default changes the id (and so the cache key) too
    assert fisn_pipeline(tiny_checkpoint, threads=1).backend_id("synthesize") != ident
    with pytest.raises(OccguiError, match="threads"):
        B.parse_settings(["synthesize.threads=two"], {"synthesize": "fisn"})


def test_default_checkpoint_is_the_shipped_one():
    from occgui.resources import checkpoint_path

    assert checkpoint_file(FISNSettings()) == checkpoint_path(FISN_CHECKPOINT_NAME)
    assert checkpoint_file(FISNSettings(checkpoint="/x/y.safetensors")).as_posix() == "/x/y.safetensors"
    assert B.settings_class("synthesize", "fisn") is FISNSettings


def test_missing_and_malformed_checkpoints_are_one_line_errors(tmp_path):
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(CheckpointError) as e:
        FISNDeocclusion(B.BackendContext("cpu", 256, 1024, FISNSettings(checkpoint=str(missing))))
    assert str(missing) in str(e.value) and "\n" not in str(e.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError) as e:
        FISNDeocclusion(B.BackendContext("cpu", 256, 1024, FISNSettings(checkpoint=str(bad))))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_cli_with_a_missing_checkpoint_says_so_in_one_line(tmp_path, sample_photo):
    missing = tmp_path / "nowhere" / "fisn.safetensors"
    code = ("from occgui.cli import main; import sys; "
            f"sys.exit(main(['run', {str(sample_photo)!r}, '-q', '-o', {str(tmp_path / 'out')!r}, '--device', 'cpu', "
            f"'--backend', 'synthesize=fisn', '--option', 'synthesize.checkpoint={missing}']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in out.stderr and any(str(missing) in ln for ln in lines), out.stderr[-2000:]


def test_thread_rule():
    assert auto_threads(0.2, 2) == 2            # idle two-core machine
    assert auto_threads(1.0, 2) == 1            # another job already uses a core
    assert auto_threads(6.0, 2) == 1
    assert auto_threads(0.0, 1) == 1
    assert auto_threads(3.0, 16) == 4           # capped: the generator is small
    assert auto_threads(15.5, 16) == 1
    assert cpu_threads(3) == 3 and cpu_threads(0) >= 1


def test_listing_the_backends_does_not_import_torch():
    code = ("import sys; from occgui.pipeline import backends as B; d = B.describe_all(); "
            "from occgui.synthesis.fisn_backend import shipped_checkpoint_exists; shipped_checkpoint_exists(); "
            "print('fisn' in [e['name'] for e in d['synthesize']], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["True", "False"], out.stdout


def test_classical_backend_stays_the_default_for_now():
    from occgui.pipeline import default_backends as D

    assert B.resolve("synthesize", None) == ("fisn" if D.FISN_IS_DEFAULT else "symmetric")
    assert B.available("synthesize").index("fisn") > B.available("synthesize").index("symmetric") or D.FISN_IS_DEFAULT


def test_set_backend_recomputes_only_the_synthesis(tiny_checkpoint, sample_photo):
    p = Pipeline(PipelineConfig(device="cpu"))
    first = p.run(sample_photo, stop_after="synthesize")
    assert first.synthesis.backend == "symmetric"
    before = dict(p.run_counts)
    assert p.set_backend("synthesize", "fisn", FISNSettings(checkpoint=str(tiny_checkpoint), threads=1))
    assert not p.set_backend("synthesize", "fisn", FISNSettings(checkpoint=str(tiny_checkpoint), threads=1))
    second = p.run(sample_photo, stop_after="synthesize")
    assert second.synthesis.backend == "fisn" and second.cached == ["load", "detect", "parse", "landmarks",
                                                                    "landmark_map", "merge"]
    assert p.run_counts["synthesize"] == before["synthesize"] + 1
    assert p.set_backend("synthesize", None)            # back to the default: the classical backend
    assert p.run(sample_photo, stop_after="synthesize").synthesis.backend == "symmetric"
    with pytest.raises(OccguiError, match="unknown backend"):
        p.set_backend("synthesize", "nonesuch")


@pytest.mark.skipif(not cuda_driver_present(), reason="no CUDA driver here")
def test_cuda_matches_cpu(fisn_run, tiny_checkpoint):
    from occgui.device import cuda_available
    from occgui.pipeline import stages as S

    if not cuda_available():
        pytest.skip("no CUDA device here")
    _, res = fisn_run
    ctx = B.BackendContext("cuda", 256, 1024, FISNSettings(checkpoint=str(tiny_checkpoint)))
    gpu = B.create("synthesize", "fisn", ctx)
    s = S.synthesize(gpu, res.crop, res.landmarks, res.alpha, res.beta, res.gamma)
    assert s.details["device"] == "cuda" and s.details["threads"] == 0
    assert np.array_equal(s.filled, res.synthesis.filled)
    diff = np.abs(s.image.astype(int) - res.synthesis.image.astype(int))
    assert diff.max() <= 2, "CUDA and CPU differ beyond rounding"
