"""``occgui eval natural``: real occlusions, checked against the same person's other photos
(issue point 2; paper §5's LFW experiments use real photos).

Pasted occluders are easier than real ones; this checks that the gains carry over. For every
photo of ``natural_occlusions.csv`` (hands, sunglasses, microphones, hats and hair, scarves, ...;
no masks exist) the photo runs through the ``full`` and ``raw`` pipelines, and up to ``--others``
*other* photos of the same person (not themselves listed as occluded; evenly spread over the
person's sorted photos) run through the full pipeline as references. Measured per case:

* ``identity``: mean dlib embedding distance (and the fraction below dlib's 0.6 same-person
  threshold) to the other photos' crops, for the occluded crop itself (``photo``), I_out, and the
  frontal renders of the ``full`` and ``raw`` reconstructions; the reference row
  ``others`` is the mean distance among the other photos themselves (clean vs clean).
* ``shape``: mean distance (mm) between the reconstruction's 68 landmark vertices and those of
  each other photo's reconstruction, after scaling both to a 63 mm eye-centre distance and a
  similarity alignment; the same over all vertices (same topology); reference ``others``:
  among the other photos' reconstructions.

Results are grouped by occluder type and by severity. The list has no random choices; ``--seed``
is recorded only.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import OccguiError
from . import harness as H
from . import report as R
from .embedding import SAME_PERSON_THRESHOLD
from .lfw import NaturalCase, identity_group, read_natural_list, relative_name
from .metrics import aligned_vertex_distances, euclidean_distance, scale_to_eye_distance

IDENTITY_ROWS = ("photo", "iout", "render_full", "render_raw")
SAMPLES = 8
STRIP_TITLES = ["photo", "I_fac", "M_alpha", "M_gamma", "I_out", "render full", "render raw", "other photo"]


@dataclass
class NaturalSettings:
    faces: Path
    list: Path
    out: Path
    limit: int | None = None
    seed: int = 0
    device: str = "auto"
    backends: dict = field(default_factory=dict)
    #: stage -> typed settings of its backend (``--option STAGE.FIELD=VALUE``)
    backend_settings: dict = field(default_factory=dict)
    others: int = 5
    quiet: bool = False
    report_only: bool = False


def spread_by_type(cases: list[NaturalCase], limit: int | None) -> list[NaturalCase]:
    """Round-robin over the occluder types (sorted), each in list order, up to ``limit``."""
    if limit is None or limit >= len(cases):
        return list(cases)
    by: dict[str, list[NaturalCase]] = {}
    for c in cases:
        by.setdefault(c.occluder, []).append(c)
    out = []
    for k in itertools.count():
        row = [by[t][k] for t in sorted(by) if len(by[t]) > k]
        if not row:
            break
        out.extend(row)
    return out[:limit]


def other_photos(case: NaturalCase, listed: set[Path], k: int) -> list[Path]:
    """Up to ``k`` photos of the same person that are not listed as occluded, evenly spread."""
    cands = sorted(p for p in case.photo.parent.glob("*.jpg") if p not in listed and p != case.photo)
    if len(cands) <= k:
        return cands
    idx = np.unique(np.floor(np.linspace(0, len(cands), k, endpoint=False)).astype(int))
    return [cands[i] for i in idx]


# ----------------------------------------------------------------------------- references
def reference(variants: H.Variants, identity: H.Identity, cache: H.ItemCache, photo: Path) -> dict | None:
    """Embedding of the crop and the 68 landmark vertices + all vertices (scaled to 63 mm) of a
    clean reference photo's full reconstruction (cached); ``None`` when the pipeline fails."""
    rel = relative_name(photo)
    hit = cache.load(rel)
    if hit is not None:
        return hit if hit.get("status") == "ok" else None
    try:
        run = variants.full.run(photo)
    except OccguiError as e:
        cache.save(rel, {"status": f"failed: {e}"})
        return None
    lm = H.landmark_vertices(run.mesh)
    verts, f = scale_to_eye_distance(run.mesh.vertices, lm)
    rec = {"status": "ok", "embedding": identity.embed_crop(run).tolist(),
           "landmarks3d": (lm - lm.mean(axis=0)) * f + lm.mean(axis=0)}
    target = cache.path(rel, ".vertices.npy")
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp.npy")      # batch workers share this cache
    np.save(tmp, verts.astype(np.float32))
    os.replace(tmp, target)
    cache.save(rel, rec)
    return cache.load(rel)


def _vertices(cache: H.ItemCache, photo: Path) -> np.ndarray:
    return np.load(cache.path(relative_name(photo), ".vertices.npy")).astype(np.float64)


def _shape_distance(a_lm, a_v, b_lm, b_v) -> tuple[float, float]:
    """(mean landmark distance, mean vertex distance) after similarity alignment of a onto b (mm)."""
    d_lm, _ = aligned_vertex_distances(np.asarray(a_lm), np.asarray(b_lm))
    if a_v is None or b_v is None or a_v.shape != b_v.shape:
        return float(d_lm.mean()), float("nan")
    d_v, _ = aligned_vertex_distances(a_v, b_v)
    return float(d_lm.mean()), float(d_v.mean())


# ----------------------------------------------------------------------------- one case
def measure_case(variants, identity, ref_cache, case: NaturalCase, others: list[Path], *,
                 keep_images: bool) -> tuple[dict, list | None]:
    rec: dict = {"photo": relative_name(case.photo), "occluder": case.occluder, "region": case.region,
                 "severity": case.severity, "others": [relative_name(p) for p in others]}
    refs = [(p, reference(variants, identity, ref_cache, p)) for p in others]
    refs = [(p, r) for p, r in refs if r is not None]
    rec["others_ok"] = len(refs)
    t0 = time.perf_counter()
    try:
        runs = variants.run(case.photo)
    except OccguiError as e:
        rec["status"] = f"failed: {e}"
        return rec, None
    rec["status"] = "ok"
    rec["seconds"] = time.perf_counter() - t0
    full = runs["full"]
    box = identity.crop_box(full)
    embs = {"photo": identity.embed(full.crop.image, box), "iout": identity.embed(full.synthesis.image, box)}
    renders = {}
    for v in H.VARIANTS:
        embs[f"render_{v}"], renders[v] = identity.embed_render(runs[v])
    rec["occluder_pixels"] = int(L.mask_of(full.alpha.labels, L.OCCLUDING).sum())
    if refs:
        ref_embs = [np.asarray(r["embedding"]) for _, r in refs]
        rec["identity"] = {}
        for row, e in embs.items():
            d = [euclidean_distance(e, o) for o in ref_embs]
            rec["identity"][row] = {"distance": float(np.mean(d)),
                                    "same_person_rate": float(np.mean([x < SAME_PERSON_THRESHOLD for x in d]))}
        pair = [euclidean_distance(a, b) for a, b in itertools.combinations(ref_embs, 2)]
        if pair:
            rec["identity"]["others"] = {"distance": float(np.mean(pair)),
                                         "same_person_rate": float(np.mean([x < SAME_PERSON_THRESHOLD for x in pair]))}
        rec["shape"] = {}
        for v in H.VARIANTS:
            lm = H.landmark_vertices(runs[v].mesh)
            verts, f = scale_to_eye_distance(runs[v].mesh.vertices, lm)
            lm_s = (lm - lm.mean(axis=0)) * f + lm.mean(axis=0)
            ds = [_shape_distance(lm_s, verts, r["landmarks3d"], _vertices(ref_cache, p)) for p, r in refs]
            rec["shape"][v] = {"landmark_mm": float(np.mean([d[0] for d in ds])),
                               "vertex_mm": float(np.nanmean([d[1] for d in ds])) if ds else float("nan")}
        pairs = [_shape_distance(ra["landmarks3d"], _vertices(ref_cache, pa),
                                 rb["landmarks3d"], _vertices(ref_cache, pb))
                 for (pa, ra), (pb, rb) in itertools.combinations(refs, 2)]
        if pairs:
            rec["shape"]["others"] = {"landmark_mm": float(np.mean([d[0] for d in pairs])),
                                      "vertex_mm": float(np.nanmean([d[1] for d in pairs]))}
    strip = None
    if keep_images:
        other_img = None
        if refs:
            from ..imageio import load_image

            other_img = load_image(refs[0][0]).rgb
        strip = [load_photo_square(case.photo), full.crop.image, L.colorize(full.alpha.labels),
                 L.colorize(full.gamma.labels), full.synthesis.image, renders["full"], renders["raw"], other_img]
    return rec, strip


def load_photo_square(path: Path) -> np.ndarray:
    from ..imageio import load_image

    return load_image(path).rgb


# ----------------------------------------------------------------------------- the run
def _state(s: NaturalSettings):
    """(settings that determine the results, variants, identity, reference cache) of a run."""
    variants = H.Variants(s.device, s.backends, s.backend_settings)
    identity = H.Identity()
    settings = {"command": "natural", "backends": variants.backend_ids(), "others": s.others,
                "crop_size": variants.full.config.crop_size, "texture_size": variants.full.config.texture_size,
                "render_size": H.RENDER_SIZE}
    ref_cache = H.ItemCache(Path(s.out) / "cache" / "natural_references",
                            H.fingerprint({"references": settings["backends"]["full"], "crop": settings["crop_size"]}))
    return settings, variants, identity, ref_cache


def _measure_fn(s: NaturalSettings, listed: set, samples: set, variants, identity, ref_cache):
    def measure(c):
        rel = relative_name(c.photo)
        rec, strip = measure_case(variants, identity, ref_cache, c, other_photos(c, listed, s.others),
                                  keep_images=rel in samples)
        return rec, ({} if strip is None else {rel: strip})
    return measure


def _worker(s: NaturalSettings, listed: set, samples: set):
    """A batch worker's ``measure`` (its own models; the reference cache is shared through the disk)."""
    return _measure_fn(s, listed, samples, *_state(s)[1:])


def run(s: NaturalSettings, executor=None) -> dict:
    """Run (or resume) the benchmark and write the report into ``s.out`` (from the cached results
    of an earlier run with ``s.report_only``). ``executor`` (:mod:`occgui.batch.executor`, default
    this process) runs the cases."""
    all_cases, missing = read_natural_list(s.list, s.faces)
    if not all_cases:
        raise OccguiError(f"none of the photos listed in {s.list} exist under {s.faces}")
    listed = {c.photo for c in all_cases}
    cases = spread_by_type(all_cases, s.limit)
    folder = Path(s.out) / "cache" / "natural"
    if s.report_only:
        cache, settings, device = H.cached_run(folder)
    else:
        settings, variants, identity, ref_cache = _state(s)
        device = variants.device
        cache = H.open_cache(folder, settings, device=device)
    samples, seen = set(), set()
    for c in cases:
        if c.occluder not in seen and len(samples) < SAMPLES:
            samples.add(relative_name(c.photo))
            seen.add(c.occluder)
    if not s.report_only:
        H.fill_cache(cases, cache, _measure_fn(s, listed, samples, variants, identity, ref_cache),
                     name_of=lambda c: relative_name(c.photo), desc="natural",
                     factory=partial(_worker, s, listed, samples), executor=executor, quiet=s.quiet)
    loaded = [(relative_name(c.photo), cache.load(relative_name(c.photo))) for c in cases]
    records = [r for _, r in loaded if r is not None]
    if not records:
        raise OccguiError(f"no cached results in {folder}")
    report = summarize(records)
    report["settings"] = {**settings, "faces": str(s.faces), "list": str(s.list), "limit": s.limit, "seed": s.seed,
                          "listed": len(all_cases) + len(missing), "listed_missing": missing, "cases": len(cases),
                          "device": device, "missing_from_cache": [rel for rel, r in loaded if r is None]}
    report["software"] = R.software_versions()
    report["created"] = R.timestamp()
    report["records"] = records
    write_outputs(Path(s.out), report, cache, [rel for rel, r in loaded if r is not None and rel in samples])
    return report


# ----------------------------------------------------------------------------- aggregation
def _group(records: list[dict]) -> dict:
    ok = [r for r in records if r.get("status") == "ok"]
    with_refs = [r for r in ok if "identity" in r]
    row = {"cases": len(records), "failed": len(records) - len(ok), "with_other_photos": len(with_refs)}
    for name in (*IDENTITY_ROWS, "others"):
        row[f"identity_{name}"] = R.describe([r["identity"].get(name, {}).get("distance") for r in with_refs])
        row[f"same_person_{name}"] = R.describe([r["identity"].get(name, {}).get("same_person_rate")
                                                 for r in with_refs])
    for name in (*H.VARIANTS, "others"):
        row[f"landmark_mm_{name}"] = R.describe([r["shape"].get(name, {}).get("landmark_mm") for r in with_refs])
        row[f"vertex_mm_{name}"] = R.describe([r["shape"].get(name, {}).get("vertex_mm") for r in with_refs])
    return row


def summarize(records: list[dict]) -> dict:
    by_type = {t: _group([r for r in records if r["occluder"] == t]) for t in sorted({r["occluder"] for r in records})}
    sev_order = [s for s in ("small", "medium", "large") if any(r["severity"] == s for r in records)]
    sev_order += sorted({r["severity"] for r in records} - set(sev_order))
    by_sev = {s: _group([r for r in records if r["severity"] == s]) for s in sev_order}
    groups = sorted({identity_group(r["photo"]) for r in records})
    by_ident = {g: _group([r for r in records if identity_group(r["photo"]) == g]) for g in groups}
    return {"by_occluder": by_type, "by_severity": by_sev, "by_identity_group": by_ident, "all": _group(records)}


def write_outputs(out: Path, report: dict, cache: H.ItemCache, sample_rels: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    groups = {**report["by_occluder"], "all": report["all"]}
    names = list(groups)

    def m(row, key):
        x = row[key]
        return x["mean"] if x["n"] else None

    R.bar_chart(out / "identity_by_occluder.png", names,
                {lab: [m(groups[g], f"identity_{k}") for g in names]
                 for lab, k in (("occluded photo", "photo"), ("I_out", "iout"), ("render raw", "render_raw"),
                                ("render full", "render_full"), ("other photos (ref.)", "others"))},
                ylabel="dlib distance to other photos", title="Real occlusions: identity distance to the person's "
                "other photos (lower is better; same person < 0.6)")
    sev = report["by_severity"]
    R.bar_chart(out / "identity_by_severity.png", list(sev),
                {lab: [m(sev[g], f"identity_{k}") for g in sev]
                 for lab, k in (("occluded photo", "photo"), ("I_out", "iout"), ("render raw", "render_raw"),
                                ("render full", "render_full"), ("other photos (ref.)", "others"))},
                ylabel="dlib distance", title="Real occlusions by severity")
    R.bar_chart(out / "shape_by_occluder.png", names,
                {lab: [m(groups[g], f"landmark_mm_{k}") for g in names]
                 for lab, k in (("full (= raw)", "full"), ("other photos (ref.)", "others"))},
                ylabel="mm", title="Landmark-vertex distance to the other photos' reconstructions")
    rows, titles = [], []
    for rel in sample_rels:
        p = cache.image_path(rel)
        if p.exists():
            rows.append(R.read_strip(p))
            rec = next((r for r in report["records"] if r["photo"] == rel), {})
            titles.append(f"{rel} {rec.get('occluder', '')} {rec.get('severity', '')}")
    if rows:
        R.image_grid(out / "samples.png", rows, col_titles=STRIP_TITLES, row_titles=titles)
    R.write_json(out / "report.json", report)
    R.write_json(out / "summary.json", {k: v for k, v in report.items() if k != "records"})
    R.write_text(out / "report.md", markdown(report))


def markdown(report: dict) -> str:
    s = report["settings"]
    a = report["all"]

    def v(row, key, d=3):
        x = row[key]
        return R.pm(x["mean"], x["std"], d) if x["n"] else "-"

    def table(groups: dict) -> str:
        return R.md_table(
            ["group", "cases", "failed", "with others", "photo", "I_out", "render raw", "render full", "others (ref.)",
             "same-person rate photo", "same-person rate render full"],
            [[g, r["cases"], r["failed"], r["with_other_photos"], v(r, "identity_photo"), v(r, "identity_iout"),
              v(r, "identity_render_raw"), v(r, "identity_render_full"), v(r, "identity_others"),
              v(r, "same_person_photo", 2), v(r, "same_person_render_full", 2)] for g, r in groups.items()])

    def shape_table(groups: dict) -> str:
        return R.md_table(["group", "landmarks full (= raw) mm", "landmarks others (ref.) mm", "vertices full mm",
                           "vertices others (ref.) mm"],
                          [[g, v(r, "landmark_mm_full", 2), v(r, "landmark_mm_others", 2), v(r, "vertex_mm_full", 2),
                            v(r, "vertex_mm_others", 2)] for g, r in groups.items()])

    lines = [
        "# Real occlusions (`occgui eval natural`)", "",
        f"Created {report['created']} on `{s['device']}`. {s['cases']} of the {s['listed']} photos listed in "
        f"`{s['list']}` (limit {s['limit']}; {len(s['listed_missing'])} listed photos absent); references: up to "
        f"{s['others']} other photos of the same person that are not listed as occluded.", "",
        "Identity: mean dlib embedding distance to the person's other photos (lower is better; dlib's same-person "
        "threshold is 0.6). *photo* = the occluded crop I_fac itself; *I_out* = the de-occluded crop; *render* = the "
        "frontal render of the reconstruction, **raw** (no merge, no de-occlusion) vs **full**; *others* = the other "
        "photos among themselves (clean vs clean, what a perfect de-occlusion could reach).", "",
        "## All listed photos", "", table({"all": a}), "",
        "## By occluder type", "", table(report["by_occluder"]), "",
        "## By severity", "", table(report["by_severity"]), "",
        "## By identity group", "",
        "The networks were trained on identities A-P (pasted occluders, other photos); these real photos were not "
        "used in training, but the faces of A-P were.", "", table(report.get("by_identity_group", {})), "",
        "## Shape consistency with the other photos' reconstructions", "",
        "Mean distance after scaling to a 63 mm eye-centre distance and similarity alignment. Raw and full share the "
        "geometry stage, which reads only the landmarks, so their shapes are identical by construction.", "",
        shape_table({"all": a, **report["by_occluder"]}), "", shape_table(report["by_severity"]), "",
        "## Plots", "", "![identity by occluder](identity_by_occluder.png)", "",
        "![identity by severity](identity_by_severity.png)", "", "![shape](shape_by_occluder.png)", "",
        "Sample cases (photo | I_fac | M_alpha | M_gamma | I_out | render full | render raw | another photo of the "
        "person):", "", "![samples](samples.png)", "",
        "## Settings", "",
        f"* backends (full): {', '.join(f'{k}={x}' for k, x in s['backends']['full'].items())}",
        f"* software: {', '.join(f'{k} {x}' for k, x in report['software'].items())}", "",
    ]
    return "\n".join(lines)
