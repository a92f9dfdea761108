"""Tests of N_alpha (occgui.parsing): network, checkpoint format, backend, training, held-out floors."""
from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from occgui import labels as L
from occgui.errors import CheckpointError
from occgui.parsing import unet_parser
from occgui.parsing.unet import UNet, count_parameters
from occgui.resources import checkpoint_path

SHIPPED = checkpoint_path(unet_parser.CHECKPOINT_NAME)

#: Floors on the fixed seeded held-out subset below: the shipped checkpoint (v3, 256 px) measured
#: 0.969 / 0.950 / 0.799, five parts 0.850 there (v2: 0.911 / 0.896 / 0.739; v1: 0.897 / 0.889 /
#: 0.737; the card reports the full Q-S numbers); the floors leave about 0.02 for platform noise.
#: The issue's targets (occluder IoU 0.90 / 0.85, face-class mIoU 0.82) apply to the full Q-S set.
FLOOR_SUBSET = 40
FLOOR_SEED = 7
#: The issue's pasted-occluder targets (0.90 / 0.85 occluder IoU, 0.82 face parts) and the nine-class
#: level. Parser v4 on this subset, by-eye clean photos only: 0.917 / 0.921 / 0.837, 0.786 (v3 had
#: 0.968 / 0.954 / 0.848, 0.798: v4 gave up 0.05 / 0.03 here, 0.019 / 0.015 on the 217-photo guard rail,
#: for finding real occluders; checkpoints/parsing_unet.md).
FLOORS = {"occluder_iou_trained": 0.90, "occluder_iou_heldout": 0.85, "clean_face_miou": 0.78,
          "clean_face_parts_miou": 0.82}


def test_unet_shapes_and_size():
    m = UNet(L.NUM_CLASSES).eval()
    with torch.no_grad():
        out = m(torch.zeros(2, 3, 128, 128))
    assert out.shape == (2, L.NUM_CLASSES, 128, 128)
    assert 1_000_000 < count_parameters(m) < 3_000_000


def test_fold_batchnorm_keeps_the_outputs():
    from occgui.parsing.unet import fold_batchnorm

    torch.manual_seed(3)
    m = UNet(L.NUM_CLASSES, (8, 16, 16, 32, 32))
    for mod in m.modules():                                   # non-trivial running statistics and affine terms
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    m.eval()
    f = fold_batchnorm(m)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in f.modules())
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())          # the original is untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(f(x), m(x), atol=1e-4)


def test_soft_labels_are_aligned_with_the_resized_input():
    """Area-averaged class fractions keep a label's centroid where the area-resized image has it;
    nearest-neighbour resizing (the v1 targets) moves it by half a source pixel."""
    import cv2

    from occgui.parsing.preprocess import resize_input
    from occgui.training.parsing.dataset import soft_labels

    lab = np.zeros((256, 256), np.uint8)
    lab[101:109, 60:140] = L.L_BROW                          # an 8 px high brow-like bar
    img = np.zeros((256, 256, 3), np.uint8)
    img[lab == L.L_BROW] = 255
    for size in (128, 160):
        soft = soft_labels(lab, size).astype(np.float32)
        assert soft.shape == (L.NUM_CLASSES, size, size) and np.allclose(soft.sum(axis=0), 1.0, atol=2e-3)
        w = soft[L.L_BROW]
        small = resize_input(img, size)[:, :, 0].astype(np.float32) / 255.0
        ys = np.arange(size)[:, None]
        cy_soft = float((w * ys).sum() / w.sum())
        cy_img = float((small * ys).sum() / small.sum())
        assert abs(cy_soft - cy_img) < 0.02
        near = cv2.resize(lab, (size, size), interpolation=cv2.INTER_NEAREST) == L.L_BROW
        cy_near = float((near * ys).sum() / near.sum())
        assert abs(cy_near - cy_img) > 0.1                   # the bias the soft targets remove


def test_soft_targets_loss_matches_hard_targets():
    from torch.nn import functional as F

    from occgui.training.parsing.train import _loss

    torch.manual_seed(0)
    logits = torch.randn(2, L.NUM_CLASSES, 8, 8)
    target = torch.randint(0, L.NUM_CLASSES, (2, 8, 8))
    weight = torch.rand(L.NUM_CLASSES) + 0.5
    onehot = F.one_hot(target, L.NUM_CLASSES).permute(0, 3, 1, 2).float()
    hard, ce_hard = _loss(logits, target, weight)
    soft, ce_soft = _loss(logits, onehot, weight)
    assert torch.allclose(hard, soft, atol=1e-5) and torch.allclose(ce_hard, ce_soft, atol=1e-5)


def _save_with_header(src, dst, **changes):
    """Copy of the ONNX file ``src`` with its header changed (``header=None``: no header)."""
    import onnx

    from occgui.parsing.checkpoint import HEADER_KEY

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    header = None if changes.get("header", 1) is None else {**json.loads(props[HEADER_KEY]), **changes}
    del model.metadata_props[:]
    if header is not None:
        onnx.helper.set_model_props(model, {HEADER_KEY: json.dumps(header)})
    dst.write_bytes(model.SerializeToString())
    return dst


def test_checkpoint_round_trip_and_errors(tmp_path):
    import onnx

    from occgui.parsing.checkpoint import read_initialisers
    from occgui.training.onnx_export import export_parser

    torch.manual_seed(0)
    m = UNet(L.NUM_CLASSES, (8, 16, 16, 32, 32)).eval()
    path = tmp_path / "p.onnx"
    export_parser(m, path, input_size=64, meta={"steps": 1})
    parser = unet_parser.UNetParser(SimpleNamespace(device="cpu"), checkpoint=path, flip=False)
    header = parser.meta
    assert header["input_size"] == 64 and header["labels"] == list(L.NAMES) and header["meta"] == {"steps": 1}
    stored = {i.name: i.data_type for i in onnx.load(str(path)).graph.initializer}
    assert stored["unet.down.0.0.weight"] == onnx.TensorProto.FLOAT16                # stored as fp16 ...
    assert all(v.dtype != np.float16 for v in read_initialisers(path).values())        # ... read back as fp32
    assert parser.engine == "onnxruntime"
    assert parser.version == unet_parser.checkpoint_digest(path) and len(parser.version) == 10
    flipped = unet_parser.UNetParser(SimpleNamespace(device="cpu"), checkpoint=path, flip=True)
    assert flipped.version == parser.version + "+flip"                # a different output gets a different cache key
    crop = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    lab = parser.parse(crop)
    assert lab.shape == (96, 96) and lab.dtype == np.uint8 and lab.max() < L.NUM_CLASSES
    with torch.no_grad():
        ref = unet_parser.predict_logits(m, crop[None], 64).argmax(1)[0].numpy()
    assert np.mean(ref == lab) > 0.98                                 # fp16 storage changes ~nothing
    reloaded, _ = unet_parser.load_checkpoint(path)                  # the torch model (training, CUDA engine)
    assert reloaded.widths == m.widths
    for k, v in m.state_dict().items():                               # every tensor, BatchNorm statistics included
        if v.is_floating_point():
            assert torch.allclose(reloaded.state_dict()[k], v.half().float()), k

    with pytest.raises(CheckpointError, match="not found"):
        unet_parser.UNetParser(None, checkpoint=tmp_path / "missing.onnx")
    with pytest.raises(CheckpointError, match="not found"):
        unet_parser.load_checkpoint(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        unet_parser.UNetParser(None, checkpoint=tmp_path / "junk.onnx")
    with pytest.raises(CheckpointError, match="no header"):
        unet_parser.UNetParser(None, checkpoint=_save_with_header(path, tmp_path / "h.onnx", header=None))
    with pytest.raises(CheckpointError, match="not an occgui parsing checkpoint"):
        unet_parser.UNetParser(None, checkpoint=_save_with_header(path, tmp_path / "o.onnx", format="x"))
    mismatch = _save_with_header(path, tmp_path / "m.onnx", widths=[8, 16, 16, 32, 64])
    with pytest.raises(CheckpointError, match="does not match"):              # torch model (training, CUDA)
        unet_parser.load_checkpoint(mismatch)
    with pytest.raises(CheckpointError, match="label set"):
        unet_parser.UNetParser(None, checkpoint=_save_with_header(path, tmp_path / "l.onnx", labels=list(L.NAMES[:-1])))
    with pytest.raises(CheckpointError, match="format version"):
        unet_parser.UNetParser(None, checkpoint=_save_with_header(path, tmp_path / "v.onnx", format_version=2))


@pytest.mark.parametrize("flip", [False, True])
def test_onnx_engine_equals_torch(flip, tmp_path):
    """The CPU engine (onnxruntime on the exported file) and the torch model give the same logits
    and labels, BatchNorm statistics included (fp32 export, so only float rounding differs)."""
    from occgui.parsing.checkpoint import open_session
    from occgui.parsing.unet import fold_batchnorm
    from occgui.training.onnx_export import export_parser

    torch.manual_seed(5)
    m = UNet(L.NUM_CLASSES, (8, 16, 16, 32, 32))
    m.train()
    with torch.no_grad():                                 # non-trivial BatchNorm statistics
        for _ in range(3):
            m(torch.randn(4, 3, 64, 64) * 2 + 0.5)
    m.eval()
    export_parser(m, tmp_path / "f.onnx", input_size=64, meta={}, half=False)
    session, _ = open_session(tmp_path / "f.onnx", "parsing")
    crops = np.random.default_rng(1).integers(0, 255, (2, 80, 80, 3), dtype=np.uint8)
    ref = unet_parser.predict_logits(fold_batchnorm(m), crops, 64, flip=flip).permute(0, 2, 3, 1).numpy()
    got = unet_parser.predict_logits_onnx(session, crops, 64, flip=flip)
    assert got.shape == ref.shape == (2, 80, 80, L.NUM_CLASSES)
    assert np.abs(got - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    assert np.mean(got.argmax(3) == ref.argmax(3)) > 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_cuda_engine_agrees_with_onnx_engine():
    """device cuda: the shipped parser runs in torch on the GPU and labels like the CPU engine."""
    import cv2

    from occgui.device import resolve_device
    from occgui.resources import sample_photo

    assert resolve_device("auto") == "cuda"
    rgb = cv2.cvtColor(cv2.imread(str(sample_photo())), cv2.COLOR_BGR2RGB)
    s = min(rgb.shape[:2])
    crop = cv2.resize(rgb[:s, :s], (256, 256), interpolation=cv2.INTER_AREA)
    gpu = unet_parser.UNetParser(SimpleNamespace(device="cuda"))
    cpu = unet_parser.UNetParser(SimpleNamespace(device="cpu"))
    assert gpu.engine == "torch" and cpu.engine == "onnxruntime" and gpu.version == cpu.version
    crops = np.stack([crop, crop[:, ::-1]])
    assert np.mean(gpu.parse_batch(crops) == cpu.parse_batch(crops)) > 0.999


def test_cpu_run_does_not_import_torch(tmp_path):
    """The CLI's CPU run (device auto on a machine without CUDA, export included) never imports torch
    or networkx (together about 2.3 s of the cold start on the 2-core machine), nor the ``onnx``
    package (0.6 s; onnxruntime alone runs the networks)."""
    import subprocess
    import sys

    from occgui.device import cuda_driver_present

    if cuda_driver_present():
        pytest.skip("a CUDA driver is present: device auto asks torch, as it should")
    code = ("import sys; from occgui.cli import main; from occgui.resources import sample_photo; "
            f"rc = main(['run', str(sample_photo()), '-q', '-o', {str(tmp_path)!r}]); "
            "print(rc, *(m in sys.modules for m in ('torch', 'networkx', 'onnx', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-5:] == ["0", "False", "False", "False", "True"], out.stdout
    assert (tmp_path / "astronaut_hand" / "mesh.glb").stat().st_size > 100_000


def test_flip_augmentation_is_mirror_consistent():
    torch.manual_seed(1)
    m = UNet(L.NUM_CLASSES, (8, 16, 16, 32, 32)).eval()
    crop = np.random.default_rng(2).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    a = unet_parser.predict_logits(m, crop, 64, flip=True)[0].argmax(0).numpy()
    b = unet_parser.predict_logits(m, crop[:, :, ::-1], 64, flip=True)[0].argmax(0).numpy()
    assert np.array_equal(L.MIRROR[b[:, ::-1]], a)          # parsing the mirror = mirroring the parse
    plain = unet_parser.predict_logits(m, crop[:, :, ::-1], 64)[0].argmax(0).numpy()
    assert not np.array_equal(L.MIRROR[plain[:, ::-1]], a)  # which a random net alone is not


def test_shipped_checkpoint_is_one_small_onnx_file():
    from occgui.parsing.checkpoint import FORMAT, read_initialisers

    assert SHIPPED.exists(), f"missing shipped checkpoint {SHIPPED}"
    assert SHIPPED.suffix == ".onnx" and not SHIPPED.with_suffix(".safetensors").exists()    # one copy of the weights
    assert SHIPPED.stat().st_size < 8_000_000
    _, header = unet_parser.load_checkpoint(SHIPPED)          # the initialisers fill the whole torch state_dict
    assert header["format"] == FORMAT and header["meta"]["steps"] > 0 and len(read_initialisers(SHIPPED)) > 40
    assert header["input_size"] % 16 == 0 and header["input_size"] == header["meta"]["input_size"]


def test_backend_parses_the_sample_photo(sample_photo):
    """The bundled sample has a cartoon hand over the subject's left eye (image right)."""
    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
    from occgui.pipeline.backends import BackendContext, available, create
    from occgui.pipeline.stages import detect, load

    assert available("parse")[0] == "unet"
    parser = create("parse", None, BackendContext(device="cpu", crop_size=256, texture_size=512))
    assert parser.name == "unet" and parser.version.split("+")[0] == unet_parser.checkpoint_digest(SHIPPED)
    assert parser.hand_evidence                 # the default: MediaPipe's hands as occluder evidence
    crop = detect(MediaPipeFaceDetector(), load(sample_photo, max_side=2048), face_index=0, crop_size=256)
    lab = parser.parse(crop.image)
    assert lab.shape == (256, 256) and lab.dtype == np.uint8
    assert np.count_nonzero(lab == L.SKIN) > 0.1 * lab.size
    occ = lab == L.OCCLUDER
    assert occ.sum() > 0.03 * lab.size
    ys, xs = np.nonzero(occ)
    assert xs.mean() > 128                     # on the image's right, where the hand is
    assert np.count_nonzero(lab == L.R_EYE) > 20   # the uncovered eye is still found


def _train_args(tmp_path, data, run, **kw):
    from occgui.training.parsing import train

    p = argparse.ArgumentParser()
    train.add_arguments(p)
    argv = ["--data", str(data), "-o", str(run), "--cache", str(tmp_path / "cache"), "--limit", "4",
            "--batch-size", "4", "--input-size", "64", "--widths", "8,16,32,32,64", "--lr", "0.01",
            "--eval-photos", "0", "--eval-every", "0", "--workers", "1", "--threads", "1", "--quiet", "--no-augment"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return p.parse_args(argv)


def test_tiny_training_run_overfits(tmp_path, lfw_dir, occluders_dir):
    from occgui.training.occlusion.occluders import load_library
    from occgui.training.parsing import train
    from occgui.training.parsing.dataset import HELDOUT_KINDS, OcclusionSampler, build_clean_set

    run = tmp_path / "run"
    steps = 100
    assert train.run(_train_args(tmp_path, lfw_dir.parent.parent.parent, run, steps=steps)) == 0
    assert (run / unet_parser.CHECKPOINT_NAME).exists() and (run / "metrics.json").exists()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.6 * losses[0]
    clean = build_clean_set(lfw_dir, tmp_path / "cache", "train", limit=4, workers=1, progress=False)
    parser = unet_parser.UNetParser(None, checkpoint=run / unet_parser.CHECKPOINT_NAME)
    pred = parser.parse_batch(np.asarray(clean.crops))
    acc = np.mean(pred == np.asarray(clean.labels))
    assert acc > 0.85, f"training-set pixel accuracy {acc:.3f}"
    # the occluded images of the last training batches (same seeded stream as training)
    lib = load_library(occluders_dir).filter(exclude_kinds=HELDOUT_KINDS)
    sampler = OcclusionSampler(clean, lib, seed=0, input_size=256, augment=False)
    xs, ys = zip(*(sampler.batch(step, 4) for step in range(steps - 4, steps)))
    pred, y = parser.parse_batch(np.concatenate(xs)), np.concatenate(ys)
    inter = np.count_nonzero((pred == L.OCCLUDER) & (y == L.OCCLUDER))
    union = np.count_nonzero((pred == L.OCCLUDER) | (y == L.OCCLUDER))
    assert inter / union > 0.4, f"occluder IoU on the last training batches {inter / union:.3f}"


def test_training_resumes_exactly(tmp_path, lfw_dir):
    from occgui.training.parsing import train

    data = lfw_dir.parent.parent.parent
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.run(_train_args(tmp_path, data, a, steps=8)) == 0
    assert train.run(_train_args(tmp_path, data, b, steps=8, stop_after=3)) == 0
    assert not (b / unet_parser.CHECKPOINT_NAME).exists()
    with pytest.raises(Exception, match="already holds a run"):
        train.run(_train_args(tmp_path, data, b, steps=8))
    assert train.run(_train_args(tmp_path, data, b, steps=8, resume=True)) == 0
    sa = torch.load(a / "last.pt", weights_only=True)
    sb = torch.load(b / "last.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 8
    for k, v in sa["model"].items():
        assert torch.allclose(v.float(), sb["model"][k].float(), atol=1e-5), k


def test_heldout_floors(lfw_dir, occluders_dir):
    """Occluder IoU (trained and held-out kinds) and clean face mIoU on a fixed seeded subset of
    held-out identities (Q-S), by-eye clean photos only, with the shipped checkpoint at 256 px."""
    from occgui.training.occlusion.clean_check import judged_occluded
    from occgui.training.occlusion.occluders import load_library
    from occgui.training.parsing.dataset import clean_set_from_photos, list_photos
    from occgui.training.parsing.evaluate import evaluate_parser, select_photos

    photos = list_photos(lfw_dir, "test")
    subset = [photos[i] for i in select_photos(len(photos), FLOOR_SUBSET, FLOOR_SEED)]
    clean = clean_set_from_photos(subset)
    parser = unet_parser.UNetParser(SimpleNamespace(device="cpu"))
    # the guard rails' corrected protocol: photos judged by eye to show a real occluder (6 of these 40)
    # are left out, since a parser that finds real occluders is right to mark them
    m = evaluate_parser(parser.parse_batch, clean, load_library(occluders_dir), n=None, seed=FLOOR_SEED,
                        exclude=judged_occluded())
    for key, floor in FLOORS.items():
        assert m[key] >= floor, f"{key} = {m[key]} < floor {floor}"


def test_batch_stream_is_the_same_with_worker_processes(tmp_path):
    """Batch t of a training run does not depend on how many processes prepare the batches."""
    from occgui.training.parsing.dataset import CleanSet, OcclusionSampler
    from occgui.training.parsing.train import BatchStream

    rng = np.random.default_rng(0)
    lab = np.zeros((3, 64, 64), np.uint8)
    lab[:, 16:48, 16:48] = L.SKIN
    clean = CleanSet(rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8), lab,
                     rng.uniform(10, 50, (3, 68, 2)).astype(np.float32), np.zeros((3, 478, 3), np.float32),
                     ["a", "b", "c"])
    sampler = OcclusionSampler(clean, [], seed=5, input_size=32, soft=True)
    a, b = BatchStream(sampler, 2, 7, workers=0), BatchStream(sampler, 2, 7, workers=2)
    try:
        for _ in range(3):
            (xa, ya), (xb, yb) = a.next(), b.next()
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
            assert xa.shape == (2, 32, 32, 3) and ya.shape == (2, 12, 32, 32)
    finally:
        a.close()
        b.close()
    x8, _ = sampler.batch(9, 2)
    assert np.array_equal(x8, xa.numpy())                   # the third batch is batch 7 + 2


def test_packed_clean_set_round_trip(tmp_path):
    """pack -> unpack gives a cache folder that build_clean_set loads: labels and landmarks exact,
    crops within WebP's loss, a seeded subset."""
    import json as _json

    from occgui.training.parsing import pack
    from occgui.training.parsing.dataset import CROP_SIZE, LABELGEN_VERSION, build_clean_set, cache_folder

    n = 5
    rng = np.random.default_rng(1)
    folder = cache_folder(tmp_path / "src", "train")
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:CROP_SIZE, :CROP_SIZE]
    crops = np.stack([np.dstack([(xx + 20 * k) % 256, yy, np.full_like(xx, 40 * k)]).astype(np.uint8)
                      for k in range(n)])
    labels = rng.integers(0, L.NUM_CLASSES, (n, CROP_SIZE, CROP_SIZE), dtype=np.uint8)
    lmk = rng.uniform(0, 256, (n, 68, 2)).astype(np.float32)
    for name, arr in (("crops", crops), ("labels", labels), ("lmk68", lmk),
                      ("mesh", np.zeros((n, 478, 3), np.float32))):
        np.save(folder / f"{name}.npy", arr)
    names = [f"P{k}/P{k}_0001.jpg" for k in range(n)]
    (folder / "meta.json").write_text(_json.dumps({"version": LABELGEN_VERSION, "count": n, "photos": names,
                                                    "limit": None, "complete": True}))
    meta = pack.pack(tmp_path / "src", tmp_path / "packed", count=3, seed=2)
    assert meta["count"] == 3 and meta["of"] == n and len(set(meta["photos"])) == 3
    pack.unpack(tmp_path / "packed", tmp_path / "dst")
    got = build_clean_set(tmp_path / "no_lfw_needed", tmp_path / "dst", "train", progress=False)
    idx = [names.index(p) for p in got.names]
    assert got.names == meta["photos"] and idx == sorted(idx)
    assert np.array_equal(np.asarray(got.labels), labels[idx]) and np.array_equal(np.asarray(got.lmk68), lmk[idx])
    err = np.abs(np.asarray(got.crops, np.int16) - crops[idx]).mean()
    assert 0 < err < 3, err
    assert np.isnan(np.asarray(got.mesh, np.float32)).all()  # no meshes in a packed set
    import pickle

    blob = pickle.dumps(got)                                 # to a spawned loader process: the folder, re-mapped
    assert len(blob) < 10_000 and pickle.loads(blob).names == got.names
    with pytest.raises(ValueError, match="not a packed"):
        pack.unpack(tmp_path / "src" / folder.name, tmp_path / "x")


def test_occluder_threshold_grows_found_occluders_into_likely_neighbours_only():
    lg = np.zeros((3, 4, L.NUM_CLASSES), np.float32)
    lg[..., L.SKIN] = 3.0
    lg[0, 0, L.OCCLUDER] = 2.0       # p_occ about 0.20: skin by arg-max, next to a found occluder
    lg[0, 1, L.OCCLUDER] = 5.0       # occluder by arg-max: the seed
    lg[1, 0, L.OCCLUDER] = -2.0      # p_occ tiny
    lg[2, 3, L.OCCLUDER] = 2.0       # p_occ about 0.20 but not connected to any seed
    plain = unet_parser.labels_from_logits(lg)
    S, O = L.SKIN, L.OCCLUDER
    assert plain.tolist() == [[S, O, S, S], [S, S, S, S], [S, S, S, S]]
    low = unet_parser.labels_from_logits(lg, 0.15)
    assert low.tolist() == [[O, O, S, S], [S, S, S, S], [S, S, S, S]]
    assert unet_parser.labels_from_logits(lg, 0.25).tolist() == plain.tolist()
    no_seed = lg.copy()
    no_seed[0, 1, L.OCCLUDER] = 2.0                            # nothing found: the threshold adds nothing
    assert (unet_parser.labels_from_logits(no_seed, 0.15) == S).all()
    batch = unet_parser.labels_from_logits(np.stack([lg, no_seed]), 0.15)    # (N, H, W, C): each map alone
    assert batch[0].tolist() == low.tolist() and (batch[1] == S).all()
    assert unet_parser.checked_threshold(None, "x") is None and unet_parser.checked_threshold(0, "x") is None
    for bad in (1.0, -0.1, "high"):
        with pytest.raises(CheckpointError, match="occluder_threshold"):
            unet_parser.checked_threshold(bad, "parse.occluder_threshold")


def test_occluder_grows_into_likely_hair_only():
    """parse.occluder_into_hair: a found occluder takes the connected hair pixels above the map's brows of
    occluder probability at least the threshold (a hat's crown), never skin however likely, nor hair it
    does not touch, nor hair below the brows (a beard beside a hand)."""
    S, O, H, B = L.SKIN, L.OCCLUDER, L.HAIR, L.L_BROW
    labels = np.array([[H, H, O, S, S],
                       [H, H, S, S, H],
                       [S, B, S, B, S],
                       [S, H, O, S, S]], np.uint8)
    p = np.array([[0.3, 0.05, 0.9, 0.4, 0.1],
                  [0.2, 0.3, 0.4, 0.1, 0.5],
                  [0.0, 0.0, 0.0, 0.0, 0.0],
                  [0.0, 0.5, 0.9, 0.0, 0.0]])
    grown = unet_parser.grown_into_hair(labels, p, 0.15)
    assert grown.tolist() == [[O, H, O, S, S],                 # (0,0) joins through (1,1); (0,1) is unlikely
                              [O, O, S, S, H],                 # the far hair (1,4) is not reached over skin
                              [S, B, S, B, S],
                              [S, H, O, S, S]]                 # below the brows: hair stays hair
    assert grown is not labels and labels[0, 0] == H
    no_occ = np.where(labels == O, S, labels)
    assert unet_parser.grown_into_hair(no_occ, p, 0.15).tolist() == no_occ.tolist()   # nothing found: no growth
    no_brows = np.where(labels == B, S, labels)
    assert unet_parser.grown_into_hair(no_brows, p, 0.15).tolist() == no_brows.tolist()  # no brow, no eye: none


def test_calibrated_threshold_travels_in_the_header_and_the_setting_overrides_it(tmp_path):
    from occgui.training.onnx_export import export_parser, update_parser_header

    torch.manual_seed(0)
    m = UNet(L.NUM_CLASSES, (8, 16, 16, 32, 32)).eval()
    path = tmp_path / "p.onnx"
    export_parser(m, path, input_size=64, meta={"steps": 1})
    cal = tmp_path / "cal.onnx"
    update_parser_header(path, cal, {"occluder_threshold": 0.05, "occluder_calibration": {"candidates": []}})
    base = unet_parser.UNetParser(SimpleNamespace(device="cpu"), checkpoint=path)
    p = unet_parser.UNetParser(SimpleNamespace(device="cpu"), checkpoint=cal)
    assert base.occluder_threshold is None and p.occluder_threshold == 0.05
    assert p.meta["meta"] == {"steps": 1} and p.version != base.version      # the digest covers the header
    crop = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    a, b = base.parse(crop), p.parse(crop)
    changed = a != b
    assert (b[changed] == L.OCCLUDER).all()                                   # only more occluder, nothing else
    over = unet_parser.UNetParser(SimpleNamespace(device="cpu"), checkpoint=cal, occluder_threshold=0.9)
    assert over.occluder_threshold == 0.9 and over.version == p.version + "+occ0.9"
    with pytest.raises(CheckpointError, match="between 0 and 1"):
        unet_parser.UNetParser(None, checkpoint=_save_with_header(path, tmp_path / "t.onnx", occluder_threshold=2))


def test_calibration_chooses_the_best_dev_val_threshold_within_the_false_area_bound():
    from occgui.errors import OccguiError
    from occgui.training.parsing.calibrate import choose, score_thresholds

    gt = np.zeros((10, 10), bool)
    gt[2:8, 2:8] = True
    p_val = np.where(gt, 0.3, 0.05).astype(np.float32)          # the occluder at 30 %: only its core is
    seed = np.zeros((10, 10), bool)                             # the arg-max's
    seed[4:6, 4:6] = True
    p_val[1, 2:8] = 0.2                                         # a row of 20 % next to it: false at t <= 0.2
    p_val[9, :] = 0.4                                           # likely but not connected: never marked
    region = np.ones((10, 10), bool)
    p_clean = np.full((10, 10), 0.01, np.float32)
    p_clean[:3] = 0.12                                          # 30 % of the clean face at 12 %
    none = np.zeros((10, 10), bool)
    one_seed = none.copy()
    one_seed[0, 0] = True                                       # one stray arg-max pixel there
    scores = score_thresholds([(p_val, seed)], [gt], [(p_clean, one_seed)], [region],
                              thresholds=(0.5, 0.3, 0.2, 0.1))
    by = {s.threshold: s for s in scores}
    assert by[0.5].pooled_iou == 4 / 36 and by[0.3].pooled_iou == 1.0 and by[0.2].pooled_iou == 36 / 42
    assert by[0.2].false_area == 0.01 and abs(by[0.1].false_area - 0.3) < 1e-9
    assert choose(scores, 0.02).threshold == 0.3
    without = score_thresholds([(p_val, seed)], [gt], [(p_clean, none)], [region], thresholds=(0.1,))
    assert without[0].false_area == 0                            # nothing found on the clean photo: nothing grows
    argmax_occ = np.ones((10, 10), bool)                        # the arg-max occluder counts at every threshold
    assert all(s.false_area == 1.0 for s in score_thresholds([(p_val, seed)], [gt], [(p_clean, argmax_occ)],
                                                             [region], thresholds=(0.5, 0.3)))
    with pytest.raises(OccguiError, match="no threshold"):
        choose([s for s in scores if s.threshold == 0.1], 0.02)


def test_calibrate_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    from occgui.training.parsing.calibrate import main

    assert main([str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "out.onnx"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out.onnx").exists()
