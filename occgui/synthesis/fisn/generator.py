"""FISN's generator (paper §3.3, Fig. 1): a Pix2PixHD-style encoder / residual blocks / decoder.

Inputs, all ``(B, ., R, R)`` at the network's resolution ``R`` (:attr:`FISNConfig.size`, 128 by
default; the 256 px crop is brought to it and back by :mod:`.composite`):

* ``masked`` -- I_fac in [-1, 1] with the hole (M_alpha's occluder, dilated) set to 0;
* ``hole`` -- 1 inside the hole, 0 elsewhere;
* ``alpha`` / ``gamma`` -- M_alpha / M_gamma as class fractions (``labels.NUM_CLASSES`` maps).

The classical I_out (``synthesis/symmetric.py``) is *not* an input: it costs 0.5-1.7 s per face
on this CPU (measured), which alone exceeds FISN's inference budget (300 ms), and the network is
meant to draw the hidden features from this person's visible ones, not correct a mean-face template.

Layout (``c`` = :attr:`FISNConfig.channels`, ``D`` = :attr:`FISNConfig.downsamples`)::

    encoder   conv7x7(4 -> c)                      LeakyReLU  SFT(M_alpha)     R
              D x conv3x3 stride 2 (c*2^k)         LeakyReLU  SFT(M_alpha)     R / 2^k
    blocks    4 x SEAN residual block (codes pooled from I_fac over M_alpha, layout M_gamma)
    decoder   D x (nearest x2, conv3x3)            LeakyReLU                   back to R
              conv3x3(c -> 3), tanh    (3x3, not Pix2PixHD's 7x7: 1.5x cheaper on CPU)

No instance or batch normalisation anywhere: the only normalisation is SEAN's Eq. 4-5 inside
the residual blocks (its statistics carry no affine of their own; the affine is SEAN's).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ... import labels as L
from .sean import SEANResBlock, StyleEncoder, style_codes
from .sft import SFTLayer


@dataclass(frozen=True)
class FISNConfig:
    """Sizes of a FISN generator (stored in its checkpoint)."""

    size: int = 128            # network resolution (square), a multiple of 2 ** downsamples
    channels: int = 16         # width after the stem; doubled at every downsampling
    downsamples: int = 2       # encoder stride-2 convolutions (bottleneck at size / 2 ** downsamples)
    blocks: int = 4            # SEAN residual blocks
    style_dim: int = 32        # SEAN style code length per region
    cond_hidden: int = 16      # hidden width of the SFT and SPADE condition convolutions
    num_classes: int = L.NUM_CLASSES

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FISNConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: int(v) for k, v in d.items() if k in known})

    @property
    def bottleneck_channels(self) -> int:
        return self.channels * 2 ** self.downsamples


class FISNGenerator(nn.Module):
    """``forward(masked, hole, alpha, gamma)`` -> the raw (B, 3, R, R) image in [-1, 1]."""

    def __init__(self, config: FISNConfig | None = None):
        super().__init__()
        self.config = cfg = config or FISNConfig()
        if cfg.size % (2 ** cfg.downsamples):
            raise ValueError(f"size {cfg.size} is not a multiple of 2**{cfg.downsamples}")
        c, j = cfg.channels, cfg.num_classes
        self.stem = nn.Conv2d(4, c, 7, padding=3)
        self.sft = nn.ModuleList([SFTLayer(c, j, cfg.cond_hidden)])
        self.down = nn.ModuleList()
        for k in range(cfg.downsamples):
            self.down.append(nn.Conv2d(c * 2 ** k, c * 2 ** (k + 1), 3, stride=2, padding=1))
            self.sft.append(SFTLayer(c * 2 ** (k + 1), j, cfg.cond_hidden))
        cb = cfg.bottleneck_channels
        self.style = StyleEncoder(4, c, cfg.style_dim)
        self.blocks = nn.ModuleList([SEANResBlock(cb, j, cfg.style_dim, cfg.cond_hidden) for _ in range(cfg.blocks)])
        self.up = nn.ModuleList([nn.Conv2d(c * 2 ** (k + 1), c * 2 ** k, 3, padding=1)
                                 for k in reversed(range(cfg.downsamples))])
        self.head = nn.Conv2d(c, 3, 3, padding=1)
        self.register_buffer("mirror", torch.as_tensor(L.MIRROR.astype("int64")), persistent=False)

    def check_inputs(self, masked, hole, alpha, gamma) -> None:
        r, j = self.config.size, self.config.num_classes
        expect = {"masked": (3, masked), "hole": (1, hole), "alpha": (j, alpha), "gamma": (j, gamma)}
        for name, (ch, t) in expect.items():
            if t.ndim != 4 or t.shape[1] != ch or tuple(t.shape[-2:]) != (r, r):
                raise ValueError(f"FISN input {name} must be (B, {ch}, {r}, {r}), got {tuple(t.shape)}")

    def forward(self, masked: torch.Tensor, hole: torch.Tensor, alpha: torch.Tensor,
                gamma: torch.Tensor) -> torch.Tensor:
        self.check_inputs(masked, hole, alpha, gamma)
        x = torch.cat([masked, hole], dim=1)
        h = self.sft[0](F.leaky_relu(self.stem(x), 0.2), alpha)
        for conv, sft in zip(self.down, self.sft[1:]):
            h = sft(F.leaky_relu(conv(h), 0.2), alpha)
        codes = style_codes(self.style, masked, hole, alpha, self.mirror)
        for block in self.blocks:
            h = block(h, codes, gamma)
        for conv in self.up:
            h = F.leaky_relu(conv(F.interpolate(h, scale_factor=2, mode="nearest")), 0.2)
        return torch.tanh(self.head(h))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
