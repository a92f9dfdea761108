"""De-occlusion measurements (I_out, paper §3.3) on a seeded pasted-occluder set.

Protocol (deterministic given ``seed``):

1. **Photos.** Held-out LFW identities Q-S (``training.parsing.dataset.SPLITS["test"]``; N_alpha never
   saw them), one photo per identity chosen and ordered by ``default_rng(seed)``.
2. **Occlusion.** The clean photo goes through the product's pipeline (:class:`Stages`, a real
   ``Pipeline`` run with ``stop_after="landmarks"``);
   its 68 points (photo pixels) place an occluder of the evaluation family
   (``occgui.training.occlusion.occluders.sample_eval_family``, random stream ``default_rng([seed, family, k])``)
   and :func:`occgui.training.occlusion.occluders.composite` pastes it onto the *photo*, giving the paste mask.
3. **Stages on the occluded photo.** The same pipeline with ``stop_after="merge"``: ``detect ->
   parse (M_alpha) -> landmarks (which read M_alpha) -> landmark_map (M_beta) -> merge
   (M_gamma)``, exactly as the product runs them. The clean
   photo and the paste mask are cut with the *occluded* photo's crop transform, so the clean
   reference, the paste mask and every I_out share one pixel frame. Photos where no face is
   found after occlusion are recorded as ``failed`` and the next photo is taken.
4. **I_out.** The pipeline run on to ``synthesize`` (the earlier stages come from its cache), and
   two baselines on the same mask: the
   occluded crop itself (``none``) and ``cv2.inpaint(..., INPAINT_TELEA)`` of the parser's
   occluder mask (``telea``, :func:`occgui.synthesis.baselines.occluder_mask`; a second pipeline
   whose ``synthesize`` backend is ``telea``, sharing the first one's cache).
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
   * ``fisn`` (with ``fisn=`` settings, ``--fisn``): the FISN synthesis (``synthesize=fisn``, issue 16)
     measured like ``ours`` on the same cases, a third pipeline sharing the stage cache; ``ours``
     stays the pipeline's own (default: the classical) backend. ``occgui eval fisn-decision``
     compares the two (:mod:`occgui.eval.fisn_decision`).
   * ablation ``ours_clean_landmarks``: identity and L1 of the default backend when the
     landmarks (hence M_beta and M_gamma) come from the *clean* photo (MediaPipe's mesh, no
     occluder to refine), M_alpha unchanged: how
     much of the remaining distance is due to landmarks guessed under the occluder.

The parser is the product's N_alpha (``checkpoints/parsing_unet.onnx``), or another parsing
checkpoint; reports name the parser, the landmark and synthesis backends (``name@version``) and
any setting that differs from its default.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import labels as L
from ..errors import OccguiError
from ..landmarks import ibug68
from ..results import Landmarks
from ..settings import non_default

#: The occluder families measured (``occgui.training.occlusion.occluders.EVAL_FAMILIES``).
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
#: The optional FISN method (measured when the run is given FISN settings).
FISN_METHOD = "fisn"


# ----------------------------------------------------------------------------- photos
def heldout_photos(lfw_dir, seed: int = DEFAULT_SEED, identities: str | None = None) -> list[Path]:
    """One photo per held-out identity (Q-S), chosen and ordered by ``default_rng(seed)``.

    ``identities`` (first letters) replaces Q-S, e.g. for development runs on training identities
    (A-P), which keep the held-out photos untouched by choices made while developing."""
    from ..training.parsing.dataset import SPLITS

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
    """The product's pipeline (a real :class:`~occgui.pipeline.runner.Pipeline`, CPU, 256 px crop)
    and its twin with the Telea baseline as ``synthesize``, sharing one stage cache: the two
    I_out of a case share every stage up to M_gamma."""

    def __init__(self, parser: str = "auto", synthesizer: str | None = None, landmarks: str | None = None,
                 settings: dict | None = None, backends: dict[str, str] | None = None, fisn=None):
        """``parser``: ``"auto"`` (the product's N_alpha), a registered parse backend name, or the
        path of a parsing checkpoint (``.onnx``) for the U-Net backend. ``landmarks``: a
        landmark backend name (default: the product's), or the path of a landmark refiner
        checkpoint. ``settings``: ``{stage: typed settings}`` (``backends.parse_settings``);
        ``backends``: ``{stage: name}`` of the other stages. ``fisn``: typed settings of the
        ``fisn`` synthesis backend to measure as one more method (None: not measured)."""
        from dataclasses import replace

        from ..pipeline import backends as B
        from ..pipeline.runner import Pipeline, PipelineConfig

        chosen: dict[str, str] = dict(backends or {})
        given = dict(settings or {})
        if parser.endswith(".onnx"):
            chosen["parse"] = "unet"
            given["parse"] = replace(given.get("parse") or B.default_settings("parse", "unet"), checkpoint=parser)
        elif parser != "auto":
            chosen["parse"] = parser
        if not B.available("parse") and "parse" not in chosen:
            raise OccguiError("the de-occlusion measurement needs the trained parser "
                              "(checkpoints/parsing_unet.onnx)")
        if landmarks is not None and landmarks.endswith(".onnx"):
            chosen["landmarks"] = "mediapipe-refined"
            given["landmarks"] = replace(given.get("landmarks") or B.default_settings("landmarks", "mediapipe-refined"),
                                         checkpoint=landmarks)
        elif landmarks is not None:
            chosen["landmarks"] = landmarks
        if synthesizer is not None:
            chosen["synthesize"] = synthesizer
        config = dict(device="cpu", crop_size=CROP_SIZE, backends=chosen, settings=given)
        self.pipeline = Pipeline(PipelineConfig(**config))
        telea = dict(config, backends={**chosen, "synthesize": "telea"},
                     settings={k: v for k, v in given.items() if k != "synthesize"})
        self.telea = Pipeline(PipelineConfig(**telea))
        self.telea._cache = self.pipeline._cache          # shared: the baseline recomputes only I_out
        self.fisn = None
        if fisn is not None:
            self.fisn = Pipeline(PipelineConfig(**dict(telea, backends={**chosen, "synthesize": "fisn"},
                                                       settings={**telea["settings"], "synthesize": fisn})))
            self.fisn._cache = self.pipeline._cache
        self.fisn_name = self.fisn.backend_id("synthesize") if self.fisn is not None else None
        self.methods: tuple[str, ...] = METHODS + ((FISN_METHOD,) if self.fisn is not None else ())
        self.parser_name = (self.pipeline.backend_id("parse")
                            + (f" ({Path(parser).name})" if parser.endswith(".onnx") else ""))
        self.landmarks_name = self.pipeline.backend_id("landmarks")
        self.synthesizer_name = self.pipeline.backend_id("synthesize")

    def parse_output(self, rgb: np.ndarray) -> np.ndarray:
        """The product's parser applied to a synthesized crop."""
        return np.asarray(self.pipeline.backend("parse").parse(np.ascontiguousarray(rgb)), dtype=np.uint8)


@dataclass
class Case:
    """One occluded photo after the real stages, in the crop frame of the occluded photo."""

    photo: str                 # "person/file.jpg"
    family: str
    placement: dict
    source: np.ndarray         # the occluded photo (working pixels): what the pipeline ran on
    clean: np.ndarray          # clean photo cut with the occluded photo's crop transform
    occluded: np.ndarray       # I_fac of the occluded photo
    paste: np.ndarray          # SxS bool: the paste mask (ground-truth occluder) in crop pixels
    landmarks: Landmarks       # the landmark stage on the occluded crop
    alpha: np.ndarray          # M_alpha
    beta: np.ndarray           # M_beta
    gamma: np.ndarray          # M_gamma
    clean_landmarks: Landmarks | None = None   # the landmark backend on the clean crop (ablation)


def prepare_case(stages: Stages, library, photo: Path, family: str, rng: np.random.Generator, *,
                 clean_landmarks: bool = True) -> Case | None:
    """Occlude one photo with an occluder of ``family`` and run the pipeline up to M_gamma
    (``clean_landmarks``: also run the landmark backend on the clean crop, for the ablation).

    Returns ``None`` when no face (or no landmarks) is found on the clean or the occluded photo.
    """
    from ..detection.crop import warp_to_crop
    from ..errors import NoFaceError
    from ..training.occlusion.occluders import composite, sample_eval_family

    try:
        ref = stages.pipeline.run(photo, stop_after="landmarks")
    except NoFaceError:
        return None
    pts_work = ref.crop.crop_to_working(ref.landmarks.points)
    occ, pl = sample_eval_family(rng, library, family, pts_work)
    occluded_rgb, paste_work = composite(ref.image.rgb, pts_work, occ, pl)
    try:
        res = stages.pipeline.run(occluded_rgb, stop_after="merge")
    except NoFaceError:
        return None
    crop1 = res.crop
    clean = warp_to_crop(ref.image.rgb, crop1.to_crop, CROP_SIZE)
    paste = warp_to_crop(paste_work.astype(np.float32), crop1.to_crop, CROP_SIZE) >= 0.5
    lm_clean = None
    if clean_landmarks:
        try:
            lm_clean = stages.pipeline.backend("landmarks").detect(clean)
        except NoFaceError:
            pass
    return Case(photo=f"{photo.parent.name}/{photo.name}", family=family, placement=pl.to_dict(),
                source=occluded_rgb, clean=clean, occluded=crop1.image, paste=paste, landmarks=res.landmarks,
                alpha=res.alpha.labels, beta=res.beta.labels, gamma=res.gamma.labels, clean_landmarks=lm_clean)


def iter_cases(stages: Stages, lfw_dir, occluders, family: str, count: int, seed: int = DEFAULT_SEED,
               failed: list | None = None, clean_landmarks: bool = True, identities: str | None = None):
    """Yield ``count`` cases of ``family`` (photos in :func:`heldout_photos` order, skipping
    failures, which are appended to ``failed``). ``occluders``: the occluder folder or a loaded
    ``occgui.training.occlusion.occluders.OccluderLibrary``."""
    from ..training.occlusion.occluders import (
        EVAL_FAMILIES,
        OccluderLibrary,
        load_library,
    )

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
    fisn_ms: float | None = None                   # the FISN synthesis time, when measured


def measure_case(stages: Stages, embedder, case: Case, keep_images: bool = False):
    """Run the three I_out producers on ``case`` and measure them; returns (CaseResult, images)."""
    from ..pipeline import stages as S
    from .embedding import distance

    ours = stages.pipeline.run(case.source, stop_after="synthesize")
    synth_ms = 1000.0 * ours.seconds["synthesize"]
    outs = {
        "occluded": case.occluded,
        "telea": stages.telea.run(case.source, stop_after="synthesize").synthesis.image,
        "ours": ours.synthesis.image,
    }
    fisn_ms = None
    if stages.fisn is not None:
        fisn = stages.fisn.run(case.source, stop_after="synthesize")
        outs[FISN_METHOD] = fisn.synthesis.image
        fisn_ms = 1000.0 * fisn.seconds["synthesize"]
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
        # ablation: the same M_alpha, but landmarks (hence M_beta, M_gamma) from the clean photo --
        # inputs no run of the pipeline produces, so its stage functions are applied to them
        p = stages.pipeline
        beta_c = S.landmark_map(p.backend("landmark_map"), ours.crop, case.clean_landmarks)
        gamma_c = S.merge(p.backend("merge"), ours.alpha, beta_c)
        rgb = S.synthesize(p.backend("synthesize"), ours.crop, case.clean_landmarks, ours.alpha, beta_c, gamma_c).image
        metrics["ours_clean_landmarks"] = {"identity": distance(embedder.embed(rgb, box), ref),
                                           "l1": l1_inside(rgb, case.clean, case.paste)}
    res = CaseResult(case.photo, case.family, case.placement, hidden_features(case.gamma, hole), metrics,
                     synth_ms, _jsonable(ours.synthesis.details), fisn_ms)
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
        methods = METHODS + ((FISN_METHOD,) if all(FISN_METHOD in r.metrics for r in rs) else ())
        for m in methods:
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
        if FISN_METHOD in methods:
            row["l1_ratio_fisn"] = row["l1_fisn"] / max(row["l1_telea"], 1e-9)
            row["fisn_ms_median"] = float(np.median([r.fisn_ms for r in rs if r.fisn_ms is not None]))
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
    if any("identity_fisn" in r for r in table.values()):
        lines += ["", "FISN beside the pipeline's synthesis (`ours`):", "",
                  "| family | n | identity ours | identity FISN | L1 ours | L1 FISN | L1 FISN/Telea | "
                  "FISN ms (median) |", "|" + "---|" * 8]
        for fam, r in table.items():
            if "identity_fisn" in r:
                lines.append(f"| {fam} | {r['n']} | {r['identity_ours']:.3f} | **{r['identity_fisn']:.3f}** | "
                             f"{r['l1_ours']:.1f} | {r['l1_fisn']:.1f} | {r['l1_ratio_fisn']:.2f} | "
                             f"{r['fisn_ms_median']:.0f} |")
    fisn = any("identity_fisn" in r for r in table.values())
    lines += ["", "| family | feature (cases hidden) | IoU occluded | IoU Telea | IoU ours | "
              + ("IoU FISN | " if fisn else "") + "IoU clean photo (reference) | whole-face IoU ours |",
              "|" + "---|" * (8 if fisn else 7)]
    for fam, r in table.items():
        for g in L.FEATURE_GROUPS:
            if not r[f"n_hidden_{g}"]:
                continue
            lines.append(f"| {fam} | {g} ({r[f'n_hidden_{g}']}) | {num(r[f'iou_{g}_occluded'], '.2f')} | "
                         f"{num(r[f'iou_{g}_telea'], '.2f')} | **{num(r[f'iou_{g}_ours'], '.2f')}** | "
                         + (f"{num(r.get(f'iou_{g}_fisn'), '.2f')} | " if fisn else "")
                         + f"{num(r.get(f'iou_{g}_clean'), '.2f')} | {num(r[f'face_iou_{g}_ours'], '.2f')} |")
    return "\n".join(lines)


def run(lfw_dir, occluders_dir, *, families=FAMILIES, per_family: int = DEFAULT_PER_FAMILY,
        seed: int = DEFAULT_SEED, parser: str = "auto", landmarks: str | None = None, progress=None,
        grid_dir=None, identities: str | None = None, settings: dict | None = None,
        synthesizer: str | None = None, backends: dict[str, str] | None = None, fisn=None) -> dict:
    """Measure the default de-occlusion against the baselines; returns a JSON-serialisable report.

    ``progress(family, i, n)`` is called after each case; ``grid_dir`` (optional) receives a
    PNG per family with rows (clean, occluded, Telea, ours, M_gamma, parsed ours) of the first
    eight cases (plus a FISN column when measured). ``fisn``: typed settings of the ``fisn``
    synthesis backend to measure as one more method (:mod:`occgui.eval.fisn_variant`), or None.
    """
    from ..training.occlusion.occluders import load_library
    from .embedding import FaceEmbedder

    stages = Stages(parser=parser, synthesizer=synthesizer, landmarks=landmarks, settings=settings,
                    backends=backends, fisn=fisn)
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
                extra = [imgs[FISN_METHOD]] if FISN_METHOD in imgs else []
                grid.append(np.hstack([imgs["clean"], imgs["occluded"], imgs["telea"], imgs["ours"], *extra,
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
                     "identities": identities or "QRS",
                     "settings": {k: non_default(v) for k, v in (settings or {}).items()},
                     "synthesizer": stages.synthesizer_name, "fisn": stages.fisn_name,
                     "hidden_fraction": HIDDEN_FRACTION, "iou_margin": IOU_MARGIN},
        "table": table,
        "violations": check_floors(table),
        "failed": failed,
        "cases": [asdict(r) for r in results],
    }


def save_report(report: dict, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_jsonable(report), indent=1))
