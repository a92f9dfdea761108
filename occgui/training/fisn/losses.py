"""FISN's losses (paper Eq. 6-9) and the two terms added here (identity, hole L1).

Notation: ``real`` is the clean face composited into the occluded one inside the hole (so real
and fake differ only in the hole), ``fake`` the generator's output composited the same way; both
in [-1, 1], ``(B, 3, R, R)``. Every term is a mean over the batch.

* **Eq. 6, adversarial** (the log-loss as written, on logits, per patch, summed over D1 and D2):
  ``L_D = sum_k 0.5 * (BCE(D_k(real), 1) + BCE(D_k(fake), 0))`` for the discriminators and the
  non-saturating ``L_GAN = sum_k BCE(D_k(fake), 1)`` for the generator.
* **Eq. 7, feature matching**: ``L_fea = sum_k sum_{i<T} mean |D_k^(i)(real) - D_k^(i)(fake)|``
  over every discriminator layer but the logits (Pix2PixHD), the real features detached.
* **Eq. 8, perceptual**: ``L_per = sum_i w_i * mean |F_i(real) - F_i(fake)|`` (the mean is Eq. 8's
  ``1 / M_i``). ``F``: the feature maps ``level4, level3, level2, level1`` of dlib's
  face-recognition ResNet (``occgui.identity``) on the 150 px face chips aligned by each face's
  landmarks (differentiable), ``w_i = 1`` -- VGG-19 weights cannot be had here. With a
  user-supplied torchvision VGG-19 state dict (``--vgg19 PATH``): relu1_1 ... relu5_1 on the whole
  image with Pix2PixHD's weights 1/32, 1/16, 1/8, 1/4, 1.
* **Identity** (not in the paper): ``L_id = mean ||E(real) - E(fake)||_2``, E the 128-D dlib
  descriptor of the same chips; the issue's goal is an I_out closer to the person.
* **Hole L1** (not in the paper): ``L_rec = sum |G - clean| over hole pixels / (3 * hole pixels)``
  on the raw output; it makes a short CPU training converge (the paper trains far longer).
* **Eq. 9**: ``L_FISN = L_GAN + l1 * L_fea + l2 * L_per + l_id * L_id + l_rec * L_rec`` with the
  paper's ``l1 = l2 = 10`` (:class:`LossWeights`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LossWeights:
    """Weights of Eq. 9 (``fea`` = lambda1, ``per`` = lambda2) and of the added terms."""

    gan: float = 1.0
    fea: float = 10.0
    per: float = 10.0
    id: float = 1.0
    rec: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- Eq. 6, 7
def adversarial_d(real_outs: list[list[torch.Tensor]], fake_outs: list[list[torch.Tensor]]) -> torch.Tensor:
    """Eq. 6 for the discriminators: real patches towards 1, fake towards 0, summed over scales."""
    total = real_outs[0][-1].new_zeros(())
    for r, f in zip(real_outs, fake_outs):
        total = total + 0.5 * (F.binary_cross_entropy_with_logits(r[-1], torch.ones_like(r[-1]))
                               + F.binary_cross_entropy_with_logits(f[-1], torch.zeros_like(f[-1])))
    return total


def adversarial_g(fake_outs: list[list[torch.Tensor]]) -> torch.Tensor:
    """Eq. 6 for the generator (non-saturating): fake patches towards 1, summed over scales."""
    total = fake_outs[0][-1].new_zeros(())
    for f in fake_outs:
        total = total + F.binary_cross_entropy_with_logits(f[-1], torch.ones_like(f[-1]))
    return total


def feature_matching(real_outs: list[list[torch.Tensor]], fake_outs: list[list[torch.Tensor]]) -> torch.Tensor:
    """Eq. 7: mean L1 between the discriminators' intermediate features (logits excluded)."""
    total = fake_outs[0][0].new_zeros(())
    for r, f in zip(real_outs, fake_outs):
        for rf, ff in zip(r[:-1], f[:-1]):
            total = total + (rf.detach() - ff).abs().mean()
    return total


# ----------------------------------------------------------------------------- Eq. 8 and identity
def perceptual(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor], weights) -> torch.Tensor:
    """Eq. 8: ``sum_i w_i * mean |F_i(real) - F_i(fake)|`` (real features detached)."""
    total = fake_feats[0].new_zeros(())
    for w, r, f in zip(weights, real_feats, fake_feats):
        total = total + float(w) * (r.detach() - f).abs().mean()
    return total


def identity_distance(real_emb: torch.Tensor, fake_emb: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance of the 128-D descriptors (dlib's same-person threshold is 0.6)."""
    return (real_emb.detach() - fake_emb).pow(2).sum(dim=1).clamp_min(1e-12).sqrt().mean()


def hole_l1(output: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the hole's pixels and channels (0 when there is no hole)."""
    n = hole.sum() * output.shape[1]
    return ((output - target).abs() * hole).sum() / n.clamp_min(1.0)


class DlibFaceFeatures(nn.Module):
    """Feature maps and descriptor of dlib's face ResNet on landmark-aligned 150 px chips."""

    LEVELS = ("level4", "level3", "level2", "level1")

    def __init__(self, net, levels=LEVELS):
        super().__init__()
        self.net = net.eval().requires_grad_(False)     # a DlibFaceResNet with input_range 1.0
        self.levels = tuple(levels)
        self.weights = (1.0,) * len(self.levels)

    @classmethod
    def load(cls, device: str = "cpu") -> DlibFaceFeatures:
        from ...identity import load_face_resnet

        return cls(load_face_resnet(device, input_range=1.0))

    def forward(self, images: torch.Tensor, chip_affines: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        from ...identity import CHIP_SIZE, extract_face_chips_torch

        chips = extract_face_chips_torch((images + 1.0) * 0.5, chip_affines, CHIP_SIZE)
        out = self.net.features(chips, self.levels + ("embedding",))
        return [out[k] for k in self.levels], out["embedding"]

    def train(self, mode: bool = True):                 # the network stays in eval mode
        super().train(mode)
        self.net.eval()
        return self


#: torchvision ``vgg19().features`` indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
VGG19_LAYERS = (1, 6, 11, 20, 29)
VGG19_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class VGG19Features(nn.Module):
    """Pix2PixHD's VGG-19 perceptual features from a user-supplied torchvision state dict (keys of
    ``torchvision.models.vgg19()``, with or without the ``features.`` prefix; classifier keys are
    ignored). Images in [-1, 1] are mapped to ImageNet's normalisation."""

    def __init__(self, state_dict_path):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        from ...errors import CheckpointError

        try:
            raw = torch.load(str(state_dict_path), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"cannot read the VGG-19 state dict {state_dict_path}: "
                                  f"{str(e).splitlines()[0][:200]}") from None
        if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
            raw = raw["state_dict"]
        feats = {k.removeprefix("features."): v for k, v in raw.items()
                 if not k.startswith("classifier.")}
        features = make_layers(cfgs["E"])[: VGG19_LAYERS[-1] + 1]      # vgg19().features, no classifier
        try:
            features.load_state_dict({k: v for k, v in feats.items() if int(k.split(".")[0]) <= VGG19_LAYERS[-1]},
                                     strict=True)
        except (RuntimeError, ValueError) as e:
            raise CheckpointError(f"{state_dict_path} is not a torchvision VGG-19 state dict: "
                                  f"{str(e).splitlines()[0][:200]}") from None
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.weights = VGG19_WEIGHTS

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images + 1.0) * 0.5 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG19_LAYERS:
                out.append(x)
        return out

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()
        return self


@dataclass
class GeneratorLosses:
    """The generator's terms (floats for logging come from :meth:`as_floats`)."""

    total: torch.Tensor
    gan: torch.Tensor
    fea: torch.Tensor
    per: torch.Tensor
    id: torch.Tensor
    rec: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "gan", "fea", "per", "id", "rec")}


class FISNLoss(nn.Module):
    """Eq. 9 for the generator and Eq. 6 for the discriminators, given the feature networks.

    ``face``: a :class:`DlibFaceFeatures` (perceptual term unless ``vgg`` is given, and the identity
    term), or None (both off). ``vgg``: a :class:`VGG19Features` or None."""

    def __init__(self, weights: LossWeights = LossWeights(), face: DlibFaceFeatures | None = None,
                 vgg: VGG19Features | None = None):
        super().__init__()
        self.weights, self.face, self.vgg = weights, face, vgg

    def generator(self, d_real, d_fake, real, fake, raw, target, hole, chip_affines) -> GeneratorLosses:
        w = self.weights
        zero = fake.new_zeros(())
        gan = adversarial_g(d_fake) if w.gan else zero
        fea = feature_matching(d_real, d_fake) if w.fea else zero
        per, ident = zero, zero
        if self.face is not None and (w.id or (w.per and self.vgg is None)):
            with torch.no_grad():
                rf, re = self.face(real, chip_affines)
            ff, fe = self.face(fake, chip_affines)
            if self.vgg is None and w.per:
                per = perceptual(rf, ff, self.face.weights)
            if w.id:
                ident = identity_distance(re, fe)
        if self.vgg is not None and w.per:
            with torch.no_grad():
                rv = self.vgg(real)
            per = perceptual(rv, self.vgg(fake), self.vgg.weights)
        rec = hole_l1(raw, target, hole) if w.rec else zero
        total = w.gan * gan + w.fea * fea + w.per * per + w.id * ident + w.rec * rec
        return GeneratorLosses(total, gan, fea, per, ident, rec)

    @staticmethod
    def discriminator(d_real, d_fake) -> torch.Tensor:
        return adversarial_d(d_real, d_fake)
