"""FISN's generator (paper §3.3): shapes, gradient flow, SFT (Eq. 2) and SEAN (Eq. 3-5) numerics
against hand computation, compositing, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from occgui import labels as L
from occgui.errors import CheckpointError
from occgui.synthesis.fisn import FISNConfig, FISNGenerator, FISNInpainter, load_generator, save_generator
from occgui.synthesis.fisn.composite import (
    blend_weights,
    class_fractions,
    composite,
    network_inputs,
    network_to_image,
    shrink_mask,
)
from occgui.synthesis.fisn.sean import SEANNorm, broadcast, fill_from_mirror, region_pool
from occgui.synthesis.fisn.sft import SFTLayer, resize_condition

TINY = FISNConfig(size=32, channels=4, downsamples=2, blocks=4, style_dim=6, cond_hidden=4)


def _inputs(cfg: FISNConfig, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    r, j = cfg.size, cfg.num_classes
    hole = torch.zeros(batch, 1, r, r)
    hole[:, :, r // 4: r // 2, r // 4: 3 * r // 4] = 1
    masked = (torch.rand(batch, 3, r, r, generator=g) * 2 - 1) * (1 - hole)
    alpha = torch.softmax(4 * torch.randn(batch, j, r, r, generator=g), dim=1)
    gamma = torch.softmax(4 * torch.randn(batch, j, r, r, generator=g), dim=1)
    return masked, hole, alpha, gamma


def _center_only(conv: torch.nn.Conv2d, weight: np.ndarray, bias: np.ndarray) -> None:
    """Set a 3x3 (or 1x1) convolution to act per pixel: ``weight`` (out, in) at the kernel centre."""
    with torch.no_grad():
        conv.weight.zero_()
        k = conv.weight.shape[-1] // 2
        conv.weight[:, :, k, k] = torch.as_tensor(weight, dtype=torch.float32)
        conv.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def test_generator_shapes_range_and_gradient_flow():
    g = FISNGenerator(TINY)
    masked, hole, alpha, gamma = _inputs(TINY)
    out = g(masked, hole, alpha, gamma)
    assert out.shape == (2, 3, 32, 32)
    assert float(out.detach().abs().max()) <= 1.0
    (out * torch.linspace(-1, 1, 32)).sum().backward()
    no_grad = [n for n, p in g.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad
    # every part of the network receives a gradient: encoder, SFT, style encoder, SEAN, decoder
    for prefix in ("stem.", "sft.0.", "sft.2.", "down.1.", "style.", "blocks.0.norm1.fc_weight",
                   "blocks.3.norm2.conv_gamma_s", "blocks.3.norm2.conv_beta_o", "blocks.0.norm1.blend_gamma",
                   "up.1.", "head."):
        grads = [p.grad.abs().sum() for n, p in g.named_parameters() if n.startswith(prefix)]
        assert grads and float(sum(grads)) > 0, prefix
    assert sum(1 for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)) == 0


def test_generator_reads_m_gamma_and_rejects_bad_inputs():
    g = FISNGenerator(TINY).eval()
    masked, hole, alpha, gamma = _inputs(TINY)
    with torch.no_grad():
        a = g(masked, hole, alpha, gamma)
        b = g(masked, hole, alpha, gamma.flip(-1))
    assert float((a - b).abs().max()) > 1e-4
    with pytest.raises(ValueError, match="gamma"):
        g(masked, hole, alpha, gamma[:, :5])
    with pytest.raises(ValueError, match="multiple"):
        FISNGenerator(FISNConfig(size=30))


def test_sft_is_eq2_by_hand():
    sft = SFTLayer(channels=2, cond_channels=3, hidden=2)
    ws, bs = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]]), np.array([0.1, -0.2])
    wg, bg = np.array([[0.5, 0.0], [-0.25, 1.0]]), np.array([0.0, 0.1])
    wb, bb = np.array([[1.0, 1.0], [0.0, -0.5]]), np.array([0.2, 0.0])
    _center_only(sft.shared, ws, bs)
    _center_only(sft.gamma, wg, bg)
    _center_only(sft.beta, wb, bb)
    rng = np.random.default_rng(1)
    feats, cond = rng.normal(size=(1, 2, 2, 2)), rng.random((1, 3, 2, 2))
    out = sft(torch.tensor(feats, dtype=torch.float32), torch.tensor(cond, dtype=torch.float32)).detach().numpy()
    expect = np.zeros_like(feats)
    for y in range(2):
        for x in range(2):
            h = ws @ cond[0, :, y, x] + bs
            h = np.where(h > 0, h, 0.2 * h)                       # LeakyReLU(0.2)
            gamma, beta = 1.0 + wg @ h + bg, wb @ h + bb            # (gamma, beta) = M(Psi)
            expect[0, :, y, x] = gamma * feats[0, :, y, x] + beta   # Eq. 2
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-6)


def test_condition_resized_by_area():
    cond = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    small = resize_condition(cond, (2, 2))
    np.testing.assert_allclose(small[0, 0].numpy(), [[2.5, 4.5], [10.5, 12.5]])


def test_sean_statistics_are_eq4_eq5():
    norm = SEANNorm(channels=2, num_classes=2, style_dim=1, hidden=1, eps=1e-5, momentum=0.1)
    z = np.array([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]],
                  [[[5.0, 6.0], [7.0, 8.0]], [[1.0, 1.0], [1.0, 1.0]]]])       # (n=2, c=2, 2, 2)
    out = norm.train().normalise(torch.tensor(z, dtype=torch.float32)).numpy()
    for c in range(2):
        h = z[:, c]
        mu = h.sum() / h.size                                     # Eq. 4: over n, y, x
        sigma = np.sqrt((h ** 2 - mu ** 2).sum() / h.size)        # Eq. 5
        np.testing.assert_allclose(out[:, c], (h - mu) / np.sqrt(sigma ** 2 + 1e-5), rtol=1e-5, atol=1e-6)
        # running averages (momentum 0.1, unbiased variance like batch norm)
        assert norm.running_mean[c].item() == pytest.approx(0.1 * mu, rel=1e-5)
        assert norm.running_var[c].item() == pytest.approx(0.9 + 0.1 * h.var(ddof=1), rel=1e-5)
    # eval mode: the running statistics, independent of the batch
    norm.eval()
    one = norm.normalise(torch.tensor(z[:1], dtype=torch.float32)).numpy()
    rm, rv = norm.running_mean.numpy(), norm.running_var.numpy()
    np.testing.assert_allclose(one[0], (z[0] - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5), rtol=1e-5)


def test_region_pool_mirror_fill_and_broadcast_by_hand():
    j = L.NUM_CLASSES
    feats = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]]])   # (1, S=2, 2, 2)
    regions = torch.zeros(1, j, 2, 2)
    regions[0, L.SKIN, 0, :] = 1                  # top row skin
    regions[0, L.L_EYE, 1, 0] = 1                 # one pixel of the subject's left eye
    regions[0, L.L_EYE, 1, 1] = 0.5               # and half a pixel
    codes, present = region_pool(feats, regions)
    np.testing.assert_allclose(codes[0, L.SKIN].numpy(), [1.5, 15.0])
    np.testing.assert_allclose(codes[0, L.L_EYE].numpy(), [(3 + 0.5 * 4) / 1.5, (30 + 0.5 * 40) / 1.5], rtol=1e-6)
    assert present[0, L.SKIN] and present[0, L.L_EYE] and not present[0, L.R_EYE] and not present[0, L.NOSE]
    assert float(codes[0, L.R_EYE].abs().sum()) == 0
    filled = fill_from_mirror(codes, present, torch.as_tensor(L.MIRROR.astype(np.int64)))
    np.testing.assert_allclose(filled[0, L.R_EYE].numpy(), codes[0, L.L_EYE].numpy())   # hidden eye: partner's style
    assert float(filled[0, L.NOSE].abs().sum()) == 0                                     # no partner: zero code
    np.testing.assert_allclose(filled[0, L.SKIN].numpy(), codes[0, L.SKIN].numpy())
    layout = torch.zeros(1, j, 1, 3)
    layout[0, L.SKIN, 0, 0] = 1
    layout[0, L.R_EYE, 0, 1] = 1
    layout[0, L.SKIN, 0, 2], layout[0, L.R_EYE, 0, 2] = 0.25, 0.75
    m = broadcast(filled, layout)[0].numpy()      # (S, 1, 3)
    np.testing.assert_allclose(m[:, 0, 0], filled[0, L.SKIN].numpy())
    np.testing.assert_allclose(m[:, 0, 1], filled[0, L.R_EYE].numpy())
    np.testing.assert_allclose(m[:, 0, 2], 0.25 * filled[0, L.SKIN].numpy() + 0.75 * filled[0, L.R_EYE].numpy(),
                               rtol=1e-6)


def test_sean_layer_is_eq3_with_learned_blend_by_hand():
    norm = SEANNorm(channels=1, num_classes=2, style_dim=1, hidden=1).eval()
    with torch.no_grad():
        norm.fc_weight.copy_(torch.tensor([[[2.0]], [[-3.0]]]))
        norm.fc_bias.copy_(torch.tensor([[0.5], [1.0]]))
        norm.blend_gamma.fill_(0.4)
        norm.blend_beta.fill_(-1.0)
        norm.running_mean.fill_(1.0)
        norm.running_var.fill_(4.0)
    _center_only(norm.conv_gamma_s, [[0.5]], [0.1])
    _center_only(norm.conv_beta_s, [[-1.0]], [0.0])
    _center_only(norm.spade_shared, [[1.0, -2.0]], [0.5])
    _center_only(norm.conv_gamma_o, [[0.3]], [0.0])
    _center_only(norm.conv_beta_o, [[2.0]], [-0.5])
    codes = np.array([[[1.5], [-0.5]]])                      # (B=1, J=2, S=1)
    layout = np.array([[[[1.0, 0.0, 0.4]], [[0.0, 1.0, 0.6]]]])  # (1, J, 1, 3)
    z = np.array([[[[3.0, -1.0, 0.0]]]])
    out = norm(torch.tensor(z, dtype=torch.float32), torch.tensor(codes, dtype=torch.float32),
               torch.tensor(layout, dtype=torch.float32)).detach().numpy()
    sig = lambda v: 1 / (1 + np.exp(-v))
    styles = np.maximum(np.array([2.0 * 1.5 + 0.5, -3.0 * -0.5 + 1.0]), 0)    # ReLU(FC_j(code_j))
    expect = np.zeros(3)
    for x in range(3):
        s = layout[0, :, 0, x] @ styles                        # broadcast on M_gamma's layout
        gs, bs = 0.5 * s + 0.1, -1.0 * s
        h = max(1.0 * layout[0, 0, 0, x] - 2.0 * layout[0, 1, 0, x] + 0.5, 0)
        go, bo = 0.3 * h, 2.0 * h - 0.5
        g = sig(0.4) * gs + (1 - sig(0.4)) * go
        b = sig(-1.0) * bs + (1 - sig(-1.0)) * bo
        expect[x] = (1 + g) * (z[0, 0, 0, x] - 1.0) / np.sqrt(4.0 + 1e-5) + b      # Eq. 3
    np.testing.assert_allclose(out[0, 0, 0], expect, rtol=1e-5, atol=1e-6)


def test_network_inputs_and_composite_only_inside_the_hole():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    alpha = np.full((64, 64), L.SKIN, np.uint8)
    alpha[20:30, 10:40] = L.OCCLUDER
    gamma = np.full((64, 64), L.SKIN, np.uint8)
    gamma[22:26, 12:19] = L.R_EYE
    x = network_inputs(crop, alpha, gamma, 32)
    assert x.hole_crop[19, 15] and x.hole_crop[30, 15] and not x.hole_crop[17, 15]   # dilated by 1 px at 64
    np.testing.assert_array_equal(x.hole[0], shrink_mask(x.hole_crop, 32))
    assert x.hole[0, 9, 10] == 1 and x.hole[0, 8, 10] == 0                           # any covered crop pixel
    np.testing.assert_allclose(x.gamma.sum(axis=0), 1.0, atol=1e-6)
    assert x.gamma[L.R_EYE, 11, 6] == 1.0 and x.gamma[L.R_EYE, 12, 9] == 0.5
    assert np.all(x.masked[:, x.hole[0] > 0] == 0)
    np.testing.assert_allclose(class_fractions(alpha, 32)[L.OCCLUDER].sum() * 4, (alpha == L.OCCLUDER).sum())
    generated = network_to_image(np.zeros((3, 32, 32), np.float32), 64)                   # mid grey
    out = composite(crop, generated, x.hole_crop)
    np.testing.assert_array_equal(out[~x.hole_crop], crop[~x.hole_crop])                 # bit for bit outside
    w = blend_weights(x.hole_crop, 1.0)
    inner = w >= 1.0
    assert inner.sum() > 0.5 * x.hole_crop.sum()
    assert np.all(np.abs(out[inner].astype(int) - 128) <= 1)


def test_inpainter_keeps_the_photo_outside_the_hole():
    g = FISNGenerator(TINY)
    inp = FISNInpainter.from_generator(g)
    rng = np.random.default_rng(3)
    crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    alpha = np.full((64, 64), L.SKIN, np.uint8)
    alpha[30:50, 20:44] = L.OCCLUDER
    res = inp.synthesize(crop, alpha, alpha)
    assert res.image.shape == crop.shape and res.raw.shape == (32, 32, 3)
    np.testing.assert_array_equal(res.image[~res.filled], crop[~res.filled])
    assert np.any(res.image[res.filled] != crop[res.filled])
    clean = np.full((64, 64), L.SKIN, np.uint8)
    same = inp.synthesize(crop, clean, clean)
    np.testing.assert_array_equal(same.image, crop)
    assert not same.filled.any()


def test_checkpoint_round_trip_and_shape_validation(tmp_path):
    g = FISNGenerator(TINY)
    masked, hole, alpha, gamma = _inputs(TINY)
    g.train()(masked, hole, alpha, gamma)                     # move SEAN's running statistics
    path = save_generator(tmp_path / "g.safetensors", g, {"steps": 3})
    h, header = load_generator(path)
    assert header["meta"] == {"steps": 3} and header["config"] == TINY.to_dict()
    for k, v in g.state_dict().items():
        assert torch.equal(v, h.state_dict()[k]), k
    g.eval()
    with torch.no_grad():
        assert torch.equal(g(masked, hole, alpha, gamma), h(masked, hole, alpha, gamma))
    half, _ = load_generator(save_generator(tmp_path / "h.safetensors", g, half=True))
    assert half.stem.weight.dtype == torch.float32
    assert path.stat().st_size > (tmp_path / "h.safetensors").stat().st_size

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    tensors["head.weight"] = torch.zeros(3, 4, 5, 5)
    save_file(tensors, str(tmp_path / "bad_shape.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="head.weight"):
        load_generator(tmp_path / "bad_shape.safetensors")
    del tensors["head.weight"]
    save_file(tensors, str(tmp_path / "missing.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="missing"):
        load_generator(tmp_path / "missing.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not an occgui FISN"):
        load_generator(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "absent.safetensors")
