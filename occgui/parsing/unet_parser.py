"""Stage ``parse`` backend: M_alpha = N_alpha(I_fac) with the project's trained U-Net (paper §3.2).

The crop (any square size, 256 by default) is area-resized to the network's input size (stored
in the checkpoint), the logits are upsampled bilinearly back to the crop's size and the arg-max
gives the label ids of ``occgui.labels`` -- except that the occluder regions found grow into the
neighbouring pixels whose occluder probability (softmax) reaches the checkpoint's calibrated
``occluder_threshold`` (hysteresis, see :func:`labels_from_logits`; the threshold is chosen on the
dev-val photos of the labelled real occlusions by ``python -m occgui.training.parsing.calibrate`` and
stored in the file's header). With the setting ``parse.hand_evidence`` (on by default) the hands
MediaPipe's hand-landmark model finds in the crop and the network missed are marked occluder too
(:mod:`.hand_evidence`, ``checkpoints/parsing_unet.md``), also those found in a wider view of the photo
that touch the face (``parse.hand_context``, on by default); and with ``parse.occluder_into_forehead``
(on by default) the occluder found above the brows grows through the forehead's hair (:mod:`.forehead`:
a hat the network half calls hair). Constructed directly, :class:`UNetParser` is the network alone
(``hand_evidence=False``, no forehead growth), as the training and calibration tools measure it.

One file (``checkpoints/parsing_unet.onnx``, see :mod:`occgui.parsing.checkpoint`), two engines:
on CPU onnxruntime runs the ONNX graph (no torch import, which keeps the CLI's cold start short);
on CUDA the torch model of :mod:`occgui.parsing.unet` is filled with the file's initialisers.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .. import labels as L
from ..errors import CheckpointError
from .checkpoint import (
    CHECKPOINT_NAME,
    check_parser_header,
    checkpoint_digest,
    load_state_dict_checked,
    open_session,
    read_header_file,
    read_initialisers,
)
from .forehead import VERSION as FOREHEAD_VERSION
from .forehead import grown_into_forehead, mesh_points68
from .hand_evidence import CONTEXT_VERSION as HAND_CONTEXT_VERSION
from .hand_evidence import VERSION as HAND_EVIDENCE_VERSION
from .hand_evidence import context_view, with_hands

__all__ = ["CHECKPOINT_NAME", "UNetParser", "checkpoint_digest", "grown_into_hair", "grown_occluder",
           "labels_from_logits", "load_checkpoint", "predict_logits", "predict_logits_onnx"]

#: Mirror test-time augmentation (see ``predict_logits``): off by default (2x the time for +0.007 occluder
#: IoU on held-out identities); the setting ``parse.flip`` (:class:`~occgui.parsing.settings.UNetSettings`) turns it on.
FLIP_TTA = False
#: Prefix of the U-Net's parameters among the ONNX initialisers (the graph wraps it with the input normalisation).
PREFIX = "unet."


def load_checkpoint(path, device: str = "cpu"):
    """Load a parsing checkpoint (ONNX) as a torch model -> ``(model in eval mode on device, header)``.

    The U-Net's ``state_dict`` is read from the file's initialisers by name and shape.
    Raises :class:`CheckpointError` (one line) when the file is missing, unreadable or does not
    match the network.
    """
    from .unet import UNet

    header = check_parser_header(read_header_file(path, "parsing"), path)
    arrays = {k[len(PREFIX):]: v for k, v in read_initialisers(path).items() if k.startswith(PREFIX)}
    try:
        model = UNet(L.NUM_CLASSES, header["widths"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} has no valid U-Net widths") from None
    load_state_dict_checked(model, arrays, path)
    model.eval().to(device)
    return model, header


def checked_threshold(value, source) -> float | None:
    """An occluder probability threshold in (0, 1), or None (off) for None/0; else a one-line error naming
    ``source`` (the setting or the checkpoint it came from)."""
    if value is None or value == 0:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise CheckpointError(f"{source}: the threshold must be a number, got {value!r}") from None
    if not 0.0 < t < 1.0:
        raise CheckpointError(f"{source}: the threshold must lie between 0 and 1, got {t:g}")
    return t


def labels_from_logits(logits: np.ndarray, occluder_threshold: float | None = None) -> np.ndarray:
    """``(..., H, W, C)`` channels-last logits -> uint8 label ids: the arg-max, grown by hysteresis
    when ``occluder_threshold`` is given (None: arg-max only).

    The arg-max occluder pixels are the seeds; a pixel whose occluder softmax probability reaches
    ``occluder_threshold`` becomes occluder too when it is 8-connected to a seed through such pixels.
    The parser, trained mostly on pasted occluders, is under-confident on real ones: it marks the core
    of a real hand, microphone or hat band and gives the rest a probability of 0.1-0.5. Growing only
    from seeds extends what was found without marking isolated likely-looking pixels (hair, shadows)
    elsewhere."""
    lg = np.asarray(logits, dtype=np.float32)
    out = lg.argmax(axis=-1).astype(np.uint8)
    if occluder_threshold is None:
        return out
    p_occ = occluder_probability(lg)
    flat_out, flat_p = out.reshape((-1,) + out.shape[-2:]), p_occ.reshape((-1,) + out.shape[-2:])
    for labels, p in zip(flat_out, flat_p):
        labels[grown_occluder(p, labels == L.OCCLUDER, occluder_threshold)] = L.OCCLUDER
    return out


def grown_occluder(p_occ: np.ndarray, seeds: np.ndarray, threshold: float) -> np.ndarray:
    """``HxW`` occluder mask: ``seeds`` plus every pixel with ``p_occ >= threshold`` 8-connected to
    a seed through such pixels (hysteresis; see :func:`labels_from_logits`)."""
    seeds = np.asarray(seeds, dtype=bool)
    if not seeds.any():
        return seeds.copy()
    _, comp = cv2.connectedComponents(((np.asarray(p_occ) >= threshold) | seeds).astype(np.uint8), connectivity=8)
    seeded = np.unique(comp[seeds])
    return np.isin(comp, seeded[seeded > 0])


def grown_into_hair(labels: np.ndarray, p_occ: np.ndarray, threshold: float) -> np.ndarray:
    """M_alpha (a copy) with its occluder regions grown into the 8-connected *hair* pixels above the brows
    whose occluder probability reaches ``threshold`` (``parse.occluder_into_hair``). The network labels
    much of a real hat's crown hair while giving it some occluder probability. Only hair above the map's
    own topmost brow or eye pixel grows (where a hat sits; nothing without brows and eyes in the map), and
    no other class: the borders of glasses at the temples, of food or a hand over a bearded chin stay
    where the arg-max put them."""
    out = np.array(labels, copy=True)
    rows = np.flatnonzero(np.isin(out, (L.L_BROW, L.R_BROW, L.L_EYE, L.R_EYE)).any(axis=1))
    if rows.size == 0:
        return out
    hair = out == L.HAIR
    hair[rows[0]:] = False
    out[grown_occluder(np.where(hair, p_occ, 0.0), out == L.OCCLUDER, threshold)] = L.OCCLUDER
    return out


def occluder_probability(logits: np.ndarray) -> np.ndarray:
    """``(..., C)`` channels-last logits -> the occluder class's softmax probability ``(...)``."""
    lg = np.asarray(logits, dtype=np.float32)
    e = np.exp(lg - lg.max(axis=-1, keepdims=True))
    return e[..., L.OCCLUDER] / e.sum(axis=-1)


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxWxC`` -> ``size`` (rows, cols), bilinear with half-pixel centres (torch's align_corners=False)."""
    if x.shape[:2] == tuple(size):
        return x
    out = cv2.resize(x, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(size[0], size[1], x.shape[2])     # cv2 drops a channel axis of length 1


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
            swap = torch.from_numpy(L.MIRROR.astype(np.int64)).to(xt.device)
            logits = 0.5 * (logits + torch.flip(mirrored, dims=[3])[:, swap])
        if logits.shape[-1] != s:
            logits = F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False)
    return logits


def predict_logits_onnx(session, crops_uint8: np.ndarray, input_size: int, out_size: int | None = None,
                        flip: bool = False, input_name: str = "image") -> np.ndarray:
    """:func:`predict_logits` with onnxruntime: ``(N,S,S,3)`` uint8 crops -> ``(N,out,out,C)``
    float32 logits (channels last). ``flip`` runs each crop and its mirror image in one batch."""
    from .preprocess import resize_input

    crops = np.asarray(crops_uint8)
    n, s = len(crops), crops.shape[1] if out_size is None else int(out_size)
    x = np.stack([resize_input(np.ascontiguousarray(c[:, :, :3]), input_size) for c in crops])
    if flip:
        x = np.concatenate([x, x[:, :, ::-1]])
    logits = session.run(None, {input_name: np.ascontiguousarray(x)})[0].transpose(0, 2, 3, 1)
    if flip:
        logits = 0.5 * (logits[:n] + logits[n:, :, ::-1][..., L.MIRROR])
    return np.stack([resize_bilinear(np.ascontiguousarray(lg), (s, s)) for lg in logits])


class UNetParser:
    """The default M_alpha backend (``parse`` stage): the project's N_alpha U-Net.

    ``version`` names what decides the output: the checkpoint's digest, plus ``+flip`` when the
    mirror TTA is on. The engine (onnxruntime on CPU, torch on CUDA) is not part of it: the two
    agree up to float rounding (tests/test_onnx_parity.py), as torch on CPU and on CUDA do. The
    onnxruntime session is created once, with the backend.
    """

    name = "unet"

    def __init__(self, ctx=None, checkpoint=None, flip: bool | None = None, occluder_threshold: float | None = None,
                 hand_evidence: bool = False, occluder_into_hair: float | None = None, hand_context: bool = False,
                 occluder_into_forehead: bool = False):
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
            self.model, header = open_session(path, "parsing")
            self.meta, self.engine = check_parser_header(header, path), "onnxruntime"
        self.input_size = int(self.meta["input_size"])          # from the checkpoint: no fixed network size here
        self.flip = bool(FLIP_TTA if flip is None else flip)
        #: occluder probability from which a pixel is occluder: the setting's, else the checkpoint's
        #: calibrated one, else None (arg-max)
        override = checked_threshold(occluder_threshold, "parse.occluder_threshold")
        self.occluder_threshold = override or checked_threshold(self.meta.get("occluder_threshold"),
                                                                f"{path} (occluder_threshold)")
        #: mark the hands MediaPipe finds as occluder (:mod:`occgui.parsing.hand_evidence`)
        self.hand_evidence = bool(hand_evidence)
        #: with the hand evidence, look for hands in a wider view of the photo too (the stage passes it)
        self.reads_photo = self.hand_evidence and bool(hand_context)
        #: occluder probability from which hair pixels next to an occluder become occluder, or None
        self.occluder_into_hair = checked_threshold(occluder_into_hair, "parse.occluder_into_hair")
        #: grow the occluder through the forehead's hair (:mod:`occgui.parsing.forehead`)
        self.occluder_into_forehead = bool(occluder_into_forehead)
        self.version = (checkpoint_digest(path) + ("+flip" if self.flip else "")
                        + (f"+occ{override:g}" if override else "")
                        + (f"+hands{HAND_EVIDENCE_VERSION}" if self.hand_evidence else "")
                        + (f"+context{HAND_CONTEXT_VERSION}" if self.reads_photo else "")
                        + (f"+hair{self.occluder_into_hair:g}" if self.occluder_into_hair else "")
                        + (f"+forehead{FOREHEAD_VERSION}" if self.occluder_into_forehead else ""))
        self.checkpoint = path

    def parse_batch(self, crops: np.ndarray, contexts: list | None = None) -> np.ndarray:
        """``(N,S,S,3)`` uint8 crops -> ``(N,S,S)`` uint8 label ids; ``contexts``: per crop, a wider view
        of the photo and its affine to crop pixels for the hand evidence (:func:`.hand_evidence.context_view`)
        or None."""
        if self.engine == "onnxruntime":
            logits = predict_logits_onnx(self.model, crops, self.input_size, flip=self.flip,
                                         input_name=self.meta.get("input", "image"))
        else:
            logits = predict_logits(self.model, crops, self.input_size, self.device, flip=self.flip)
            logits = logits.permute(0, 2, 3, 1).cpu().numpy()
        labels = labels_from_logits(logits, self.occluder_threshold)
        if self.hand_evidence:
            contexts = contexts if contexts is not None else [None] * len(crops)
            labels = np.stack([with_hands(lab, crop, ctx) for lab, crop, ctx in zip(labels, crops, contexts)])
        if self.occluder_into_hair:
            labels = np.stack([grown_into_hair(lab, p, self.occluder_into_hair)
                               for lab, p in zip(labels, occluder_probability(logits))])
        if self.occluder_into_forehead:
            labels = np.stack([grown_into_forehead(lab, mesh_points68(crop)) if (lab == L.OCCLUDER).any() else lab
                               for lab, crop in zip(labels, crops)])     # the face mesh only when something grows
        return labels

    def parse(self, crop_rgb: np.ndarray, photo: np.ndarray | None = None, to_crop: np.ndarray | None = None
              ) -> np.ndarray:
        """M_alpha of one ``SxSx3`` uint8 crop: ``SxS`` uint8 label ids at the crop's size. ``photo`` (the
        working image) and ``to_crop`` (its affine to crop pixels): the hands of a wider view count too,
        when :attr:`reads_photo`."""
        crop = np.asarray(crop_rgb)
        if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] < 3:
            raise ValueError(f"expected a square HxWx3 crop, got shape {crop.shape}")
        photo = None if photo is None else np.asarray(photo)
        if photo is not None and (photo.ndim != 3 or photo.shape[2] < 3):
            raise ValueError(f"expected an HxWx3 photo for the context view, got shape {photo.shape}")
        ctx = (context_view(photo, to_crop, crop.shape[0])
               if self.reads_photo and photo is not None and to_crop is not None else None)
        return self.parse_batch(crop[None, :, :, :3].astype(np.uint8, copy=False), [ctx])[0]
