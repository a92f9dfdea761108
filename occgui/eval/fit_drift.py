"""Occluded-vs-clean drift of the morphable fit alone (issue 15 point 9's development harness).

``occgui eval occlusion --backend geometry=morphable`` measures the drift through the whole
pipeline and recomputes every stage per setting; tuning the fit needs only its inputs. This module

1. **collects** the fit's inputs (:class:`occgui.morphable.fit.FitTarget`: I_out, the 68
   landmarks, M_gamma, M_alpha) of each photo's clean run and of its ``full`` and ``raw`` runs with
   one pasted occluder per family -- the same occluders, placements and random streams as
   :func:`occgui.eval.occlusion.measure_case` -- through the pipeline up to ``synthesize``; they
   are saved in one ``.npz`` (:func:`save_cases` / :func:`load_cases`);
2. **fits** them with any :class:`~occgui.morphable.fit.FitSettings` and measures the drift as
   :func:`occgui.eval.occlusion.geometry_metrics` does: the clean fit's vertices scaled to a 63 mm
   eye distance, the occluded fit similarity-aligned onto them, per-vertex distances (mm) over the
   whole model (:func:`drift_stats`).

The numbers agree with ``occgui eval occlusion`` for the same photos and settings up to the
model-frame vs photo-frame rotation, which the similarity alignment removes.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OccguiError
from .metrics import aligned_vertex_distances, error_stats, scale_to_eye_distance

CLEAN = "clean"


@dataclass(frozen=True)
class FitCase:
    """One fit input: ``photo`` (``person/file.jpg``), ``family`` (an occluder family or
    :data:`CLEAN`), ``variant`` (``full`` / ``raw``; ``full`` for the clean run) and the target."""

    photo: str
    family: str
    variant: str
    target: object  # occgui.morphable.fit.FitTarget


def collect_photo(variants, library, photo: Path, occlusions, *, occluded_variants: tuple[str, ...] = ("full", "raw"),
                  log=None) -> list[FitCase]:
    """The fit inputs of one photo: its clean run (``full`` pipeline) and, for every
    ``(family, rng)`` of ``occlusions(person/file)``, the ``occluded_variants`` runs of the photo
    with one occluder of that family drawn from ``rng`` (:func:`sample_eval_family`). A failed
    clean run gives no case, a failed occluded run none for it (reported through ``log``)."""
    from ..morphable.fit import FitTarget
    from ..training.occlusion.occluders import composite, sample_eval_family
    from . import harness as H
    from .lfw import relative_name

    def target(res) -> FitTarget:
        return FitTarget.from_pipeline(res.synthesis, res.landmarks, res.gamma, res.alpha)

    rel = relative_name(photo)
    try:
        base = variants.full.run(photo, stop_after="synthesize")
    except OccguiError as e:
        if log:
            log(f"{rel}: clean run failed: {e}")
        return []
    out = [FitCase(rel, CLEAN, "full", target(base))]
    lm_w = H.landmarks_working(base)
    for fam, rng in occlusions(rel):
        occ_obj, placement = sample_eval_family(rng, library, fam, lm_w)
        rgb, _paste = composite(base.image.rgb, lm_w, occ_obj, placement)
        for name in occluded_variants:
            try:
                res = getattr(variants, name).run(rgb, stop_after="synthesize")
            except OccguiError as e:
                if log:
                    log(f"{rel} {fam} {name}: failed: {e}")
                continue
            out.append(FitCase(rel, fam, name, target(res)))
    return out


def collect_cases(photos: list[Path], families: tuple[str, ...], occluders: Path, *, seed: int = 0,
                  device: str = "cpu", log=None, backends: dict[str, str] | None = None) -> list[FitCase]:
    """Run the pipeline up to ``synthesize`` on each photo clean and with one occluder of every
    family in ``full`` and ``raw`` (the streams of ``occgui eval occlusion``); see :func:`collect_photo`.
    ``backends``: ``{stage: name}`` overrides of the full pipeline (e.g. another landmark backend)."""
    from ..training.occlusion.occluders import EVAL_FAMILIES, load_library
    from . import harness as H

    library = load_library(occluders)
    chosen, _ = H.choose_families(library, tuple(families))
    variants = H.Variants(device, backends)
    order = sorted(EVAL_FAMILIES)

    def occlusions(rel):
        return [(fam, H.case_rng(seed, rel, order.index(fam))) for fam in chosen]

    out: list[FitCase] = []
    for photo in photos:
        out.extend(collect_photo(variants, library, photo, occlusions, log=log))
    return out


def save_cases(path: Path, cases: list[FitCase]) -> None:
    """All cases in one compressed ``.npz`` (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    index = []
    for i, c in enumerate(cases):
        t = c.target
        arrays[f"{i}_image"] = t.image
        arrays[f"{i}_landmarks"] = np.asarray(t.landmarks, np.float64)
        for name in ("gamma_labels", "alpha_labels"):
            if getattr(t, name) is not None:
                arrays[f"{i}_{name}"] = np.asarray(getattr(t, name), np.uint8)
        index.append({"photo": c.photo, "family": c.family, "variant": c.variant})
    arrays["index"] = np.frombuffer(json.dumps(index).encode("utf-8"), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    Path(path).write_bytes(buf.getvalue())


def load_cases(path: Path) -> list[FitCase]:
    from ..morphable.fit import FitTarget

    p = Path(path)
    if not p.is_file():
        raise OccguiError(f"fit-case file not found: {p}")
    with np.load(p, allow_pickle=False) as z:
        index = json.loads(z["index"].tobytes().decode("utf-8"))
        out = []
        for i, e in enumerate(index):
            t = FitTarget(image=z[f"{i}_image"], landmarks=z[f"{i}_landmarks"],
                          gamma_labels=z[f"{i}_gamma_labels"] if f"{i}_gamma_labels" in z else None,
                          alpha_labels=z[f"{i}_alpha_labels"] if f"{i}_alpha_labels" in z else None)
            out.append(FitCase(e["photo"], e["family"], e["variant"], t))
    return out


def drift_stats(clean_vertices: np.ndarray, occluded_vertices: np.ndarray, landmark_ids: np.ndarray,
                vertex_ids: np.ndarray | None = None) -> dict[str, float]:
    """Mean / median / p90 / max per-vertex distance (mm) of the occluded fit to the clean one,
    as ``occgui eval occlusion`` measures it (clean scaled to a 63 mm eye distance, similarity
    alignment); ``vertex_ids`` restricts the alignment and the statistics to a vertex subset."""
    clean = np.asarray(clean_vertices, np.float64)
    occ = np.asarray(occluded_vertices, np.float64)
    scaled, _ = scale_to_eye_distance(clean, clean[np.asarray(landmark_ids)])
    if vertex_ids is not None:
        scaled, occ = scaled[vertex_ids], occ[vertex_ids]
    d, _ = aligned_vertex_distances(occ, scaled, scale=True)
    return error_stats(d)


def redetect_cases(cases: list[FitCase], mode: str, detect=None, dense: bool = False) -> list[FitCase]:
    """The cases with Eq. 12's landmarks re-detected on I_out as the ``morphable`` backend does
    with ``MorphableSettings.iout_landmarks = mode`` and, with ``dense``, MediaPipe's mesh on I_out
    as the dense term's target (the same function,
    :func:`occgui.geometry.morphable_mesh.redetected_target`; the collected cases hold no landmark-stage
    mesh, so with ``mode`` "off" there is no dense target)."""
    from ..geometry.morphable_mesh import redetected_target

    return [FitCase(c.photo, c.family, c.variant, redetected_target(c.target, mode, detect, dense=dense))
            for c in cases]


def fit_cases(model, cases: list[FitCase], settings, log=None, expression_prior=None
              ) -> dict[tuple[str, str, str], object]:
    """``(photo, family, variant) -> FitResult`` of every case with one fitter
    (``expression_prior``: :class:`occgui.morphable.expression_prior.ExpressionPrior` or None)."""
    from ..morphable.fit import MorphableFitter

    fitter = MorphableFitter(model, settings, expression_prior)
    out = {}
    for c in cases:
        out[(c.photo, c.family, c.variant)] = fitter.fit(c.target)
        if log:
            log(f"{c.photo} {c.family} {c.variant}: {out[(c.photo, c.family, c.variant)].seconds:.2f} s")
    return out


def summarize_drift(model, fits: dict, cases: list[FitCase], vertex_ids: np.ndarray | None = None) -> dict:
    """``{family: {variant: {"mean", "p90", "cases"}}}`` plus ``"all"``, and the clean landmark
    reprojection error (inter-ocular) of the clean fits."""
    rows: dict[str, dict[str, list]] = {}
    for c in cases:
        if c.family == CLEAN or (c.photo, CLEAN, "full") not in fits:
            continue
        s = drift_stats(fits[(c.photo, CLEAN, "full")].vertices, fits[(c.photo, c.family, c.variant)].vertices,
                        model.landmarks, vertex_ids)
        for fam in (c.family, "all"):
            rows.setdefault(fam, {}).setdefault(c.variant, []).append(s)
    out: dict = {}
    for fam, per in rows.items():
        out[fam] = {v: {"mean": float(np.mean([s["mean"] for s in ss])), "p90": float(np.mean([s["p90"] for s in ss])),
                        "cases": len(ss)} for v, ss in per.items()}
    clean = [c for c in cases if c.family == CLEAN]
    errs = [fits[(c.photo, CLEAN, "full")].landmark_error(c.target.landmarks) for c in clean]
    out["clean_landmark_error"] = {"mean": float(np.mean(errs)) if errs else float("nan"),
                                   "max": float(np.max(errs)) if errs else float("nan"), "photos": len(errs)}
    return out

