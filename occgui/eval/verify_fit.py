"""``occgui eval verify-fit``: the paper's Table 1 protocol with the morphable fit's identity
coefficients as the verification feature (§5, issue 15 point 9).

The paper verifies LFW pairs with "the shapes" its 3DMM fit recovers, with and without occluders
(89.87 % / 86.49 % accuracy). Here the feature of a photo is the identity coefficient vector α̃ of
the morphable fit (:class:`occgui.morphable.fit.MorphableFitter`) to what the pipeline made of it
(I_out, landmarks, M_gamma, M_alpha, collected by :func:`occgui.eval.fit_drift.collect_photo`);
a pair's score is the cosine similarity of the two vectors.

Protocol (that of ``occgui eval verify``): the pairs of an LFW ``pairs.txt``; every photo clean and
with one occluder of a family drawn uniformly from the evaluation families the library serves,
with the same random stream as ``occgui eval verify`` (``default_rng([seed, sha1(person/file),
0])``), so both commands occlude a photo identically. Conditions: ``clean`` (w/o Occ), ``occluded``
(w/ Occ, both photos occluded), ``one_occluded`` (the second only). Features: ``identity_full``
(the fit to the full pipeline's I_out) and, with ``--variants full,raw``, ``identity_raw`` (to the
occluded crop itself: no merge, no de-occlusion). Accuracy: threshold from the other folds.

Files in OUT: ``cases.npz`` (the collected fit inputs; a re-run collects only photos it lacks),
``fits-<digest>.json`` (the fitted coefficients per fit-settings digest), ``report.json``,
``report.md``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import OccguiError
from . import report as R
from .fit_drift import CLEAN, FitCase, collect_photo, load_cases, save_cases
from .lfw import HELD_OUT_GROUP, identity_group, read_pairs, relative_name
from .metrics import cosine_similarity, verification_metrics
from .verify import PAPER_TABLE1, select_pairs

CONDITIONS = ("clean", "occluded", "one_occluded")
PAPER_DROP = PAPER_TABLE1["paper, w/o Occ"][1][0] - PAPER_TABLE1["paper, w/ Occ"][1][0]


@dataclass
class VerifyFitSettings:
    faces: Path
    pairs: Path
    occluders: Path
    out: Path
    limit: int | None = None
    folds: tuple[int, ...] = ()
    seed: int = 0
    device: str = "cpu"
    #: occluded pipelines whose fits are features: "full" and/or "raw"
    variants: tuple[str, ...] = ("full",)
    #: :class:`occgui.morphable.fit.FitSettings` of the fit (None: its defaults)
    fit: object = None
    #: Eq. 12's landmarks re-detected on I_out before the fit, as the ``morphable`` backend does
    #: (``MorphableSettings.iout_landmarks``; None: the backend's default)
    iout_landmarks: str | None = None
    #: the expression prior of the fit, as ``MorphableSettings.expression_prior`` ('off', 'learned'
    #: or a file; None: the backend's default)
    expression_prior: str | None = None
    quiet: bool = False
    #: only collect the fit inputs (``cases.npz``), no fit and no report
    collect_only: bool = False
    log: object = field(default=None, repr=False)


def occluded_family(rel: str, seed: int, families: tuple[str, ...]):
    """``[(family, rng)]``: the family ``occgui eval verify`` draws for the photo, and the stream
    that then places its occluder."""
    from .harness import case_rng

    rng = case_rng(seed, rel, 0)
    return [(families[int(rng.integers(len(families)))], rng)]


def pair_scores(pairs, features: dict[str, dict[str, np.ndarray]], variant: str, condition: str) -> np.ndarray:
    """Cosine similarity of the identity coefficients per pair; ``-1`` when a photo has no fit
    (a failed run counts as an error, as in ``occgui eval verify``). ``features``: photo ->
    ``"clean"`` / ``"occluded_<variant>"`` -> vector."""
    src = {"clean": ("clean", "clean"), "occluded": ("occluded", "occluded"), "one_occluded": ("clean", "occluded")}
    ca, cb = src[condition]

    def key(c):
        return "clean" if c == "clean" else f"occluded_{variant}"

    out = []
    for p in pairs:
        fa = features.get(relative_name(p.a), {}).get(key(ca))
        fb = features.get(relative_name(p.b), {}).get(key(cb))
        out.append(-1.0 if fa is None or fb is None else cosine_similarity(fa, fb))
    return np.array(out)


def evaluate(pairs, features: dict, variants: tuple[str, ...]) -> dict:
    """``{"identity_<variant>/<condition>": verification metrics + scores}``."""
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    out = {}
    for v in variants:
        for cond in CONDITIONS:
            sc = pair_scores(pairs, features, v, cond)
            out[f"identity_{v}/{cond}"] = {**verification_metrics(sc, same, folds), "scores": sc.tolist()}
    return out


def _digest(fit_settings, model_name: str, iout_landmarks: str, prior_path=None) -> str:
    key = f"{model_name}|{fit_settings!r}" + ("" if iout_landmarks == "off" else f"|iolm-{iout_landmarks}")
    if prior_path is not None:
        from ..resources import checkpoint_digest

        key += f"|eprior-{checkpoint_digest(prior_path)}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _collect(s: VerifyFitSettings, photos: list[Path], log) -> list[FitCase]:
    from ..training.occlusion.occluders import load_library
    from . import harness as H

    path = Path(s.out) / "cases.npz"
    cases = load_cases(path) if path.is_file() else []
    have = {c.photo for c in cases if c.family == CLEAN}
    done_meta = Path(s.out) / "cases.json"
    meta = json.loads(done_meta.read_text()) if done_meta.is_file() else {}
    if meta and (meta.get("seed") != s.seed or not set(s.variants) <= set(meta.get("variants", ()))):
        raise OccguiError(f"{path} was collected with seed {meta.get('seed')} and variants "
                          f"{','.join(meta.get('variants', ()))}; use another output folder")
    tried = set(meta.get("photos", []))
    todo = [p for p in photos if relative_name(p) not in have and relative_name(p) not in tried]
    if not todo:
        return cases
    library = load_library(s.occluders)
    families, _ = H.choose_families(library)
    variants = H.Variants(s.device)
    for i, photo in enumerate(todo):
        cases.extend(collect_photo(variants, library, photo, lambda rel: occluded_family(rel, s.seed, families),
                                   occluded_variants=tuple(s.variants), log=log))
        tried.add(relative_name(photo))
        if log:
            log(f"collected {i + 1}/{len(todo)} {relative_name(photo)}")
    save_cases(path, cases)
    R.write_json(done_meta, {"seed": s.seed, "variants": list(s.variants), "families": list(families),
                             "photos": sorted(tried)})
    return cases


def run(s: VerifyFitSettings) -> dict:
    """Collect (or reuse) the fit inputs, fit (or reuse the fits of the same settings), score and
    write ``report.json`` / ``report.md`` into ``s.out``; returns the report."""
    import time
    from dataclasses import replace

    from ..geometry.morphable_mesh import IOUT_LANDMARK_MODES, fit_configuration, redetected_target
    from ..geometry.settings import MorphableSettings
    from ..morphable import load_default_model
    from ..morphable.fit import MorphableFitter

    bad = [v for v in s.variants if v not in ("full", "raw")]
    if bad or not s.variants:
        raise OccguiError(f"--variants takes full and/or raw, got {','.join(s.variants) or 'nothing'}")
    plist = read_pairs(s.pairs, s.faces)
    pairs = select_pairs(plist.pairs, s.folds, s.limit)
    if not pairs:
        raise OccguiError(f"no pair of {s.pairs} has both photos under {s.faces}")
    photos = sorted({p.a for p in pairs} | {p.b for p in pairs})
    Path(s.out).mkdir(parents=True, exist_ok=True)
    log = s.log if not s.quiet else None
    t0 = time.perf_counter()
    cases = _collect(s, photos, log)
    t_collect = time.perf_counter() - t0
    if s.collect_only:
        return {"collected_cases": len(cases), "seconds": t_collect}
    model = load_default_model()
    backend = MorphableSettings()
    if s.expression_prior is not None:
        backend = replace(backend, expression_prior=s.expression_prior)
    fs, prior, prior_path = fit_configuration(backend, model, s.device)   # what the backend fits with
    if s.fit is not None:
        fs = s.fit
    iolm = s.iout_landmarks if s.iout_landmarks is not None else backend.iout_landmarks
    if iolm not in IOUT_LANDMARK_MODES:
        raise OccguiError(f"--iout-landmarks must be one of {', '.join(IOUT_LANDMARK_MODES)}, got {iolm!r}")
    fits_path = Path(s.out) / f"fits-{_digest(fs, model.name, iolm, prior_path)}.json"
    stored = json.loads(fits_path.read_text()) if fits_path.is_file() else {}
    wanted = {relative_name(p) for p in photos}
    fitter = None
    seconds = []
    for c in cases:
        if c.photo not in wanted or (c.family != CLEAN and c.variant not in s.variants):
            continue
        key = "clean" if c.family == CLEAN else f"occluded_{c.variant}"
        if key in stored.get(c.photo, {}):
            continue
        fitter = fitter or MorphableFitter(model, fs, prior)
        target = redetected_target(c.target, iolm, dense=fs.dense_weight > 0)   # what the backend fits
        res = fitter.fit(target)
        seconds.append(res.seconds)
        stored.setdefault(c.photo, {})[key] = {"identity": res.coefficients.identity.tolist(),
                                               "family": c.family, "seconds": res.seconds,
                                               "landmark_error": res.landmark_error(target.landmarks)}
        if log and len(seconds) % 20 == 0:
            log(f"fitted {len(seconds)} ({c.photo})")
            R.write_json(fits_path, stored)
    R.write_json(fits_path, stored)
    features = {ph: {k: np.asarray(v["identity"]) for k, v in d.items()} for ph, d in stored.items() if ph in wanted}
    report: dict = {"results": evaluate(pairs, features, tuple(s.variants))}
    held = [p for p in pairs if identity_group(p.a) == HELD_OUT_GROUP and identity_group(p.b) == HELD_OUT_GROUP]
    report["held_out_pairs"] = {"pairs": len(held), "same": int(sum(p.same for p in held))}
    fams: dict[str, int] = {}
    for d in stored.values():
        for k, v in d.items():
            if k.startswith("occluded"):
                fams[v["family"]] = fams.get(v["family"], 0) + 1
    report["settings"] = {"faces": str(s.faces), "pairs_file": str(s.pairs), "occluders": str(s.occluders),
                          "limit": s.limit, "folds": list(s.folds), "seed": s.seed, "device": s.device,
                          "variants": list(s.variants), "fit_settings": repr(fs), "model": model.name,
                          "iout_landmarks": iolm, "expression_prior": "" if prior_path is None else str(prior_path),
                          "pairs_used": len(pairs), "photos": len(photos),
                          "photos_without_clean_fit": sorted(ph for ph in wanted if "clean" not in stored.get(ph, {})),
                          "occluded_fits_per_family": fams}
    report["seconds"] = {"collect": t_collect, "fits_this_run": len(seconds),
                         "fit_median": float(np.median(seconds)) if seconds else None}
    report["software"] = R.software_versions()
    report["created"] = R.timestamp()
    R.write_json(Path(s.out) / "report.json", report)
    (Path(s.out) / "report.md").write_text(markdown(report))
    return report


def drops(report: dict) -> dict[str, float]:
    """Accuracy drop (w/o Occ minus w/ Occ, points) per feature."""
    res = report["results"]
    return {f: res[f"{f}/clean"]["accuracy"]["mean"] - res[f"{f}/occluded"]["accuracy"]["mean"]
            for f in dict.fromkeys(k.split("/")[0] for k in res)}


def markdown(report: dict) -> str:
    s = report["settings"]
    res = report["results"]

    def row(name, r):
        return [name, R.pm(r["100-EER"]["mean"], r["100-EER"]["std"]),
                R.pm(r["accuracy"]["mean"], r["accuracy"]["std"]), R.pm(r["nAUC"]["mean"], r["nAUC"]["std"])]

    names = {"clean": "w/o Occ", "occluded": "w/ Occ", "one_occluded": "one occluded"}
    paper = [[k, R.pm(*e), R.pm(*a), R.pm(*n)] for k, (e, a, n) in PAPER_TABLE1.items()]
    ours = [row(f"identity coefficients ({k.split('/')[0].split('_')[1]}), {names[k.split('/')[1]]}", r)
            for k, r in res.items()]
    dr = drops(report)
    return "\n".join([
        "# LFW verification with the fitted identity coefficients (`occgui eval verify-fit`)", "",
        f"Created {report['created']}. Pairs `{s['pairs_file']}`: **{s['pairs_used']} pairs**, {s['photos']} photos "
        f"({report['held_out_pairs']['pairs']} pairs of held-out Q-S identities). Seed {s['seed']}. Model "
        f"`{s['model']}`. Feature: the identity coefficients α̃ of the morphable fit; score: cosine similarity. "
        f"Photos without a clean fit (scored -1): {len(s['photos_without_clean_fit'])}. Occluded fits per family: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(s['occluded_fits_per_family'].items()))}.", "",
        R.md_table(["method", "100%-EER", "accuracy", "nAUC"], paper + ours), "",
        "## Occlusion drop (accuracy points, w/o Occ minus w/ Occ)", "",
        R.md_table(["feature", "drop", "paper drop"], [[f, d, PAPER_DROP] for f, d in dr.items()], digits=2), "",
        f"Fit settings: `{s['fit_settings']}`; Eq. 12's landmarks on I_out: {s.get('iout_landmarks', '?')}; "
        f"expression prior: {s.get('expression_prior') or 'off (Eq. 14)'}", "",
        f"Software: {', '.join(f'{k} {x}' for k, x in report['software'].items())}", "",
    ])
