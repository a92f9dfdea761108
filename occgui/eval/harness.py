"""What every evaluation runner shares: the two pipeline variants, identity embeddings of photos
and renders, geometric helpers between a run's frames, seeds, and the per-item result cache.

Variants (the ablation of paper §5, issue point 3):

* ``full`` -- the pipeline as shipped (default backends, or the ones given with ``--backend``);
* ``raw``  -- the same with ``merge=none`` and ``synthesize=none``: no M_gamma merge and no
  de-occlusion, so the texture (and any later fit) comes straight from the occluded photo.

Both are real :class:`~occgui.pipeline.runner.Pipeline` instances. The raw pipeline shares the
full one's result cache, so on the same photo it recomputes only the stages whose backend or
inputs differ (merge, synthesize and what reads them); ``Pipeline.run_counts`` shows it.

Per-item results are cached as JSON under ``OUT/cache/<kind>/`` with a fingerprint of every
setting that changes them (seed, families, backends and their versions, sizes, the suite's
:data:`EVAL_VERSION`), so an interrupted run continues where it stopped; a changed setting
recomputes. The settings are recorded next to the items, so ``--report-only`` rewrites a run's
report from its cache without loading any model (even after a backend changed).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import labels as L
from ..errors import OccguiError
from ..results import FaceMesh

#: Bump when a change to the measurements invalidates cached per-item results.
EVAL_VERSION = "2"
#: The ablation's backend overrides (issue point 3).
RAW_BACKENDS = {"merge": "none", "synthesize": "none"}
#: Side of the frontal renders whose embeddings measure identity.
RENDER_SIZE = 256
VARIANTS = ("full", "raw")


# ----------------------------------------------------------------------------- seeds
def stable_int(text: str) -> int:
    """A platform-independent 32-bit integer of ``text`` (Python's ``hash`` is salted)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)


def case_rng(seed: int, item: str, index: int = 0) -> np.random.Generator:
    """The random stream of one case: ``default_rng([seed, stable_int(item), index])``."""
    return np.random.default_rng([int(seed), stable_int(item), int(index)])


# ----------------------------------------------------------------------------- occluder families
def choose_families(library, requested: tuple[str, ...] = ()) -> tuple[tuple[str, ...], list[str]]:
    """The evaluation families to run (:data:`occgui.training.occlusion.occluders.EVAL_FAMILIES`): ``requested``, or
    every family the occluder library has an occluder for. Returns (families, families skipped
    because the library has none); an explicitly requested unknown or empty family is an error."""
    from ..training.occlusion.occluders import EVAL_FAMILIES

    def has(name: str) -> bool:
        f = EVAL_FAMILIES[name]
        return len(library.filter(kinds=f.kinds or None, families=f.families or None)) > 0

    if requested:
        unknown = [f for f in requested if f not in EVAL_FAMILIES]
        if unknown:
            raise OccguiError(f"unknown occlusion famil{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}; "
                              f"choose from {', '.join(EVAL_FAMILIES)}")
        empty = [f for f in requested if not has(f)]
        if empty:
            raise OccguiError(f"the occluder library has no occluder for: {', '.join(empty)}")
        return tuple(requested), []
    fams = tuple(f for f in EVAL_FAMILIES if has(f))
    return fams, [f for f in EVAL_FAMILIES if f not in fams]


# ----------------------------------------------------------------------------- pipelines
class Variants:
    """The ``full`` and ``raw`` pipelines (see the module docstring) and the parser used to
    measure I_out."""

    def __init__(self, device: str = "auto", backends: dict[str, str] | None = None,
                 settings: dict | None = None, *, crop_size: int = 256, texture_size: int = 1024):
        """``backends``: ``{stage: name}`` of the full pipeline; ``settings``: ``{stage: typed
        settings}`` of its backends (``backends.parse_settings``); the raw pipeline keeps those
        of the stages it does not replace."""
        from ..pipeline.runner import Pipeline, PipelineConfig

        full_backends = dict(backends or {})
        full_settings = dict(settings or {})
        self.full = Pipeline(PipelineConfig(device=device, crop_size=crop_size, texture_size=texture_size,
                                            backends=full_backends, settings=full_settings))
        self.raw = Pipeline(PipelineConfig(device=device, crop_size=crop_size, texture_size=texture_size,
                                           backends={**full_backends, **RAW_BACKENDS},
                                           settings={k: v for k, v in full_settings.items() if k not in RAW_BACKENDS}))
        self.raw._cache = self.full._cache  # shared stage cache: see the module docstring

    def run(self, source) -> dict:
        """``{"full": PipelineResult, "raw": PipelineResult}`` of one photo (path or RGB array)."""
        full = self.full.run(source)
        raw = self.raw.run(source)
        return {"full": full, "raw": raw}

    def backend_ids(self) -> dict[str, dict[str, str]]:
        """``variant -> stage -> name@version`` of every stage backend (plus ``+s<digest>`` when its
        settings are not the defaults: :func:`occgui.pipeline.backends.backend_id`)."""
        from ..pipeline.backends import STAGES_WITH_BACKENDS

        return {name: {s: p.backend_id(s) for s in STAGES_WITH_BACKENDS}
                for name, p in (("full", self.full), ("raw", self.raw))}

    def backend_settings(self) -> dict[str, dict]:
        """``stage -> {setting: value}`` of the full pipeline's settings that are not the defaults."""
        from ..pipeline.backends import STAGES_WITH_BACKENDS
        from ..settings import non_default

        return {s: v for s in STAGES_WITH_BACKENDS if (v := non_default(self.full.settings(s)))}

    @property
    def device(self) -> str:
        return self.full.device

    def parse(self, rgb: np.ndarray) -> np.ndarray:
        """The product's parser (N_alpha) applied to an image in crop pixels (e.g. I_out)."""
        return np.asarray(self.full.backend("parse").parse(np.ascontiguousarray(rgb)), dtype=np.uint8)


# ----------------------------------------------------------------------------- frames
# All runs of one evaluation item share the clean photo's *working* frame: an occluded photo is
# the clean run's working image with an occluder pasted, so its own working frame is the same.
def mask_to_crop(result, mask_working: np.ndarray) -> np.ndarray:
    """A boolean mask in working pixels resampled into the run's crop (bilinear, >= 0.5)."""
    size = result.crop.size
    warped = cv2.warpAffine(np.asarray(mask_working, dtype=np.float32), result.crop.to_crop, (size, size),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped >= 0.5


def image_to_crop(result, rgb_working: np.ndarray) -> np.ndarray:
    """An RGB image in working pixels cut with the run's crop transform."""
    from ..detection.crop import warp_to_crop

    return warp_to_crop(np.asarray(rgb_working, dtype=np.uint8), result.crop.to_crop, result.crop.size)


def labels_between_crops(labels: np.ndarray, src_result, dst_result) -> np.ndarray:
    """A label map in ``src_result``'s crop moved into ``dst_result``'s crop (nearest neighbour,
    background outside)."""
    a = np.vstack([src_result.crop.to_crop, [0, 0, 1]])
    b = np.vstack([dst_result.crop.to_crop, [0, 0, 1]])
    m = (b @ np.linalg.inv(a))[:2]
    size = dst_result.crop.size
    return cv2.warpAffine(np.asarray(labels, dtype=np.uint8), m, (size, size), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=L.BACKGROUND)


def landmarks_working(result) -> np.ndarray:
    """The run's 68 landmarks in its working-image pixels."""
    return result.crop.crop_to_working(result.landmarks.points)


def landmark_vertices(mesh: FaceMesh) -> np.ndarray:
    """(68,3) positions of the mesh's landmark vertices."""
    return np.asarray(mesh.vertices)[np.asarray(mesh.landmark_vertices)]


# ----------------------------------------------------------------------------- identity
class Identity:
    """Face embeddings (dlib's 128-D ResNet via :mod:`occgui.eval.embedding`) of crops and of
    frontal renders of reconstructions."""

    def __init__(self):
        from .embedding import FaceEmbedder

        try:
            self.embedder = FaceEmbedder()
        except ImportError as e:
            raise OccguiError(f"the identity measurements need dlib's face embedding ({e.name or e}); "
                              "install the evaluation extra: pip install 'occgui[eval]'") from None

    def crop_box(self, result, rgb: np.ndarray | None = None):
        """The face box of the run's crop (found in ``rgb``, default the crop itself), guided by
        the run's landmarks; reuse it to compare images in the same crop frame."""
        img = result.crop.image if rgb is None else rgb
        return self.embedder.face_box(img, landmarks68=result.landmarks.points)

    def embed(self, rgb: np.ndarray, box) -> np.ndarray:
        """Embedding of the face inside ``box`` (aligned by dlib's 5 points found in ``rgb``)."""
        return self.embedder.embed(rgb, box)

    def embed_crop(self, result) -> np.ndarray:
        """Embedding of the run's face crop I_fac (the photo as the network sees it)."""
        return self.embed(result.crop.image, self.crop_box(result))

    def render(self, result) -> tuple[np.ndarray, np.ndarray]:
        """(frontal render, its 68 projected landmarks) of the run's textured reconstruction."""
        from .render import frontal_camera, render_frontal

        img = render_frontal(result.mesh, result.texture.image, RENDER_SIZE)
        lm = frontal_camera(landmark_vertices(result.mesh), RENDER_SIZE).project(landmark_vertices(result.mesh))
        return img, lm

    def embed_render(self, result) -> tuple[np.ndarray, np.ndarray]:
        """(embedding, render) of the frontal render of the run's reconstruction."""
        img, lm = self.render(result)
        return self.embed(img, self.embedder.face_box(img, landmarks68=lm)), img


# ----------------------------------------------------------------------------- cache
def fingerprint(settings: dict) -> str:
    """A short hash of the settings that determine a cached result."""
    blob = json.dumps({"eval_version": EVAL_VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:150]


@dataclass
class ItemCache:
    """JSON results per item under ``folder``; an entry is valid only with the same fingerprint."""

    folder: Path
    key: str

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, item: str, suffix: str = ".json") -> Path:
        return self.folder / f"{safe_name(item)}{suffix}"

    def load(self, item: str) -> dict | None:
        p = self.path(item)
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return data.get("result") if data.get("fingerprint") == self.key else None

    def save(self, item: str, result: dict) -> None:
        from .report import jsonable

        p = self.path(item)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")     # several processes may share one cache
        tmp.write_text(json.dumps({"fingerprint": self.key, "item": item, "result": jsonable(result)}))
        tmp.replace(p)

    def image_path(self, item: str) -> Path:
        return self.path(item, f".{self.key}.png")


def open_cache(folder, settings: dict, *, device: str) -> ItemCache:
    """The item cache of a run with ``settings``; also records the settings (and the device) as
    ``settings.<fingerprint>.json`` so that ``--report-only`` can re-report the run later."""
    from .report import write_json

    key = fingerprint(settings)
    cache = ItemCache(folder, key)
    write_json(cache.folder / f"settings.{key}.json", {"fingerprint": key, "settings": settings, "device": device})
    return cache


def cached_run(folder) -> tuple[ItemCache, dict, str]:
    """(cache, settings, device) of the run recorded in ``folder`` (``--report-only``); with
    several recorded runs, the one with the most cached items."""
    folder = Path(folder)
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("settings.*.json"))] if folder.is_dir() else []
    if not runs:
        raise OccguiError(f"--report-only: no recorded run in {folder} (run the command without it first)")
    if len(runs) > 1:
        counts: dict[str, int] = {}
        for p in folder.glob("*.json"):
            if p.name.startswith("settings."):
                continue
            try:
                key = json.loads(p.read_text()).get("fingerprint")
            except (OSError, json.JSONDecodeError):
                continue
            counts[key] = counts.get(key, 0) + 1
        runs.sort(key=lambda r: -counts.get(r["fingerprint"], 0))
    run = runs[0]
    return ItemCache(folder, run["fingerprint"]), run["settings"], run.get("device", "unknown")


def occluder_run_settings(command: str, *, occluders, device: str, backends: dict, seed: int,
                          families: tuple[str, ...] = (), backend_settings: dict | None = None):
    """What a run that pastes occluders needs (``occlusion``, ``verify``): (settings that
    determine its results, :class:`Variants`, :class:`Identity`, occluder library, families)."""
    from ..training.occlusion.occluders import load_library

    library = load_library(occluders)
    chosen, unavailable = choose_families(library, tuple(families))
    variants = Variants(device, backends, backend_settings)
    settings = {"command": command, "seed": seed, "families": list(chosen),
                "families_without_occluders": unavailable, "backends": variants.backend_ids(),
                "crop_size": variants.full.config.crop_size, "texture_size": variants.full.config.texture_size,
                "render_size": RENDER_SIZE, "occluder_library": sorted(o.name for o in library)}
    if variants.backend_settings():      # only when some are not the defaults: default runs keep their caches
        settings["backend_settings"] = variants.backend_settings()
    return settings, variants, Identity(), library, chosen


def fill_cache(items: list, cache: ItemCache, measure, *, name_of, desc: str, factory=None, executor=None,
               quiet: bool = False) -> dict:
    """Measure the items that ``cache`` lacks and store their records.

    ``measure(item)`` returns ``(record, images)``; ``images`` maps a name (the item's name, or
    it plus a suffix) to a list of image cells, saved as one strip PNG next to the record.
    ``executor`` (:mod:`occgui.batch.executor`; default: this process) runs the items; its workers
    build their own ``measure`` with ``factory`` (picklable, no arguments), this process uses
    ``measure`` itself when the executor is serial. Records and images come back here, where they
    are cached. An item whose measurement raises is left out of the cache (reported on stderr; the
    report lists it under ``missing_from_cache``).
    Returns ``{"photos", "measured", "failed", "seconds"}``.
    """
    from ..batch.executor import SerialExecutor
    from ..imageio import save_png
    from .report import hstack_cells, progress

    executor = executor or SerialExecutor()
    t0 = time.perf_counter()
    todo = [it for it in items if cache.load(name_of(it)) is None]
    failed: list[str] = []
    bar = progress(None, desc=desc, quiet=quiet, total=len(items))
    bar.update(len(items) - len(todo))
    try:
        for out in executor.map_unordered(factory, todo, local=measure):
            bar.update(1)
            name = name_of(out.item)
            if not out.ok:
                failed.append(f"{name}: {out.error}")
                continue
            rec, images = out.value
            for image_name, cells in images.items():
                save_png(cache.image_path(image_name), hstack_cells(cells))
            cache.save(name, rec)
    finally:
        bar.close()
    for line in failed:
        print(f"{desc}: not measured: {line}", file=sys.stderr)
    return {"photos": len(items), "measured": len(todo) - len(failed), "failed": len(failed),
            "seconds": time.perf_counter() - t0}
