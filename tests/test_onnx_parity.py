"""torch vs onnxruntime on the shipped networks (checkpoints/*.onnx), on a real face crop.

The torch side is the network rebuilt from the file's initialisers (what CUDA inference and
fine-tuning use); the onnxruntime side is what a CPU run uses. The differences are printed
(``pytest -s``) and recorded as test properties; the tolerances are float rounding.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from occgui import labels as L
from occgui.resources import checkpoint_path, resource_path

#: Max abs logit difference allowed, relative to the largest logit (float32 rounding through 19 convs).
PARSER_RTOL = 1e-4
#: Max abs difference of the refiner's canonical offsets (inter-ocular distances; 1e-4 IOD is ~0.01 px).
REFINER_ATOL = 1e-5


@pytest.fixture(scope="module")
def real_face():
    """The face crop of resources/samples/astronaut_mask.png (256 px), its parse and MediaPipe's mesh."""
    from occgui.pipeline.runner import Pipeline, PipelineConfig

    r = Pipeline(PipelineConfig(device="cpu")).run(resource_path("samples/astronaut_mask.png"), stop_after="parse")
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks

    return r.crop.image, r.alpha.labels, MediaPipeMeshLandmarks().detect(r.crop.image).mesh


@pytest.mark.parametrize("flip", [False, True])
def test_parser_torch_and_onnxruntime_agree(real_face, flip, record_property):
    from occgui.parsing import unet_parser as U

    path = checkpoint_path(U.CHECKPOINT_NAME)
    if not path.exists():
        pytest.skip(f"needs {path}")
    crop = real_face[0]
    model, header = U.load_checkpoint(path)                  # torch, from the ONNX initialisers
    ort = U.UNetParser(None, checkpoint=path, flip=flip)
    ref = U.predict_logits(model, crop[None], header["input_size"], flip=flip).permute(0, 2, 3, 1).numpy()
    got = U.predict_logits_onnx(ort.model, crop[None], ort.input_size, flip=flip)
    diff = float(np.abs(got - ref).max())
    agree = float(np.mean(got.argmax(3) == ref.argmax(3)))
    print(f"\nparser (flip={flip}): max |logit torch - onnxruntime| = {diff:.3g} "
          f"(logits up to {np.abs(ref).max():.1f}), label agreement {agree:.6f}")
    record_property("max_abs_logit_diff", diff)
    record_property("label_agreement", agree)
    assert got.shape == ref.shape == (1, 256, 256, L.NUM_CLASSES)
    assert diff < PARSER_RTOL * max(1.0, float(np.abs(ref).max()))
    assert agree > 0.9995
    assert len(np.unique(ref.argmax(3))) >= 5 and np.any(ref.argmax(3) == L.OCCLUDER)   # a real parse


def test_refiner_torch_and_onnxruntime_agree(real_face, record_property):
    from occgui.landmarks import refiner as R
    from occgui.training.onnx_export import refiner_from_onnx

    path = checkpoint_path(R.CHECKPOINT)
    if not path.exists():
        pytest.skip(f"needs {path}")
    _, labels, mesh = real_face
    weights = R.load_weights(path)
    module, mean_xy, _ = refiner_from_onnx(path)              # torch, from the ONNX initialisers
    assert np.array_equal(mean_xy, weights.mean_xy)
    x, _ = R.network_input(mesh[:, :2], labels == L.OCCLUDER, weights.mean_xy)
    assert x[3 * R.N_POINTS:].max() > 0.5                        # the mask covers part of the face
    got = R.forward(weights, x[None])[0]
    with torch.no_grad():
        ref = module(torch.from_numpy(x[None]))[0].numpy()
        # the graph's mirror average is refiner.flip_input / flip_offsets, done here in numpy
        mirror = module.mirror.numpy()
        plain = module.mlp(torch.from_numpy(np.stack([x, R.flip_input(x, mirror)]))).numpy()
    by_hand = (plain[0] + R.flip_offsets(plain[1], mirror)) / 2
    diff = float(np.abs(got - ref).max())
    diff_hand = float(np.abs(got - by_hand).max())
    moved = R.refine(weights, mesh, labels == L.OCCLUDER)
    print(f"\nrefiner: max |offset torch - onnxruntime| = {diff:.3g} IOD (offsets up to {np.abs(ref).max():.3f}); "
          f"vs the numpy mirror average {diff_hand:.3g}")
    record_property("max_abs_offset_diff", diff)
    assert diff < REFINER_ATOL and diff_hand < REFINER_ATOL
    assert np.abs(ref).max() > 0.01                             # a real correction, not zeros
    assert np.abs(moved[:, :2] - mesh[:, :2]).max() > 1.0       # in pixels


@pytest.mark.parametrize("network, name", [("parser", "parsing_unet.onnx"), ("refiner", "landmark_refiner.onnx")])
def test_shipped_file_is_what_the_exporter_makes(network, name, tmp_path):
    """Reading a shipped file into torch and exporting it again gives the same model, byte for byte:
    the file is the exporter's output of its own initialisers (nothing lost or renamed on the way).
    A torch upgrade that changes the exported graph fails here: re-export the shipped files then."""
    from occgui.training.onnx_export import main

    src = checkpoint_path(name)
    if not src.exists():
        pytest.skip(f"needs {src}")
    import onnx

    assert main([network, str(src), "-o", str(tmp_path / name)]) == 0
    again, shipped = onnx.load(str(tmp_path / name)), onnx.load(str(src))
    again.producer_version = shipped.producer_version = ""      # occgui's version at export time
    assert again.SerializeToString() == shipped.SerializeToString()


def test_train_export_onnx_command_reproduces_the_shipped_parser(tmp_path, capsys):
    """``occgui train export-onnx parser`` re-exports the shipped file byte for byte; a missing
    source is a one-line error, not a traceback."""
    from occgui.cli import main
    from occgui.resources import checkpoint_path

    shipped = checkpoint_path("parsing_unet.onnx")
    if not shipped.exists():
        pytest.skip("needs the shipped parser")
    out = tmp_path / "p.onnx"
    assert main(["train", "export-onnx", "parser", str(shipped), "-o", str(out)]) == 0
    assert out.read_bytes() == shipped.read_bytes()
    assert main(["train", "export-onnx", "parser", str(tmp_path / "none.onnx"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err
