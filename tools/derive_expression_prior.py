"""Derive the learned expression prior of the morphable fit (``occgui.morphable.expression_prior``).

    python tools/derive_expression_prior.py --lfw ../shared/data/faces/lfw/lfw-deepfunneled \
        --photos 300 --jobs 2 -o resources/morphable/ict_face_reduced_expression_prior.npz

Takes the first photo (sorted) of ``--photos`` identities spread evenly over FISN's *train* split
(letters A-P without every 25th identity, :func:`occgui.training.fisn.data.split_identities`; the
validation identities are the fit's drift-development photos and Q-S are held out), skipping the
photos listed in ``natural_occlusions.csv`` (real occluders). Each photo runs the pipeline up to
``synthesize`` unoccluded and the per-photo fit with the diagonal Eq. 14 prior (``FitSettings()``
without a learned prior) on Eq. 12's landmarks re-detected on I_out, as the ``morphable`` backend
does. The fitted expression coefficients' mean and Ledoit-Wolf-shrunk covariance
(scikit-learn) are saved with :func:`occgui.morphable.expression_prior.save_expression_prior`;
``--samples`` also keeps every photo's coefficients.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def choose_photos(lfw: Path, count: int, natural_csv: Path | None) -> list[Path]:
    from occgui.training.fisn.data import split_identities

    skip = set()
    if natural_csv is not None and natural_csv.is_file():
        with natural_csv.open(newline="") as fh:
            for row in csv.DictReader(fh):
                skip.add(Path(row["path"]).name)
    people = split_identities(lfw, "train")
    out = []
    for i in np.unique(np.linspace(0, len(people) - 1, min(count, len(people))).round().astype(int)):
        files = [f for f in sorted(people[i].glob("*.jpg")) if f.name not in skip]
        if files:
            out.append(files[0])
    return out


def fit_photos(photos: list[Path]) -> list[tuple[str, np.ndarray, float]]:
    """(photo, expression coefficients, clean landmark error) of each photo whose run succeeds."""
    import torch

    torch.set_num_threads(1)
    from occgui.errors import OccguiError
    from occgui.eval.harness import Variants
    from occgui.geometry.morphable_mesh import redetected_target
    from occgui.morphable import load_default_model
    from occgui.morphable.fit import FitSettings, FitTarget, MorphableFitter

    model = load_default_model()
    fitter = MorphableFitter(model, FitSettings())
    pipeline = Variants("cpu").full
    out = []
    for photo in photos:
        try:
            res = pipeline.run(photo, stop_after="synthesize")
        except OccguiError as e:
            print(f"{photo.name}: skipped ({e})", file=sys.stderr, flush=True)
            continue
        target = redetected_target(FitTarget.from_pipeline(res.synthesis, res.landmarks, res.gamma, res.alpha), "all")
        fit = fitter.fit(target)
        err = fit.landmark_error(target.landmarks)
        out.append((f"{photo.parent.name}/{photo.name}", np.asarray(fit.coefficients.expression, np.float64), err))
        print(f"{photo.name}: landmark error {err:.4f}", file=sys.stderr, flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, required=True, help="LFW's lfw-deepfunneled folder")
    ap.add_argument("--natural", type=Path, default=None,
                    help="natural_occlusions.csv (default: beside the LFW folder)")
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--max-landmark-error", type=float, default=0.06,
                    help="fits whose clean landmark error (inter-ocular) exceeds this are left out")
    ap.add_argument("--samples", type=Path, default=None, help="also save every photo's coefficients here (.npz)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args(argv)

    from sklearn.covariance import LedoitWolf

    from occgui.morphable import load_default_model
    from occgui.morphable.expression_prior import ExpressionPrior, save_expression_prior

    natural = a.natural or a.lfw.parent / "natural_occlusions.csv"
    photos = choose_photos(a.lfw, a.photos, natural)
    t0 = time.perf_counter()
    chunks = [photos[i::a.jobs] for i in range(a.jobs)]
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            results = [r for part in ex.map(fit_photos, chunks) for r in part]
    else:
        results = fit_photos(photos)
    kept = [r for r in results if np.isfinite(r[2]) and r[2] <= a.max_landmark_error]
    betas = np.stack([r[1] for r in kept])
    lw = LedoitWolf().fit(betas)
    model = load_default_model()
    prior = ExpressionPrior(mean=betas.mean(0), covariance=lw.covariance_, model=model.name, photos=len(kept),
                            source=f"tools/derive_expression_prior.py: {len(kept)} clean LFW photos of FISN's train "
                                   f"split (A-P), Ledoit-Wolf shrinkage {lw.shrinkage_:.3f}")
    save_expression_prior(a.out, prior)
    if a.samples:
        np.savez_compressed(a.samples, photos=np.array([r[0] for r in kept]), expression=betas,
                            landmark_error=np.array([r[2] for r in kept]))
    print(f"{len(kept)} of {len(photos)} photos kept ({len(results)} fitted) in {time.perf_counter() - t0:.0f} s; "
          f"shrinkage {lw.shrinkage_:.3f}; mean |beta| {np.abs(prior.mean).mean():.3f}; "
          f"trace {np.trace(prior.covariance):.3f} -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
