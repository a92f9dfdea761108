"""dlib's 128-D face-recognition ResNet as a torch module (differentiable, any device).

The topology is dlib's ``anet_type`` of ``examples/dnn_face_recognition_ex.cpp`` -- the network
``dlib_face_recognition_resnet_model_v1.dat`` was trained as (with its batch-norms folded into
``affine`` layers)::

    input_rgb_image_sized<150>            (x - mean_rgb) / 256
    con<32,7,7,2,2> affine relu           150 -> 72
    max_pool<3,3,2,2>                     72 -> 35
    alevel4: ares<32> x3                  35x35x32
    alevel3: ares_down<64>, ares<64> x3   17x17x64
    alevel2: ares_down<128>, ares<128> x2 8x8x128
    alevel1: ares_down<256>, ares<256> x2 4x4x256
    alevel0: ares_down<256>               2x2x256
    avg_pool_everything, fc_no_bias<128>  -> the 128-D descriptor (not normalised)

``ares``: ``relu(x + affine(con3x3(relu(affine(con3x3(x))))))``; ``ares_down``: the first
convolution has stride 2 (no padding), the shortcut is ``avg_pool<2,2,2,2>(x)``, and the two are
added the way dlib's ``add_prev`` adds tensors of different shapes: the sum has the larger size in
every dimension and each operand is zero outside its own extent (channels and the bottom/right
border).

Input: RGB face chips as dlib builds them (:mod:`occgui.identity.face_chip`), ``(N, 3, 150, 150)``
float, a white pixel being ``input_range`` (255 by default, so uint8 values as floats).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dlib_format import AddPrev, Affine, Conv, DlibFormatError, DlibNetwork, Pool, Relu, TagOrSkip

#: Side of the face chips the network takes.
CHIP_SIZE = 150
#: Embedding size.
EMBEDDING_DIM = 128
#: dlib's documented same-person threshold on the Euclidean distance of two descriptors.
SAME_PERSON_THRESHOLD = 0.6

#: dlib's levels, bottom-up: (name, filters, number of ``ares`` blocks, starts with ``ares_down``).
LEVELS: tuple[tuple[str, int, int, bool], ...] = (
    ("level4", 32, 3, False),
    ("level3", 64, 3, True),
    ("level2", 128, 2, True),
    ("level1", 256, 2, True),
    ("level0", 256, 0, True),
)

#: Names of the feature maps :meth:`DlibFaceResNet.features` can return, bottom-up, with their
#: shapes for a 150x150 chip.
FEATURE_SHAPES: dict[str, tuple[int, ...]] = {
    "stem": (32, 35, 35), "level4": (32, 35, 35), "level3": (64, 17, 17), "level2": (128, 8, 8),
    "level1": (256, 4, 4), "level0": (256, 2, 2), "pooled": (256,), "embedding": (128,),
}

_ARES = ["tag/skip", "con", "affine", "relu", "con", "affine", "add_prev", "relu"]
_ARES_DOWN = ["tag/skip", "con", "affine", "relu", "con", "affine", "tag/skip", "tag/skip", "avg_pool",
              "add_prev", "relu"]


def expected_layer_kinds() -> list[str]:
    """The bottom-up layer kinds of dlib's face-recognition ``anet_type``, as the file lists them."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _name, _filters, n_res, down in LEVELS:
        if down:
            kinds += _ARES_DOWN
        kinds += _ARES * n_res
    return kinds + ["avg_pool", "fc"]


def dlib_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``tt::add(dest, a, b)`` of NCHW tensors of different shapes: the result has the larger
    size per dimension; each operand counts as zero outside its extent."""
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def grow(t):
        pad = []
        for d in (3, 2, 1):
            pad += [0, shape[d] - t.shape[d]]
        return F.pad(t, pad) if any(pad) else t

    return grow(a) + grow(b)


class _ConvAffine(nn.Module):
    """A dlib ``con`` (with bias) followed by its (folded batch-norm) per-channel ``affine``."""

    def __init__(self, in_c: int, out_c: int, kernel: int, stride: int):
        super().__init__()
        pad = 0 if stride != 1 else kernel // 2  # dlib's default padding of con_
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride=stride, padding=pad, bias=True)
        self.register_buffer("gamma", torch.ones(1, out_c, 1, 1))
        self.register_buffer("beta", torch.zeros(1, out_c, 1, 1))

    def forward(self, x):
        return self.conv(x) * self.gamma + self.beta


class _Residual(nn.Module):
    """dlib's ``ares`` (``down=False``) or ``ares_down`` block."""

    def __init__(self, first: _ConvAffine, second: _ConvAffine, down: bool):
        super().__init__()
        self.first, self.second, self.down = first, second, down

    def forward(self, x):
        y = self.second(F.relu(self.first(x)))
        if self.down:
            return F.relu(dlib_add(y, F.avg_pool2d(x, 2, 2)))
        return F.relu(y + x)


class DlibFaceResNet(nn.Module):
    """The network of a parsed dlib file (:func:`occgui.identity.dlib_format.read_dlib_network`);
    built with :meth:`from_dlib` or from a state dict (:func:`occgui.identity.weights.load_face_resnet`).
    Constructed directly it holds torch's random initial weights (placeholders to load into)."""

    def __init__(self, mean_rgb=(122.782, 117.001, 104.298), input_range: float = 255.0):
        super().__init__()
        self.input_range = float(input_range)
        self.register_buffer("mean_rgb", torch.tensor(mean_rgb, dtype=torch.float32).reshape(1, 3, 1, 1))
        self.stem = _ConvAffine(3, 32, 7, 2)
        levels = {}
        in_c = 32
        for name, filters, n_res, down in LEVELS:
            blocks = []
            if down:
                blocks.append(_Residual(_ConvAffine(in_c, filters, 3, 2), _ConvAffine(filters, filters, 3, 1), True))
            blocks += [_Residual(_ConvAffine(filters, filters, 3, 1), _ConvAffine(filters, filters, 3, 1), False)
                       for _ in range(n_res)]
            levels[name] = nn.Sequential(*blocks)
            in_c = filters
        self.levels = nn.ModuleDict(levels)
        self.fc = nn.Linear(256, EMBEDDING_DIM, bias=False)

    # ------------------------------------------------------------------ construction from a file
    @classmethod
    def from_dlib(cls, net: DlibNetwork, input_range: float = 255.0) -> "DlibFaceResNet":
        """The module with ``net``'s weights; a one-line :class:`DlibFormatError` when ``net`` is
        not dlib's face-recognition ResNet."""
        kinds = net.kinds()
        expected = expected_layer_kinds()
        if kinds != expected:
            first = next((i for i, (a, b) in enumerate(zip(kinds, expected)) if a != b), min(len(kinds), len(expected)))
            raise DlibFormatError(
                f"not dlib's face-recognition ResNet: {len(kinds)} layers where {len(expected)} are expected, "
                f"the first difference at layer {first} (bottom-up)")
        if (net.input.rows, net.input.cols) != (CHIP_SIZE, CHIP_SIZE):
            raise DlibFormatError(f"not dlib's face-recognition ResNet: input {net.input.rows}x{net.input.cols}, "
                                  f"not {CHIP_SIZE}x{CHIP_SIZE}")
        module = cls(mean_rgb=net.input.mean_rgb, input_range=input_range)
        layers = [l for l in net.layers if not isinstance(l, (TagOrSkip, Relu, AddPrev))]
        it = iter(layers)

        def load(target: _ConvAffine):
            conv, aff = next(it), next(it)
            assert isinstance(conv, Conv) and isinstance(aff, Affine)
            if (tuple(target.conv.weight.shape) != conv.weight.shape or conv.stride != target.conv.stride
                    or conv.padding != target.conv.padding or conv.bias is None or not aff.conv_mode):
                raise DlibFormatError(f"not dlib's face-recognition ResNet: a convolution of shape "
                                      f"{conv.weight.shape}, stride {conv.stride} where "
                                      f"{tuple(target.conv.weight.shape)}, stride {target.conv.stride} is expected")
            with torch.no_grad():
                target.conv.weight.copy_(torch.from_numpy(conv.weight))
                target.conv.bias.copy_(torch.from_numpy(conv.bias))
                target.gamma.copy_(torch.from_numpy(aff.gamma).reshape(target.gamma.shape))
                target.beta.copy_(torch.from_numpy(aff.beta).reshape(target.beta.shape))

        load(module.stem)
        mp = next(it)
        if not (isinstance(mp, Pool) and mp.kind == "max" and mp.window == (3, 3) and mp.stride == (2, 2)
                and mp.padding == (0, 0)):
            raise DlibFormatError("not dlib's face-recognition ResNet: the stem's max pooling differs")
        for name, _f, _n, _down in LEVELS:
            for block in module.levels[name]:
                load(block.first)
                load(block.second)
                if block.down:
                    ap = next(it)
                    if not (ap.window == (2, 2) and ap.stride == (2, 2) and ap.padding == (0, 0)):
                        raise DlibFormatError("not dlib's face-recognition ResNet: a shortcut pooling differs")
        gp, fc = next(it), next(it)
        if gp.window != (0, 0) or fc.weight.shape != (256, EMBEDDING_DIM) or fc.bias is not None:
            raise DlibFormatError("not dlib's face-recognition ResNet: its head differs")
        with torch.no_grad():
            module.fc.weight.copy_(torch.from_numpy(fc.weight.T.copy()))
        return module.eval().requires_grad_(False)

    # ------------------------------------------------------------------ forward
    def normalise(self, chips: torch.Tensor) -> torch.Tensor:
        """dlib's ``input_rgb_image_sized::to_tensor``: ``(pixel - mean) / 256`` on 0-255 values."""
        if chips.ndim != 4 or chips.shape[1] != 3:
            raise ValueError(f"face chips must be (N, 3, H, W) RGB, got {tuple(chips.shape)}")
        x = chips.to(self.mean_rgb.dtype)
        if self.input_range != 255.0:
            x = x * (255.0 / self.input_range)
        return (x - self.mean_rgb) / 256.0

    def features(self, chips: torch.Tensor, names=("level4", "level3", "level2", "level1", "level0", "embedding")
                 ) -> dict[str, torch.Tensor]:
        """Intermediate activations by name (see :data:`FEATURE_SHAPES`), e.g. for a perceptual
        loss; the computation stops after the last one asked for."""
        wanted = set(names)
        unknown = wanted - set(FEATURE_SHAPES)
        if unknown:
            raise ValueError(f"unknown feature names {sorted(unknown)}; choose from {list(FEATURE_SHAPES)}")
        out: dict[str, torch.Tensor] = {}
        x = F.max_pool2d(F.relu(self.stem(self.normalise(chips))), 3, 2)
        if "stem" in wanted:
            out["stem"] = x
        for name in self.levels:
            if len(out) == len(wanted):
                return out
            x = self.levels[name](x)
            if name in wanted:
                out[name] = x
        if len(out) == len(wanted):
            return out
        x = x.mean(dim=(2, 3))
        if "pooled" in wanted:
            out["pooled"] = x
        if "embedding" in wanted:
            out["embedding"] = self.fc(x)
        return out

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """``(N, 128)`` descriptors of ``(N, 3, 150, 150)`` face chips (dlib's, not normalised)."""
        return self.features(chips, ("embedding",))["embedding"]
