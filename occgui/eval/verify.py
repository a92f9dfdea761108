"""``occgui eval verify``: LFW face verification from the reconstruction, with and without
occluders, like the paper's Table 1 (§5; issue point 5).

Features: the dlib 128-D embedding of the *frontal render of the reconstruction*
(:func:`occgui.eval.render.render_frontal`) -- the reconstruction-derived feature available
today; the morphable model's identity coefficients replace it once that fit lands. The same
embedding of the photo crop itself is reported as a reference row (recognition without any
reconstruction).

Protocol: the pairs of an LFW ``pairs.txt`` (10 folds of 300 matched + 300 mismatched pairs;
pairs whose photos are absent are skipped and counted; ``--folds`` / ``--limit`` select a subset).
Every photo is reconstructed clean and with one occluder of a family drawn uniformly from the
evaluation families the occluder library serves (:data:`occgui.training.occlusion.occluders.EVAL_FAMILIES`; stream
``default_rng([seed, sha1(person/file), 0])``),
each through the ``full`` and ``raw`` pipelines. A pair's score is the cosine similarity of the
two features under each condition:

* ``clean``: both photos clean (the paper's "w/o Occ");
* ``occluded``: both photos occluded (the paper's "w/ Occ");
* ``one occluded``: the first photo clean, the second occluded (a clean gallery, occluded probe).

With FISN settings (``--fisn``, :mod:`occgui.eval.fisn_variant`) a third variant ``fisn`` runs:
the full pipeline with ``synthesize=fisn`` (issue 16), sharing the stage cache; its feature
``render_fisn`` is scored like the others, so the report puts FISN beside the classical ``full``,
``raw`` and the photo crop (and ``occgui eval fisn-decision`` reads it). Without it the run's
settings, hence its cache, are those of a run without the option.

A photo whose occluded version yields no face gets the lowest score (-1) in the occluded
conditions, so failures count as errors. Accuracy uses, for each test fold, the threshold that
maximises accuracy on the other selected folds; 100 % - EER and nAUC are computed per fold; all
three are reported as mean ± std over the folds (:func:`occgui.eval.metrics.verification_metrics`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import OccguiError
from . import harness as H
from . import report as R
from .lfw import HELD_OUT_GROUP, Pair, identity_group, read_pairs, relative_name
from .metrics import cosine_similarity, verification_metrics

#: The paper's Table 1 (LFW, mean ± std over 10 folds): method -> (100%-EER, accuracy, nAUC).
PAPER_TABLE1 = {
    "Tran et al. [61]": ((89.40, 1.52), (89.36, 1.25), (95.90, 0.95)),
    "paper, w/ Occ": ((85.75, 1.12), (86.49, 0.97), (93.89, 1.31)),
    "paper, w/o Occ": ((90.57, 1.43), (89.87, 0.71), (96.59, 0.37)),
}
#: Features per photo: (input, feature) -> record key.
FEATURES = ("render_full", "render_raw", "photo")
#: The FISN variant's feature (present when the run measured it).
FISN_FEATURE = "render_fisn"
CONDITIONS = ("clean", "occluded", "one_occluded")
SAMPLES = 6
STRIP_TITLES = ["photo", "occluded", "M_alpha", "M_gamma", "I_out", "render full occ.", "render raw occ.",
                "render full clean"]


@dataclass
class VerifySettings:
    faces: Path
    pairs: Path
    occluders: Path
    out: Path
    limit: int | None = None
    folds: tuple[int, ...] = ()
    seed: int = 0
    device: str = "auto"
    backends: dict = field(default_factory=dict)
    #: stage -> typed settings of its backend (``--option STAGE.FIELD=VALUE``)
    backend_settings: dict = field(default_factory=dict)
    quiet: bool = False
    report_only: bool = False
    #: typed settings of the ``fisn`` synthesis variant (``--fisn``), or None: not measured
    fisn: object = None


class FISNVariants:
    """:class:`~occgui.eval.harness.Variants` plus the ``fisn`` variant: the full pipeline with
    ``synthesize=fisn`` (settings ``fisn``), sharing the full pipeline's stage cache."""

    def __init__(self, base: H.Variants, fisn):
        from ..pipeline.runner import Pipeline, PipelineConfig

        self.base = base
        cfg = base.full.config
        self.fisn = Pipeline(PipelineConfig(device=cfg.device, crop_size=cfg.crop_size, texture_size=cfg.texture_size,
                                            backends={**cfg.backends, "synthesize": "fisn"},
                                            settings={**cfg.settings, "synthesize": fisn}))
        self.fisn._cache = base.full._cache

    def run(self, source) -> dict:
        out = self.base.run(source)
        out["fisn"] = self.fisn.run(source)
        return out

    def backend_ids(self) -> dict[str, dict[str, str]]:
        from ..pipeline.backends import STAGES_WITH_BACKENDS

        return {**self.base.backend_ids(), "fisn": {s: self.fisn.backend_id(s) for s in STAGES_WITH_BACKENDS}}

    def __getattr__(self, name):                 # device, parse, full, raw: the base's
        return getattr(self.base, name)


def select_pairs(pairs: list[Pair], folds: tuple[int, ...], limit: int | None) -> list[Pair]:
    """The pairs of ``folds`` (all when empty), taken alternately fold by fold and matched /
    mismatched, in file order, up to ``limit``; complete folds when ``limit`` is ``None``."""
    chosen = sorted({p.fold for p in pairs}) if not folds else sorted(folds)
    lists = [[p for p in pairs if p.fold == f and p.same == s] for f in chosen for s in (True, False)]
    if limit is None:
        return [p for lst in lists for p in lst]
    out: list[Pair] = []
    k = 0
    while len(out) < limit and any(k < len(lst) for lst in lists):
        out.extend(lst[k] for lst in lists if k < len(lst))
        k += 1
    return out[:limit]


# ----------------------------------------------------------------------------- one photo
def measure_photo(variants, identity, library, families: tuple[str, ...], photo: Path, seed: int, *,
                  keep_images: bool) -> tuple[dict, list | None]:
    from ..training.occlusion.occluders import composite, sample_eval_family

    rel = relative_name(photo)
    rec: dict = {"photo": rel}
    try:
        clean = variants.run(photo)
    except OccguiError as e:
        rec["status"] = f"failed: {e}"
        return rec, None
    rec["status"] = "ok"
    feats = {"clean": _features(identity, clean)}
    rng = H.case_rng(seed, rel, 0)
    fam = families[int(rng.integers(len(families)))]
    lm_w = H.landmarks_working(clean["full"])
    occ, pl = sample_eval_family(rng, library, fam, lm_w)
    occ_rgb, paste = composite(clean["full"].image.rgb, lm_w, occ, pl)
    rec["occlusion"] = {"family": fam, "occluder": occ.name, "placement": pl.to_dict(),
                        "paste_fraction": float(paste.mean())}
    strip = None
    try:
        occluded = variants.run(occ_rgb)
    except OccguiError as e:
        rec["occlusion"]["status"] = f"failed: {e}"
        feats["occluded"] = None
    else:
        rec["occlusion"]["status"] = "ok"
        feats["occluded"] = _features(identity, occluded)
        if keep_images:
            o = occluded["full"]
            strip = [clean["full"].crop.image, o.crop.image, L.colorize(o.alpha.labels), L.colorize(o.gamma.labels),
                     o.synthesis.image, identity.render(o)[0], identity.render(occluded["raw"])[0],
                     identity.render(clean["full"])[0]]
    rec["features"] = {k: ({f: v.tolist() for f, v in d.items()} if d is not None else None) for k, d in feats.items()}
    return rec, strip


def _features(identity: H.Identity, runs: dict) -> dict[str, np.ndarray]:
    out = {"photo": identity.embed_crop(runs["full"])}
    for v in (*H.VARIANTS, *(("fisn",) if "fisn" in runs else ())):
        out[f"render_{v}"], _ = identity.embed_render(runs[v])
    return out


# ----------------------------------------------------------------------------- scoring
def pair_scores(pairs: list[Pair], records: dict[str, dict], feature: str, condition: str) -> np.ndarray:
    """Cosine similarity per pair (``-1`` when a photo's feature is missing)."""
    src = {"clean": ("clean", "clean"), "occluded": ("occluded", "occluded"), "one_occluded": ("clean", "occluded")}
    ca, cb = src[condition]
    out = []
    for p in pairs:
        fa = _feature(records.get(relative_name(p.a)), ca, feature)
        fb = _feature(records.get(relative_name(p.b)), cb, feature)
        out.append(-1.0 if fa is None or fb is None else cosine_similarity(fa, fb))
    return np.array(out)


def _feature(rec: dict | None, condition: str, feature: str):
    if not rec or rec.get("status") != "ok":
        return None
    d = rec["features"].get(condition)
    return None if d is None else np.asarray(d[feature])


# ----------------------------------------------------------------------------- the run
def _run_settings(s: VerifySettings):
    settings, variants, identity, library, families = H.occluder_run_settings(
        "verify", occluders=s.occluders, device=s.device, backends=s.backends,
        backend_settings=s.backend_settings, seed=s.seed)
    if s.fisn is not None:          # one more variant: its backend ids enter the cache fingerprint
        variants = FISNVariants(variants, s.fisn)
        settings["backends"] = variants.backend_ids()
    return settings, variants, identity, library, families


def _measure_fn(s: VerifySettings, samples: set, variants, identity, library, families):
    def measure(photo):
        rel = relative_name(photo)
        rec, strip = measure_photo(variants, identity, library, families, photo, s.seed, keep_images=rel in samples)
        return rec, ({} if strip is None else {rel: strip})
    return measure


def _worker(s: VerifySettings, samples: set):
    """A batch worker's ``measure`` (its own models): :func:`occgui.eval.harness.fill_cache`."""
    return _measure_fn(s, samples, *_run_settings(s)[1:])


def run(s: VerifySettings, executor=None) -> dict:
    """Run (or resume) the benchmark and write the report into ``s.out`` (from the cached results
    of an earlier run with ``s.report_only``; pairs with a photo not yet run are then left out
    and counted). ``executor`` (:mod:`occgui.batch.executor`, default this process) runs the photos."""
    plist = read_pairs(s.pairs, s.faces)
    bad = [f for f in s.folds if not 0 <= f < plist.folds]
    if bad:
        raise OccguiError(f"--folds: the pairs file has folds 0..{plist.folds - 1}, not {bad}")
    pairs = select_pairs(plist.pairs, s.folds, s.limit)
    if not pairs:
        raise OccguiError(f"no pair of {s.pairs} has both photos under {s.faces}")
    photos = sorted({p.a for p in pairs} | {p.b for p in pairs})
    folder = Path(s.out) / "cache" / "verify"
    samples = {relative_name(p) for p in photos[:: max(1, len(photos) // SAMPLES)][:SAMPLES]}
    if s.report_only:
        cache, settings, device = H.cached_run(folder)
    else:
        settings, variants, identity, library, families = _run_settings(s)
        device = variants.device
        cache = H.open_cache(folder, settings, device=device)
        H.fill_cache(photos, cache, _measure_fn(s, samples, variants, identity, library, families),
                     name_of=relative_name, desc="verify", factory=partial(_worker, s, samples),
                     executor=executor, quiet=s.quiet)
    records = {relative_name(p): cache.load(relative_name(p)) for p in photos}
    not_run = {k for k, r in records.items() if r is None}
    listed = len(pairs)
    pairs = [p for p in pairs if relative_name(p.a) not in not_run and relative_name(p.b) not in not_run]
    if not pairs:
        raise OccguiError(f"no cached results in {folder}")
    records = {k: r for k, r in records.items() if r is not None}
    report = evaluate(pairs, records)
    held = [p for p in pairs if identity_group(p.a) == HELD_OUT_GROUP and identity_group(p.b) == HELD_OUT_GROUP]
    report["held_out_pairs"] = {"pairs": len(held), "same": int(sum(p.same for p in held)),
                                "results": evaluate(held, records)["results"] if held else {}}
    counts = {}
    for p in pairs:
        counts.setdefault(p.fold, 0)
        counts[p.fold] += 1
    report["settings"] = {**settings, "faces": str(s.faces), "pairs_file": str(s.pairs), "limit": s.limit,
                          "folds_requested": list(s.folds), "folds_in_file": plist.folds,
                          "pairs_per_fold_in_file": 2 * plist.per_fold_listed,
                          "pairs_skipped_absent_photos": plist.skipped, "pairs_available": len(plist.pairs),
                          "pairs_used": len(pairs), "pairs_left_out_not_run": listed - len(pairs),
                          "pairs_used_per_fold": counts, "photos": len(records), "photos_not_run": len(not_run),
                          "device": device, "occluders": str(s.occluders)}
    report["software"] = R.software_versions()
    report["created"] = R.timestamp()
    report["records"] = [{k: v for k, v in r.items() if k != "features"} for r in records.values()]
    report["pairs"] = [{"fold": p.fold, "same": p.same, "a": relative_name(p.a), "b": relative_name(p.b)}
                       for p in pairs]
    write_outputs(Path(s.out), report, cache, sorted(samples - not_run))
    return report


def features_of(records: dict[str, dict]) -> tuple[str, ...]:
    """:data:`FEATURES`, plus :data:`FISN_FEATURE` when every measured photo has it."""
    ok = [r for r in records.values() if r and r.get("status") == "ok"]
    has = bool(ok) and all(FISN_FEATURE in (r["features"].get("clean") or {}) for r in ok)
    return FEATURES + ((FISN_FEATURE,) if has else ())


def evaluate(pairs: list[Pair], records: dict[str, dict]) -> dict:
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    results = {}
    for feature in features_of(records):
        for cond in CONDITIONS:
            sc = pair_scores(pairs, records, feature, cond)
            results[f"{feature}/{cond}"] = {**verification_metrics(sc, same, folds), "scores": sc.tolist()}
    failed_clean = sum(1 for r in records.values() if not r or r.get("status") != "ok")
    failed_occ = sum(1 for r in records.values() if r and r.get("status") == "ok"
                     and r.get("occlusion", {}).get("status") != "ok")
    return {"results": results, "photos_failed_clean": failed_clean, "photos_failed_occluded": failed_occ}


def _label(key: str) -> str:
    feature, cond = key.split("/")
    f = {"render_full": "render (full)", "render_raw": "render (raw)", "photo": "photo crop (ref.)",
         FISN_FEATURE: "render (full, FISN)"}[feature]
    c = {"clean": "w/o Occ", "occluded": "w/ Occ", "one_occluded": "one occluded"}[cond]
    return f"{f}, {c}"


def write_outputs(out: Path, report: dict, cache: H.ItemCache, sample_rels: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    res = report["results"]
    curves = {_label(k): (v["pooled"]["fpr"], v["pooled"]["tpr"]) for k, v in res.items()
              if "pooled" in v and not k.endswith("one_occluded")}
    R.roc_plot(out / "roc.png", curves, title="LFW verification ROC (pooled over the folds used)")
    rows, titles = [], []
    for rel in sample_rels:
        p = cache.image_path(rel)
        if p.exists():
            rows.append(R.read_strip(p))
            rec = next((r for r in report["records"] if r["photo"] == rel), {})
            titles.append(f"{rel} {rec.get('occlusion', {}).get('family', '')}")
    if rows:
        R.image_grid(out / "samples.png", rows, col_titles=STRIP_TITLES, row_titles=titles)
    slim = {k: v for k, v in report.items() if k not in ("records", "pairs")}
    slim["results"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("scores", "pooled")} for k, v in res.items()}
    if report.get("held_out_pairs"):
        ho = report["held_out_pairs"]
        slim["held_out_pairs"] = {**ho, "results": {
            k: {kk: vv for kk, vv in v.items() if kk not in ("scores", "pooled")}
            for k, v in ho["results"].items()}}
    R.write_json(out / "report.json", report)
    R.write_json(out / "summary.json", slim)
    R.write_text(out / "report.md", markdown(report))


def held_out_lines(report: dict) -> list[str]:
    """The held-out-identity table of the report (Q-S pairs only)."""
    ho = report.get("held_out_pairs") or {}
    if not ho.get("pairs"):
        return ["No pair of this run has both photos of held-out identities (Q-S)."]
    rows = [[_label(k), R.pm(r["100-EER"]["mean"], r["100-EER"]["std"]),
             R.pm(r["accuracy"]["mean"], r["accuracy"]["std"]), R.pm(r["nAUC"]["mean"], r["nAUC"]["std"])]
            for k, r in ho["results"].items()]
    return [f"### Held-out identities only (Q-S): {ho['pairs']} pairs ({ho['same']} same-person)", "",
            R.md_table(["method", "100%-EER", "accuracy", "nAUC"], rows)]


def markdown(report: dict) -> str:
    s = report["settings"]
    res = report["results"]
    nf = len(next(iter(res.values()))["folds"])

    def row(name, r):
        return [name, R.pm(r["100-EER"]["mean"], r["100-EER"]["std"]),
                R.pm(r["accuracy"]["mean"], r["accuracy"]["std"]), R.pm(r["nAUC"]["mean"], r["nAUC"]["std"])]

    paper = [[k, R.pm(*e), R.pm(*a), R.pm(*n)] for k, (e, a, n) in PAPER_TABLE1.items()]
    ours = [row(_label(k), r) for k, r in res.items()]
    same_fold = any(r["threshold_from_same_fold"] for r in res.values())
    lines = [
        "# LFW verification with and without occluders (`occgui eval verify`)", "",
        f"Created {report['created']} on `{s['device']}`. Pairs file `{s['pairs_file']}`: {s['folds_in_file']} folds x "
        f"{s['pairs_per_fold_in_file']} pairs; {s['pairs_available']} pairs have both photos here "
        f"({s['pairs_skipped_absent_photos']} skipped: photo absent); **{s['pairs_used']} pairs used** from {nf} "
        f"fold(s) {sorted(int(k) for k in s['pairs_used_per_fold'])} (pairs per fold: "
        f"{', '.join(f'{k}: {v}' for k, v in s['pairs_used_per_fold'].items())}; limit {s['limit']}), "
        f"{s['photos']} photos. Seed {s['seed']}. Photos without a face: {report['photos_failed_clean']} clean, "
        f"{report['photos_failed_occluded']} occluded (scored -1)."
        + (f" **Incomplete run: {s['pairs_left_out_not_run']} selected pairs left out (a photo not run yet).**"
           if s.get("pairs_left_out_not_run") else ""), "",
        "Features: dlib 128-D embedding of the frontal render of the reconstruction (**full** pipeline, or **raw**: no "
        "merge, no de-occlusion); the photo-crop embedding is a reference without reconstruction. Score: cosine "
        "similarity. *w/ Occ*: both photos carry one seeded occluder; *one occluded*: only the second. "
        "Values: mean ± std over the folds, in %.", "",
        ("**Caution:** only one fold was used, so the accuracy threshold was chosen on the test fold itself "
         "(optimistic) and the std is 0." if same_fold else
         f"Accuracy threshold: chosen on the other {nf - 1} fold(s) for each test fold."), "",
        "## Table 1 beside ours", "",
        R.md_table(["method", "100%-EER", "accuracy", "nAUC"], paper + ours), "",
        "The paper's rows are from its Table 1 (10 folds, its 3DMM shape features, LFW in full); ours use the folds "
        "listed above on the A-S subset of LFW available here and render embeddings, so the comparison is of "
        "magnitude and of the clean-vs-occluded drop, not a like-for-like benchmark.", "",
        "**Identities:** the pairs above include identities A-P, whose (other) photos trained the parser and the "
        "landmark refiner; the table below keeps only the pairs whose two photos are of held-out identities (Q-S).",
        "",
        *held_out_lines(report), "",
        "## Occlusion drop (w/o Occ minus w/ Occ, accuracy points)", "",
        R.md_table(["feature", "w/o Occ", "w/ Occ", "drop", "paper drop"],
                   [[_label(f"{f}/clean").rsplit(", ", 1)[0], res[f"{f}/clean"]["accuracy"]["mean"],
                     res[f"{f}/occluded"]["accuracy"]["mean"],
                     res[f"{f}/clean"]["accuracy"]["mean"] - res[f"{f}/occluded"]["accuracy"]["mean"],
                     PAPER_TABLE1["paper, w/o Occ"][1][0] - PAPER_TABLE1["paper, w/ Occ"][1][0]]
                    for f in dict.fromkeys(k.split("/")[0] for k in res)],
                   digits=2), "",
        "## ROC", "", "![ROC](roc.png)", "",
        "Sample photos (photo | occluded | M_alpha | M_gamma | I_out | render full occluded | render raw occluded | "
        "render full clean):", "", "![samples](samples.png)", "",
        "## Settings", "",
        f"* backends (full): {', '.join(f'{k}={x}' for k, x in s['backends']['full'].items())}",
        *([f"* FISN variant: synthesize={s['backends']['fisn']['synthesize']}"] if "fisn" in s["backends"] else []),
        f"* software: {', '.join(f'{k} {x}' for k, x in report['software'].items())}", "",
    ]
    return "\n".join(lines)
