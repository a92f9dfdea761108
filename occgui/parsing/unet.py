"""N_alpha: the encoder-decoder face-parsing network of paper §3.2, a U-Net (Ronneberger et al. 2015).

A compact variant sized for CPU inference: five resolution levels with ``widths`` channels, each
level two 3x3 conv + BatchNorm + ReLU, max-pool down, bilinear up + skip concatenation, and a
1x1 classifier. The logits are computed at the input resolution (e.g. 128 px) and upsampled
bilinearly to the crop's resolution by the caller, so label boundaries stay sub-pixel smooth.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_WIDTHS = (16, 32, 64, 128, 256)


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) x 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net: ``(B,3,H,W)`` normalised RGB -> ``(B,num_classes,H,W)`` logits (H, W divisible by 16)."""

    def __init__(self, num_classes: int = 12, widths=DEFAULT_WIDTHS, in_channels: int = 3):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.widths, self.num_classes = widths, int(num_classes)
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(DoubleConv(cin, w))
            cin = w
        self.up = nn.ModuleList(DoubleConv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


#: Per-channel normalisation of the 0..255 RGB input.
MEAN = (0.5 * 255, 0.5 * 255, 0.5 * 255)
STD = (0.25 * 255, 0.25 * 255, 0.25 * 255)


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """``(B,H,W,3)`` uint8 -> ``(B,3,H,W)`` float normalised network input."""
    x = images_uint8.permute(0, 3, 1, 2).float()
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
