"""Development loop of the morphable fit's occlusion drift (issue 15 point 9; occgui.eval.fit_drift).

    python tools/morphable_drift.py collect --faces DIR [--names A-P] --limit 24 \
        --families hand_over_eye,surgical_mask,sunglasses -o cases.npz
    python tools/morphable_drift.py fit cases.npz [--set FIELD=VALUE ...] [--iout-landmarks hidden] \
        [--expression-prior learned] [--json out.json]

``collect`` runs the pipeline up to ``synthesize`` (clean, and full/raw per occluder family) and
saves the fit inputs; ``fit`` fits them with ``FitSettings`` (defaults, or fields set with
``--set``; ``weights.FIELD=VALUE`` sets a ``LossWeights`` field) and prints drift per family and
variant and the clean landmark reprojection error. ``--names A-P`` keeps identities whose folder
name starts with a letter in that range (tune on A-P only; Q-S are held out).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _value(cur, text: str):
    if isinstance(cur, bool):
        return text.lower() in ("1", "true", "yes")
    return type(cur)(text)


def settings_from(pairs: list[str], base=None):
    from occgui.morphable.fit import FitSettings

    st = FitSettings() if base is None else base
    for p in pairs:
        key, _, val = p.partition("=")
        if key.startswith("weights."):
            w = st.weights
            k = key.split(".", 1)[1]
            st = replace(st, weights=replace(w, **{k: _value(getattr(w, k), val)}))
        else:
            if key not in {f.name for f in fields(st)}:
                raise SystemExit(f"unknown FitSettings field {key!r}")
            st = replace(st, **{key: _value(getattr(st, key), val)})
    return st


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--faces", type=Path, required=True)
    c.add_argument("--names", default="", help="first-letter range of the identities kept, e.g. A-P")
    c.add_argument("--limit", type=int, default=24)
    c.add_argument("--families", default="hand_over_eye,surgical_mask,sunglasses")
    c.add_argument("--occluders", type=Path, default=ROOT.parent / "shared/data/occluders")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("-o", "--out", type=Path, required=True)
    c.add_argument("--backend", action="append", default=[], metavar="STAGE=NAME",
                   help="a backend of the full pipeline other than the default (e.g. landmarks=mediapipe-refined)")
    f = sub.add_parser("fit")
    f.add_argument("cases", type=Path)
    f.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    f.add_argument("--json", type=Path)
    f.add_argument("--photos", type=int, default=None, metavar="N", help="only the first N photos' cases")
    f.add_argument("--iout-landmarks", choices=("off", "hidden", "all", "blend"), default="off",
                   help="Eq. 12's landmarks re-detected on I_out (MorphableSettings.iout_landmarks)")
    f.add_argument("--expression-prior", default=None, metavar="learned|FILE",
                   help="fit with a learned expression prior (occgui.morphable.expression_prior) and the weights "
                        "the backend uses with it (geometry.expression_prior); --set applies on top")
    f.add_argument("--region", choices=("all", "face"), default="all",
                   help="vertices counted: the whole model, or its face region M only")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from occgui.eval import fit_drift as D

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if a.cmd == "collect":
        from occgui.eval.lfw import find_photos, relative_name, spread_selection
        from occgui.training.occlusion.clean_check import judged_occluded

        photos = find_photos(a.faces)
        if a.names:
            lo, hi = a.names.upper().split("-")
            photos = [p for p in photos if lo <= p.parent.name[:1].upper() <= hi]
        occluded = judged_occluded()
        photos = spread_selection([p for p in photos if relative_name(p) not in occluded], a.limit)
        t0 = time.perf_counter()
        chosen = dict(item.split("=", 1) for item in a.backend)
        cases = D.collect_cases(photos, tuple(a.families.split(",")), a.occluders, seed=a.seed, log=log,
                                backends=chosen)
        D.save_cases(a.out, cases)
        log(f"{len(cases)} cases of {len(photos)} photos in {time.perf_counter() - t0:.0f} s -> {a.out}")
        return 0

    from occgui.morphable import load_default_model

    model = load_default_model()
    cases = D.load_cases(a.cases)
    if a.photos is not None:
        keep = list(dict.fromkeys(c.photo for c in cases))[: a.photos]
        cases = [c for c in cases if c.photo in keep]
    prior = None
    base = None
    if a.expression_prior is not None:
        from occgui.geometry.morphable_mesh import fit_configuration
        from occgui.geometry.settings import MorphableSettings

        base, prior, _path = fit_configuration(MorphableSettings(expression_prior=a.expression_prior), model)
    st = settings_from(a.set, base)
    t0 = time.perf_counter()
    fitted = D.redetect_cases(cases, a.iout_landmarks, dense=st.dense_weight > 0)
    fits = D.fit_cases(model, fitted, st, expression_prior=prior)
    secs = [r.seconds for r in fits.values()]
    ids = None if a.region == "all" else __import__("numpy").flatnonzero(model.face_mask)
    summary = D.summarize_drift(model, fits, cases, ids)
    summary["settings"] = a.set
    summary["iout_landmarks"] = a.iout_landmarks
    summary["expression_prior"] = a.expression_prior or ""
    summary["fit_seconds_median"] = float(sorted(secs)[len(secs) // 2])
    summary["wall_s"] = time.perf_counter() - t0
    from occgui.eval.report import software_versions

    summary["cases_file"] = str(a.cases)
    summary["software"] = software_versions()
    for fam, per in summary.items():
        if isinstance(per, dict) and "full" in per:
            print(f"{fam:16s} full {per['full']['mean']:.2f} (p90 {per['full']['p90']:.2f})  "
                  f"raw {per.get('raw', {}).get('mean', float('nan')):.2f}  n={per['full']['cases']}")
    le = summary["clean_landmark_error"]
    print(f"clean landmark error {le['mean']:.4f} (max {le['max']:.4f}, {le['photos']} photos); "
          f"fit median {summary['fit_seconds_median']:.2f} s; iout_landmarks={a.iout_landmarks} {' '.join(a.set)}"
          f"{' expression prior ' + str(a.expression_prior) if prior else ''}")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
