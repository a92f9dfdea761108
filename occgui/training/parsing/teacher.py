"""Real occluders in the *clean* training photos, labelled by a teacher parser (``--teacher``).

The synthetic stream pastes occluders on "clean" LFW photos of identities A-P whose labels come from the
label generator (:mod:`occgui.parsing.labelgen`), which knows only faces: hair, skin, background. But many of
these photos are not clean. A look at the photos in which the parse stage finds an occluder (about 14 % of
the 3,000-photo fine-tune set above 1 % of the crop) shows caps, headbands, hands at the chin, sunglasses, a
microphone, a ball: the training told the network, on every such photo, that a real cap is hair and a real
hand is skin or background -- the opposite of the labelled real occlusions it is also trained on.

:func:`with_teacher_occluders` runs a teacher -- the whole parse stage of a checkpoint: the network, the
hands MediaPipe finds in the crop, the forehead growth (``UNetParser(hand_evidence=True,
occluder_into_forehead=True)``; no wider view, the cache holds crops only) -- over the clean set and writes
its occluder into the labels of every photo where it marks more than ``min_fraction`` of the crop
(pseudo-labels; self-training on unlabelled real photos, issue 13 point 3). The result is a cache folder of
its own beside the clean set's (crops, landmarks and meshes linked, labels rewritten, ``meta.json`` with a
``"teacher"`` record), so training processes load it as they load the clean set.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ... import labels as L
from ...errors import OccguiError
from .dataset import CleanSet, load_clean_set

#: Bumped when the teacher's rules (what it runs, how its map enters the labels) change.
TEACHER_VERSION = 1
#: Default share of the crop the teacher must mark for a photo to be pseudo-labelled (smaller finds are
#: mostly specks on beards, collars and hair).
DEFAULT_MIN_FRACTION = 0.01
_LINKED = ("crops.npy", "lmk68.npy", "mesh.npy")


def teacher_folder(clean: CleanSet, digest: str, min_fraction: float) -> Path:
    """Cache folder of ``clean`` pseudo-labelled by the teacher ``digest`` at ``min_fraction``."""
    if clean.source is None:
        raise OccguiError("the teacher's pseudo-labels need a cached clean set (its folder)")
    src = Path(clean.source)
    key = hashlib.sha1(f"{TEACHER_VERSION}:{digest}:{float(min_fraction):.6g}".encode()).hexdigest()[:10]
    return src.parent / f"{src.name}_teacher{key}"


def occluder_masks(clean: CleanSet, parse_batch: Callable[[np.ndarray], np.ndarray], batch: int = 16,
                   progress: bool = False) -> np.ndarray:
    """``(N,S,S)`` bool: the occluder class of ``parse_batch`` (uint8 crops -> label maps) on every crop."""
    n = len(clean)
    out = np.zeros((n,) + clean.labels.shape[1:], dtype=bool)
    starts = range(0, n, batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="teacher", unit="batch")
    for s in starts:
        out[s:s + batch] = np.asarray(parse_batch(np.ascontiguousarray(clean.crops[s:s + batch]))) == L.OCCLUDER
    return out


def with_teacher_occluders(clean: CleanSet, parse_batch: Callable[[np.ndarray], np.ndarray], digest: str,
                           min_fraction: float = DEFAULT_MIN_FRACTION, progress: bool = False) -> CleanSet:
    """``clean`` with the teacher's occluder written into the labels of the photos where it marks more than
    ``min_fraction`` of the crop; cached (:func:`teacher_folder`), so ``parse_batch`` runs once per teacher
    ``digest`` and ``min_fraction``."""
    if not 0.0 <= float(min_fraction) < 1.0:
        raise OccguiError(f"--teacher-min-fraction must be in [0, 1), got {min_fraction}")
    folder = teacher_folder(clean, digest, min_fraction)
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("teacher", {}).get("complete"):
        return load_clean_set(folder)
    masks = occluder_masks(clean, parse_batch, progress=progress)
    fraction = masks.mean(axis=(1, 2))
    chosen = np.flatnonzero(fraction > float(min_fraction))
    folder.mkdir(parents=True, exist_ok=True)
    src = Path(clean.source)
    for name in _LINKED:
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink((src / name).resolve(), link)
    labels = np.lib.format.open_memmap(folder / "labels.npy", "w+", np.uint8, clean.labels.shape)
    labels[:] = clean.labels
    for i in chosen:
        labels[i][masks[i]] = L.OCCLUDER
    labels.flush()
    del labels
    meta = json.loads((src / "meta.json").read_text())
    meta["teacher"] = {"version": TEACHER_VERSION, "digest": digest, "min_fraction": float(min_fraction),
                       "photos": int(chosen.size), "photo_names": [clean.names[i] for i in chosen],
                       "pixel_share": float(masks[chosen].mean()) if chosen.size else 0.0, "complete": True}
    meta_path.write_text(json.dumps(meta))
    return load_clean_set(folder)


def teacher_record(clean: CleanSet) -> dict:
    """The ``"teacher"`` record of a set made by :func:`with_teacher_occluders` (empty for any other set)."""
    if clean.source is None:
        return {}
    return json.loads((Path(clean.source) / "meta.json").read_text()).get("teacher", {})


def teacher_parse_batch(checkpoint, device: str = "cpu", rules: bool = True):
    """``(parse_batch, digest)`` of the parse stage of ``checkpoint`` (network, hands in the crop, forehead
    growth; with ``rules=False`` the network alone) -- the teacher of :func:`with_teacher_occluders`."""
    from types import SimpleNamespace

    from ...parsing.unet_parser import UNetParser

    parser = UNetParser(SimpleNamespace(device=device), checkpoint=checkpoint, hand_evidence=rules,
                        occluder_into_forehead=rules)
    return parser.parse_batch, f"unet@{parser.version}"
