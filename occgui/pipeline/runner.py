"""The pipeline of named stages (paper Fig. 1) with result caching, progress and cancellation.

``load -> detect -> parse (M_alpha) -> landmarks -> landmark_map (M_beta) -> merge (M_gamma)
-> synthesize (I_out) -> geometry -> texture``; export is done by :mod:`occgui.export` on the
finished :class:`PipelineResult`. M_alpha comes before the landmarks because the default landmark
backend reads its occluder mask to place the points the occluder hides (``landmarks/refiner.py``);
N_alpha itself never depends on the landmarks.

Each stage result is cached under a key made of the stage name, its backend (name and version)
and the keys of the inputs it used. Supplying corrected landmarks therefore recomputes only
M_beta and what follows: the crop and M_alpha never depend on the landmarks.

The core imports no Qt. A GUI drives :meth:`Pipeline.run` from a worker thread: ``progress``
receives a :class:`StageEvent` before and after every stage (with the result), and ``cancel``
is polled between stages.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..device import resolve_device
from ..errors import Cancelled, OccguiError
from . import backends as _backends
from .results import FaceCrop, FaceMesh, Landmarks, LoadedImage, ParsingMap, Synthesis, Texture

STAGES: tuple[str, ...] = ("load", "detect", "parse", "landmarks", "landmark_map", "merge",
                           "synthesize", "geometry", "texture")
#: What each stage reads (names of other stages' results).
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "load": (),
    "detect": ("load",),
    "landmarks": ("detect", "parse"),
    "parse": ("detect",),
    "landmark_map": ("detect", "landmarks"),
    "merge": ("parse", "landmark_map"),
    "synthesize": ("detect", "landmarks", "parse", "merge"),
    "geometry": ("load", "detect", "landmarks"),
    "texture": ("load", "detect", "parse", "synthesize", "geometry"),
}
#: Human labels for progress displays.
STAGE_TITLES: dict[str, str] = {
    "load": "Loading photo", "detect": "Detecting face", "landmarks": "Landmarks",
    "parse": "Parsing (M\u03b1)", "landmark_map": "Landmark map (M\u03b2)", "merge": "Merging (M\u03b3)",
    "synthesize": "De-occluding (I_out)", "geometry": "Geometry", "texture": "Texture",
}


def downstream_of(stage: str) -> tuple[str, ...]:
    """The stages whose results depend, directly or not, on ``stage`` (itself excluded)."""
    out: list[str] = []
    for s in STAGES:
        deps = set(STAGE_INPUTS[s])
        if stage in deps or deps & set(out):
            out.append(s)
    return tuple(out)


@dataclass
class PipelineConfig:
    device: str = "auto"              # auto | cpu | cuda
    crop_size: int = 256              # working resolution of the face crop
    texture_size: int = 1024          # UV texture side
    max_side: int = 2048              # larger photos are downscaled to this (scale kept)
    face_index: int = 0               # 0 = largest face, 1 = second largest, ...
    backends: dict[str, str] = field(default_factory=dict)  # stage -> backend name (else default)
    options: dict = field(default_factory=dict)             # backend-specific options


@dataclass(frozen=True)
class StageEvent:
    stage: str
    index: int               # 0-based position in STAGES
    total: int
    state: str               # "started" | "finished" | "cached"
    seconds: float = 0.0
    result: Any = None


@dataclass
class PipelineResult:
    """Every stage's result of one run, plus timings and warnings for the report."""

    image: LoadedImage | None = None
    crop: FaceCrop | None = None
    landmarks: Landmarks | None = None
    alpha: ParsingMap | None = None
    beta: ParsingMap | None = None
    gamma: ParsingMap | None = None
    synthesis: Synthesis | None = None
    mesh: FaceMesh | None = None
    texture: Texture | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    backends: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"

    _FIELD = {"load": "image", "detect": "crop", "landmarks": "landmarks", "parse": "alpha",
              "landmark_map": "beta", "merge": "gamma", "synthesize": "synthesis", "geometry": "mesh",
              "texture": "texture"}

    def get(self, stage: str):
        return getattr(self, self._FIELD[stage])

    def _set(self, stage: str, value) -> None:
        setattr(self, self._FIELD[stage], value)

    def landmarks_in_photo(self) -> np.ndarray:
        """The 68 landmarks in photo pixel coordinates."""
        return self.image.working_to_photo(self.crop.crop_to_working(self.landmarks.points))


def _digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str(p.shape).encode())
            h.update(str(p.dtype).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(repr(p).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


class Pipeline:
    """Runs the stages, caching each result by the inputs it used.

    One instance keeps its loaded models (backends) and its cache across runs, so a second run on
    the same photo with corrected landmarks recomputes only M_beta and downstream stages.
    ``run_counts`` counts real computations per stage (cache misses); tests and the GUI use it.
    """

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()
        self.device = resolve_device(self.config.device)
        self._ctx = _backends.BackendContext(self.device, self.config.crop_size, self.config.texture_size,
                                             dict(self.config.options))
        self._backend_objs: dict[str, Any] = {}
        self._cache: dict[str, tuple[str, Any]] = {}
        self._detected_landmarks: tuple[str, Landmarks] | None = None
        self.run_counts: Counter = Counter()

    # -- backends ---------------------------------------------------------------------------
    def backend(self, stage: str):
        """The backend object of ``stage`` (created on first use, then kept)."""
        obj = self._backend_objs.get(stage)
        if obj is None:
            obj = _backends.create(stage, self.config.backends.get(stage), self._ctx)
            self._backend_objs[stage] = obj
        return obj

    def _backend_id(self, stage: str) -> str:
        b = self.backend(stage)
        return f"{getattr(b, 'name', type(b).__name__)}@{getattr(b, 'version', '')}"

    def clear_cache(self) -> None:
        self._cache.clear()
        self._detected_landmarks = None

    # -- running ----------------------------------------------------------------------------
    def run(self, source, *, landmarks: np.ndarray | None = None, stop_after: str | None = None,
            progress: Callable[[StageEvent], None] | None = None,
            cancel: Callable[[], bool] | None = None) -> PipelineResult:
        """Run every stage on ``source`` (a path, or an HxWx3 uint8 RGB array).

        ``landmarks``: optional (68,2) corrected points in *photo* pixels; they replace the
        detected ones, and only M_beta and its downstream stages are recomputed.
        ``stop_after``: name of the last stage to run (default: all).
        """
        res = PipelineResult(device=self.device)
        last = STAGES.index(stop_after) if stop_after else len(STAGES) - 1
        keys: dict[str, str] = {}
        for i, stage in enumerate(STAGES[: last + 1]):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            key = self._key(stage, keys, source, landmarks)
            keys[stage] = key
            hit = self._cache.get(stage)
            if hit is not None and hit[0] == key:
                value = hit[1]
                res.cached.append(stage)
                res.seconds[stage] = 0.0
                if progress:
                    progress(StageEvent(stage, i, len(STAGES), "cached", 0.0, value))
            else:
                if progress:
                    progress(StageEvent(stage, i, len(STAGES), "started"))
                t0 = time.perf_counter()
                value = self._compute(stage, res, source, landmarks, keys)
                dt = time.perf_counter() - t0
                self._cache[stage] = (key, value)
                res.seconds[stage] = dt
                if progress:
                    progress(StageEvent(stage, i, len(STAGES), "finished", dt, value))
            res._set(stage, value)
            if stage != "load":
                res.backends[stage] = self._backend_id(stage) if stage in _backends.STAGES_WITH_BACKENDS else ""
        res.warnings.extend(res.image.notes if res.image else ())
        res.warnings.extend(res.landmarks.warnings if res.landmarks else ())
        return res

    def _key(self, stage: str, keys: dict[str, str], source, landmarks) -> str:
        if stage == "load":
            from ..imageio import source_key
            return _digest("load", source_key(source), self.config.max_side)
        parts = [stage, self._backend_id(stage), self.config.crop_size, *(keys[d] for d in STAGE_INPUTS[stage])]
        if stage == "detect":
            parts.append(self.config.face_index)
        if stage == "landmarks" and landmarks is not None:
            parts.append(np.asarray(landmarks, dtype=np.float64))
        if stage == "texture":
            parts.append(self.config.texture_size)
        return _digest(*parts)

    def _compute(self, stage: str, res: PipelineResult, source, landmarks, keys: dict[str, str]):
        from . import stages as S

        if stage == "load":
            self.run_counts[stage] += 1
            return S.load(source, max_side=self.config.max_side)
        if stage == "landmarks":
            inputs_key = _digest(keys["detect"], keys["parse"])   # what the detected points depend on
            if self._detected_landmarks is None or self._detected_landmarks[0] != inputs_key:
                self.run_counts[stage] += 1
                self._detected_landmarks = (inputs_key, S.detect_landmarks(self.backend(stage), res.crop, res.alpha))
            detected = self._detected_landmarks[1]
            if landmarks is None:
                return detected
            return S.apply_landmark_edit(detected, res.image, res.crop, landmarks)
        self.run_counts[stage] += 1
        b = self.backend(stage)
        if stage == "detect":
            return S.detect(b, res.image, self.config.face_index, self.config.crop_size)
        if stage == "parse":
            return S.parse(b, res.crop)
        if stage == "landmark_map":
            return S.landmark_map(b, res.landmarks, res.crop.size)
        if stage == "merge":
            return S.merge(b, res.alpha, res.beta)
        if stage == "synthesize":
            return S.synthesize(b, res.crop, res.landmarks, res.alpha, res.gamma)
        if stage == "geometry":
            return S.geometry(b, res.image, res.crop, res.landmarks)
        if stage == "texture":
            return S.texture(b, res.image, res.crop, res.alpha, res.synthesis, res.mesh)
        raise OccguiError(f"unknown stage {stage!r}")
