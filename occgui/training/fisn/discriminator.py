"""FISN's discriminators D1, D2 (paper Eq. 6-7): PatchGAN discriminators at two scales.

Each sees the image with its condition: the image (3), M_gamma as class fractions (J) and the hole
mask (1). The paper conditions on M_alpha; here the real image is the *clean* face, whose layout
is M_gamma's (the de-occluded map), while M_alpha labels the same pixels ``occluder``: conditioning
the clean face on M_alpha would teach D that occluder-labelled pixels look like skin. The hole
mask (identical for the real and the fake of a pair) tells D where the generated pixels are.

D1 runs at the network's resolution, D2 on a 2x average-pooled copy (Pix2PixHD's
``AvgPool2d(3, 2, 1, count_include_pad=False)``). Layers: 4x4 convolutions, stride 2 then 1,
``ndf * 2^k`` channels, LeakyReLU 0.2, spectral normalisation (no instance/batch norm). Every
layer's output is returned: the last is the patch logits (Eq. 6), the others the features of
the feature-matching loss (Eq. 7).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int = 32, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2)]
        c = ndf
        for _ in range(1, n_layers):
            layers.append(nn.Conv2d(c, min(c * 2, 8 * ndf), 4, stride=2, padding=2))
            c = min(c * 2, 8 * ndf)
        layers.append(nn.Conv2d(c, min(c * 2, 8 * ndf), 4, stride=1, padding=2))
        c = min(c * 2, 8 * ndf)
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=2))
        self.layers = nn.ModuleList(spectral_norm(l) for l in layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.leaky_relu(x, 0.2)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """``forward(image, gamma, hole)`` -> ``[D1 outputs, D2 outputs]`` (lists of layer outputs)."""

    def __init__(self, num_classes: int, ndf: int = 32, n_layers: int = 3, num_scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(3 + num_classes + 1, ndf, n_layers) for _ in range(num_scales))

    def forward(self, image: torch.Tensor, gamma: torch.Tensor, hole: torch.Tensor) -> list[list[torch.Tensor]]:
        x = torch.cat([image, gamma, hole], dim=1)
        outs = []
        for k, d in enumerate(self.scales):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outs.append(d(x))
        return outs
