"""Spatial Feature Transform (paper Eq. 2, Wang et al. 2018 [44]).

``SFT(F | gamma, beta) = gamma * F + beta`` with ``(gamma, beta) = M(Psi)``: a small mapping
network ``M`` turns the prior ``Psi`` -- here M_alpha, the parsing map of the occluded photo as
per-pixel class fractions -- into a per-pixel, per-channel affine pair that modulates the features
``F`` of the masked face I_fac. ``M`` is one 3x3 convolution (+ LeakyReLU) shared by two 1x1 heads;
the gamma head predicts ``gamma - 1`` (SFT-GAN's ``scale + 1``), so a zero head is the identity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize_condition(cond: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Class-fraction maps brought to a feature map's size: area averaging when shrinking (fractions
    stay fractions), nearest when the size already matches or grows."""
    if tuple(cond.shape[-2:]) == tuple(size):
        return cond
    if cond.shape[-2] >= size[0] and cond.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(cond, size)
    return F.interpolate(cond, size=size, mode="nearest")


class SFTLayer(nn.Module):
    """Eq. 2 on ``channels`` feature maps, conditioned on ``cond_channels`` maps (M_alpha)."""

    def __init__(self, channels: int, cond_channels: int, hidden: int = 16):
        super().__init__()
        self.shared = nn.Conv2d(cond_channels, hidden, 3, padding=1)
        self.gamma = nn.Conv2d(hidden, channels, 1)
        self.beta = nn.Conv2d(hidden, channels, 1)
        with torch.no_grad():                       # start close to the identity transform
            for head in (self.gamma, self.beta):
                head.weight.mul_(0.1)
                head.bias.zero_()

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma, beta) = M(Psi)`` for a condition already at the features' size."""
        h = F.leaky_relu(self.shared(cond), 0.2)
        return 1.0 + self.gamma(h), self.beta(h)

    def forward(self, feats: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(resize_condition(cond, feats.shape[-2:]))
        return gamma * feats + beta
