"""Semantic region-adaptive normalisation (paper Eq. 3-5, SEAN, Zhu et al. 2020 [75]).

* **Style codes.** :class:`StyleEncoder` maps the masked face I_fac to a ``style_dim``-channel
  feature map; :func:`region_pool` averages it over each region of M_alpha *restricted to the
  visible pixels* (the hole is excluded), one code per class and face. A class the photo does not
  show gets its mirror partner's code (``labels.MIRROR``: a hidden left eye takes the visible right
  eye's style), else a zero code.
* **Broadcast.** :func:`broadcast` paints every pixel of M_gamma's layout with the code of its
  region (class fractions blend codes at region borders), after a per-region fully connected layer
  + ReLU (SEAN's ``fc_mu<j>``).
* **Normalisation (Eq. 3-5).** ``SEAN(z) = x * (z - mu) / sigma + y`` with ``mu``, ``sigma`` the
  per-channel mean and standard deviation over ``(n, y, x)`` (Eq. 4, 5; ``sigma`` is the biased
  estimate, ``+ eps`` inside the root). During training the batch's statistics are used and
  running averages kept (momentum 0.1); in eval mode (inference, one face) the running averages.
  These statistics have no learned affine of their own: the only affine is ``(x, y)`` below.
* **Blend.** ``x = 1 + gamma``, ``y = beta`` with ``gamma = a_g * gamma_s + (1 - a_g) * gamma_o``
  (``beta`` alike): ``gamma_s``/``beta_s`` are 1x1 convolutions of the broadcast style map,
  ``gamma_o``/``beta_o`` come from M_gamma alone (a SPADE branch: 3x3 conv, ReLU, 1x1 convs), and
  ``a_g = sigmoid(w_g)``, ``a_b = sigmoid(w_b)`` are learned scalars (start at 0.5). SEAN uses 3x3
  convolutions for the four heads; 1x1 here (the style map is constant inside each region, and the
  SPADE branch's 3x3 convolution already sees the region borders): with 3x3 heads they cost 4x the
  residual convolutions themselves on this CPU (profiled).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import labels as L
from .sft import resize_condition

#: A region counts as visible when it covers at least this many (fractional) style-map pixels.
MIN_REGION_PIXELS = 0.5


def region_pool(features: torch.Tensor, regions: torch.Tensor, min_pixels: float = MIN_REGION_PIXELS
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Region-wise average pooling: ``features`` (B, S, H, W), ``regions`` (B, J, H, W) weights
    (class fractions times visibility) -> codes (B, J, S) and ``present`` (B, J) bool."""
    regions = resize_condition(regions, features.shape[-2:])
    area = regions.sum(dim=(2, 3))                                      # (B, J)
    sums = torch.einsum("bshw,bjhw->bjs", features, regions)
    present = area >= min_pixels
    codes = sums / area.clamp_min(1e-6).unsqueeze(-1)
    return codes * present.unsqueeze(-1).to(codes.dtype), present


def fill_from_mirror(codes: torch.Tensor, present: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """Codes of absent regions replaced by their mirror partner's (zero when that is absent too)."""
    partner = codes[:, mirror]                                          # (B, J, S)
    partner_ok = present[:, mirror]
    use = (~present & partner_ok).unsqueeze(-1).to(codes.dtype)
    return codes * (1 - use) + partner * use


def broadcast(codes: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
    """Per-pixel style map: codes (B, J, S) painted on ``layout`` (B, J, H, W) class fractions."""
    return torch.einsum("bjs,bjhw->bshw", codes, layout)


class StyleEncoder(nn.Module):
    """I_fac (masked, 3 channels + hole mask) -> (B, style_dim, H/2, W/2) features (tanh, as SEAN)."""

    def __init__(self, in_channels: int = 4, hidden: int = 16, style_dim: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1)
        self.out = nn.Conv2d(2 * hidden, style_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        return torch.tanh(self.out(h))


def style_codes(encoder: StyleEncoder, masked: torch.Tensor, hole: torch.Tensor, alpha: torch.Tensor,
                mirror: torch.Tensor) -> torch.Tensor:
    """The per-region style codes of the visible regions of the input (B, J, S)."""
    feats = encoder(torch.cat([masked, hole], dim=1))
    visible = resize_condition(alpha * (1 - hole), feats.shape[-2:])
    codes, present = region_pool(feats, visible)
    return fill_from_mirror(codes, present, mirror)


class SEANNorm(nn.Module):
    """Eq. 3-5 on ``channels`` maps; style codes (B, J, S) and M_gamma's layout (B, J, H, W)."""

    def __init__(self, channels: int, num_classes: int = L.NUM_CLASSES, style_dim: int = 32, hidden: int = 16,
                 eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = float(eps), float(momentum)
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        # per-region fully connected layer (SEAN's fc_mu<j>), all regions at once
        self.fc_weight = nn.Parameter(torch.randn(num_classes, style_dim, style_dim) / style_dim ** 0.5)
        self.fc_bias = nn.Parameter(torch.zeros(num_classes, style_dim))
        self.conv_gamma_s = nn.Conv2d(style_dim, channels, 1)
        self.conv_beta_s = nn.Conv2d(style_dim, channels, 1)
        self.spade_shared = nn.Conv2d(num_classes, hidden, 3, padding=1)
        self.conv_gamma_o = nn.Conv2d(hidden, channels, 1)
        self.conv_beta_o = nn.Conv2d(hidden, channels, 1)
        self.blend_gamma = nn.Parameter(torch.zeros(1))
        self.blend_beta = nn.Parameter(torch.zeros(1))

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """``(z - mu(z)) / sigma(z)``, Eq. 4-5 over (n, y, x) per channel (running averages in eval)."""
        if self.training:
            mu = z.mean(dim=(0, 2, 3))
            var = (z * z).mean(dim=(0, 2, 3)) - mu * mu
            var = var.clamp_min(0.0)
            with torch.no_grad():
                n = z.numel() / z.shape[1]
                unbiased = var.detach() * (n / max(n - 1, 1))
                self.running_mean.lerp_(mu.detach(), self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mu, var = self.running_mean, self.running_var
        return (z - mu.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)

    def region_styles(self, codes: torch.Tensor) -> torch.Tensor:
        """ReLU(per-region FC(code)) for every region: (B, J, S)."""
        return F.relu(torch.einsum("bjs,jst->bjt", codes, self.fc_weight) + self.fc_bias)

    def modulation(self, codes: torch.Tensor, layout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma, beta)`` of the blend, for a layout already at the activations' size."""
        style_map = broadcast(self.region_styles(codes), layout)
        gamma_s, beta_s = self.conv_gamma_s(style_map), self.conv_beta_s(style_map)
        h = F.relu(self.spade_shared(layout))
        gamma_o, beta_o = self.conv_gamma_o(h), self.conv_beta_o(h)
        a_g, a_b = torch.sigmoid(self.blend_gamma), torch.sigmoid(self.blend_beta)
        return a_g * gamma_s + (1 - a_g) * gamma_o, a_b * beta_s + (1 - a_b) * beta_o

    def forward(self, z: torch.Tensor, codes: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
        layout = resize_condition(layout, z.shape[-2:])
        gamma, beta = self.modulation(codes, layout)
        return self.normalise(z) * (1 + gamma) + beta


class SEANResBlock(nn.Module):
    """Residual block: SEAN -> LeakyReLU -> 3x3 conv, twice, plus the identity shortcut."""

    def __init__(self, channels: int, num_classes: int = L.NUM_CLASSES, style_dim: int = 32, hidden: int = 16):
        super().__init__()
        self.norm1 = SEANNorm(channels, num_classes, style_dim, hidden)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = SEANNorm(channels, num_classes, style_dim, hidden)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, codes: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(self.norm1(x, codes, layout), 0.2))
        h = self.conv2(F.leaky_relu(self.norm2(h, codes, layout), 0.2))
        return x + h
