"""``occgui eval scan``: ground-truth geometry from a textured head scan (issue point 4).

The paper measures occlusion robustness on MICC Florence scans with artificial occluders and
reports the 90 %-largest per-vertex error as heat maps (§5, Fig. 4). MICC is not available here;
the LeePerrySmith head scan (``../shared/data/scans``) is the ground truth instead:

1. **Scan.** The GLB mesh (trimesh) with its colour map (the folder's ``*COL*`` image; the
   trimesh-loaded UVs index it top-down, as three.js's example applies it). Axes: +y up, the face
   towards +z.
2. **Scale and landmarks.** A frontal, evenly lit render goes through the pipeline's ``detect`` and
   ``landmarks`` stages; the 68 points are lifted onto the scan surface through the render's
   raster (:func:`lift_landmarks`). The scan is scaled so that its eye-centre distance is 63 mm
   (the unit of every error below; the reconstruction uses the same convention). The *target*
   surface is the scan within :data:`TARGET_RADIUS_MM` of the nose tip (landmark 30): the whole
   face the reconstruction covers (its mesh reaches the hairline and the ears, up to ~125 mm from
   the nose tip; a tighter target would turn its border vertices into false errors).
3. **Conditions.** Every pose of :data:`POSES` (yaw, pitch in degrees) under every lighting of
   :data:`LIGHTS` (Lambertian, camera-fixed directions), rendered with a known scaled-orthographic
   camera (:class:`occgui.eval.render.OrthoCamera`) at :data:`IMAGE_SIZE` px with the eye-centre
   distance :data:`EYE_PX` px, like an LFW photo.
4. **Occlusion.** The clean render's landmarks place one occluder per family
   (:func:`occgui.training.occlusion.occluders.sample_eval_family`, stream ``[seed, sha1(condition), family index]``).
5. **Reconstruction and alignment.** The clean and every occluded render run through the ``full``
   and ``raw`` pipelines. Each mesh is aligned to the scan by a similarity on the 51 inner landmark
   vertices (17-67; the jaw points follow the silhouette) and then a trimmed rigid ICP on the face
   region (:func:`occgui.eval.metrics.icp`); the error of a vertex is its exact distance to the
   scan surface. Reported: mean and 90 %-largest error (mm) over all reconstructed vertices, and
   the same over the vertices within :data:`CROP_RADIUS_MM` of the scan's nose tip (the usual
   MICC Florence crop), per condition and family, and Fig.-4-like heat maps.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import OccguiError
from . import harness as H
from . import report as R
from .metrics import (
    EYE_DISTANCE_MM,
    Similarity,
    SurfaceIndex,
    error_stats,
    eye_distance,
    fit_similarity,
    icp,
)
from .render import OrthoCamera, render_frontal, render_mesh, rotation_yaw_pitch_roll

#: Head poses (yaw, pitch) in degrees; positive yaw turns the face to the image's right.
POSES: tuple[tuple[int, int], ...] = ((0, 0), (-20, 0), (20, 0), (-40, 0), (40, 0), (0, -15), (0, 15))
#: Lightings: (light direction in camera axes x right / y up / z towards the viewer, ambient, diffuse).
LIGHTS: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "front": ((0.0, 0.3, 1.0), 0.45, 0.65),
    "left": ((-1.0, 0.3, 0.5), 0.30, 0.85),
    "top_right": ((0.6, 0.9, 0.5), 0.30, 0.85),
}
IMAGE_SIZE = 320
EYE_PX = 64.0
TARGET_RADIUS_MM = 130.0
CROP_RADIUS_MM = 95.0
INNER_LANDMARKS = np.arange(17, 68)
HEAT_MAX_MM = 10.0
#: Families shown in the Fig.-4-like panels (all families are in the tables).
PANEL_FAMILIES = ("hand_over_eye", "hand_over_mouth", "sunglasses", "surgical_mask", "hand_over_face")


@dataclass
class ScanSettings:
    scan: Path
    occluders: Path
    out: Path
    limit: int | None = None
    seed: int = 0
    device: str = "auto"
    backends: dict = field(default_factory=dict)
    #: stage -> typed settings of its backend (``--option STAGE.FIELD=VALUE``)
    backend_settings: dict = field(default_factory=dict)
    families: tuple[str, ...] = ()
    quiet: bool = False
    report_only: bool = False


# ----------------------------------------------------------------------------- the scan
@dataclass
class Scan:
    vertices: np.ndarray        # (N,3) mm after :func:`calibrate`, else scan units
    faces: np.ndarray
    uv: np.ndarray
    texture: np.ndarray         # RGB uint8
    source: str
    landmarks: np.ndarray | None = None     # (68,3), same units as vertices
    mm_per_unit: float = 1.0

    def face_region(self):
        """The scan surface within :data:`TARGET_RADIUS_MM` of the nose tip, as a trimesh."""
        import trimesh

        c = self.landmarks[30]
        near = np.linalg.norm(self.vertices - c, axis=1) <= TARGET_RADIUS_MM
        keep = near[self.faces].all(axis=1)
        m = trimesh.Trimesh(self.vertices, self.faces[keep], process=False)
        m.remove_unreferenced_vertices()
        return m


def load_scan(path) -> Scan:
    """A textured scan from a folder (one ``.glb`` and a ``*COL*`` colour map) or a ``.glb`` path."""
    import cv2
    import trimesh

    p = Path(path)
    glb = p if p.suffix.lower() in (".glb", ".gltf") else next(iter(sorted(p.glob("*.glb"))), None)
    if glb is None or not glb.is_file():
        raise OccguiError(f"no .glb scan found at {p}")
    scene = trimesh.load(glb, force="scene")
    meshes = list(scene.geometry.values())
    if len(meshes) != 1:
        raise OccguiError(f"{glb}: expected one mesh, found {len(meshes)}")
    m = meshes[0]
    uv = getattr(m.visual, "uv", None)
    if uv is None:
        raise OccguiError(f"{glb}: the scan has no texture coordinates")
    tex = None
    mat = getattr(m.visual, "material", None)
    img = getattr(mat, "baseColorTexture", None) if mat is not None else None
    if img is not None:
        tex = np.asarray(img.convert("RGB"))
    else:
        cands = sorted(f for f in glb.parent.iterdir()
                       if "col" in f.stem.lower() and f.suffix.lower() in (".jpg", ".png"))
        if not cands:
            raise OccguiError(f"no colour map (*COL*.jpg/png) next to {glb}")
        bgr = cv2.imread(str(cands[0]), cv2.IMREAD_COLOR)
        tex = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return Scan(np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64),
                np.asarray(uv, dtype=np.float64), tex, str(glb))


def render_scan(scan: Scan, camera: OrthoCamera, light: str = "front"):
    d, amb, dif = LIGHTS[light]
    return render_mesh(scan.vertices, scan.faces, camera, uv=scan.uv, texture=scan.texture, light_dir=np.array(d),
                       ambient=amb, diffuse=dif, v_up=False)


def lift_landmarks(points2d: np.ndarray, raster, scan: Scan) -> np.ndarray:
    """3D surface points under 2D pixel positions of a render (nearest covered pixel when a point
    falls on the background)."""
    tri = raster.triangle
    ys, xs = np.nonzero(tri >= 0)
    out = []
    for x, y in np.asarray(points2d, dtype=np.float64):
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= yi < tri.shape[0] and 0 <= xi < tri.shape[1] and tri[yi, xi] >= 0):
            k = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))
            xi, yi = int(xs[k]), int(ys[k])
        f = scan.faces[tri[yi, xi]]
        out.append(raster.bary[yi, xi].astype(np.float64) @ scan.vertices[f])
    return np.array(out)


def calibrate(scan: Scan, variants: H.Variants) -> Scan:
    """Find the scan's 68 landmarks (frontal render -> detect + landmarks stages -> lifted onto the
    surface) and scale the scan to millimetres at a 63 mm eye-centre distance."""
    v = scan.vertices
    centre = (v.min(axis=0) + v.max(axis=0)) / 2
    size = 512
    k = 0.9 * size / max(float(np.ptp(v[:, 0])), float(np.ptp(v[:, 1])))
    cam = OrthoCamera(R=np.eye(3), t=-centre, k=k, centre=(size / 2, size / 2), size=(size, size))
    img, raster = render_scan(scan, cam, "front")
    res = variants.full.run(img, stop_after="landmarks")
    lm2d = H.landmarks_working(res)
    lm3d = lift_landmarks(lm2d, raster, scan)
    f = EYE_DISTANCE_MM / max(eye_distance(lm3d), 1e-12)
    return Scan(scan.vertices * f, scan.faces, scan.uv, scan.texture, scan.source, lm3d * f, f)


def condition_camera(scan: Scan, yaw: float, pitch: float) -> OrthoCamera:
    """The known camera of a condition: the face turned by (yaw, pitch), its landmark centroid at
    the image centre, the eye-centre distance :data:`EYE_PX` pixels when frontal."""
    rot = rotation_yaw_pitch_roll(yaw, pitch)
    c = scan.landmarks.mean(axis=0)
    return OrthoCamera(R=rot, t=-rot @ c, k=EYE_PX / EYE_DISTANCE_MM, centre=(IMAGE_SIZE / 2, IMAGE_SIZE * 0.52),
                       size=(IMAGE_SIZE, IMAGE_SIZE))


def conditions(limit: int | None = None) -> list[tuple[str, int, int, str]]:
    """``(name, yaw, pitch, light)`` of every condition, frontal/front-lit first."""
    out = [(f"yaw{y:+d}_pitch{p:+d}_{light}", y, p, light) for light in LIGHTS for (y, p) in POSES]
    return out if limit is None else out[:limit]


# ----------------------------------------------------------------------------- alignment
def align_to_scan(mesh, scan: Scan, surface: SurfaceIndex) -> tuple[np.ndarray, dict, Similarity]:
    """Similarity on the inner landmarks, then rigid ICP on the face region; returns the per-vertex
    distances (mm), their statistics (all vertices, and ``*_crop``: the vertices within
    :data:`CROP_RADIUS_MM` of the scan's nose tip) and the transform (reconstruction -> scan)."""
    lm = H.landmark_vertices(mesh)
    init = fit_similarity(lm[INNER_LANDMARKS], scan.landmarks[INNER_LANDMARKS], scale=True)
    t, dist = icp(np.asarray(mesh.vertices), surface, init, scale=False)
    stats = error_stats(dist)
    crop = np.linalg.norm(t.apply(mesh.vertices) - scan.landmarks[30], axis=1) <= CROP_RADIUS_MM
    crop_stats = error_stats(dist[crop])
    stats.update({"mean_crop": crop_stats["mean"], "p90_crop": crop_stats["p90"],
                  "crop_fraction": float(crop.mean()), "scale": t.s})
    return dist, stats, t


# ----------------------------------------------------------------------------- one condition
def measure_condition(variants, library, scan: Scan, surface: SurfaceIndex, cond, families, seed: int
                      ) -> tuple[dict, dict]:
    """Clean and occluded renders of one condition; returns (record, images for the figures)."""
    from ..training.occlusion.occluders import (
        EVAL_FAMILIES,
        composite,
        sample_eval_family,
    )

    name, yaw, pitch, light = cond
    cam = condition_camera(scan, yaw, pitch)
    img, _ = render_scan(scan, cam, light)
    rec: dict = {"condition": name, "yaw": yaw, "pitch": pitch, "light": light, "camera": cam.to_dict()}
    images: dict = {"clean": {"input": img}}
    try:
        clean = variants.run(img)
    except OccguiError as e:
        rec["status"] = f"failed: {e}"
        return rec, images
    rec["status"] = "ok"
    rec["clean"] = _measure_runs(clean, scan, surface, images["clean"])
    lm_w = H.landmarks_working(clean["full"])
    order = sorted(EVAL_FAMILIES)
    rec["occluded"] = {}
    for fam in families:
        rng = H.case_rng(seed, name, order.index(fam))
        occ, pl = sample_eval_family(rng, library, fam, lm_w)
        occ_img, paste = composite(img, lm_w, occ, pl)
        entry = {"occluder": occ.name, "placement": pl.to_dict(), "paste_fraction": float(paste.mean())}
        images[fam] = {"input": occ_img}
        try:
            runs = variants.run(occ_img)
        except OccguiError as e:
            entry["status"] = f"failed: {e}"
            rec["occluded"][fam] = entry
            continue
        entry["status"] = "ok"
        entry.update(_measure_runs(runs, scan, surface, images[fam]))
        rec["occluded"][fam] = entry
    return rec, images


def _measure_runs(runs: dict, scan: Scan, surface: SurfaceIndex, images: dict) -> dict:
    out: dict = {}
    done: dict = {}
    for v in H.VARIANTS:
        mesh = runs[v].mesh
        key = next((k for k, m in done.items() if np.array_equal(m[0], mesh.vertices)), None)
        if key is not None:           # raw and full share the geometry stage: same mesh, same numbers
            dist, stats = done[key][1], dict(done[key][2])
        else:
            dist, stats, _ = align_to_scan(mesh, scan, surface)
            done[v] = (np.asarray(mesh.vertices), dist, stats)
        out[v] = stats
        if v == "full":
            images["heat"] = render_frontal(mesh, runs[v].texture.image, H.RENDER_SIZE,
                                            vertex_colors=R.heat_colors(dist, HEAT_MAX_MM))
            images["strip"] = [runs[v].crop.image, L.colorize(runs[v].alpha.labels), L.colorize(runs[v].gamma.labels),
                               runs[v].synthesis.image,
                               render_frontal(mesh, runs[v].texture.image, H.RENDER_SIZE)]
    return out


# ----------------------------------------------------------------------------- the run
def _state(s: ScanSettings):
    """(library, families, families without occluders, variants, calibrated scan, surface index)."""
    from ..training.occlusion.occluders import load_library

    library = load_library(s.occluders)
    families, unavailable = H.choose_families(library, tuple(s.families))
    variants = H.Variants(s.device, s.backends, s.backend_settings)
    scan = calibrate(load_scan(s.scan), variants)
    return library, families, unavailable, variants, scan, SurfaceIndex(scan.face_region())


def _worker(s: ScanSettings):
    """A batch worker's ``measure(condition) -> (record, images)`` (its own models and scan)."""
    library, families, _, variants, scan, surface = _state(s)
    return partial(measure_condition, variants, library, scan, surface, families=families, seed=s.seed)


def run(s: ScanSettings, executor=None) -> dict:
    """Run (or resume) the benchmark and write the report into ``s.out`` (from the cached results
    of an earlier run with ``s.report_only``). ``executor`` (:mod:`occgui.batch.executor`, default
    this process) runs the render conditions; figures and records are written here."""
    from ..batch.executor import SerialExecutor

    conds = conditions(s.limit)
    out = Path(s.out)
    folder = out / "cache" / "scan"
    if s.report_only:
        cache, settings, device = H.cached_run(folder)
        families = tuple(settings["families"])
    else:
        library, families, unavailable, variants, scan, surface = _state(s)
        settings = {"command": "scan", "seed": s.seed, "families": list(families),
                    "families_without_occluders": unavailable, "backends": variants.backend_ids(),
                    "scan": scan.source, "poses": [list(p) for p in POSES],
                    "lights": {k: list(v) for k, v in LIGHTS.items()},
                    "image_size": IMAGE_SIZE, "eye_px": EYE_PX, "target_radius_mm": TARGET_RADIUS_MM,
                    "crop_radius_mm": CROP_RADIUS_MM,
                    "mm_per_scan_unit": scan.mm_per_unit, "scan_landmarks_mm": scan.landmarks.round(4).tolist(),
                    "crop_size": variants.full.config.crop_size, "texture_size": variants.full.config.texture_size}
        device = variants.device
        cache = H.open_cache(folder, settings, device=device)
        todo = [c for c in conds if cache.load(c[0]) is None]
        local = partial(measure_condition, variants, library, scan, surface, families=families, seed=s.seed)
        bar = R.progress(None, desc="scan", quiet=s.quiet, total=len(conds))
        bar.update(len(conds) - len(todo))
        try:
            for res in (executor or SerialExecutor()).map_unordered(partial(_worker, s), todo, local=local):
                bar.update(1)
                if not res.ok:
                    print(f"scan: not measured: {res.item[0]}: {res.error}", file=sys.stderr)
                    continue
                rec, images = res.value
                _write_condition_figures(out, cache, res.item[0], rec, images, families)
                cache.save(res.item[0], rec)
        finally:
            bar.close()
    loaded = [(c[0], cache.load(c[0])) for c in conds]
    records = [r for _, r in loaded if r is not None]
    if not records:
        raise OccguiError(f"no cached results in {folder}")
    report = summarize(records, families)
    report["settings"] = {**settings, "limit": s.limit, "conditions": len(conds), "device": device,
                          "occluders": str(s.occluders), "missing_from_cache": [n for n, r in loaded if r is None]}
    report["software"] = R.software_versions()
    report["created"] = R.timestamp()
    report["records"] = records
    write_outputs(out, report, cache, [c for c in conds if c[0] in {r["condition"] for r in records}])
    return report


def _write_condition_figures(out: Path, cache: H.ItemCache, name: str, rec: dict, images: dict, families) -> None:
    """The Fig.-4-like heat-map panel of a condition and its sample strip (cached next to the record)."""
    from ..imageio import save_png

    shown = ["clean"] + [f for f in PANEL_FAMILIES if f in families]
    inputs, heats, titles = [], [], []
    for key in shown:
        im = images.get(key, {})
        inputs.append(im.get("input"))
        heats.append(im.get("heat"))
        st = rec.get("clean") if key == "clean" else rec.get("occluded", {}).get(key)
        full = st["full"] if st and "full" in st else {}
        titles.append(f"{key}\n90%: {R.fmt(full.get('p90'), 2)} mm (crop {R.fmt(full.get('p90_crop'), 2)})")
    R.heatmap_panel(cache.path(name, ".heatmaps.png"), heats, titles, vmax=HEAT_MAX_MM, inputs=inputs,
                    suptitle=f"{name}: per-vertex error of the full reconstruction vs the scan")
    fam = next((f for f in families if "strip" in images.get(f, {})), None)
    if fam is not None and "strip" in images.get("clean", {}):
        st = images[fam]["strip"]
        save_png(cache.path(name, ".strip.png"),
                 R.hstack_cells([images["clean"]["input"], images[fam]["input"], *st[1:4], st[4], images[fam]["heat"]]))


# ----------------------------------------------------------------------------- aggregation
#: Per-case statistics aggregated: all vertices, and within the MICC-style crop.
STAT_KEYS = ("mean", "p90", "mean_crop", "p90_crop")


def summarize(records: list[dict], families) -> dict:
    ok = [r for r in records if r and r.get("status") == "ok"]
    by_fam = {}
    for fam in ("clean", *families):
        row = {}
        for v in H.VARIANTS:
            vals = []
            for r in ok:
                st = r["clean"] if fam == "clean" else r["occluded"].get(fam, {})
                if fam == "clean" or st.get("status") == "ok":
                    vals.append(st.get(v, {}))
            row[v] = {k: R.describe([x.get(k) for x in vals]) for k in STAT_KEYS}
        if fam != "clean":
            row["failed"] = sum(1 for r in ok if r["occluded"].get(fam, {}).get("status") not in (None, "ok"))
        by_fam[fam] = row
    occluded_all = {v: {k: R.describe([r["occluded"][f][v][k] for r in ok for f in families
                                        if r["occluded"].get(f, {}).get("status") == "ok"]) for k in STAT_KEYS}
                    for v in H.VARIANTS}
    by_cond = {}
    for r in ok:
        occ = [r["occluded"][f]["full"] for f in families if r["occluded"].get(f, {}).get("status") == "ok"]
        by_cond[r["condition"]] = {
            **{f"clean_{k}": r["clean"]["full"][k] for k in STAT_KEYS},
            **{f"occluded_{k}": float(np.mean([o[k] for o in occ])) if occ else None for k in STAT_KEYS},
            "occluded_cases": len(occ)}
    return {"conditions": len(records), "conditions_failed": len(records) - len(ok),
            "by_family": by_fam, "occluded_all": occluded_all, "by_condition": by_cond}


def write_outputs(out: Path, report: dict, cache: H.ItemCache, conds) -> None:
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    fams = [f for f in report["by_family"]]
    bf = report["by_family"]
    keys = (("mean", "mean"), ("90%-largest", "p90"), ("mean, 95 mm crop", "mean_crop"),
            ("90%-largest, 95 mm crop", "p90_crop"))
    R.bar_chart(out / "error_by_family.png", fams, {lab: [bf[f]["full"][k]["mean"] for f in fams] for lab, k in keys},
                errors={lab: [bf[f]["full"][k]["std"] for f in fams] for lab, k in keys},
                ylabel="mm", title="Scan: per-vertex error of the full reconstruction, over poses and lightings")
    bc = report["by_condition"]
    names = list(bc)
    R.bar_chart(out / "error_by_condition.png", names,
                {"clean 90%": [bc[n]["clean_p90"] for n in names], "occluded 90% (mean over families)":
                 [bc[n]["occluded_p90"] for n in names],
                 "clean 90%, 95 mm crop": [bc[n]["clean_p90_crop"] for n in names],
                 "occluded 90%, 95 mm crop": [bc[n]["occluded_p90_crop"] for n in names]},
                ylabel="mm", title="Scan: 90%-largest error per condition")
    heat_dir = out / "heatmaps"
    heat_dir.mkdir(exist_ok=True)
    rows, titles = [], []
    for name, *_ in conds:
        p = cache.path(name, ".heatmaps.png")
        if p.exists():
            shutil.copyfile(p, heat_dir / f"{name}.png")
        sp = cache.path(name, ".strip.png")
        if sp.exists() and len(rows) < 8:
            rows.append(R.read_strip(sp))
            titles.append(name)
    if rows:
        R.image_grid(out / "samples.png", rows, row_titles=titles,
                     col_titles=["photo", "occluded", "M_alpha", "M_gamma", "I_out", "render", "3D error"])
    first = conds[0][0] if conds else None
    if first and (heat_dir / f"{first}.png").exists():
        shutil.copyfile(heat_dir / f"{first}.png", out / "heatmaps.png")
    R.write_json(out / "report.json", report)
    R.write_json(out / "summary.json", {k: v for k, v in report.items() if k != "records"})
    R.write_text(out / "report.md", markdown(report, conds))


def markdown(report: dict, conds) -> str:
    s = report["settings"]
    bf = report["by_family"]
    oa = report["occluded_all"]

    def v(x, d=2):
        return R.pm(x["mean"], x["std"], d) if x["n"] else "-"

    lines = [
        "# Ground-truth geometry: occluded renders of a head scan (`occgui eval scan`)", "",
        f"Created {report['created']} on `{s['device']}`. Scan `{s['scan']}` ({s['mm_per_scan_unit']:.3f} mm per "
        f"scan unit at a 63 mm eye-centre distance); {report['conditions']} conditions (poses x lightings, "
        f"{report['conditions_failed']} failed) x {len(s['families'])} occluder families, seed {s['seed']}."
        + (f" Families without an occluder image (skipped): {', '.join(s['families_without_occluders'])}."
           if s.get("families_without_occluders") else "")
        + " The scanned person is not among the LFW identities any network was trained on (held out by "
          "construction); the occluder families include kinds seen in training and kinds never seen "
          "(`training.parsing.dataset.HELDOUT_KINDS`).", "",
        "Protocol (the paper's MICC Florence experiment, §5 / Fig. 4, with the LeePerrySmith scan as ground truth): "
        "render with a known camera, paste occluders placed from the clean render's landmarks, reconstruct, align "
        "(similarity on the inner landmark vertices, then rigid point-to-plane ICP on the scan within "
        f"{s['target_radius_mm']:.0f} mm of the nose tip) and take every reconstructed vertex's distance to the scan "
        "surface. *90%* is the 90 %-largest error (90th percentile over the vertices), the paper's Fig. 4 statistic; "
        f"*all* = every reconstructed vertex (the mesh reaches the hairline and the ears), "
        f"*crop* = the vertices within "
        f"{s['crop_radius_mm']:.0f} mm of the scan's nose tip (the usual MICC Florence evaluation crop).", "",
        "## Clean vs occluded (over all conditions; mean ± std over cases)", "",
        R.md_table(["input", "variant", "mean, all mm", "90%, all mm", "mean, crop mm", "90%, crop mm"],
                   [[name, var, *(v(src[var][k]) for k in STAT_KEYS)]
                    for name, src in (("clean", bf["clean"]), ("occluded (all families)", oa))
                    for var in ("full", "raw")]), "",
        ("Raw and full coincide: this geometry stage reads only the landmarks, which precede merge and "
         "de-occlusion, so both variants produce the same mesh." if oa["full"]["mean"] == oa["raw"]["mean"] else
         "Raw and full differ: this geometry stage reads I_out (the de-occluded image), which the raw variant "
         "replaces by the occluded crop."),
        "",
        "The paper gives its MICC errors only as per-example digits inside Fig. 4 (no table), on 53 real subjects "
        "with a 3DMM fit, so there is no number to put beside ours; this scan is one subject, rendered.", "",
        "## By occluder family (full; mean ± std over conditions)", "",
        R.md_table(["family", "failed", "mean, all mm", "90%, all mm", "mean, crop mm", "90%, crop mm"],
                   [[f, bf[f].get("failed", 0), *(v(bf[f]["full"][k]) for k in STAT_KEYS)] for f in bf]), "",
        "## By condition (full)", "",
        R.md_table(["condition", "clean mean", "clean 90%", "occluded mean", "occluded 90%", "clean 90% crop",
                    "occluded 90% crop", "occluded cases"],
                   [[n, r["clean_mean"], r["clean_p90"], r["occluded_mean"], r["occluded_p90"], r["clean_p90_crop"],
                     r["occluded_p90_crop"], r["occluded_cases"]] for n, r in report["by_condition"].items()],
                   digits=2), "",
        "## Heat maps", "",
        "Per-vertex error of the full reconstruction on the scan (0-10 mm), frontal view, with the input above "
        "(first condition; all conditions in `heatmaps/`):", "", "![heat maps](heatmaps.png)", "",
        "![by family](error_by_family.png)", "", "![by condition](error_by_condition.png)", "",
        "Sample cases (photo | occluded | M_alpha | M_gamma | I_out | render | 3D error):", "",
        "![samples](samples.png)", "",
        "## Settings", "",
        f"* poses (yaw, pitch): {s['poses']}; lightings: {', '.join(s['lights'])}; render {s['image_size']} px, "
        f"eye distance {s['eye_px']:.0f} px",
        f"* backends (full): {', '.join(f'{k}={x}' for k, x in s['backends']['full'].items())}",
        f"* software: {', '.join(f'{k} {x}' for k, x in report['software'].items())}", "",
    ]
    return "\n".join(lines)
