"""Stage ``parse`` backend: M_alpha = N_alpha(I_fac) with the project's trained U-Net (paper §3.2).

The crop (any square size, 256 by default) is area-resized to the network's input size (stored
in the checkpoint), the logits are upsampled bilinearly back to the crop's size and the arg-max
gives the label ids of ``occgui.labels``.

Checkpoint format (``checkpoints/parsing_unet.pt``, loadable with ``torch.load(weights_only=True)``):
a dict with ``format`` = ``"occgui.parsing_unet"``, ``format_version``, ``widths``,
``num_classes``, ``labels`` (class names, must equal ``occgui.labels.NAMES``), ``input_size``,
``state_dict`` (fp16 or fp32 tensors; upcast on load) and ``meta`` (training record).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import CheckpointError

CHECKPOINT_NAME = "parsing_unet.pt"
FORMAT = "occgui.parsing_unet"
FORMAT_VERSION = 1
#: Mirror test-time augmentation (see ``predict_logits``): off by default (2x the time for +0.007 occluder
#: IoU on held-out identities); ``ctx.options["parse_flip"] = True`` turns it on.
FLIP_TTA = False


@lru_cache(maxsize=8)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:10]


def checkpoint_digest(path) -> str:
    """Short content digest of a checkpoint file (the backend's ``version``)."""
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def export_checkpoint(model, path, *, input_size: int, meta: dict, half: bool = True) -> None:
    """Write the shipping checkpoint of ``model`` (fp16 weights by default), atomically."""
    import os

    import torch

    sd = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
          for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    blob = {"format": FORMAT, "format_version": FORMAT_VERSION, "widths": list(model.widths),
            "num_classes": model.num_classes, "labels": list(L.NAMES), "input_size": int(input_size),
            "state_dict": sd, "meta": meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, device: str = "cpu"):
    """Load a parsing checkpoint -> ``(model in eval mode on device, blob without state_dict)``.

    Raises :class:`CheckpointError` (one line) when the file is missing, unreadable or does not
    match the network.
    """
    import torch

    from .unet import UNet

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"parsing checkpoint not found: {path} (train one with `occgui train parsing`)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any unpickling failure is a bad checkpoint)
        raise CheckpointError(f"cannot read parsing checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an occgui parsing checkpoint")
    if blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {blob.get('format_version')}, expected {FORMAT_VERSION}")
    if list(blob.get("labels", [])) != list(L.NAMES) or int(blob.get("num_classes", -1)) != L.NUM_CLASSES:
        raise CheckpointError(f"{path} was trained for another label set")
    try:
        model = UNet(L.NUM_CLASSES, blob["widths"])
        sd = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"{path} does not match the U-Net (tensor shapes differ)") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the U-Net ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected tensors)")
    model.eval().to(device)
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return model, meta


def predict_logits(model, crops_uint8: np.ndarray, input_size: int, device: str = "cpu", out_size: int | None = None,
                   flip: bool = False):
    """``(N,S,S,3)`` uint8 crops -> ``(N,C,out,out)`` float logits (torch), ``out`` = S by default.

    ``flip`` adds the mirror image's logits, mirrored back with left/right classes swapped
    (``labels.MIRROR``): test-time augmentation at twice the cost.
    """
    import torch
    from torch.nn import functional as F

    from .dataset import resize_input
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


class UNetParser:
    """The default M_alpha backend (``parse`` stage): the project's N_alpha U-Net."""

    name = "unet"

    def __init__(self, ctx=None, checkpoint=None, flip: bool | None = None):
        import torch

        from ..resources import checkpoint_path

        self.device = getattr(ctx, "device", None) or "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise CheckpointError("the parsing U-Net was asked to run on CUDA but no CUDA device is available")
        path = Path(checkpoint) if checkpoint is not None else checkpoint_path(CHECKPOINT_NAME)
        from .unet import fold_batchnorm

        model, self.meta = load_checkpoint(path, self.device)
        self.model = fold_batchnorm(model)
        self.input_size = int(self.meta["input_size"])          # from the checkpoint: no fixed network size here
        opts = getattr(ctx, "options", None) or {}
        self.flip = bool(opts.get("parse_flip", FLIP_TTA) if flip is None else flip)
        # the version names what decides the output: the weights, and the mirror TTA when it is on
        self.version = checkpoint_digest(path) + ("+flip" if self.flip else "")
        self.checkpoint = path

    def parse_batch(self, crops: np.ndarray) -> np.ndarray:
        """``(N,S,S,3)`` uint8 crops -> ``(N,S,S)`` uint8 label ids."""
        logits = self.predict_logits(crops)
        return logits.argmax(dim=1).cpu().numpy().astype(np.uint8)

    def predict_logits(self, crops: np.ndarray):
        return predict_logits(self.model, crops, self.input_size, self.device, flip=self.flip)

    def parse(self, crop_rgb: np.ndarray) -> np.ndarray:
        """M_alpha of one ``SxSx3`` uint8 crop: ``SxS`` uint8 label ids at the crop's size."""
        crop = np.asarray(crop_rgb)
        if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] < 3:
            raise ValueError(f"expected a square HxWx3 crop, got shape {crop.shape}")
        return self.parse_batch(crop[None, :, :, :3].astype(np.uint8, copy=False))[0]
