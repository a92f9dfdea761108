"""Held-out measurement of the trained R-Net and of the fit it initialises (issue 15 point 6).

``python -m occgui.eval.rnet_init --data ../shared/data --limit 30 -o OUT`` takes one photo per
held-out LFW identity (Q-S, sorted; never used in training) and, for the clean photo and for the
photo with one pasted occluder of an evaluation family (alternating over ``--families``, as
:mod:`occgui.eval.occlusion` pastes them), runs the product's pipeline up to ``synthesize`` and:

* **the R-Net alone** on I_out: identity coefficient RMSE against the landmark-initialised fit of
  the *clean* photo, and the landmark reprojection NME of its coefficients against the run's
  detected landmarks (inter-ocular distances, outer eye corners);
* **three fits** of the same target, differing only in the initial value (``MorphableSettings.initial``):
  ``landmarks``, ``rnet``, ``rnet-pose``: each fit's landmark reprojection NME, its identity RMSE
  against the clean landmark-initialised fit, and the occluded-vs-clean vertex drift: the occluded
  fit's vertices against the *same initialiser's* clean fit, the clean mesh scaled to a 63 mm eye
  distance, after a similarity alignment (mm; :func:`occgui.eval.metrics.aligned_vertex_distances`,
  as ``occgui eval occlusion`` measures it).

Writes ``OUT/rnet_init.json`` (per-case records and the summary) and prints the summary table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

INITS = ("landmarks", "rnet", "rnet-pose")


def _nme(points: np.ndarray, reference: np.ndarray) -> float:
    ref = np.asarray(reference, np.float64)
    iod = float(np.linalg.norm(ref[36] - ref[45]))
    return float(np.linalg.norm(np.asarray(points, np.float64) - ref, axis=1).mean() / max(iod, 1e-9))


def held_out_photos(lfw_dir, limit: int) -> list[Path]:
    """One photo (the first, sorted) per Q-S identity, identities sorted, the first ``limit``."""
    from ..training.parsing.dataset import SPLITS

    root = Path(lfw_dir)
    people = sorted(p for p in root.iterdir() if p.is_dir() and p.name[:1] in SPLITS["test"])
    out = []
    for person in people:
        files = sorted(person.glob("*.jpg"))
        if files:
            out.append(files[0])
        if len(out) >= limit:
            break
    return out


def measure(pipeline, fitter, rnet, model, rgb: np.ndarray) -> dict:
    """R-Net output and the three fits of one pipeline run (``rgb``), with their vertices."""
    from ..morphable.coefficients import Coefficients
    from ..morphable.fit import FitTarget

    r = pipeline.run(rgb, stop_after="synthesize")
    target = FitTarget.from_pipeline(r.synthesis, r.landmarks, r.gamma, r.alpha)
    t0 = time.process_time()
    pred = rnet.predict(target.image)
    rnet_cpu = time.process_time() - t0
    c = Coefficients.from_vector(pred, rnet.layout)
    lm_pred = c.pose.project(model.shape(c.identity, c.expression)[model.landmarks])
    out = {"rnet": {"vector": pred, "nme": _nme(lm_pred, target.landmarks), "cpu_s": rnet_cpu}, "fits": {}}
    starts = {"landmarks": None, "rnet": pred, "rnet-pose": rnet.initial_value(model, target.image, target.landmarks)}
    for name in INITS:
        t0 = time.process_time()
        res = fitter.fit(target, starts[name])
        out["fits"][name] = {"identity": res.coefficients.identity, "vertices": res.vertices,
                             "nme": res.landmark_error(target.landmarks), "cpu_s": time.process_time() - t0}
    return out


def drift_mm(vertices: np.ndarray, clean_vertices: np.ndarray, model) -> float:
    from .metrics import aligned_vertex_distances, scale_to_eye_distance

    scaled, _ = scale_to_eye_distance(clean_vertices, clean_vertices[model.landmarks])
    d, _ = aligned_vertex_distances(vertices, scaled, scale=True)
    return float(d.mean())


def summarize(records: list[dict]) -> dict:
    def mean(xs):
        xs = [x for x in xs if x is not None and np.isfinite(x)]
        return round(float(np.mean(xs)), 4) if xs else None

    out = {}
    for cond in ("clean", "occluded"):
        rows = [r[cond] for r in records if cond in r]
        s = {"cases": len(rows), "rnet_alone_nme": mean([x["rnet"]["nme"] for x in rows]),
             "rnet_alone_identity_rmse": mean([x["rnet"]["identity_rmse"] for x in rows]),
             "rnet_alone_cpu_s": mean([x["rnet"]["cpu_s"] for x in rows])}
        for name in INITS:
            for key in ("nme", "identity_rmse", "drift_mm", "cpu_s"):
                s[f"fit_from_{name}_{key}"] = mean([x["fits"][name].get(key) for x in rows])
        out[cond] = s
    for fam in sorted({r["family"] for r in records if "occluded" in r}):
        rows = [r["occluded"] for r in records if r.get("family") == fam and "occluded" in r]
        out[f"occluded:{fam}"] = {"cases": len(rows),
                                  **{f"fit_from_{n}_drift_mm": mean([x["fits"][n]["drift_mm"] for x in rows])
                                     for n in INITS},
                                  "rnet_alone_identity_rmse": mean([x["rnet"]["identity_rmse"] for x in rows])}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="shared data folder (faces/lfw and occluders) or an LFW folder")
    ap.add_argument("--occluders")
    ap.add_argument("--weights", help="R-Net weights (default: the shipped checkpoint)")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--families", default="hand_over_eye,surgical_mask")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--resummarize", action="store_true", help="recompute the summary of OUT/rnet_init.json")
    args = ap.parse_args(argv)
    if args.resummarize:
        path = Path(args.output) / "rnet_init.json"
        report = json.loads(path.read_text())
        report["summary"] = summarize([r for r in report["records"] if r.get("status") == "ok"])
        path.write_text(json.dumps(report, indent=1))
        print(json.dumps(report["summary"], indent=1))
        return 0

    import torch

    from ..errors import OccguiError
    from ..imageio import load_image
    from ..morphable import load_default_model
    from ..morphable.fit import MorphableFitter
    from ..morphable.regressor import RNet
    from ..pipeline.runner import Pipeline, PipelineConfig
    from ..training.occlusion.occluders import composite, load_library, sample_eval_family
    from ..training.parsing.dataset import resolve_data_dirs
    from .harness import landmarks_working

    torch.set_num_threads(1)
    lfw, occ_dir = resolve_data_dirs(args.data, args.occluders)
    library = load_library(occ_dir)
    families = [f for f in args.families.split(",") if f]
    model = load_default_model()
    rnet = RNet.load(args.weights)
    rnet.check_model(model)
    fitter = MorphableFitter(model)
    pipeline = Pipeline(PipelineConfig(device="cpu", crop_size=256))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    t_start = time.monotonic()
    for k, photo in enumerate(held_out_photos(lfw, args.limit)):
        fam = families[k % len(families)]
        rec: dict = {"photo": f"{photo.parent.name}/{photo.name}", "family": fam}
        try:
            rgb = load_image(photo).rgb
            base = pipeline.run(rgb, stop_after="landmarks")
            clean = measure(pipeline, fitter, rnet, model, rgb)
            occ_obj, placement = sample_eval_family(np.random.default_rng([args.seed, k]), library, fam,
                                                    landmarks_working(base))
            occluded_rgb, _ = composite(base.image.rgb, landmarks_working(base), occ_obj, placement)
            occluded = measure(pipeline, fitter, rnet, model, occluded_rgb)
        except OccguiError as e:
            rec["status"] = f"failed: {e}"
            records.append(rec)
            continue
        ref_id = clean["fits"]["landmarks"]["identity"]
        for cond, m in (("clean", clean), ("occluded", occluded)):
            rn = m["rnet"]
            c = {"rnet": {"nme": rn["nme"], "cpu_s": rn["cpu_s"],
                          "identity_rmse": float(np.sqrt(np.mean((rn["vector"][:model.num_identity] - ref_id) ** 2)))},
                 "fits": {}}
            for name in INITS:
                f = m["fits"][name]
                c["fits"][name] = {"nme": f["nme"], "cpu_s": f["cpu_s"],
                                   "identity_rmse": float(np.sqrt(np.mean((f["identity"] - ref_id) ** 2)))}
                if cond == "occluded":
                    c["fits"][name]["drift_mm"] = drift_mm(f["vertices"], clean["fits"][name]["vertices"], model)
            rec[cond] = c
        rec["status"] = "ok"
        records.append(rec)
        drifts = ", ".join(f"{n} {rec['occluded']['fits'][n]['drift_mm']:.2f}" for n in INITS)
        print(f"[{k + 1}] {rec['photo']} {fam}: drift {drifts} ({time.monotonic() - t_start:.0f} s)", flush=True)
    summary = summarize([r for r in records if r.get("status") == "ok"])
    report = {"weights": rnet.source, "photos": len(records), "families": families, "summary": summary,
              "records": records, "seconds": round(time.monotonic() - t_start, 1)}
    (out / "rnet_init.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
