"""Cross-validation over the dev photos of the labelled real occlusions: choose a fine-tune's step count
from K runs that each hold one fold out (``occgui train parsing --real-fold I/K``), then train on all the
dev photos for that many steps.

Why: one fixed dev-val of 25 photos proved a noisy guide (``checkpoints/parsing_unet.md``: v4's dev-val
peaked at step 800 of 4,099, and v5, trained on all 125 dev photos without a hold-out, scored no better on
the test split). Averaged over K folds every dev photo is held out once, so the curve rests on 125 photos.

Each run's ``log.jsonl`` holds a ``dev_val`` record every ``--real-val-every`` steps (pooled occluder IoU
of the EMA network's arg-max on its fold). The folds' curves are pooled at the steps every run scored, as
the mean of the folds' pooled IoU, each fold weighing the same (the folds differ in size by at most one
photo; pooling their pixels would need counts the log does not keep).

    python -m occgui.training.parsing.crossval RUN_0 RUN_1 ... [--json OUT]
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import OccguiError


@dataclass(frozen=True)
class CrossValCurve:
    """The folds' mean dev-val score per step (only steps every fold scored) and the chosen step."""

    steps: tuple[int, ...]
    mean_iou: tuple[float, ...]
    per_fold: tuple[tuple[float, ...], ...]      # [fold][step index]
    folds: tuple[str, ...]                       # the runs' folds, "I/K"

    @property
    def best_step(self) -> int:
        """The step with the highest mean (the earliest of equal ones)."""
        best = max(range(len(self.steps)), key=lambda i: (self.mean_iou[i], -self.steps[i]))
        return self.steps[best]


def read_dev_val(run: Path) -> tuple[tuple[int, int], int, dict[int, float]]:
    """``((I, K), seed, {step: pooled IoU})`` of one ``--real-fold I/K`` run folder's ``log.jsonl``."""
    from ..occlusion.real_cutouts import parse_fold

    log = Path(run) / "log.jsonl"
    if not log.is_file():
        raise OccguiError(f"{run}: no log.jsonl (not a training run folder)")
    scores: dict[int, float] = {}
    fold, seed = None, 0
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue                                  # a line cut by an interrupted run
        if rec.get("event") == "start" and rec.get("real_fold"):
            fold, seed = parse_fold(rec["real_fold"]), int(rec.get("real_val_seed") or 0)
        elif rec.get("event") == "dev_val":
            scores[int(rec["step"])] = float(rec["pooled_iou"])
    if fold is None:
        raise OccguiError(f"{run}: not a cross-validation run (train with --real-fold I/K)")
    if not scores:
        raise OccguiError(f"{run}: no dev-val scores in log.jsonl yet")
    return fold, seed, scores


def curve(runs) -> CrossValCurve:
    """The folds' mean curve of the run folders ``runs``: one run for each fold of the same K and seed."""
    read = sorted((read_dev_val(Path(r)) for r in runs), key=lambda x: x[0])
    folds = [f for f, _, _ in read]
    k = folds[0][1] if folds else 2
    if len({s for _, s, _ in read}) != 1 or folds != [(i, k) for i in range(k)]:
        have = ", ".join(f"{i}/{kk} (seed {s})" for (i, kk), s, _ in read)
        raise OccguiError(f"cross-validation needs one run for each fold I/K of one K and seed; got {have}")
    common = sorted(set.intersection(*(set(s) for _, _, s in read)))
    if not common:
        raise OccguiError("the runs share no dev-val step (use the same --real-val-every)")
    per_fold = tuple(tuple(s[step] for step in common) for _, _, s in read)
    mean = tuple(sum(f[i] for f in per_fold) / len(per_fold) for i in range(len(common)))
    return CrossValCurve(tuple(common), mean, per_fold, tuple(f"{i}/{kk}" for i, kk in folds))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m occgui.training.parsing.crossval", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders of `occgui train parsing --real-fold I/K`, one per fold")
    p.add_argument("--json", help="write the curve and the chosen step here")
    args = p.parse_args(argv)
    try:
        c = curve(args.runs)
    except OccguiError as e:
        print(f"error: {e}")
        return 2
    print("step  mean  " + "  ".join(f"{lab:>6s}" for lab in c.folds))
    for i, step in enumerate(c.steps):
        print(f"{step:5d} {c.mean_iou[i]:.3f}  " + "  ".join(f"{f[i]:6.3f}" for f in c.per_fold))
    print(f"best step: {c.best_step} (mean dev-val pooled IoU {max(c.mean_iou):.3f} over {len(c.folds)} folds)")
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": c.steps, "mean_iou": c.mean_iou, "per_fold": c.per_fold,
                                               "folds": c.folds, "best_step": c.best_step}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
