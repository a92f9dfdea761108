"""Stage ``parse`` backend: M_alpha = N_alpha(I_fac) with the project's trained U-Net (paper §3.2).

The crop (any square size, 256 by default) is area-resized to the network's input size (stored
in the checkpoint), the logits are upsampled bilinearly back to the crop's size and the arg-max
gives the label ids of ``occgui.labels``.

Two engines compute the same network: on CPU the numpy/OpenCV forward pass of
:mod:`occgui.parsing.unet_numpy` (no torch import, which keeps the CLI's cold start short); on
CUDA the torch model of :mod:`occgui.parsing.unet`. The checkpoint (``checkpoints/parsing_unet.safetensors``)
is read by :mod:`occgui.parsing.checkpoint`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import CheckpointError
from .checkpoint import CHECKPOINT_NAME, checkpoint_digest, read_checkpoint, write_checkpoint

__all__ = ["CHECKPOINT_NAME", "UNetParser", "checkpoint_digest", "export_checkpoint", "load_checkpoint",
           "predict_logits", "predict_logits_numpy"]

#: Mirror test-time augmentation (see ``predict_logits``): off by default (2x the time for +0.007 occluder
#: IoU on held-out identities); ``ctx.options["parse_flip"] = True`` turns it on.
FLIP_TTA = False


def export_checkpoint(model, path, *, input_size: int, meta: dict, half: bool = True) -> None:
    """Write the shipping checkpoint of torch ``model`` (fp16 weights by default), atomically."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    write_checkpoint(path, arrays, widths=model.widths, input_size=input_size, meta=meta, half=half)


def load_checkpoint(path, device: str = "cpu"):
    """Load a parsing checkpoint as a torch model -> ``(model in eval mode on device, header)``.

    Raises :class:`CheckpointError` (one line) when the file is missing, unreadable or does not
    match the network.
    """
    import torch

    from .unet import UNet

    arrays, header = read_checkpoint(path)
    try:
        model = UNet(L.NUM_CLASSES, header["widths"])
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=False)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"{path} does not match the U-Net (tensor shapes differ)") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the U-Net ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected tensors)")
    model.eval().to(device)
    return model, header


def predict_logits(model, crops_uint8: np.ndarray, input_size: int, device: str = "cpu", out_size: int | None = None,
                   flip: bool = False):
    """``(N,S,S,3)`` uint8 crops -> ``(N,C,out,out)`` float logits (torch), ``out`` = S by default.

    ``flip`` adds the mirror image's logits, mirrored back with left/right classes swapped
    (``labels.MIRROR``): test-time augmentation at twice the cost.
    """
    import torch
    from torch.nn import functional as F

    from .preprocess import resize_input
    from .unet import to_input

    crops = np.asarray(crops_uint8)
    s = crops.shape[1] if out_size is None else int(out_size)
    x = np.stack([resize_input(np.ascontiguousarray(c[:, :, :3]), input_size) for c in crops])
    with torch.inference_mode():
        xt = to_input(torch.from_numpy(x).to(device))
        logits = model(xt)
        if flip:
            mirrored = model(torch.flip(xt, dims=[3]))
            logits = 0.5 * (logits + torch.flip(mirrored, dims=[3])[:, torch.from_numpy(L.MIRROR.astype(np.int64)).to(xt.device)])
        if logits.shape[-1] != s:
            logits = F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False)
    return logits


def predict_logits_numpy(net, crops_uint8: np.ndarray, input_size: int, out_size: int | None = None,
                         flip: bool = False) -> np.ndarray:
    """:func:`predict_logits` with the numpy engine (:class:`~occgui.parsing.unet_numpy.NumpyUNet`):
    ``(N,S,S,3)`` uint8 crops -> ``(N,out,out,C)`` float32 logits (channels last)."""
    from .preprocess import resize_input
    from .unet_numpy import resize_bilinear

    crops = np.asarray(crops_uint8)
    s = crops.shape[1] if out_size is None else int(out_size)
    out = []
    for c in crops:
        x = resize_input(np.ascontiguousarray(c[:, :, :3]), input_size)
        logits = net(x)
        if flip:
            mirrored = net(np.ascontiguousarray(x[:, ::-1]))[:, ::-1][:, :, L.MIRROR]
            logits = 0.5 * (logits + mirrored)
        out.append(resize_bilinear(np.ascontiguousarray(logits), (s, s)))
    return np.stack(out)


class UNetParser:
    """The default M_alpha backend (``parse`` stage): the project's N_alpha U-Net.

    ``version`` names what decides the output: the checkpoint's digest, plus ``+flip`` when the
    mirror TTA is on. The engine (numpy on CPU, torch on CUDA) is not part of it: the two agree
    up to float rounding, as torch on CPU and on CUDA do.
    """

    name = "unet"

    def __init__(self, ctx=None, checkpoint=None, flip: bool | None = None):
        from ..resources import checkpoint_path

        self.device = getattr(ctx, "device", None) or "cpu"
        path = Path(checkpoint) if checkpoint is not None else checkpoint_path(CHECKPOINT_NAME)
        if self.device == "cuda":
            import torch

            from .unet import fold_batchnorm

            if not torch.cuda.is_available():
                raise CheckpointError("the parsing U-Net was asked to run on CUDA but no CUDA device is available")
            model, self.meta = load_checkpoint(path, self.device)
            self.model, self.engine = fold_batchnorm(model), "torch"
        else:
            from .unet_numpy import NumpyUNet

            arrays, self.meta = read_checkpoint(path)
            try:
                self.model, self.engine = NumpyUNet(arrays, self.meta["widths"]), "numpy"
            except CheckpointError:
                raise CheckpointError(f"{path} does not match the U-Net (tensor shapes differ)") from None
        self.input_size = int(self.meta["input_size"])          # from the checkpoint: no fixed network size here
        opts = getattr(ctx, "options", None) or {}
        self.flip = bool(opts.get("parse_flip", FLIP_TTA) if flip is None else flip)
        self.version = checkpoint_digest(path) + ("+flip" if self.flip else "")
        self.checkpoint = path

    def parse_batch(self, crops: np.ndarray) -> np.ndarray:
        """``(N,S,S,3)`` uint8 crops -> ``(N,S,S)`` uint8 label ids."""
        if self.engine == "numpy":
            logits = predict_logits_numpy(self.model, crops, self.input_size, flip=self.flip)
            return logits.argmax(axis=3).astype(np.uint8)
        logits = predict_logits(self.model, crops, self.input_size, self.device, flip=self.flip)
        return logits.argmax(dim=1).cpu().numpy().astype(np.uint8)

    def parse(self, crop_rgb: np.ndarray) -> np.ndarray:
        """M_alpha of one ``SxSx3`` uint8 crop: ``SxS`` uint8 label ids at the crop's size."""
        crop = np.asarray(crop_rgb)
        if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] < 3:
            raise ValueError(f"expected a square HxWx3 crop, got shape {crop.shape}")
        return self.parse_batch(crop[None, :, :, :3].astype(np.uint8, copy=False))[0]
