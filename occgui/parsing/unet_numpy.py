"""N_alpha's forward pass (paper §3.2) in numpy + OpenCV: the CPU inference engine of the parser.

The same network as :class:`occgui.parsing.unet.UNet` (read that module for the architecture),
evaluated from the checkpoint's arrays without torch, so that a CPU run of the pipeline does not
pay torch's import (about 2 s of a 6 s cold start on the 2-core machine). Every BatchNorm is
folded into the convolution before it (``w' = w g / sqrt(v + eps)``, ``b' = b_n - m g / sqrt(v + eps)``);
3x3 convolutions are one matrix product over an im2col view (BLAS), bilinear up-sampling is
``cv2.resize(INTER_LINEAR)``, which uses the same half-pixel convention as torch's
``interpolate(align_corners=False)``. Outputs equal the torch model's up to float rounding
(tests/test_parsing_unet.py compares them).

Layout: one image at a time, ``HxWxC`` float32 feature maps.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import CheckpointError

BN_EPS = 1e-5
#: Per-channel normalisation of the 0..255 RGB input (equal to ``unet.MEAN`` / ``unet.STD``).
MEAN, STD = 0.5 * 255, 0.25 * 255


def _fold(arrays: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Conv ``conv`` followed by BatchNorm ``bn`` -> (weight (Cout, Cin*k*k), bias (Cout,))."""
    w = arrays[f"{conv}.weight"]
    scale = arrays[f"{bn}.weight"] / np.sqrt(arrays[f"{bn}.running_var"] + BN_EPS)
    bias = arrays[f"{bn}.bias"] - arrays[f"{bn}.running_mean"] * scale
    w = (w * scale[:, None, None, None]).transpose(0, 2, 3, 1)          # Cout, ky, kx, Cin (im2col order)
    return np.ascontiguousarray(w.reshape(w.shape[0], -1).T), bias.astype(np.float32)


def conv3x3(x: np.ndarray, w_t: np.ndarray, b: np.ndarray) -> np.ndarray:
    """'Same' 3x3 convolution of an ``HxWxCin`` map: im2col and one matrix product.

    ``w_t`` is ``(9*Cin, Cout)`` in (ky, kx, Cin) order; the columns are the nine shifted copies
    of the zero-padded map, channels innermost (contiguous copies, about 2x faster than a
    sliding-window view with the window innermost)."""
    h, w, c = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    cols = np.empty((h, w, 9, c), np.float32)
    for k in range(9):
        dy, dx = divmod(k, 3)
        cols[:, :, k] = xp[dy:dy + h, dx:dx + w]
    out = cols.reshape(h * w, 9 * c) @ w_t
    out += b
    return out.reshape(h, w, -1)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def maxpool2(x: np.ndarray) -> np.ndarray:
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxWxC`` -> ``size`` (rows, cols), bilinear with half-pixel centres (torch's align_corners=False)."""
    if x.shape[:2] == tuple(size):
        return x
    out = cv2.resize(x, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(size[0], size[1], x.shape[2])     # cv2 drops a channel axis of length 1


class NumpyUNet:
    """The BN-folded U-Net as numpy arrays: ``__call__`` maps an ``SxSx3`` uint8 image (S divisible
    by 16) to ``SxSxC`` float32 logits."""

    def __init__(self, arrays: dict[str, np.ndarray], widths):
        self.widths = tuple(int(w) for w in widths)
        n = len(self.widths)
        try:
            self.down = [(_fold(arrays, f"down.{i}.0", f"down.{i}.1"), _fold(arrays, f"down.{i}.3", f"down.{i}.4"))
                         for i in range(n)]
            self.lateral = [np.ascontiguousarray(arrays[f"lateral.{j}.weight"][:, :, 0, 0].T) for j in range(n - 1)]
            self.fuse = [_fold(arrays, f"fuse.{j}.0", f"fuse.{j}.1") for j in range(n - 1)]
            self.head_w = np.ascontiguousarray(arrays["head.weight"][:, :, 0, 0].T)
            self.head_b = arrays["head.bias"].astype(np.float32)
        except (KeyError, ValueError, IndexError):
            raise CheckpointError("the checkpoint does not match the U-Net (missing or misshapen tensors)") from None
        cin = 3
        for ((w1, _), (w2, _)), width in zip(self.down, self.widths):
            if w1.shape != (cin * 9, width) or w2.shape != (width * 9, width):
                raise CheckpointError("the checkpoint does not match the U-Net (tensor shapes differ)")
            cin = width
        self.num_classes = self.head_w.shape[1]

    def __call__(self, image_uint8: np.ndarray) -> np.ndarray:
        x = (image_uint8.astype(np.float32) - MEAN) * (1.0 / STD)
        skips = []
        for i, ((w1, b1), (w2, b2)) in enumerate(self.down):
            if i:
                x = maxpool2(x)
            x = relu(conv3x3(relu(conv3x3(x, w1, b1)), w2, b2))
            skips.append(x)
        skips.pop()
        for lat, (wf, bf) in zip(self.lateral, self.fuse):
            skip = skips.pop()
            h, w, c = x.shape
            up = resize_bilinear((x.reshape(-1, c) @ lat).reshape(h, w, -1), skip.shape[:2])
            x = relu(conv3x3(up + skip, wf, bf))
        h, w, c = x.shape
        return ((x.reshape(-1, c) @ self.head_w) + self.head_b).reshape(h, w, -1)
