"""N_alpha: the encoder-decoder face-parsing network of paper §3.2, a U-Net (Ronneberger et al. 2015).

A compact variant sized for CPU training and inference (about 1.4 M parameters):

* encoder: five resolution levels with ``widths`` channels, each two 3x3 conv + BatchNorm + ReLU,
  2x2 max-pooling between levels (as in the U-Net);
* decoder: at each level the coarser features are projected by a 1x1 conv to the skip's width,
  upsampled bilinearly and *added* to the skip connection, then fused by one 3x3 conv + BN + ReLU
  (an additive skip, as in LinkNet/FPN, instead of the U-Net's concatenation + two convs: the
  same information flow at about half the FLOPs, which matters on a 2-core CPU);
* a 1x1 classifier gives logits at the input resolution (e.g. 128 px); callers upsample them
  bilinearly to the crop's resolution so label boundaries stay sub-pixel smooth.
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


class ConvBNReLU(nn.Sequential):
    """3x3 conv -> BatchNorm -> ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """``(B,3,H,W)`` normalised RGB -> ``(B,num_classes,H,W)`` logits (H, W divisible by 16)."""

    def __init__(self, num_classes: int = 12, widths=DEFAULT_WIDTHS, in_channels: int = 3):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.widths, self.num_classes = widths, int(num_classes)
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(DoubleConv(cin, w))
            cin = w
        levels = list(reversed(range(len(widths) - 1)))
        self.lateral = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1, bias=False) for i in levels)
        self.fuse = nn.ModuleList(ConvBNReLU(widths[i], widths[i]) for i in levels)
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for lateral, fuse in zip(self.lateral, self.fuse):
            skip = skips.pop()
            x = F.interpolate(lateral(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(x + skip)
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


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` (in eval mode) with every BatchNorm folded into the conv before it.

    Same outputs up to float rounding, one pass over the feature maps fewer per conv (about 10 %
    faster on CPU). The copy's ``state_dict`` has no BatchNorm entries: use it for inference only.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    out = copy.deepcopy(model).eval()
    for mod in out.modules():
        if isinstance(mod, nn.Sequential):
            for i in range(len(mod) - 1):
                if isinstance(mod[i], nn.Conv2d) and isinstance(mod[i + 1], nn.BatchNorm2d):
                    mod[i] = fuse_conv_bn_eval(mod[i], mod[i + 1])
                    mod[i + 1] = nn.Identity()
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
