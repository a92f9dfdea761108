"""The pipeline of named stages (paper Fig. 1) with result caching, progress and cancellation.

The stages, their inputs and result fields are those of the stage table
(:data:`occgui.pipeline.stages.STAGE_TABLE`): ``load -> detect -> parse (M_alpha) -> landmarks
-> landmark_map (M_beta) -> merge (M_gamma) -> synthesize (I_out) -> geometry -> texture``; export is done by
:mod:`occgui.export` on the finished :class:`PipelineResult`. M_alpha comes before the landmarks because the
default landmark backend reads its occluder mask to place the points the occluder hides (``landmarks/refiner.py``);
N_alpha itself never depends on the landmarks.

Each stage result is cached under a key made of the stage name, its backend (name, version and a
digest of its typed settings when they are not the defaults), the configuration fields the table
names for it and the keys of the inputs it used. Supplying corrected landmarks therefore recomputes only
M_beta and what follows: the crop and M_alpha never depend on the landmarks. A painted occluder
(``alpha_edit``, :class:`occgui.corrections.AlphaEdit`) is applied to M_alpha where ``merge``,
``synthesize`` and ``texture`` read it (``stages.PAINTED_ALPHA_READERS``) and its digest enters
their keys; the landmark stage keeps the parser's map, so a paint edit recomputes only ``merge``
and what follows.

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
from ..errors import Cancelled
from ..results import FaceCrop, FaceMesh, Landmarks, LoadedImage, ParsingMap, Synthesis, Texture
from . import backends as _backends
from .stages import PAINTED_ALPHA_READERS, STAGE_TABLE, STAGES, downstream_of, stage  # noqa: F401  (re-exported)


@dataclass
class PipelineConfig:
    device: str = "auto"              # auto | cpu | cuda
    crop_size: int = 256              # working resolution of the face crop
    texture_size: int = 1024          # UV texture side
    max_side: int = 2048              # larger photos are downscaled to this (scale kept)
    face_index: int = 0               # 0 = largest face, 1 = second largest, ...
    backends: dict[str, str] = field(default_factory=dict)  # stage -> backend name (else default)
    #: stage -> typed settings of its backend (``backends.parse_settings``; else the defaults)
    settings: dict[str, object] = field(default_factory=dict)


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
    #: the user's paint on M_alpha this run applied (``occgui.corrections.AlphaEdit``), or None
    alpha_edit: Any = None
    #: M_alpha as painted (what merge, synthesis and texture read), or None when not painted
    alpha_painted: ParsingMap | None = None

    def effective_alpha(self) -> ParsingMap | None:
        """M_alpha as the later stages used it: painted when the run had a paint edit."""
        return self.alpha_painted if self.alpha_painted is not None else self.alpha

    def get(self, name: str):
        """The result of stage ``name`` (its field in the stage table)."""
        return getattr(self, stage(name).field)

    def _set(self, name: str, value) -> None:
        setattr(self, stage(name).field, value)

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
        self._backend_objs: dict[str, Any] = {}
        self._cache: dict[str, tuple[str, Any]] = {}
        self._detected_landmarks: tuple[str, Landmarks] | None = None
        self.run_counts: Counter = Counter()

    # -- backends ---------------------------------------------------------------------------
    def settings(self, name: str):
        """The typed settings of stage ``name``'s backend (the config's, else the backend's defaults)."""
        given = self.config.settings.get(name)
        return given if given is not None else _backends.default_settings(name, self.config.backends.get(name))

    def backend(self, name: str):
        """The backend object of stage ``name`` (created on first use, then kept)."""
        obj = self._backend_objs.get(name)
        if obj is None:
            ctx = _backends.BackendContext(self.device, self.config.crop_size, self.config.texture_size,
                                           self.settings(name))
            obj = _backends.create(name, self.config.backends.get(name), ctx)
            self._backend_objs[name] = obj
        return obj

    def backend_id(self, name: str) -> str:
        """``name@version`` of stage ``name``'s backend, plus a digest of non-default settings."""
        return _backends.backend_id(self.backend(name), self.settings(name))

    def set_backend(self, name: str, backend: str | None, settings=None) -> bool:
        """Use ``backend`` (None: the default) with ``settings`` (None: its defaults) for stage
        ``name`` from the next run on; True when that is a change. Nothing cached is dropped: the
        backend id is part of every key, so the next run recomputes this stage and what follows
        only (the GUI's I_out backend switch)."""
        backend = None if backend is None else _backends.resolve(name, backend)
        if self.config.backends.get(name) == backend and self.config.settings.get(name) == settings:
            return False
        self.config.backends = {k: v for k, v in self.config.backends.items() if k != name}
        self.config.settings = {k: v for k, v in self.config.settings.items() if k != name}
        if backend is not None:
            self.config.backends[name] = backend
        if settings is not None:
            self.config.settings[name] = settings
        self._backend_objs.pop(name, None)
        return True

    def clear_cache(self) -> None:
        self._cache.clear()
        self._detected_landmarks = None

    # -- running ----------------------------------------------------------------------------
    def run(self, source, *, landmarks: np.ndarray | None = None, alpha_edit=None, face_index: int | None = None,
            stop_after: str | None = None, progress: Callable[[StageEvent], None] | None = None,
            cancel: Callable[[], bool] | None = None) -> PipelineResult:
        """Run every stage on ``source`` (a path, or an HxWx3 uint8 RGB array).

        ``landmarks``: optional (68,2) corrected points in *photo* pixels; they replace the
        detected ones, and only M_beta and its downstream stages are recomputed.
        ``stop_after``: name of the last stage to run (default: all); a partial pipeline (the
        evaluation stops after ``merge``) shares the cache with later full runs.
        ``alpha_edit``: optional painted occluder (:class:`occgui.corrections.AlphaEdit`, crop
        pixels), checked against the crop and applied to M_alpha for ``PAINTED_ALPHA_READERS``;
        only ``merge`` and what follows are recomputed.
        ``face_index``: which face of a group photo (default: the configuration's).
        """
        if alpha_edit is not None and alpha_edit.empty:
            alpha_edit = None
        config = self.config
        if face_index is not None and face_index != config.face_index:
            from dataclasses import replace

            config = replace(config, face_index=int(face_index))
        res = PipelineResult(device=self.device, alpha_edit=alpha_edit)
        last = STAGES.index(stage(stop_after).name) if stop_after else len(STAGES) - 1
        keys: dict[str, str] = {}
        for i, spec in enumerate(STAGE_TABLE[: last + 1]):
            name = spec.name
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            key = self._key(spec, keys, source, landmarks, alpha_edit, config)
            keys[name] = key
            hit = self._cache.get(name)
            if hit is not None and hit[0] == key:
                value = hit[1]
                res.cached.append(name)
                res.seconds[name] = 0.0
                if progress:
                    progress(StageEvent(name, i, len(STAGES), "cached", 0.0, value))
            else:
                if progress:
                    progress(StageEvent(name, i, len(STAGES), "started"))
                t0 = time.perf_counter()
                value = self._compute(spec, res, source, landmarks, alpha_edit, keys, config)
                dt = time.perf_counter() - t0
                self._cache[name] = (key, value)
                res.seconds[name] = dt
                if progress:
                    progress(StageEvent(name, i, len(STAGES), "finished", dt, value))
            res._set(name, value)
            if name == "parse" and alpha_edit is not None:
                self._painted_alpha(res, alpha_edit)       # checks the paint against this crop first
            if spec.protocol is not None:
                res.backends[name] = self.backend_id(name)
        res.warnings.extend(res.image.notes if res.image else ())
        res.warnings.extend(res.landmarks.warnings if res.landmarks else ())
        return res

    def _config_args(self, spec, config: PipelineConfig | None = None) -> dict:
        return {c: getattr(config or self.config, c) for c in spec.config}

    def _key(self, spec, keys: dict[str, str], source, landmarks, alpha_edit=None,
             config: PipelineConfig | None = None) -> str:
        if spec.protocol is None:                      # load: the source itself
            from ..imageio import source_key
            return _digest(spec.name, source_key(source), *self._config_args(spec, config).values())
        parts = [spec.name, self.backend_id(spec.name), self.config.crop_size,
                 *(keys[d] for d in spec.inputs), *self._config_args(spec, config).values()]
        if spec.name == "landmarks" and landmarks is not None:
            parts.append(np.asarray(landmarks, dtype=np.float64))
        if spec.name in PAINTED_ALPHA_READERS and alpha_edit is not None:
            parts.append("painted:" + alpha_edit.digest())
        return _digest(*parts)

    @staticmethod
    def _painted_alpha(res: PipelineResult, alpha_edit) -> ParsingMap:
        """M_alpha with the user's paint, made once per run (checked against this run's crop)."""
        if res.alpha_painted is None:
            alpha_edit.check_fits(res.image, res.crop)
            res.alpha_painted = ParsingMap(alpha_edit.apply(res.alpha.labels), "alpha", res.alpha.backend + "+painted")
        return res.alpha_painted

    def _compute(self, spec, res: PipelineResult, source, landmarks, alpha_edit, keys: dict[str, str],
                 config: PipelineConfig | None = None):
        name = spec.name
        if spec.protocol is None:                      # load
            self.run_counts[name] += 1
            return spec.function(source, **self._config_args(spec, config))
        inputs = [res.get(d) for d in spec.inputs]
        if alpha_edit is not None and name in PAINTED_ALPHA_READERS:
            inputs = [self._painted_alpha(res, alpha_edit) if d == "parse" else v for d, v in zip(spec.inputs, inputs)]
        if name == "landmarks":
            # the detected points are kept apart from an edit, so that a corrected set of points
            # never re-runs the landmark backend (its inputs are the crop and M_alpha)
            inputs_key = _digest(*(keys[d] for d in spec.inputs))
            if self._detected_landmarks is None or self._detected_landmarks[0] != inputs_key:
                self.run_counts[name] += 1
                self._detected_landmarks = (inputs_key, spec.function(self.backend(name), *inputs))
            detected = self._detected_landmarks[1]
            if landmarks is None:
                return detected
            from .stages import apply_landmark_edit
            return apply_landmark_edit(detected, res.image, res.crop, landmarks)
        self.run_counts[name] += 1
        return spec.function(self.backend(name), *inputs, **self._config_args(spec, config))
