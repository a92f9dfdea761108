"""FISN's loss terms (paper Eq. 6-9, plus identity and hole L1) on constructed inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occgui.errors import CheckpointError
from occgui.training.fisn.discriminator import MultiScaleDiscriminator
from occgui.training.fisn.losses import (
    FISNLoss,
    LossWeights,
    VGG19Features,
    adversarial_d,
    adversarial_g,
    feature_matching,
    hole_l1,
    identity_distance,
    perceptual,
)


def _outs(values_per_scale):
    """Discriminator outputs: per scale, a list of layer outputs filled with the given constants."""
    return [[torch.full((2, 3, 4, 4), float(v)) for v in layer_values] for layer_values in values_per_scale]


def test_adversarial_eq6_by_hand():
    real = _outs([[0.0, 0.0, 2.0], [0.0, -1.0]])
    fake = _outs([[0.0, 0.0, -3.0], [0.0, 0.5]])
    softplus = lambda x: math.log1p(math.exp(x))
    d = 0.5 * (softplus(-2.0) + softplus(-3.0)) + 0.5 * (softplus(1.0) + softplus(0.5))
    assert float(adversarial_d(real, fake)) == pytest.approx(d, rel=1e-6)
    assert float(adversarial_g(fake)) == pytest.approx(softplus(3.0) + softplus(-0.5), rel=1e-6)
    # a perfect discriminator has ~0 loss; a fooled one is penalised
    assert float(adversarial_d(_outs([[20.0]]), _outs([[-20.0]]))) < 1e-6
    assert float(adversarial_g(_outs([[-20.0]]))) == pytest.approx(20.0, rel=1e-6)


def test_feature_matching_eq7_excludes_logits_and_detaches_real():
    real = _outs([[1.0, 3.0, 100.0], [0.5, 7.0]])
    fake = _outs([[0.0, 1.0, -100.0], [0.0, 9.0]])
    for t in sum(fake, []):
        t.requires_grad_(True)
    for t in sum(real, []):
        t.requires_grad_(True)
    fm = feature_matching(real, fake)
    assert float(fm.detach()) == pytest.approx(1.0 + 2.0 + 0.5, rel=1e-6)    # the logits (100 vs -100, 7 vs 9) left out
    fm.backward()
    assert all(t.grad is None for t in sum(real, []))
    assert fake[0][0].grad is not None and fake[0][2].grad is None


def test_perceptual_eq8_identity_and_hole_l1():
    r = [torch.zeros(1, 2, 3, 3), torch.ones(1, 4, 2, 2)]
    f = [torch.full((1, 2, 3, 3), 0.5), torch.full((1, 4, 2, 2), 3.0)]
    assert float(perceptual(r, f, (1.0, 0.25))) == pytest.approx(0.5 + 0.25 * 2.0)   # mean = Eq. 8's 1/M_i
    assert float(perceptual(r, r, (1.0, 1.0))) == 0.0
    a = torch.zeros(2, 128)
    b = torch.zeros(2, 128)
    b[0, :2] = torch.tensor([3.0, 4.0])
    b[1, 5] = 1.0
    assert float(identity_distance(a, b)) == pytest.approx((5.0 + 1.0) / 2)
    out, tgt = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :] = 1
    out[..., :2, :] = 0.5                        # off by 0.5 inside the hole
    out[..., 2:, :] = 9.0                        # outside the hole: ignored
    assert float(hole_l1(out, tgt, hole)) == pytest.approx(0.5)
    assert float(hole_l1(out, tgt, torch.zeros_like(hole))) == 0.0


def test_eq9_total_is_the_weighted_sum():
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(num_classes=12, ndf=4)
    assert len(d.scales) == 2
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    gamma = torch.softmax(torch.randn(2, 12, 32, 32), dim=1)
    hole = torch.zeros(2, 1, 32, 32)
    hole[..., 8:20, 8:24] = 1
    raw = torch.rand(2, 3, 32, 32, requires_grad=True) * 2 - 1
    fake = hole * raw + (1 - hole) * img
    d_real, d_fake = d(img, gamma, hole), d(fake, gamma, hole)
    assert d_real[1][-1].shape[-1] < d_real[0][-1].shape[-1]          # D2 sees a half-resolution copy
    w = LossWeights(gan=1.0, fea=10.0, per=10.0, id=1.0, rec=10.0)
    gl = FISNLoss(w).generator(d_real, d_fake, img, fake, raw, img, hole, None)
    assert float(gl.per) == 0 and float(gl.id) == 0                    # no feature network given
    expect = adversarial_g(d_fake) + 10 * feature_matching(d_real, d_fake) + 10 * hole_l1(raw, img, hole)
    assert float(gl.total.detach()) == pytest.approx(float(expect.detach()), rel=1e-6)
    assert float(gl.rec) > 0 and float(gl.fea) > 0
    assert set(gl.as_floats()) == {"total", "gan", "fea", "per", "id", "rec"}


def test_dlib_perceptual_and_identity_terms():
    from occgui.training.fisn.data import chip_affine
    from occgui.training.fisn.losses import DlibFaceFeatures

    try:
        face = DlibFaceFeatures.load("cpu")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"dlib's face-recognition weights are not available here: {e}")
    from occgui.imageio import load_image
    from occgui.resources import sample_photo

    rgb = load_image(sample_photo()).rgb
    import cv2
    img = cv2.resize(rgb[: min(rgb.shape[:2]), : min(rgb.shape[:2])], (128, 128), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1)[None]
    # landmarks of a frontal face roughly centred in the crop (crop pixels at 256)
    lmk = np.zeros((68, 2), np.float32)
    lmk[36:42] = (90, 110)
    lmk[42:48] = (166, 110)
    lmk[30:36] = (128, 160)
    chip = torch.from_numpy(chip_affine(lmk, 128))[None]
    feats, emb = face(x, chip)
    assert [f.shape[1] for f in feats] == [32, 64, 128, 256] and emb.shape == (1, 128)
    loss = FISNLoss(LossWeights(gan=0, fea=0, rec=0), face=face)
    hole = torch.zeros(1, 1, 128, 128)
    same = loss.generator(None, None, x, x, x, x, hole, chip)
    assert float(same.per) == 0 and float(same.id) < 1e-3
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    diff = loss.generator(None, None, x, noisy, noisy, x, hole, chip)
    assert float(diff.per) > 0.01 and float(diff.id) > 0.01
    diff.total.backward()
    assert float(noisy.grad.abs().sum()) > 0


def test_vgg19_state_dict_option(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["E"])
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    vgg = VGG19Features(path)
    maps = vgg(torch.zeros(1, 3, 32, 32))
    assert [m.shape[1] for m in maps] == [64, 128, 256, 512, 512]
    assert vgg.weights == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="VGG-19"):
        VGG19Features(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError):
        VGG19Features(tmp_path / "junk.pth")
