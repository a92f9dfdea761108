"""``occgui eval real``: the labelled real occlusions (``resources/real_occlusions/``).

Pasted occluders are what the parser was trained on; this measures what the product meets. For
every labelled photo (by default both splits, reported separately; the *test* split is the one
nothing is trained or tuned on) the photo runs through the ``full`` and ``raw`` pipelines and:

* **occluder**: M_alpha's occluder class against the labelled occluder mask, both in the crop the
  maps live in (the label is moved there with the run's photo-to-crop transform, recorded per case
  as ``photo_to_crop``): IoU, precision, recall per photo, pooled (summed pixel counts) per type and
  over all; the share of photos whose occluder is *found* (IoU >= :data:`FOUND_IOU`). The same again
  **within the face region** of the *labelled* landmarks (:func:`occgui.metrics.face_region`, the
  region the product reconstructs; ``occluder_face``): the labels outline an occluder whole as far as
  the photo shows it -- a hand with its arm, a microphone with its handle -- and most of those pixels
  lie beside the face, so the whole-crop IoU mixes "is what covers the face found" with "is the rest
  of the object outlined"; the face-region numbers are the first question alone (reported beside the
  issue's whole-crop targets, not instead of them);
* **face**: in a photo with several faces the labelled one is measured (the detection whose box
  holds the labelled landmarks' centre), as a user would pick it with ``--face``;
* **landmarks**: NME of the 68 points and of the hidden ones (mean point error over the labelled
  outer-eye-corner distance, points 36-45) of the shipped landmark backend, of MediaPipe alone and of
  dlib's 68-point predictor on the same crop; the largest point error in inter-ocular distances
  (eye centres) and the photos with a point more than one inter-ocular distance from its label;
* **identity** (with ``--others K``): dlib distance of the occluded crop, I_out and the frontal
  renders (full, raw) to up to K other, unlisted photos of the same person;
* **false occluder area** on ``--clean N`` clean photos of held-out identities (names starting with
  Q-S, not listed as occluded): occluder pixels inside the face region (convex hull of the 68
  landmarks with the brows raised to the hairline) over that region's area.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from .. import labels as L
from ..errors import OccguiError
from ..metrics import face_region
from . import harness as H
from . import report as R
from .lfw import (
    HELD_OUT_GROUP,
    NaturalCase,
    find_photos,
    identity_group,
    read_natural_list,
    relative_name,
    spread_selection,
)

#: Bump when a change to the measurement invalidates cached per-photo results of this benchmark.
REAL_VERSION = 3
#: IoU from which a photo's occluder counts as found.
FOUND_IOU = 0.3
STRIP_TITLES = ["photo + label", "I_fac + M_alpha occl.", "M_alpha", "M_gamma", "I_out", "landmarks (label/ours)"]
LANDMARK_METHODS = ("ours", "mediapipe", "dlib")
TARGETS = {"pooled_iou": 0.6, "type_iou": 0.5, "type_min_photos": 10, "found_rate": 0.85, "false_area": 0.01}


@dataclass
class RealSettings:
    faces: Path                      # LFW photo folder (person/person_NNNN.jpg)
    out: Path
    labels: Path | None = None       # the label set folder (default: the bundled one)
    split: str = "all"               # dev | test | all
    limit: int | None = None
    clean: int = 200                 # clean held-out photos for the false-occluder-area measurement
    others: int = 3                  # other photos per person for the identity distances (0: none)
    list: Path | None = None         # natural_occlusions.csv (to exclude listed photos from the clean set)
    seed: int = 0
    device: str = "auto"
    backends: dict = field(default_factory=dict)
    #: stage -> typed settings of its backend (``--option STAGE.FIELD=VALUE``)
    backend_settings: dict = field(default_factory=dict)
    quiet: bool = False
    report_only: bool = False
    samples: int = 12


# ----------------------------------------------------------------------------- geometry helpers
def photo_to_crop(result) -> np.ndarray:
    """2x3 affine from photo pixels to the crop's pixels (where M_alpha, M_gamma and I_out live)."""
    from ..export import photo_to_crop_matrix

    return photo_to_crop_matrix(result)


def mask_photo_to_crop(result, mask_photo: np.ndarray) -> np.ndarray:
    size = result.crop.size
    warped = cv2.warpAffine(np.asarray(mask_photo, dtype=np.float32), photo_to_crop(result), (size, size),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped >= 0.5


def overlap_counts(pred: np.ndarray, gt: np.ndarray) -> dict[str, int]:
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    return {"inter": int((pred & gt).sum()), "union": int((pred | gt).sum()), "pred": int(pred.sum()),
            "gt": int(gt.sum())}


def ratios(c: dict) -> dict[str, float]:
    """IoU, precision, recall of summed counts (NaN where undefined)."""
    nan = float("nan")
    return {"iou": c["inter"] / c["union"] if c["union"] else nan,
            "precision": c["inter"] / c["pred"] if c["pred"] else nan,
            "recall": c["inter"] / c["gt"] if c["gt"] else nan}


def eye_centre_distance(pts: np.ndarray) -> float:
    p = np.asarray(pts, dtype=np.float64)
    return float(np.linalg.norm(p[36:42].mean(axis=0) - p[42:48].mean(axis=0)))


def landmark_errors(pred: np.ndarray, gt: np.ndarray, hidden) -> dict[str, float]:
    """NME over all 68 / the hidden points (outer-eye-corner normalised) and the largest error in
    inter-ocular (eye-centre) distances."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    d = np.linalg.norm(pred - gt, axis=1)
    outer = float(np.linalg.norm(gt[36] - gt[45]))
    hid = list(hidden)
    return {"nme": float(d.mean() / outer), "nme_hidden": float(d[hid].mean() / outer) if hid else float("nan"),
            "max_iod": float(d.max() / eye_centre_distance(gt))}


def _overlay(rgb: np.ndarray, mask: np.ndarray, colour=(255, 0, 0)) -> np.ndarray:
    out = np.asarray(rgb, dtype=np.float32).copy()
    m = np.asarray(mask, bool)
    out[m] = 0.55 * out[m] + 0.45 * np.asarray(colour, np.float32)
    return out.astype(np.uint8)


def _points_panel(rgb: np.ndarray, label_pts: np.ndarray, ours: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(rgb.copy())
    for pts, col in ((label_pts, (0, 220, 0)), (ours, (255, 40, 40))):
        for x, y in np.asarray(pts):
            cv2.circle(img, (int(round(x)), int(round(y))), 2, col, -1, cv2.LINE_AA)
    return img


# ----------------------------------------------------------------------------- landmark baselines
class LandmarkBaselines:
    """MediaPipe alone and dlib's predictor on a run's crop (the comparison rows of the NME table)."""

    def __init__(self, variants: H.Variants):
        from ..pipeline import backends

        p = variants.full
        ctx = backends.BackendContext(p.device, p.config.crop_size, p.config.texture_size)
        self._backends = {"mediapipe": backends.create("landmarks", "mediapipe", ctx),
                          "dlib": backends.create("landmarks", "dlib", ctx)}

    def photo_points(self, result) -> dict[str, np.ndarray | None]:
        out = {}
        for name, b in self._backends.items():
            try:
                crop_pts = b.detect(result.crop.image).points
            except OccguiError:
                out[name] = None
                continue
            out[name] = result.image.working_to_photo(result.crop.crop_to_working(crop_pts))
        return out


# ----------------------------------------------------------------------------- one case
def measure_case(variants, identity, ref_cache, baselines, label, faces: Path, listed: set, others: int, *,
                 keep_images: bool) -> tuple[dict, list | None]:
    from .natural import other_photos, reference

    photo = label.photo_path(faces)
    rec: dict = {"photo": label.photo, "stem": label.stem, "type": label.type, "split": label.split,
                 "identity_group": identity_group(label.photo), "hidden": list(label.hidden)}
    t0 = time.perf_counter()
    try:
        rec["face_index"], rec["faces"] = labelled_face(variants, photo, label.landmarks)
        for p in (variants.full, variants.raw):
            p.config.face_index = rec["face_index"]
        runs = variants.run(photo)
    except OccguiError as e:
        rec["status"] = f"failed: {e}"
        return rec, None
    finally:
        for p in (variants.full, variants.raw):
            p.config.face_index = 0
    rec["status"] = "ok"
    rec["seconds"] = time.perf_counter() - t0
    full = runs["full"]
    w, h = full.image.photo_size
    gt_photo = label.mask((h, w))
    gt = mask_photo_to_crop(full, gt_photo)
    pred = L.mask_of(full.alpha.labels, L.OCCLUDING)
    rec["photo_to_crop"] = photo_to_crop(full)
    rec["crop_size"] = full.crop.size
    rec["occluder"] = overlap_counts(pred, gt)
    rec["occluder"].update(ratios(rec["occluder"]))
    lab_crop = full.crop.working_to_crop(full.image.photo_to_working(label.landmarks))
    in_face = face_region(lab_crop, full.crop.size)
    rec["occluder_face"] = overlap_counts(pred & in_face, gt & in_face)
    rec["occluder_face"].update(ratios(rec["occluder_face"]))
    rec["occluder_crop_fraction"] = float(pred.mean())
    rec["iout_resynthesized_fraction"] = float(np.asarray(full.synthesis.filled).mean())
    pts = {"ours": full.landmarks_in_photo(), **baselines.photo_points(full)}
    rec["landmarks"] = {k: (None if v is None else landmark_errors(v, label.landmarks, label.hidden))
                        for k, v in pts.items()}
    rec["warnings"] = list(full.warnings)
    if others > 0:
        refs = [(p, reference(variants, identity, ref_cache, p))
                for p in other_photos(NaturalCase(photo, "", "", ""), listed, others)]
        refs = [(p, r) for p, r in refs if r is not None]
        rec["others_ok"] = len(refs)
        if refs:
            box = identity.crop_box(full)
            embs = {"photo": identity.embed(full.crop.image, box), "iout": identity.embed(full.synthesis.image, box)}
            for v in H.VARIANTS:
                embs[f"render_{v}"], _ = identity.embed_render(runs[v])
            ref_embs = [np.asarray(r["embedding"]) for _, r in refs]
            rec["identity"] = {k: float(np.mean([np.linalg.norm(e - o) for o in ref_embs])) for k, e in embs.items()}
    strip = None
    if keep_images:
        strip = [_overlay(full.image.rgb, cv2.resize(gt_photo.astype(np.uint8), full.image.rgb.shape[1::-1],
                                                     interpolation=cv2.INTER_NEAREST).astype(bool), (0, 200, 0)),
                 _overlay(full.crop.image, pred), L.colorize(full.alpha.labels), L.colorize(full.gamma.labels),
                 full.synthesis.image, _points_panel(full.crop.image, lab_crop, full.landmarks.points)]
    return rec, strip


def labelled_face(variants, photo: Path, landmarks_photo: np.ndarray) -> tuple[int, int]:
    """(index of the detected face the label belongs to, number of faces): in a photo with several
    faces the evaluation measures the labelled one, as a user would pick it (``--face``); index 0
    (the largest face, the default) when the labelled face's centre lies in no detection box."""
    image = variants.full.run(photo, stop_after="load").image
    faces = sorted(variants.full.backend("detect").detect(image.rgb), key=lambda d: -d.area)
    c = image.photo_to_working(np.asarray(landmarks_photo, dtype=np.float64)).mean(axis=0)
    for k, d in enumerate(faces):
        x0, y0, x1, y1 = d.box
        if x0 <= c[0] <= x1 and y0 <= c[1] <= y1:
            return k, len(faces)
    return 0, len(faces)


def measure_clean(variants, photo: Path) -> dict:
    """False occluder area of one clean photo."""
    rec: dict = {"photo": relative_name(photo)}
    try:
        res = variants.full.run(photo, stop_after="landmarks")
    except OccguiError as e:
        rec["status"] = f"failed: {e}"
        return rec
    pred = L.mask_of(res.alpha.labels, L.OCCLUDING)
    region = face_region(res.landmarks.points, res.crop.size)
    rec.update(status="ok", face_pixels=int(region.sum()), false_pixels=int((pred & region).sum()),
               crop_fraction=float(pred.mean()))
    rec["false_area"] = rec["false_pixels"] / max(rec["face_pixels"], 1)
    return rec


def clean_photos(faces: Path, listed: set, n: int) -> list[Path]:
    """``n`` photos of held-out identities (Q-S), spread over people, among those that are not listed as
    occluded and were checked by eye and judged clean (``resources/clean_check``; the photos judged to show
    a real cap, glasses, hand, microphone... are left out, see :func:`clean_check_counts`)."""
    from ..training.occlusion.clean_check import judged_clean

    ok = judged_clean()
    cands = [p for p in find_photos(faces) if identity_group(p) == HELD_OUT_GROUP and p not in listed
             and relative_name(p) in ok]
    return spread_selection(cands, n)


def clean_check_counts() -> dict[str, int]:
    """How many Q-S photos the by-eye check holds, and how many of them it judged occluded (left out)."""
    from ..training.occlusion.clean_check import clean_check

    v = clean_check()
    return {"checked": len(v), "judged_occluded": sum(not x.clean for x in v.values())}


# ----------------------------------------------------------------------------- the run
def _state(s: RealSettings) -> tuple[dict, dict]:
    """(settings that determine the results, {variants, identity, baselines, ref_cache}) of a run."""
    variants = H.Variants(s.device, s.backends, s.backend_settings)
    settings = {"command": "real", "backends": variants.backend_ids(), "others": s.others,
                "crop_size": variants.full.config.crop_size, "texture_size": variants.full.config.texture_size,
                "render_size": H.RENDER_SIZE, "found_iou": FOUND_IOU, "real_version": REAL_VERSION}
    ref_cache = H.ItemCache(Path(s.out) / "cache" / "natural_references",
                            H.fingerprint({"references": settings["backends"]["full"], "crop": settings["crop_size"]}))
    return settings, {"variants": variants, "identity": H.Identity() if s.others > 0 else None,
                      "baselines": LandmarkBaselines(variants), "ref_cache": ref_cache}


def _measure_fn(s: RealSettings, faces: Path, listed: set, samples: set, kind: str, *, variants, identity,
                baselines, ref_cache):
    """``measure`` of a labelled case (``kind`` "labelled") or of a clean photo ("clean")."""
    if kind == "clean":
        return lambda p: (measure_clean(variants, p), {})

    def measure(lab):
        rec, strip = measure_case(variants, identity, ref_cache, baselines, lab, faces, listed, s.others,
                                  keep_images=lab.stem in samples)
        return rec, ({} if strip is None else {lab.stem: strip})
    return measure


def _worker(s: RealSettings, faces: Path, listed: set, samples: set, kind: str):
    """A batch worker's ``measure`` (its own models): :func:`occgui.eval.harness.fill_cache`."""
    return _measure_fn(s, faces, listed, samples, kind, **_state(s)[1])


def run(s: RealSettings, executor=None) -> dict:
    """Run (or resume) the benchmark; ``executor`` (:mod:`occgui.batch.executor`, default this
    process) runs the labelled cases and the clean photos."""
    from ..training.real_occlusions import load_labels

    split = None if s.split == "all" else s.split
    labels = load_labels(s.labels, split=split)
    if s.limit is not None:
        labels = spread_labels(labels, s.limit)
    faces = Path(s.faces)
    missing = [lab.photo for lab in labels if not lab.photo_path(faces).is_file()]
    labels = [lab for lab in labels if lab.photo_path(faces).is_file()]
    if not labels:
        raise OccguiError(f"none of the labelled photos exist under {faces}")
    listed: set = set()
    if s.list is not None:
        listed = {c.photo for c in read_natural_list(s.list, faces)[0]}
    listed |= {lab.photo_path(faces) for lab in labels}
    folder = Path(s.out) / "cache" / "real"
    clean_folder = Path(s.out) / "cache" / "real_clean"
    if s.report_only:
        cache, settings, device = H.cached_run(folder)
        clean_cache, _, _ = H.cached_run(clean_folder) if clean_folder.is_dir() else (None, None, None)
    else:
        settings, state = _state(s)
        device = state["variants"].device
        cache = H.open_cache(folder, settings, device=device)
        clean_cache = H.open_cache(clean_folder, {"command": "real-clean", "backends": settings["backends"]["full"],
                                                  "crop_size": settings["crop_size"]}, device=device)
    samples = sample_stems(labels, s.samples)
    cleans = clean_photos(faces, listed, s.clean) if s.clean > 0 else []
    if not s.report_only:
        H.fill_cache(labels, cache, _measure_fn(s, faces, listed, samples, "labelled", **state),
                     name_of=lambda lab: lab.stem, desc="real", executor=executor, quiet=s.quiet,
                     factory=partial(_worker, s, faces, listed, samples, "labelled"))
        H.fill_cache(cleans, clean_cache, _measure_fn(s, faces, listed, samples, "clean", **state),
                     name_of=relative_name, desc="real: clean photos", executor=executor, quiet=s.quiet,
                     factory=partial(_worker, s, faces, listed, samples, "clean"))
    loaded = [(lab.stem, cache.load(lab.stem)) for lab in labels]
    records = [r for _, r in loaded if r is not None]
    if not records:
        raise OccguiError(f"no cached results in {folder}")
    clean_records = [r for r in (clean_cache.load(relative_name(p)) for p in cleans) if r is not None] \
        if clean_cache is not None else []
    report = summarize(records, clean_records)
    report["settings"] = {**settings, "faces": str(s.faces), "labels": str(s.labels or "bundled"), "split": s.split,
                          "limit": s.limit, "cases": len(labels), "labelled_missing": missing, "clean": len(cleans),
                          "clean_check": clean_check_counts(),
                          "device": device, "missing_from_cache": [st for st, r in loaded if r is None]}
    report["software"] = R.software_versions()
    report["created"] = R.timestamp()
    report["records"] = records
    report["clean_records"] = clean_records
    write_outputs(Path(s.out), report, cache, [st for st, r in loaded if r is not None and st in samples])
    return report


def spread_labels(labels: list, limit: int) -> list:
    """Round-robin over the types (in :data:`TYPES` order), each in stem order, up to ``limit``."""
    by: dict[str, list] = {}
    for lab in labels:
        by.setdefault(lab.type, []).append(lab)
    out, k = [], 0
    while len(out) < min(limit, len(labels)):
        out.extend(by[t][k] for t in sorted(by) if len(by[t]) > k)
        k += 1
    return out[:limit]


def sample_stems(labels: list, n: int) -> set[str]:
    """One photo per type first (test split preferred), then more, up to ``n``."""
    order = sorted(labels, key=lambda lab: (lab.split != "test", lab.stem))
    chosen, seen = [], set()
    for lab in order:
        if lab.type not in seen:
            chosen.append(lab.stem)
            seen.add(lab.type)
    for lab in order:
        if len(chosen) >= n:
            break
        if lab.stem not in chosen:
            chosen.append(lab.stem)
    return set(chosen[:n])


# ----------------------------------------------------------------------------- aggregation
def _group(records: list[dict]) -> dict:
    ok = [r for r in records if r.get("status") == "ok"]
    occ = [r for r in ok if r["occluder"]["gt"] > 0]
    tot = {k: sum(r["occluder"][k] for r in occ) for k in ("inter", "union", "pred", "gt")}
    occ_f = [r for r in occ if r.get("occluder_face", {}).get("gt", 0) > 0]
    tot_f = {k: sum(r["occluder_face"][k] for r in occ_f) for k in ("inter", "union", "pred", "gt")}
    row: dict = {"photos": len(records), "failed": len(records) - len(ok), "with_occluder_label": len(occ),
                 "pooled": ratios(tot) if occ else ratios({"inter": 0, "union": 0, "pred": 0, "gt": 0}),
                 "iou_per_photo": R.describe([r["occluder"]["iou"] for r in occ]),
                 "found_rate": (float(np.mean([r["occluder"]["iou"] >= FOUND_IOU for r in occ]))
                                if occ else float("nan")),
                 "face_region": {"with_occluder_label": len(occ_f), "pooled": ratios(tot_f),
                                 "found_rate": (float(np.mean([r["occluder_face"]["iou"] >= FOUND_IOU for r in occ_f]))
                                                if occ_f else float("nan")),
                                 "gt_share": (tot_f["gt"] / tot["gt"]) if tot["gt"] else float("nan")},
                 "detected_over_1pct": int(sum(r["occluder_crop_fraction"] > 0.01 for r in ok)),
                 "iout_over_2pct": int(sum(r["iout_resynthesized_fraction"] > 0.02 for r in ok)),
                 "several_faces": int(sum(r.get("faces", 1) > 1 for r in ok)),
                 "labelled_face_not_largest": int(sum(r.get("face_index", 0) > 0 for r in ok))}
    for m in LANDMARK_METHODS:
        vals = [r["landmarks"].get(m) for r in ok]
        vals = [v for v in vals if v is not None]
        row[f"nme_{m}"] = R.describe([v["nme"] for v in vals])
        row[f"nme_hidden_{m}"] = R.describe([v["nme_hidden"] for v in vals])
        row[f"over_one_iod_{m}"] = int(sum(v["max_iod"] > 1.0 for v in vals))
        row[f"failed_{m}"] = len(ok) - len(vals)
    with_id = [r for r in ok if "identity" in r]
    for k in ("photo", "iout", "render_full", "render_raw"):
        row[f"identity_{k}"] = R.describe([r["identity"][k] for r in with_id])
    return row


def summarize(records: list[dict], clean_records: list[dict]) -> dict:
    out: dict = {}
    for split in ("test", "dev", "all"):
        rs = records if split == "all" else [r for r in records if r["split"] == split]
        if not rs:
            continue
        types = [t for t in _type_order() if any(r["type"] == t for r in rs)]
        out[split] = {"all": _group(rs), "by_type": {t: _group([r for r in rs if r["type"] == t]) for t in types}}
    groups = sorted({r.get("identity_group", identity_group(r["photo"])) for r in records})
    out["by_identity_group"] = {
        g: _group([r for r in records if r.get("identity_group", identity_group(r["photo"])) == g])
        for g in groups}
    ok = [r for r in clean_records if r.get("status") == "ok"]
    out["clean"] = {"photos": len(clean_records), "failed": len(clean_records) - len(ok),
                    "false_area": R.describe([r["false_area"] for r in ok]),
                    "false_area_pooled": (sum(r["false_pixels"] for r in ok)
                                          / max(sum(r["face_pixels"] for r in ok), 1))
                    if ok else float("nan"),
                    "photos_over_1pct": int(sum(r["false_area"] > 0.01 for r in ok)),
                    "crop_fraction": R.describe([r["crop_fraction"] for r in ok])}
    out["targets"] = targets(out)
    return out


def _type_order() -> tuple[str, ...]:
    from ..training.real_occlusions import TYPES

    return TYPES


def targets(summary: dict) -> list[dict]:
    """The issue's targets on the test split (and the clean photos), each with its measured value."""
    rows = []
    t = summary.get("test")
    if t:
        a = t["all"]
        rows.append({"target": f"pooled occluder IoU >= {TARGETS['pooled_iou']}", "value": a["pooled"]["iou"],
                     "met": bool(a["pooled"]["iou"] >= TARGETS["pooled_iou"])})
        for ty, g in t["by_type"].items():
            if g["with_occluder_label"] >= TARGETS["type_min_photos"]:
                rows.append({"target": f"{ty}: pooled IoU >= {TARGETS['type_iou']}", "value": g["pooled"]["iou"],
                             "met": bool(g["pooled"]["iou"] >= TARGETS["type_iou"])})
        rows.append({"target": f"occluder found (IoU >= {FOUND_IOU}) on >= {TARGETS['found_rate']:.0%} of photos",
                     "value": a["found_rate"], "met": bool(a["found_rate"] >= TARGETS["found_rate"])})
        for ty, g in t["by_type"].items():
            ours, mp, dl = (g[f"nme_{m}"]["mean"] for m in LANDMARK_METHODS)
            rows.append({"target": f"{ty}: landmark NME ours <= MediaPipe and <= dlib", "value": ours,
                         "met": bool(ours <= mp and ours <= dl)})
    allr = summary.get("all")
    if allr:
        n = allr["all"]["over_one_iod_ours"]
        rows.append({"target": "no photo with a landmark more than one eye distance from its label", "value": n,
                     "met": n == 0})
    c = summary["clean"]
    if c["photos"]:
        rows.append({"target": "false occluder area on clean held-out photos <= "
                               f"{TARGETS['false_area']:.0%} of the face",
                     "value": c["false_area_pooled"], "met": bool(c["false_area_pooled"] <= TARGETS["false_area"])})
    return rows


# ----------------------------------------------------------------------------- outputs
def write_outputs(out: Path, report: dict, cache: H.ItemCache, sample_stems_: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    main = report.get("test") or report.get("all")
    if main:
        names = [*main["by_type"], "all"]
        groups = {**main["by_type"], "all": main["all"]}
        R.bar_chart(out / "occluder_iou.png", names,
                    {k: [groups[g]["pooled"][k] for g in names] for k in ("iou", "precision", "recall")},
                    ylabel="pooled over photos", title="Real occlusions: M_alpha occluder vs the label")
        R.bar_chart(out / "landmark_nme.png", names,
                    {m: [groups[g][f"nme_{m}"]["mean"] for g in names] for m in LANDMARK_METHODS},
                    ylabel="NME (outer eye corners)", title="Real occlusions: landmark error vs the label")
    rows, titles = [], []
    recs = {r["stem"]: r for r in report["records"]}
    for stem in sample_stems_:
        p = cache.image_path(stem)
        if p.exists():
            rows.append(R.read_strip(p))
            r = recs.get(stem, {})
            iou = r.get("occluder", {}).get("iou")
            titles.append(f"{stem} {r.get('type', '')} ({r.get('split', '')}) IoU {R.fmt(iou, 2)}")
    if rows:
        R.image_grid(out / "samples.png", rows, col_titles=STRIP_TITLES, row_titles=titles)
    R.write_json(out / "report.json", report)
    R.write_json(out / "summary.json", {k: v for k, v in report.items() if k not in ("records", "clean_records")})
    R.write_text(out / "report.md", markdown(report))


def markdown(report: dict) -> str:
    s = report["settings"]

    def d(x, digits=3):
        return R.fmt(x["mean"], digits) if x["n"] else "-"

    def occ_table(sec: dict) -> str:
        groups = {**sec["by_type"], "all": sec["all"]}
        return R.md_table(
            ["type", "photos", "pooled IoU", "precision", "recall", "mean IoU", f"found (IoU>={FOUND_IOU})",
             "M_alpha >1 % occluder", "I_out >2 % re-synthesized"],
            [[g, r["photos"], R.fmt(r["pooled"]["iou"]), R.fmt(r["pooled"]["precision"]), R.fmt(r["pooled"]["recall"]),
              d(r["iou_per_photo"]), R.fmt(r["found_rate"], 2), r["detected_over_1pct"], r["iout_over_2pct"]]
             for g, r in groups.items()])

    def face_table(sec: dict) -> str:
        groups = {**sec["by_type"], "all": sec["all"]}
        return R.md_table(
            ["type", "photos with occluder over the face", "labelled occluder area over the face",
             "pooled IoU", "precision", "recall", f"found (IoU>={FOUND_IOU})"],
            [[g, r["face_region"]["with_occluder_label"], R.fmt(r["face_region"]["gt_share"], 2),
              R.fmt(r["face_region"]["pooled"]["iou"]), R.fmt(r["face_region"]["pooled"]["precision"]),
              R.fmt(r["face_region"]["pooled"]["recall"]), R.fmt(r["face_region"]["found_rate"], 2)]
             for g, r in groups.items()])

    def lm_table(sec: dict) -> str:
        groups = {**sec["by_type"], "all": sec["all"]}
        return R.md_table(
            ["type", "NME ours", "MediaPipe", "dlib", "hidden: ours", "MediaPipe", "dlib", "> 1 IOD: ours",
             "MediaPipe", "dlib"],
            [[g, d(r["nme_ours"]), d(r["nme_mediapipe"]), d(r["nme_dlib"]), d(r["nme_hidden_ours"]),
              d(r["nme_hidden_mediapipe"]), d(r["nme_hidden_dlib"]), r["over_one_iod_ours"],
              r["over_one_iod_mediapipe"], r["over_one_iod_dlib"]] for g, r in groups.items()])

    def id_table(sec: dict) -> str:
        groups = {**sec["by_type"], "all": sec["all"]}
        return R.md_table(["type", "occluded photo", "I_out", "render full", "render raw"],
                          [[g, d(r["identity_photo"]), d(r["identity_iout"]), d(r["identity_render_full"]),
                            d(r["identity_render_raw"])] for g, r in groups.items()])

    lines = ["# Real occlusions, labelled (`occgui eval real`)", "",
             f"Created {report['created']} on `{s['device']}` from {s['cases']} labelled photos (split: {s['split']}; "
             f"labels: {s['labels']}). The **test** split is never used for training or tuning; **dev** may be. "
             "Occluder: M_alpha's occluder class vs the labelled mask in the crop; pooled = pixel counts summed over "
             "the photos. Landmarks: NME = mean point error / the labelled outer-eye-corner distance; '> 1 IOD' = "
             "photos with a point more than one eye-centre distance from its label.", ""]
    for split in ("test", "dev", "all"):
        sec = report.get(split)
        if not sec:
            continue
        lines += [f"## {split} split" if split != "all" else "## Both splits", "", "### Occluder", "", occ_table(sec),
                  "", "### Occluder within the face region", "",
                  "The same counts restricted to the face region of the labelled landmarks (hull of the 68 points "
                  "with the brows raised a third of the brow-to-chin height): what covers the face, without the "
                  "parts of an object beside it (an arm, a handle, the crown of a hat). Beside the whole-crop "
                  "targets above, not instead of them.", "", face_table(sec),
                  "", "### Landmarks", "", lm_table(sec), ""]
        if sec["all"]["identity_photo"]["n"]:
            lines += ["### Identity (dlib distance to the person's other photos; lower is better)", "",
                      id_table(sec), ""]
    byg = report.get("by_identity_group") or {}
    if byg:
        lines += ["## By identity group (both splits)", "",
                  "The parser and the landmark refiner were trained on identities A-P (pasted occluders); the real "
                  "photos of those identities were never seen in training, but their faces may have been.", "",
                  R.md_table(["identities", "photos", "pooled IoU", "found", "NME ours", "MediaPipe", "dlib"],
                             [[g, r["photos"], R.fmt(r["pooled"]["iou"]), R.fmt(r["found_rate"], 2), d(r["nme_ours"]),
                               d(r["nme_mediapipe"]), d(r["nme_dlib"])] for g, r in byg.items()]), ""]
    c = report["clean"]
    lines += ["## False occluder area on clean held-out photos (identities Q-S)", "",
              f"{c['photos']} photos ({c['failed']} failed): pooled {R.fmt(c['false_area_pooled'], 4)} of the face "
              f"region, mean {d(c['false_area'], 4)}; {c['photos_over_1pct']} photos above 1 %.", ""]
    cc = s.get("clean_check")
    if cc:
        lines += [f"The photos are chosen only among Q-S photos checked by eye and judged clean "
                  f"(`resources/clean_check`): of the {cc['checked']} photos checked, {cc['judged_occluded']} show a "
                  "real occluder over the face (caps, glasses, hands, microphones...) and are left out. Thin glasses "
                  "and face paint count as clean.", ""]
    lines += ["## Targets (test split)", "",
              R.md_table(["target", "measured", "met"],
                         [[t["target"], R.fmt(t["value"]), "yes" if t["met"] else "**no**"]
                          for t in report["targets"]]), "",
              "![occluder IoU](occluder_iou.png)", "", "![landmark NME](landmark_nme.png)", "",
              "Samples (label green, M_alpha's occluder red; landmarks: label green, ours red):", "",
              "![samples](samples.png)", "", "## Settings", "",
              f"* backends (full): {', '.join(f'{k}={x}' for k, x in s['backends']['full'].items())}",
              f"* software: {', '.join(f'{k} {x}' for k, x in report['software'].items())}", ""]
    return "\n".join(lines)
