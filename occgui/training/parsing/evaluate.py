"""Evaluation of M_alpha (paper §3.2) on held-out identities with fixed-seed synthetic occlusion.

For every evaluated photo (a seeded subset of the Q-S clean set) three inputs are parsed:

* the clean crop -> per-class IoU against the generated labels and the *face-class mIoU*:
  the mean IoU of the 9 classes of Algorithm 1's value ranges O and S (``labels.SKIN_IDS +
  labels.FEATURE_IDS``: skin, l/r brow, l/r eye, nose, upper lip, inner mouth, lower lip),
  pooled over the set (intersections and unions summed over all photos before dividing);
* the crop with one occluder of a *trained* kind (every kind except ``HELDOUT_KINDS``) ->
  occluder IoU (pooled binary IoU of ``pred == occluder`` vs the paste mask);
* the crop with one occluder of a *held-out* kind -> occluder IoU on kinds never trained on.

* optionally (``hand_library``, e.g. ``occluders.procedural_hand_library(seed=EVAL_HAND_SEED)``)
  the crop with one procedural, skin-coloured hand -> ``occluder_iou_procedural_hand``. Its
  shapes are drawn with another seed than the training hands'; it is drawn after the other two
  inputs from the same stream, so adding it leaves them unchanged.

Face-class mIoU, two definitions (both on the clean crops, pooled):

* ``clean_face_parts_miou`` (the headline figure): the paper's five facial parts (§3.2: facial
  skin, eyebrows, eyes, nose, lips), i.e. the mean of the skin IoU and the IoUs of the label
  groups ``labels.FEATURE_GROUPS`` (left+right brows merged, left+right eyes merged, lips =
  upper lip + inner mouth + lower lip);
* ``clean_face_miou``: the mean IoU of the 9 classes of ``FACE_CLASSES`` (finer: left and right
  and the three lip classes apart).

Occluder choice and placement for photo ``k`` come from ``default_rng([seed, k])``, so the set is
identical for every model and every run.

``exclude`` (the card's corrected protocol: ``--clean-check``, the photos judged by eye to show a real
occluder, ``occgui.training.occlusion.clean_check``) leaves photos of the seeded draw out after it is
made: every other photo keeps its ``k`` and therefore exactly the occluders of the uncorrected protocol.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ... import labels as L
from ...metrics import BinaryIoUAccumulator, IoUAccumulator, group_iou_from_confusion
from .dataset import FAMILY_WEIGHTS, HELDOUT_KINDS, CleanSet, occlude_sample

#: Classes of the face-class mIoU: Algorithm 1's O (skin) and S (the facial features).
FACE_CLASSES: tuple[int, ...] = tuple(L.SKIN_IDS) + tuple(L.FEATURE_IDS)
DEFAULT_SEED = 20240607


def select_photos(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``n`` of ``n_total`` photos (all when ``n`` is None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def make_eval_inputs(clean: CleanSet, library, k: int, i: int, seed: int, hand_library=None) -> dict:
    """The clean, trained-kind and held-out-kind inputs (and labels) of evaluated photo ``k`` = index ``i``,
    plus a procedural-hand input (key ``"hand"``) when ``hand_library`` is given."""
    train_lib = library.filter(exclude_kinds=HELDOUT_KINDS)
    held_lib = library.filter(kinds=HELDOUT_KINDS)
    rng = np.random.default_rng([seed, k])
    crop, lab, lmk = clean.crops[i], clean.labels[i], clean.lmk68[i]
    tr_rgb, tr_lab, tr_pl = occlude_sample(rng, crop, lab, lmk, train_lib, 1, FAMILY_WEIGHTS)
    ho_rgb, ho_lab, ho_pl = occlude_sample(rng, crop, lab, lmk, held_lib, 1, FAMILY_WEIGHTS)
    out = {"clean": (np.asarray(crop), np.asarray(lab)), "trained": (tr_rgb, tr_lab, tr_pl[0]),
           "heldout": (ho_rgb, ho_lab, ho_pl[0])}
    if hand_library is not None and len(hand_library):
        h_rgb, h_lab, h_pl = occlude_sample(rng, crop, lab, lmk, hand_library, 1)
        out["hand"] = (h_rgb, h_lab, h_pl[0])
    return out


def evaluate_parser(parse_batch: Callable[[np.ndarray], np.ndarray], clean: CleanSet, library, *,
                    n: int | None = 300, seed: int = DEFAULT_SEED, batch_size: int = 16,
                    progress: bool = False, hand_library=None, exclude=None) -> dict:
    """Run the protocol of this module; ``parse_batch`` maps ``(N,S,S,3)`` uint8 crops to ``(N,S,S)`` ids.
    ``exclude``: photo names (``clean.names``) left out of the seeded draw (see the module docstring).

    Returns a JSON-serialisable dict of metrics (see the module docstring).
    """
    drawn = select_photos(len(clean), n, seed)
    pos = {int(i): k for k, i in enumerate(drawn)}
    skip = set(exclude or ())
    idx = np.array([i for i in drawn if clean.names[int(i)] not in skip], dtype=np.int64)
    acc_clean = IoUAccumulator(L.NUM_CLASSES)
    keys = ("trained", "heldout") + (("hand",) if hand_library is not None and len(hand_library) else ())
    acc_occ = {k: IoUAccumulator(L.NUM_CLASSES) for k in keys}
    occ_iou = {k: BinaryIoUAccumulator() for k in keys}
    per_family: dict[str, dict[str, BinaryIoUAccumulator]] = {k: {} for k in keys}
    false_occ, clean_px = 0, 0
    chunks = [idx[j:j + batch_size] for j in range(0, len(idx), batch_size)]
    it = chunks
    if progress:
        from tqdm import tqdm
        it = tqdm(chunks, desc="evaluate", unit="batch")
    for chunk in it:
        items = [make_eval_inputs(clean, library, pos[int(i)], int(i), seed, hand_library) for i in chunk]
        imgs = np.stack([it_["clean"][0] for it_ in items] + [it_[key][0] for key in keys for it_ in items])
        pred = parse_batch(imgs)
        m = len(items)
        for j, item in enumerate(items):
            p_clean, gt_clean = pred[j], item["clean"][1]
            acc_clean.add(p_clean, gt_clean)
            false_occ += int(np.count_nonzero(p_clean == L.OCCLUDER))
            clean_px += p_clean.size
            for ki, key in enumerate(keys):
                off = (ki + 1) * m
                p, (_, gt, pl) = pred[off + j], item[key]
                acc_occ[key].add(p, gt)
                occ_iou[key].add(p == L.OCCLUDER, gt == L.OCCLUDER)
                group = pl.anchor if key == "hand" else pl.family
                per_family[key].setdefault(group, BinaryIoUAccumulator()).add(p == L.OCCLUDER, gt == L.OCCLUDER)
    per_class = acc_clean.per_class()
    groups = group_iou_from_confusion(acc_clean.cm, L.FEATURE_GROUPS)
    nan = lambda v: None if v is None or np.isnan(v) else round(float(v), 4)  # noqa: E731
    out = {
        "photos": int(len(idx)), "seed": int(seed), "photos_excluded": int(len(drawn) - len(idx)),
        "occluder_iou_trained": nan(occ_iou["trained"].pooled),
        "occluder_iou_heldout": nan(occ_iou["heldout"].pooled),
        "clean_face_miou": nan(acc_clean.miou(FACE_CLASSES)),
        "face_classes": [L.NAMES[c] for c in FACE_CLASSES],
        "per_class_iou_clean": {L.NAMES[c]: nan(v) for c, v in enumerate(per_class) if c != L.OCCLUDER},
        "feature_group_iou_clean": {k: nan(v) for k, v in groups.items()},
        "clean_face_parts_miou": nan(np.nanmean([per_class[L.SKIN]] + list(groups.values()))),
        "clean_occluder_false_positive_rate": round(false_occ / max(clean_px, 1), 5),
        "occluder_iou_trained_per_image_mean": nan(occ_iou["trained"].mean_per_image),
        "occluder_iou_heldout_per_image_mean": nan(occ_iou["heldout"].mean_per_image),
        "occluded_face_miou_trained": nan(acc_occ["trained"].miou(FACE_CLASSES)),
        "occluded_face_miou_heldout": nan(acc_occ["heldout"].miou(FACE_CLASSES)),
        "occluder_iou_per_family": {k: {f: nan(a.pooled) for f, a in sorted(per_family[k].items())}
                                    for k in ("trained", "heldout")},
        "heldout_kinds": list(HELDOUT_KINDS),
    }
    if "hand" in keys:
        out["occluder_iou_procedural_hand"] = nan(occ_iou["hand"].pooled)
        out["occluder_iou_procedural_hand_per_image_mean"] = nan(occ_iou["hand"].mean_per_image)
        out["occluded_face_miou_procedural_hand"] = nan(acc_occ["hand"].miou(FACE_CLASSES))
        out["occluder_iou_procedural_hand_per_anchor"] = {a: nan(v.pooled)
                                                          for a, v in sorted(per_family["hand"].items())}
    return out


def evaluate_checkpoint(checkpoint, clean: CleanSet, library, *, device: str = "cpu", n: int | None = 300,
                        seed: int = DEFAULT_SEED, progress: bool = False, hand_library=None, exclude=None) -> dict:
    """:func:`evaluate_parser` with the U-Net stored in ``checkpoint``."""
    from types import SimpleNamespace

    from ...parsing.unet_parser import UNetParser, checkpoint_digest

    parser = UNetParser(SimpleNamespace(device=device), checkpoint=checkpoint)
    out = evaluate_parser(parser.parse_batch, clean, library, n=n, seed=seed, progress=progress,
                          hand_library=hand_library, exclude=exclude)
    out["checkpoint_version"] = checkpoint_digest(parser.checkpoint)
    return out


def main(argv=None) -> int:
    """``python -m occgui.training.parsing.evaluate CHECKPOINT``: the card's held-out evaluation (all usable Q-S
    photos by default), with the procedural-hand condition, written as JSON."""
    import argparse
    import json
    import sys
    import time
    from pathlib import Path
    from types import SimpleNamespace

    import cv2
    import torch

    from ...parsing.unet_parser import UNetParser, checkpoint_digest
    from ..occlusion.occluders import load_library, procedural_hand_library
    from .dataset import EVAL_HAND_SEED, build_clean_set, resolve_data_dirs
    from .train import DEFAULT_CACHE, EVAL_HANDS

    p = argparse.ArgumentParser(prog="python -m occgui.training.parsing.evaluate",
                                description=main.__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="parsing checkpoint (.onnx)")
    p.add_argument("--data", required=True, help="shared data folder (with faces/lfw and occluders)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="cache folder of the clean crops+labels")
    p.add_argument("--photos", type=int, help="evaluate a seeded subset of N photos (default: all)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--flip", action="store_true", help="mirror test-time augmentation")
    p.add_argument("--hand-evidence", action="store_true",
                   help="the parse backend's hand evidence (parse.hand_evidence: MediaPipe's hands marked occluder)")
    p.add_argument("--occluder-into-hair", type=float, metavar="T",
                   help="grow the occluder into neighbouring hair pixels of occluder probability >= T "
                        "(parse.occluder_into_hair)")
    p.add_argument("--occluder-into-forehead", action="store_true",
                   help="grow the occluder through the forehead's hair (parse.occluder_into_forehead)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clean-check", action="store_true",
                   help="leave out the photos judged by eye to show a real occluder (resources/clean_check; "
                        "the corrected guard-rail protocol)")
    p.add_argument("-o", "--output", help="write the metrics as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    lfw, occ_dir = resolve_data_dirs(args.data)
    clean = build_clean_set(lfw, args.cache, "test", progress=False)
    parser = UNetParser(SimpleNamespace(device="cpu"), checkpoint=args.checkpoint, flip=args.flip,
                        hand_evidence=args.hand_evidence, occluder_into_hair=args.occluder_into_hair,
                        occluder_into_forehead=args.occluder_into_forehead)
    exclude = None
    if args.clean_check:
        from ..occlusion.clean_check import judged_occluded

        exclude = judged_occluded()
    t0 = time.time()
    out = evaluate_parser(parser.parse_batch, clean, load_library(occ_dir), n=args.photos, seed=args.seed,
                          progress=sys.stderr.isatty(),
                          hand_library=procedural_hand_library(EVAL_HANDS, seed=EVAL_HAND_SEED), exclude=exclude)
    out["clean_check"] = bool(args.clean_check)
    out.update(checkpoint_version=checkpoint_digest(parser.checkpoint), input_size=parser.input_size, flip=parser.flip,
               hand_evidence=parser.hand_evidence, occluder_into_hair=parser.occluder_into_hair,
               occluder_into_forehead=parser.occluder_into_forehead,
               procedural_hands={"count": EVAL_HANDS, "seed": EVAL_HAND_SEED}, seconds=round(time.time() - t0, 1))
    text = json.dumps(out, indent=2)
    if args.output:
        Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
