"""De-occlusion measurements (I_out, paper §3.3) on a seeded pasted-occluder set.

Protocol (deterministic given ``seed``):

1. **Photos.** Held-out LFW identities Q-S (``parsing.dataset.SPLITS["test"]``; N_alpha never
   saw them), one photo per identity chosen and ordered by ``default_rng(seed)``.
2. **Occlusion.** The clean photo goes through the real ``detect`` and ``landmarks`` stages;
   its 68 points (photo pixels) place an occluder of the evaluation family
   (``occgui.occluders.sample_eval_family``, random stream ``default_rng([seed, family, k])``)
   and :func:`occgui.occluders.composite` pastes it onto the *photo*, giving the paste mask.
3. **Stages on the occluded photo.** ``detect -> crop -> parse (M_alpha) -> landmarks (which
   read M_alpha) -> landmark_map (M_beta) -> merge (M_gamma)``, exactly as the product runs them. The clean
   photo and the paste mask are cut with the *occluded* photo's crop transform, so the clean
   reference, the paste mask and every I_out share one pixel frame. Photos where no face is
   found after occlusion are recorded as ``failed`` and the next photo is taken.
4. **I_out.** The default ``synthesize`` backend, and two baselines on the same mask: the
   occluded crop itself (``none``) and ``cv2.inpaint(..., INPAINT_TELEA)`` of the parser's
   occluder mask (``telea``, :func:`occgui.synthesis.baselines.occluder_mask`).
5. **Metrics**, per case and method:

   * ``identity``: Euclidean distance of dlib's 128-D embeddings (``occgui.eval.embedding``)
     of I_out and of the clean crop. The face box is found once on the clean crop and shared by
     every variant (no detection noise); dlib's 5-point alignment runs on each image in it.
   * ``iou_<feature>``: the per-feature IoU (``labels.FEATURE_GROUPS``: brows, eyes, nose, lips)
     between the parser's map of I_out and M_gamma, **restricted to the hidden features**: a
     feature group counts for a case when at least :data:`HIDDEN_FRACTION` of its M_gamma
     pixels lie in the parser's occluder mask, and the IoU is computed inside that mask dilated
     by :data:`IOU_MARGIN` x the inter-ocular distance (so a feature drawn slightly outside the
     hole still counts, and the visible rest of the face cannot inflate the score).
     ``face_iou_<feature>`` is the same IoU over the whole crop; the parser's map of the *clean*
     crop against the same M_gamma gives the attainable reference (its label definitions and the
     landmarks guessed under the occluder differ from M_gamma's polygons even for the true face).
   * ``l1``: mean absolute RGB difference (0-255) to the clean crop inside the paste mask; the
     family table reports the ratio of the family means, ours / Telea.
   * ablation ``ours_clean_landmarks``: identity and L1 of the default backend when the
     landmarks (hence M_beta and M_gamma) come from the *clean* photo (MediaPipe's mesh, no
     occluder to refine), M_alpha unchanged: how
     much of the remaining distance is due to landmarks guessed under the occluder.

The parser is the product's N_alpha (``checkpoints/parsing_unet.onnx``) when present; otherwise
(``parser="oracle"``) M_alpha is the clean crop's generated label map
(``parsing.labelgen.generate_labels``) with the paste mask set to ``occluder``, and I_out is
parsed with the same label generator. Reports name the parser used.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import labels as L
from ..errors import OccguiError
from ..landmarks import ibug68
from ..pipeline.results import Landmarks

#: The occluder families measured (``occgui.occluders.EVAL_FAMILIES``).
FAMILIES: tuple[str, ...] = ("hand_over_eye", "sunglasses", "surgical_mask")
#: Default seed and size of the measurement set.
DEFAULT_SEED = 2024
DEFAULT_PER_FAMILY = 40
#: Crop side of the pipeline (``PipelineConfig.crop_size``).
CROP_SIZE = 256
#: A feature group is "hidden" when at least this fraction of its M_gamma pixels is occluded.
HIDDEN_FRACTION = 0.25
#: The restricted IoU is computed inside the occluder mask dilated by this x inter-ocular distance.
IOU_MARGIN = 0.15
#: A feature group's IoU is checked against the floor when it is hidden in at least this many cases.
MIN_HIDDEN_CASES = 3
#: Methods compared (I_out producers).
METHODS: tuple[str, ...] = ("occluded", "telea", "ours")


# ----------------------------------------------------------------------------- photos
def heldout_photos(lfw_dir, seed: int = DEFAULT_SEED, identities: str | None = None) -> list[Path]:
    """One photo per held-out identity (Q-S), chosen and ordered by ``default_rng(seed)``.

    ``identities`` (first letters) replaces Q-S, e.g. for development runs on training identities
    (A-P), which keep the held-out photos untouched by choices made while developing."""
    from ..parsing.dataset import SPLITS

    root = Path(lfw_dir)
    if not root.is_dir():
        raise OccguiError(f"LFW folder not found: {root}")
    letters = identities or SPLITS["test"]
    people = sorted(p for p in root.iterdir() if p.is_dir() and p.name[:1] in letters)
    rng = np.random.default_rng(seed)
    photos = []
    for person in people:
        files = sorted(person.glob("*.jpg"))
        if files:
            photos.append(files[int(rng.integers(len(files)))])
    order = rng.permutation(len(photos))
    return [photos[i] for i in order]


# ----------------------------------------------------------------------------- stages
class Stages:
    """The product's stage backends (detect, parse, landmarks, landmark_map, merge, synthesize)
    plus the baselines, created once and reused for every case."""

    def __init__(self, parser: str = "auto", synthesizer: str | None = None, landmarks: str | None = None,
                 synth_options: dict | None = None):
        """``parser``: ``"auto"`` (the product's N_alpha when its checkpoint exists, else the
        oracle), ``"oracle"``, a registered parse backend name, or the path of a parsing
        checkpoint (``.onnx``) to load into the U-Net backend. ``landmarks``: a landmark
        backend name (default: the product's), or the path of a landmark refiner checkpoint."""
        from ..pipeline import backends as B

        ctx = B.BackendContext("cpu", CROP_SIZE, 1024, dict(synth_options or {}))
        self.detector = B.create("detect", None, ctx)
        if landmarks is not None and landmarks.endswith(".onnx"):
            from ..landmarks.mediapipe_mesh import RefinedMeshLandmarks

            self.landmarks = RefinedMeshLandmarks(checkpoint=landmarks)
        else:
            self.landmarks = B.create("landmarks", landmarks, ctx)
        self.landmarks_name = f"{self.landmarks.name}@{self.landmarks.version}"
        self.landmark_map = B.create("landmark_map", None, ctx)
        self.merge = B.create("merge", None, ctx)
        self.synthesizer = B.create("synthesize", synthesizer, ctx)
        self.telea = B.create("synthesize", "telea", ctx)
        if parser == "auto":
            parser = "unet" if "unet" in B.available("parse") else "oracle"
        if parser == "oracle":
            self.parser = None
            self.parser_name = "oracle (labelgen on the clean crop + paste mask)"
        elif parser.endswith(".onnx"):
            from ..parsing.unet_parser import UNetParser

            self.parser = UNetParser(ctx, checkpoint=parser)
            self.parser_name = f"{self.parser.name}@{self.parser.version} ({Path(parser).name})"
        else:
            self.parser = B.create("parse", parser, ctx)
            self.parser_name = f"{self.parser.name}@{getattr(self.parser, 'version', '')}"

    @property
    def oracle(self) -> bool:
        return self.parser is None

    def parse_output(self, rgb: np.ndarray) -> np.ndarray:
        """The parser applied to a synthesized crop (the label generator in oracle mode)."""
        if self.parser is not None:
            return np.asarray(self.parser.parse(rgb), dtype=np.uint8)
        from ..parsing.labelgen import generate_labels

        try:
            return generate_labels(rgb)
        except OccguiError:
            return np.zeros(rgb.shape[:2], np.uint8)


@dataclass
class Case:
    """One occluded photo after the real stages, in the crop frame of the occluded photo."""

    photo: str                 # "person/file.jpg"
    family: str
    placement: dict
    clean: np.ndarray          # clean photo cut with the occluded photo's crop transform
    occluded: np.ndarray       # I_fac of the occluded photo
    paste: np.ndarray          # SxS bool: the paste mask (ground-truth occluder) in crop pixels
    landmarks: Landmarks       # the landmark stage on the occluded crop
    alpha: np.ndarray          # M_alpha
    beta: np.ndarray           # M_beta
    gamma: np.ndarray          # M_gamma
    clean_landmarks: Landmarks | None = None   # the landmark stage on the clean crop (ablation)


def _largest(detector, rgb: np.ndarray):
    faces = sorted(detector.detect(rgb), key=lambda d: -d.area)
    return faces[0] if faces else None


def prepare_case(stages: Stages, library, photo: Path, family: str, rng: np.random.Generator, *,
                 clean_landmarks: bool = True) -> Case | None:
    """Occlude one photo with an occluder of ``family`` and run the stages up to M_gamma
    (``clean_landmarks``: also run the landmark stage on the clean crop, for the ablation).

    Returns ``None`` when no face (or no landmarks) is found on the clean or the occluded photo.
    """
    from ..detection.crop import aligned_crop, warp_to_crop
    from ..errors import NoFaceError
    from ..imageio import load_image
    from ..occluders import composite, sample_eval_family

    img = load_image(photo)
    det = _largest(stages.detector, img.rgb)
    if det is None:
        return None
    crop0 = aligned_crop(img.rgb, det, CROP_SIZE)
    try:
        lm0 = stages.landmarks.detect(crop0.image)
    except NoFaceError:
        return None
    pts_work = crop0.crop_to_working(lm0.points)
    occ, pl = sample_eval_family(rng, library, family, pts_work)
    occluded_rgb, paste_work = composite(img.rgb, pts_work, occ, pl)
    det1 = _largest(stages.detector, occluded_rgb)
    if det1 is None:
        return None
    crop1 = aligned_crop(occluded_rgb, det1, CROP_SIZE)
    clean = warp_to_crop(img.rgb, crop1.to_crop, CROP_SIZE)
    paste = warp_to_crop(paste_work.astype(np.float32), crop1.to_crop, CROP_SIZE) >= 0.5
    if stages.oracle:
        from ..parsing.labelgen import generate_labels
        try:
            alpha = generate_labels(clean)
        except OccguiError:
            return None
        alpha[paste] = L.OCCLUDER
    else:
        alpha = np.asarray(stages.parser.parse(crop1.image), dtype=np.uint8)
    try:  # as in the product, the landmark stage sees M_alpha (an occlusion-aware backend uses it)
        lm1 = stages.landmarks.detect(crop1.image, alpha)
    except NoFaceError:
        return None
    if lm1.detected_points is None:
        from dataclasses import replace
        lm1 = replace(lm1, detected_points=lm1.points.copy())
    beta = stages.landmark_map.render(lm1.points, CROP_SIZE)
    gamma = stages.merge.merge(alpha, beta)
    lm_clean = None
    if clean_landmarks:
        try:
            lm_clean = stages.landmarks.detect(clean)
        except NoFaceError:
            pass
    return Case(photo=f"{photo.parent.name}/{photo.name}", family=family, placement=pl.to_dict(), clean=clean,
                occluded=crop1.image, paste=paste, landmarks=lm1, alpha=alpha, beta=beta, gamma=gamma,
                clean_landmarks=lm_clean)


def iter_cases(stages: Stages, lfw_dir, occluders, family: str, count: int, seed: int = DEFAULT_SEED,
               failed: list | None = None, clean_landmarks: bool = True, identities: str | None = None):
    """Yield ``count`` cases of ``family`` (photos in :func:`heldout_photos` order, skipping
    failures, which are appended to ``failed``). ``occluders``: the occluder folder or a loaded
    ``occgui.occluders.OccluderLibrary``."""
    from ..occluders import EVAL_FAMILIES, OccluderLibrary, load_library

    if family not in EVAL_FAMILIES:
        raise OccguiError(f"unknown occlusion family {family!r}")
    library = occluders if isinstance(occluders, OccluderLibrary) else load_library(occluders)
    fam_id = sorted(EVAL_FAMILIES).index(family)
    made = 0
    for k, photo in enumerate(heldout_photos(lfw_dir, seed, identities)):
        if made >= count:
            return
        case = prepare_case(stages, library, photo, family, np.random.default_rng([seed, fam_id, k]),
                            clean_landmarks=clean_landmarks)
        if case is None:
            if failed is not None:
                failed.append(f"{photo.parent.name}/{photo.name}")
            continue
        made += 1
        yield case


# ----------------------------------------------------------------------------- metrics
def l1_inside(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute RGB difference (0-255 units) over the pixels of ``mask``."""
    if not mask.any():
        return 0.0
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64))[mask].mean())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def hidden_features(gamma: np.ndarray, hole: np.ndarray) -> list[str]:
    """Feature groups of M_gamma at least :data:`HIDDEN_FRACTION` inside ``hole``."""
    out = []
    for name, ids in L.FEATURE_GROUPS.items():
        m = L.mask_of(gamma, ids)
        if m.sum() >= 10 and (m & hole).sum() >= HIDDEN_FRACTION * m.sum():
            out.append(name)
    return out


def feature_ious(parsed: np.ndarray, gamma: np.ndarray, hole: np.ndarray, landmarks68: np.ndarray) -> dict:
    """``iou_<g>`` inside the dilated hole for the hidden groups, ``face_iou_<g>`` over the crop."""
    r = max(1, int(round(IOU_MARGIN * ibug68.interocular(landmarks68))))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    region = cv2.dilate(hole.astype(np.uint8), k).astype(bool)
    out = {}
    hidden = hidden_features(gamma, hole)
    for name, ids in L.FEATURE_GROUPS.items():
        p, g = L.mask_of(parsed, ids), L.mask_of(gamma, ids)
        out[f"face_iou_{name}"] = iou(p, g)
        if name in hidden:
            out[f"iou_{name}"] = iou(p & region, g & region)
    return out


@dataclass
class CaseResult:
    photo: str
    family: str
    placement: dict
    hidden: list[str]
    metrics: dict[str, dict[str, float]]           # method -> metric -> value
    synth_ms: float
    details: dict = field(default_factory=dict)    # the default backend's provenance


def measure_case(stages: Stages, embedder, case: Case, keep_images: bool = False):
    """Run the three I_out producers on ``case`` and measure them; returns (CaseResult, images)."""
    from .embedding import distance

    t0 = time.perf_counter()
    ours = stages.synthesizer.synthesize(case.occluded, case.landmarks, case.alpha, case.gamma)
    synth_ms = 1000.0 * (time.perf_counter() - t0)
    outs = {
        "occluded": case.occluded,
        "telea": stages.telea.synthesize(case.occluded, case.landmarks, case.alpha, case.gamma).image,
        "ours": ours.image,
    }
    box = embedder.face_box(case.clean, case.landmarks.points)
    ref = embedder.embed(case.clean, box)
    hole = L.mask_of(case.alpha, L.OCCLUDING)
    metrics: dict[str, dict[str, float]] = {}
    parsed = {}
    for m, rgb in outs.items():
        parsed[m] = stages.parse_output(rgb)
        d = {"identity": distance(embedder.embed(rgb, box), ref), "l1": l1_inside(rgb, case.clean, case.paste)}
        d.update(feature_ious(parsed[m], case.gamma, hole, case.landmarks.points))
        metrics[m] = d
    # reference: the parser on the clean photo, against the same M_gamma (the IoU attainable when
    # the hidden features are exactly the true ones; label definitions and landmarks differ)
    metrics["clean"] = feature_ious(stages.parse_output(case.clean), case.gamma, hole, case.landmarks.points)
    if case.clean_landmarks is not None:
        # ablation: the same M_alpha, but landmarks (hence M_beta, M_gamma) from the clean photo
        gamma_c = stages.merge.merge(case.alpha, stages.landmark_map.render(case.clean_landmarks.points, CROP_SIZE))
        rgb = stages.synthesizer.synthesize(case.occluded, case.clean_landmarks, case.alpha, gamma_c).image
        metrics["ours_clean_landmarks"] = {"identity": distance(embedder.embed(rgb, box), ref),
                                           "l1": l1_inside(rgb, case.clean, case.paste)}
    res = CaseResult(case.photo, case.family, case.placement, hidden_features(case.gamma, hole), metrics,
                     synth_ms, _jsonable(ours.details))
    images = {"clean": case.clean, **outs, "gamma": case.gamma, "parsed": parsed} if keep_images else None
    return res, images


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


# ----------------------------------------------------------------------------- aggregation
def summarize(results: list[CaseResult]) -> dict:
    """Per-family means: identity distance per method, hidden-feature IoU per group (ours and
    baselines), whole-face IoU, L1 per method and ours/Telea L1 ratio, synthesis time."""
    table = {}
    for fam in sorted({r.family for r in results}, key=lambda f: FAMILIES.index(f) if f in FAMILIES else 99):
        rs = [r for r in results if r.family == fam]
        row: dict = {"n": len(rs)}
        for m in METHODS:
            row[f"identity_{m}"] = float(np.mean([r.metrics[m]["identity"] for r in rs]))
            row[f"l1_{m}"] = float(np.mean([r.metrics[m]["l1"] for r in rs]))
            row[f"same_person_{m}"] = float(np.mean([r.metrics[m]["identity"] < 0.6 for r in rs]))
            for g in L.FEATURE_GROUPS:
                vals = [r.metrics[m][f"iou_{g}"] for r in rs if f"iou_{g}" in r.metrics[m]]
                row[f"iou_{g}_{m}"] = float(np.mean(vals)) if vals else None
                row[f"n_hidden_{g}"] = len(vals)
                fv = [r.metrics[m][f"face_iou_{g}"] for r in rs if np.isfinite(r.metrics[m][f"face_iou_{g}"])]
                row[f"face_iou_{g}_{m}"] = float(np.mean(fv)) if fv else None
        for g in L.FEATURE_GROUPS:
            vals = [r.metrics["clean"][f"iou_{g}"] for r in rs if f"iou_{g}" in r.metrics.get("clean", {})]
            row[f"iou_{g}_clean"] = float(np.mean(vals)) if vals else None
        row["l1_ratio"] = row["l1_ours"] / max(row["l1_telea"], 1e-9)
        abl = [r.metrics["ours_clean_landmarks"]["identity"] for r in rs if "ours_clean_landmarks" in r.metrics]
        row["identity_ours_clean_landmarks"] = float(np.mean(abl)) if abl else None
        row["synth_ms_median"] = float(np.median([r.synth_ms for r in rs]))
        table[fam] = row
    return table


def check_floors(table: dict, *, iou_floor: float = 0.5, l1_factor: float = 1.2) -> list[str]:
    """The issue's targets, as a list of violations (empty when every family meets them): mean
    identity distance below both baselines', hidden-feature IoU >= ``iou_floor`` (features
    hidden in at least :data:`MIN_HIDDEN_CASES` cases), L1 at most ``l1_factor`` x Telea's."""
    bad = []
    for fam, row in table.items():
        if not row["identity_ours"] < min(row["identity_occluded"], row["identity_telea"]):
            bad.append(f"{fam}: identity {row['identity_ours']:.3f} not below occluded "
                       f"{row['identity_occluded']:.3f} and Telea {row['identity_telea']:.3f}")
        for g in L.FEATURE_GROUPS:
            v = row[f"iou_{g}_ours"]
            if v is not None and row[f"n_hidden_{g}"] >= MIN_HIDDEN_CASES and v < iou_floor:
                bad.append(f"{fam}: {g} IoU {v:.2f} < {iou_floor}")
        if row["l1_ratio"] > l1_factor:
            bad.append(f"{fam}: L1 ratio {row['l1_ratio']:.2f} > {l1_factor}")
    return bad


def format_table(table: dict) -> str:
    """Markdown tables of :func:`summarize`'s output: identity and L1 per method, then the
    hidden-feature IoU per group and method (number of cases with that feature hidden)."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| family | n | identity occluded | identity Telea | identity ours | ours, clean landmarks | "
             "L1 Telea | L1 ours | L1 ours/Telea | synth ms (median) |", "|" + "---|" * 10]
    for fam, r in table.items():
        lines.append(f"| {fam} | {r['n']} | {r['identity_occluded']:.3f} | {r['identity_telea']:.3f} | "
                     f"**{r['identity_ours']:.3f}** | {num(r.get('identity_ours_clean_landmarks'), '.3f')} | "
                     f"{r['l1_telea']:.1f} | {r['l1_ours']:.1f} | **{r['l1_ratio']:.2f}** | "
                     f"{r['synth_ms_median']:.0f} |")
    lines += ["", "| family | feature (cases hidden) | IoU occluded | IoU Telea | IoU ours | IoU clean photo "
              "(reference) | whole-face IoU ours |", "|" + "---|" * 7]
    for fam, r in table.items():
        for g in L.FEATURE_GROUPS:
            if not r[f"n_hidden_{g}"]:
                continue
            lines.append(f"| {fam} | {g} ({r[f'n_hidden_{g}']}) | {num(r[f'iou_{g}_occluded'], '.2f')} | "
                         f"{num(r[f'iou_{g}_telea'], '.2f')} | **{num(r[f'iou_{g}_ours'], '.2f')}** | "
                         f"{num(r.get(f'iou_{g}_clean'), '.2f')} | {num(r[f'face_iou_{g}_ours'], '.2f')} |")
    return "\n".join(lines)


def run(lfw_dir, occluders_dir, *, families=FAMILIES, per_family: int = DEFAULT_PER_FAMILY,
        seed: int = DEFAULT_SEED, parser: str = "auto", landmarks: str | None = None, progress=None,
        grid_dir=None, identities: str | None = None, synth_options: dict | None = None) -> dict:
    """Measure the default de-occlusion against the baselines; returns a JSON-serialisable report.

    ``progress(family, i, n)`` is called after each case; ``grid_dir`` (optional) receives a
    PNG per family with rows (clean, occluded, Telea, ours, M_gamma, parsed ours) of the first
    eight cases.
    """
    from ..occluders import load_library
    from .embedding import FaceEmbedder

    stages = Stages(parser=parser, landmarks=landmarks, synth_options=synth_options)
    embedder = FaceEmbedder()
    library = load_library(occluders_dir)
    results: list[CaseResult] = []
    failed: dict[str, list[str]] = {}
    for fam in families:
        failed[fam] = []
        grid = []
        for i, case in enumerate(iter_cases(stages, lfw_dir, library, fam, per_family, seed, failed[fam],
                                                identities=identities)):
            res, imgs = measure_case(stages, embedder, case, keep_images=grid_dir is not None and i < 8)
            results.append(res)
            if imgs is not None:
                grid.append(np.hstack([imgs["clean"], imgs["occluded"], imgs["telea"], imgs["ours"],
                                       L.colorize(imgs["gamma"]), L.colorize(imgs["parsed"]["ours"])]))
            if progress:
                progress(fam, i + 1, per_family)
        if grid_dir is not None and grid:
            from ..imageio import save_png
            Path(grid_dir).mkdir(parents=True, exist_ok=True)
            save_png(Path(grid_dir) / f"deocclusion_{fam}.png", np.vstack(grid))
    table = summarize(results)
    return {
        "protocol": {"seed": seed, "per_family": per_family, "families": list(families), "crop_size": CROP_SIZE,
                     "parser": stages.parser_name, "landmarks": stages.landmarks_name,
                     "identities": identities or "QRS", "synth_options": dict(synth_options or {}),
                     "synthesizer": f"{stages.synthesizer.name}@{stages.synthesizer.version}",
                     "hidden_fraction": HIDDEN_FRACTION, "iou_margin": IOU_MARGIN},
        "table": table,
        "violations": check_floors(table),
        "failed": failed,
        "cases": [asdict(r) for r in results],
    }


def save_report(report: dict, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_jsonable(report), indent=1))
