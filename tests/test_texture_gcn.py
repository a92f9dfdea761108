"""The texture refinement GCN (paper §3.4 after Lin et al.; issue 15 point 7): graph convolutions
only, a tiny training run fits its samples, the shipped weights load and refine the sample photo's
texture on the morphable mesh, bad weights are a one-line error, the option enters the cache key."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("pytorch3d")

import torch  # noqa: E402
from pytorch3d.ops import GraphConv  # noqa: E402

from occgui.errors import OccguiError  # noqa: E402
from occgui.pipeline import backends  # noqa: E402
from occgui.pipeline.backends import BackendContext  # noqa: E402
from occgui.texture.gcn_checkpoint import checkpoint_exists  # noqa: E402
from occgui.texture.gcn_refiner import (  # noqa: E402
    MeshGraphConv,
    TextureGCN,
    adjacency,
    load_refiner,
    parameter_count,
    save_refiner,
)
from occgui.texture.settings import UVSamplerSettings  # noqa: E402
from occgui.texture.vertex_features import NUM_FEATURES, harmonic_fill, mesh_graph  # noqa: E402

CTX = BackendContext(device="cpu", crop_size=256, texture_size=1024)


def _grid(n: int = 12):
    """A triangulated n x n grid on the UV square (a mirror-symmetric layout) and its graph."""
    u, v = np.meshgrid(np.linspace(0.05, 0.95, n), np.linspace(0.05, 0.95, n))
    uv = np.column_stack([u.ravel(), v.ravel()])
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    return uv, faces


# ----------------------------------------------------------------------------- the network
def test_every_layer_of_the_refiner_is_a_graph_convolution():
    net = TextureGCN()
    with_params = [name for name, m in net.named_modules() if list(m.parameters(recurse=False))]
    assert with_params
    modules = dict(net.named_modules())
    for name in with_params:
        parent = modules[name.rsplit(".", 1)[0]] if "." in name else net
        # the only weights are the two linear maps *inside* pytorch3d GraphConv layers (w0: self, w1: neighbours)
        assert isinstance(parent, GraphConv) and name.rsplit(".", 1)[-1] in ("w0", "w1"), name
    convs = [m for m in net.modules() if isinstance(m, GraphConv)]
    assert len(convs) == 2 + net.num_blocks
    assert not any(isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)) for m in net.modules())
    assert sum(p.numel() for c in convs for p in c.parameters()) == parameter_count(net)
    assert 5_000 < parameter_count(net) < 100_000


def test_the_sparse_adjacency_computes_pytorch3d_graphconv_exactly():
    uv, faces = _grid(6)
    edges = mesh_graph(faces, uv).edges
    conv = MeshGraphConv(5, 4)
    x = torch.randn(2 * len(uv), 5)
    packed = torch.cat([torch.as_tensor(edges), torch.as_tensor(edges) + len(uv)])
    ref = GraphConv.forward(conv, x, packed)                    # pytorch3d's own gather/scatter
    assert torch.allclose(conv(x, adjacency(edges, len(uv), 2, mean=False)), ref, atol=1e-5)
    # the default adjacency averages the neighbours: the same layer with w1 divided by the degree
    degree = torch.bincount(torch.cat([packed[:, 0], packed[:, 1]]), minlength=2 * len(uv)).float()
    mean = conv.w0(x) + (ref - conv.w0(x)) / degree[:, None]
    assert torch.allclose(conv(x, adjacency(edges, len(uv), 2)), mean, atol=1e-5)
    assert torch.allclose(conv(x, packed), ref)


def test_the_refiner_starts_as_the_identity_on_its_base():
    uv, faces = _grid(5)
    net = TextureGCN()
    base = torch.rand(len(uv), 3)
    out = net(torch.rand(len(uv), NUM_FEATURES), adjacency(mesh_graph(faces, uv).edges, len(uv)), base)
    assert torch.equal(out, base)          # the output convolution is zero-initialised


def test_a_tiny_training_run_fits_its_samples():
    """Four samples on a small grid mesh; the target is a smooth function of the features that the
    base does not contain (a blend towards the 'fill' channels on the occluded vertices)."""
    from occgui.training.texture_gcn.data import SampleSet
    from occgui.training.texture_gcn.train import Trainer

    torch.manual_seed(0)
    uv, faces = _grid(12)
    n, s = len(uv), 4
    rng = np.random.default_rng(0)
    feats = rng.uniform(0.2, 1.0, (s, n, NUM_FEATURES)).astype(np.float32)
    occluded = rng.random((s, n)) < 0.4
    feats[..., 4] = occluded
    base = feats[..., 0:3].copy()
    target = np.where(occluded[..., None], 0.3 * base + 0.7 * feats[..., 9:12], base)
    samples = SampleSet(features=feats.astype(np.float16), base=base.astype(np.float16),
                        target=target.astype(np.float16), valid=np.ones((s, n), bool), pasted=occluded,
                        names=[f"s{i}" for i in range(s)])
    trainer = Trainer(n, mesh_graph(faces, uv).edges, hidden=32, blocks=2, lr=5e-3, total_steps=300,
                      occluded_weight=4.0)
    start = trainer.evaluate(samples)
    for _ in range(300):
        trainer.step(samples, range(s))
    end = trainer.evaluate(samples)
    assert start["loss"] > 0.05
    assert end["loss"] < 0.25 * start["loss"]
    assert end["refined_pasted"] < 0.3 * end["base_pasted"]
    # the state round-trips (resume)
    other = Trainer(n, mesh_graph(faces, uv).edges, hidden=32, blocks=2, lr=5e-3, total_steps=300,
                    occluded_weight=4.0)
    other.load_state_dict(trainer.state_dict())
    assert other.evaluate(samples)["loss"] == pytest.approx(end["loss"], rel=1e-6)
    assert other.step_count == 300 and other.opt.t == trainer.opt.t


# ----------------------------------------------------------------------------- inputs
def test_the_models_mirror_map_is_an_involution_and_the_fill_keeps_known_values():
    from occgui.morphable import load_default_model

    m = load_default_model()
    g = mesh_graph(m.triangles, m.uv)
    has = g.mirror >= 0
    assert has.mean() > 0.95
    assert (g.mirror[g.mirror[has]] == np.flatnonzero(has)).mean() > 0.95
    values = np.random.default_rng(1).random((m.num_vertices, 3)).astype(np.float32)
    known = np.zeros(m.num_vertices, bool)
    known[::3] = True
    filled = harmonic_fill(values, known, g.laplacian)
    assert np.array_equal(filled[known], values[known])
    assert filled[~known].min() >= values[known].min() - 1e-3 and filled[~known].max() <= values[known].max() + 1e-3


# ----------------------------------------------------------------------------- weights and settings
def test_a_malformed_weights_file_is_a_one_line_error(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(OccguiError) as e:
        load_refiner(junk)
    assert "\n" not in str(e.value) and "junk.safetensors" in str(e.value)
    # a valid safetensors file of another network
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(OccguiError, match="not a texture GCN weights file"):
        load_refiner(other)
    # the right format with a wrong shape
    wrong = save_refiner(TextureGCN(hidden=8, blocks=1), tmp_path / "wrong.safetensors")
    blob = {"format": "occgui-texture-gcn-1", "in_dim": str(NUM_FEATURES), "hidden": "16", "blocks": "1"}
    from safetensors import safe_open

    with safe_open(str(wrong), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(wrong), metadata=blob)
    with pytest.raises(OccguiError) as e:
        load_refiner(wrong)
    assert "\n" not in str(e.value)
    with pytest.raises(OccguiError, match="not found"):
        load_refiner(tmp_path / "missing.safetensors")
    # through the backend, as --option texture.gcn_checkpoint=... reaches it: refused at creation
    for mode in ("auto", "on"):
        with pytest.raises(OccguiError) as e:
            backends.create("texture", "uv-sampler",
                            replace(CTX, settings=UVSamplerSettings(gcn_refine=mode, gcn_checkpoint=str(junk))))
        assert "\n" not in str(e.value)
    with pytest.raises(OccguiError, match="not found"):
        backends.create("texture", "uv-sampler", replace(CTX, settings=UVSamplerSettings(
            gcn_refine="auto", gcn_checkpoint=str(tmp_path / "missing.safetensors"))))


def test_saved_weights_round_trip_in_fp16_with_their_trained_region(tmp_path):
    from occgui.texture.gcn_refiner import trained_vertices
    from occgui.texture.vertex_features import VertexInputs

    net = TextureGCN()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    net.vertex_mask = np.arange(10) % 3 > 0
    path = save_refiner(net, tmp_path / "w.safetensors", training={"steps": 3})
    loaded, digest = load_refiner(path)
    assert len(digest) == 8
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-3), k
    assert path.stat().st_size < 200_000
    assert np.array_equal(loaded.vertex_mask, net.vertex_mask)

    def inputs(n):
        visible = np.arange(n) % 2 == 0
        return VertexInputs(np.zeros((n, NUM_FEATURES), np.float32), np.zeros((n, 3), np.float32), visible,
                            np.zeros(n, bool), np.ones((n, 3), np.float32))
    # only trained *and* visible vertices count (the training targets were visible vertices)
    assert np.array_equal(trained_vertices(loaded, inputs(10)), net.vertex_mask & (np.arange(10) % 2 == 0))
    with pytest.raises(OccguiError, match="10-vertex mesh") as e:       # weights of another topology
        trained_vertices(loaded, inputs(12))
    assert "\n" not in str(e.value)


def test_the_option_parses_and_changes_the_backend_id(tmp_path):
    off = backends.parse_settings(["texture.gcn_refine=off"])["texture"]
    assert off == UVSamplerSettings(gcn_refine="off")
    plain = backends.create("texture", "uv-sampler", replace(CTX, settings=off))
    assert backends.backend_id(plain, off).startswith("uv-sampler@1+s")       # no weights, a settings digest
    weights = save_refiner(TextureGCN(), tmp_path / "w.safetensors")
    keys = set()
    for mode in ("auto", "on", "off"):
        st = UVSamplerSettings(gcn_refine=mode, gcn_checkpoint=str(weights))
        b = backends.create("texture", "uv-sampler", replace(CTX, settings=st))
        keys.add(backends.backend_id(b, st))
        assert ("+gcn" in b.version) == (mode != "off")
    assert len(keys) == 3
    other = save_refiner(TextureGCN(hidden=8, blocks=1), tmp_path / "w2.safetensors")
    st = UVSamplerSettings(gcn_refine="on", gcn_checkpoint=str(other))
    assert backends.backend_id(backends.create("texture", "uv-sampler", replace(CTX, settings=st)), st) not in keys
    with pytest.raises(OccguiError, match="auto, on, off"):
        backends.create("texture", "uv-sampler", replace(CTX, settings=backends.parse_settings(
            ["texture.gcn_refine=maybe"])["texture"]))


# ----------------------------------------------------------------------------- on the sample photo
@pytest.fixture(scope="module")
def fitted(sample_photo):
    """The sample photo through the pipeline up to the morphable fit (cheaper fit settings)."""
    from occgui.geometry.settings import MorphableSettings
    from occgui.pipeline.runner import Pipeline, PipelineConfig

    torch.set_num_threads(1)
    p = Pipeline(PipelineConfig(device="cpu", backends={"geometry": "morphable"},
                                settings={"geometry": MorphableSettings(iterations=30, image_iterations=0)}))
    return p.run(sample_photo, stop_after="geometry")


@pytest.mark.skipif(not checkpoint_exists(), reason="checkpoints/texture_gcn.safetensors not shipped")
def test_the_shipped_weights_refine_the_sample_photos_morphable_texture(fitted):
    from occgui.texture.uv_sampler import OBSERVED

    r = fitted
    plain = backends.create("texture", "uv-sampler", replace(CTX, settings=UVSamplerSettings(gcn_refine="off")))
    refined = backends.create("texture", "uv-sampler", CTX)             # the default: auto, shipped weights
    assert refined.gcn_weights is not None
    a = plain.build(r.image, r.crop, r.alpha.labels, r.synthesis, r.mesh)
    b = refined.build(r.image, r.crop, r.alpha.labels, r.synthesis, r.mesh)
    assert b.image.shape == (1024, 1024, 3) and b.albedo is not None and b.albedo.shape == (1024, 1024, 3)
    assert np.array_equal(a.source, b.source)
    completed = (b.source > OBSERVED)
    assert completed.sum() > 1000                    # the sample photo's hand hides part of the face
    diff = np.abs(a.albedo.astype(int) - b.albedo.astype(int)).max(axis=2)
    assert diff[completed].mean() > 0.5              # the completed texels are corrected

    observed = b.source == OBSERVED
    assert np.array_equal(a.albedo[observed], b.albedo[observed])       # observed skin keeps the photo
    assert np.array_equal(a.image[observed], b.image[observed])


def test_a_mesh_without_a_fit_is_left_alone_by_auto_and_refused_by_on(fitted, tmp_path):
    """``auto`` leaves a mesh without a fit (MediaPipe's) exactly as ``off`` does; ``on`` refuses it
    with a one-line error naming the fix."""
    weights = save_refiner(TextureGCN(), tmp_path / "w.safetensors")

    def builder(mode):
        st = UVSamplerSettings(gcn_refine=mode, gcn_checkpoint=str(weights))
        return backends.create("texture", "uv-sampler", replace(CTX, settings=st))

    r = fitted
    no_fit = replace(r.mesh, fit=None, backend="mediapipe-mesh")
    auto = builder("auto").build(r.image, r.crop, r.alpha.labels, r.synthesis, no_fit)
    off = builder("off").build(r.image, r.crop, r.alpha.labels, r.synthesis, no_fit)
    assert np.array_equal(auto.image, off.image) and auto.albedo is None
    with pytest.raises(OccguiError, match="--geometry morphable") as e:
        builder("on").build(r.image, r.crop, r.alpha.labels, r.synthesis, no_fit)
    assert "\n" not in str(e.value)
    out = builder("on").build(r.image, r.crop, r.alpha.labels, r.synthesis, r.mesh)
    assert np.isfinite(out.albedo).all()


def test_the_trainer_command_runs_on_cached_samples_and_writes_loadable_weights(tmp_path):
    """``occgui train texture-gcn`` end to end on a fake sample cache (the cache is what a data build
    leaves; no photo is read): a few steps, the log, last.pt, fp16 weights the backend loads."""
    import json

    from occgui.morphable import load_default_model
    from occgui.training.texture_gcn import data as D
    from occgui.training.texture_gcn.train import main

    n = load_default_model().num_vertices
    rng = np.random.default_rng(0)
    for split, photos in (("train", 3), ("val", 1)):
        folder = D.cache_folder(tmp_path / "cache", split, photos, 1, 0)
        folder.mkdir(parents=True)
        for k in range(photos):
            f = rng.random((n, NUM_FEATURES)).astype(np.float16)
            np.savez(folder / f"{k:05d}_0.npz", features=f, base=f[:, :3], target=f[:, 9:12],
                     valid=np.ones(n, bool), pasted=f[:, 4] > 0.5)
        (folder / "meta.json").write_text(json.dumps({"complete": True}))
    lfw = tmp_path / "faces" / "lfw" / "lfw-deepfunneled"
    lfw.mkdir(parents=True)
    (tmp_path / "occluders").mkdir()
    run = tmp_path / "run"
    argv = ["--data", str(tmp_path), "-o", str(run), "--cache", str(tmp_path / "cache"), "--photos", "3",
            "--val-photos", "1", "--draws", "1", "--steps", "4", "--val-every", "2", "--batch-size", "2",
            "--hidden", "8", "--blocks", "1", "--quiet"]
    assert main(argv) == 0
    net, _ = load_refiner(run / "texture_gcn.safetensors")
    assert net.hidden == 8 and (run / "last.pt").exists()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val" in r] == [0, 2, 4] and log[-1]["final"]["steps"] == 4
    assert main(argv) == 2                                 # the folder holds a run: one-line refusal
    assert main(argv + ["--resume", "--steps", "6"]) == 0  # resumes from last.pt
    assert json.loads((run / "log.jsonl").read_text().splitlines()[-1])["final"]["steps"] == 6
