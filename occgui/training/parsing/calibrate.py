"""``python -m occgui.training.parsing.calibrate CHECKPOINT -o OUT.onnx``: the parser's occluder threshold.

A parser trained mostly on pasted occluders is under-confident on real ones: where a real hand or
hat is, the occluder class often has 20-40 % of the probability but not the arg-max. The parse
backend therefore grows the arg-max's occluder regions into the connected pixels whose occluder
probability reaches the checkpoint's ``occluder_threshold``
(:func:`occgui.parsing.unet_parser.labels_from_logits`). This command
chooses it and writes it into a copy of the checkpoint's header (the weights are not touched):

* **dev-val** photos of the labelled real occlusions (the seeded, type-stratified part of the dev
  split that ``occgui train parsing --real-val`` holds out of training; the test split is never
  read): the pooled occluder IoU for every candidate threshold;
* **clean training photos** (identities A-P, the fine-tune's cached set; not the held-out Q-S
  photos the guard rails measure on): the occluder area inside the face region, which must stay
  at or below ``--max-false-area`` (see :data:`MAX_FALSE_AREA`);
* **pasted occluders on the same clean training photos** (the guard rails' protocol,
  :func:`occgui.training.parsing.evaluate.evaluate_parser`: trained kinds, held-out kinds and
  procedural hands): a lower threshold widens every occluder, pasted ones too, so each of the three
  IoUs must stay within :data:`PASTED_SLACK` of the reference parser's (the shipped one, by default);
* the chosen threshold is the one with the highest dev-val IoU among those that keep both bounds
  (ties: the higher threshold). The record of every candidate goes into the header.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import labels as L
from ...errors import OccguiError
from ...parsing.checkpoint import CHECKPOINT_NAME
from ...parsing.unet_parser import occluder_probability

#: Candidate thresholds (0.5 is close to the arg-max's own decision on a confident network).
THRESHOLDS = (0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)
#: Largest pooled occluder area (of the face region) allowed on the clean training photos. These A-P
#: photos were not checked by eye; of the Q-S photos that were (``resources/clean_check``), 164 of 623
#: showed a real cap, hand, microphone or glasses, which a good parser marks. So the area is an upper
#: bound of the false area, and the bound is twice the issue's 1 %. The held-out
#: guard rail (Q-S photos judged clean by eye, <= 1 %) is measured afterwards, never tuned on.
MAX_FALSE_AREA = 0.02
#: How far below the reference parser's pasted-occluder IoU (each of trained kinds, held-out kinds,
#: procedural hands; clean training photos) a threshold may bring the candidate: two thirds of the
#: issue's 0.03 guard rail, which is measured afterwards on held-out photos.
PASTED_SLACK = 0.02
#: Clean training photos of the pasted check.
PASTED_PHOTOS = 120
PASTED_KEYS = ("trained", "heldout", "hand")


@dataclass(frozen=True)
class ThresholdScore:
    threshold: float
    pooled_iou: float
    found: float
    false_area: float
    #: pasted-occluder IoU (trained kinds, held-out kinds, procedural hands) on clean training photos
    pasted: tuple[float, ...] = ()


def score_thresholds(val_probs, val_masks, clean_probs, clean_regions,
                     thresholds=THRESHOLDS) -> list[ThresholdScore]:
    """Dev-val pooled IoU / found share and clean false area of every threshold. ``*_probs`` are
    ``(p_occ, argmax_is_occluder)`` pairs: a pixel is occluder when the arg-max says so or when
    ``p_occ >= t`` connects it to such a pixel, as :func:`occgui.parsing.unet_parser.labels_from_logits`
    decides."""
    from ...parsing.unet_parser import grown_occluder
    from ..occlusion.real_cutouts import occluder_scores

    out = []
    face = sum(int(r.sum()) for r in clean_regions)
    for t in thresholds:
        sc = occluder_scores([grown_occluder(p, a, t) for p, a in val_probs], val_masks)
        false = sum(int((grown_occluder(p, a, t) & r).sum()) for (p, a), r in zip(clean_probs, clean_regions))
        out.append(ThresholdScore(float(t), float(sc["pooled_iou"]), float(sc["found"]), false / max(face, 1)))
    return out


def choose(scores: list[ThresholdScore], max_false_area: float = MAX_FALSE_AREA,
           pasted_floor: tuple[float, ...] | None = None) -> ThresholdScore:
    """The highest dev-val IoU among thresholds within the false-area bound and, when
    ``pasted_floor`` is given, with every pasted IoU at or above its floor (ties: higher threshold)."""
    ok = [s for s in scores if s.false_area <= max_false_area]
    if pasted_floor is not None:
        ok = [s for s in ok if len(s.pasted) == len(pasted_floor)
              and all(v >= f for v, f in zip(s.pasted, pasted_floor))]
    if not ok:
        raise OccguiError(f"no threshold keeps the clean false occluder area at or below {max_false_area:.2%}"
                          + (" and the pasted-occluder IoU within the bound" if pasted_floor is not None else ""))
    return max(ok, key=lambda s: (round(s.pooled_iou, 6), s.threshold))


def pasted_ious(parse_batch, clean_set, library, hands, n: int = PASTED_PHOTOS) -> tuple[float, ...]:
    """Occluder IoU with pasted occluders (trained kinds, held-out kinds, procedural hands) of
    ``parse_batch`` on ``n`` seeded photos of ``clean_set`` (the guard rails' protocol)."""
    from .evaluate import evaluate_parser

    out = evaluate_parser(parse_batch, clean_set, library, n=n, hand_library=hands)
    return (out["occluder_iou_trained"], out["occluder_iou_heldout"], out["occluder_iou_procedural_hand"])


def _thresholded(parser, t: float | None):
    """``parse_batch`` of ``parser`` with occluder threshold ``t`` (None: arg-max)."""
    from ...parsing.unet_parser import labels_from_logits, predict_logits_onnx

    def parse_batch(crops):
        lg = predict_logits_onnx(parser.model, crops, parser.input_size, flip=parser.flip,
                                 input_name=parser.meta.get("input", "image"))
        return labels_from_logits(lg, t)
    return parse_batch


def _probs(parser, crops: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(p_occ, argmax_is_occluder)`` of every crop."""
    from ...parsing.unet_parser import predict_logits_onnx

    out = []
    for k in range(0, len(crops), 8):
        lg = predict_logits_onnx(parser.model, crops[k:k + 8], parser.input_size, flip=parser.flip,
                                 input_name=parser.meta.get("input", "image"))
        out.extend(zip(occluder_probability(lg), lg.argmax(axis=-1) == L.OCCLUDER))
    return out


def calibrate(checkpoint, data, cache, *, real_labels=None, real_val: int = 25, real_val_seed: int = 0,
              clean: int = 200, photos: int = 3000, max_false_area: float = MAX_FALSE_AREA,
              reference=None, pasted_slack: float | None = PASTED_SLACK, progress: bool = False) -> dict:
    """Score the candidate thresholds of ``checkpoint`` and choose one -> the header record.
    ``reference``: the parser whose pasted-occluder IoU bounds the choice (default: the shipped one);
    ``pasted_slack`` None: no pasted check."""
    from dataclasses import replace
    from types import SimpleNamespace

    from ...metrics import face_region
    from ...parsing.unet_parser import UNetParser
    from ...resources import checkpoint_path
    from ..entry import checked_data_dirs
    from ..occlusion.occluders import load_library, procedural_hand_library
    from ..occlusion.real_cutouts import dev_val_stems, real_crops_for_training
    from .dataset import EVAL_HAND_SEED, build_clean_set
    from .train import EVAL_HANDS

    lfw, occ_dir = checked_data_dirs(data)
    parser = UNetParser(SimpleNamespace(device="cpu"), checkpoint=checkpoint)
    crops = real_crops_for_training(real_labels, lfw, cache_dir=cache, progress=progress)
    stems = set(dev_val_stems(crops, real_val, real_val_seed))
    val = [c for c in crops if c.stem in stems]
    clean_set = build_clean_set(lfw, cache, "train", progress=progress, sample=photos)
    pick = np.linspace(0, len(clean_set.crops) - 1, min(clean, len(clean_set.crops))).round().astype(int)
    regions = [face_region(clean_set.lmk68[k], clean_set.crops.shape[1]) for k in pick]
    scores = score_thresholds(_probs(parser, np.stack([c.crop for c in val])), [c.mask for c in val],
                              _probs(parser, np.asarray(clean_set.crops[pick])), regions)
    floor, ref_scores, ref_path = None, None, None
    if pasted_slack is not None:
        library, hands = load_library(occ_dir), procedural_hand_library(EVAL_HANDS, seed=EVAL_HAND_SEED)
        ref_path = Path(reference) if reference is not None else checkpoint_path(CHECKPOINT_NAME)
        ref = UNetParser(SimpleNamespace(device="cpu"), checkpoint=ref_path)
        ref_scores = pasted_ious(ref.parse_batch, clean_set, library, hands)
        floor = tuple(v - pasted_slack for v in ref_scores)
        scores = [replace(s, pasted=pasted_ious(_thresholded(parser, s.threshold), clean_set, library, hands))
                  for s in scores]
    best = choose(scores, max_false_area, floor)
    return {"occluder_threshold": best.threshold,
            "occluder_calibration": {"dev_val_photos": sorted(stems), "dev_val_seed": real_val_seed,
                                     "clean_photos": len(pick), "clean_identities": "A-P",
                                     "clean_set": f"train sample {photos}",
                                     "max_false_area": max_false_area,
                                     "pasted_check": None if floor is None else {
                                         "photos": PASTED_PHOTOS, "keys": list(PASTED_KEYS), "slack": pasted_slack,
                                         "reference": str(ref_path), "reference_iou": list(ref_scores)},
                                     "candidates": [{**s.__dict__, "pasted": list(s.pasted)} for s in scores]}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m occgui.training.parsing.calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="parsing checkpoint (.onnx)")
    ap.add_argument("-o", "--output", required=True, help="where to write the calibrated copy (.onnx)")
    ap.add_argument("--data", required=True, help="shared data folder (with faces/lfw and occluders) or an LFW folder")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "occgui"), help="cache of the clean and real crops")
    ap.add_argument("--real-labels", default="bundled", help="labelled real occlusions (default: the project's)")
    ap.add_argument("--real-val", type=int, default=25, help="dev-val photos, as `train parsing --real-val`")
    ap.add_argument("--real-val-seed", type=int, default=0)
    ap.add_argument("--clean", type=int, default=200, help="clean A-P training photos for the false area")
    ap.add_argument("--photos", type=int, default=3000, help="the fine-tune's clean set they are drawn from "
                    "(`train parsing --photos`, cached)")
    ap.add_argument("--max-false-area", type=float, default=MAX_FALSE_AREA)
    ap.add_argument("--reference", help="parser whose pasted-occluder IoU bounds the choice (default: the shipped one)")
    ap.add_argument("--pasted-slack", type=float, default=PASTED_SLACK,
                    help="how far below the reference's pasted IoU a threshold may go (negative: no pasted check)")
    args = ap.parse_args(argv)
    from ..onnx_export import update_parser_header

    try:
        labels = None if args.real_labels in ("bundled", "default") else args.real_labels
        rec = calibrate(args.checkpoint, args.data, args.cache, real_labels=labels, real_val=args.real_val,
                        real_val_seed=args.real_val_seed, clean=args.clean, photos=args.photos,
                        max_false_area=args.max_false_area, reference=args.reference,
                        pasted_slack=None if args.pasted_slack < 0 else args.pasted_slack)
        update_parser_header(args.checkpoint, args.output, rec)
    except OccguiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in rec["occluder_calibration"]["candidates"]:
        mark = " <-" if s["threshold"] == rec["occluder_threshold"] else ""
        pasted = "/".join(f"{v:.3f}" for v in s["pasted"])
        print(f"t={s['threshold']:.2f}  dev-val IoU {s['pooled_iou']:.3f}  found {s['found']:.2f}  "
              f"clean false area {s['false_area']:.3%}  pasted {pasted or '-'}{mark}")
    print(f"wrote {args.output} (occluder_threshold {rec['occluder_threshold']:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
