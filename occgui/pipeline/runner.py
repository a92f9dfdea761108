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
M_beta and what follows: the crop and M_alpha never depend on the landmarks. A backend registered
as reading only some of its stage's inputs (``backends.register(..., reads=...)``: the MediaPipe
mesh reads the photo, crop and landmarks but not I_out, M_alpha or M_gamma) is keyed by those
alone and given None for the others. A painted occluder
(``alpha_edit``, :class:`occgui.corrections.AlphaEdit`) is applied to M_alpha where ``merge``,
``synthesize``, ``texture`` and a fitting ``geometry`` backend read it
(``stages.painted_alpha_readers``) and its digest enters their keys; the landmark stage keeps the
parser's map, so a paint edit recomputes only ``merge`` and what follows.

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
from .stages import (  # noqa: F401  (re-exported)
    PAINTED_ALPHA_READERS,
    STAGE_TABLE,
    STAGES,
    downstream_of,
    inputs_read,
    painted_alpha_readers,
    stage,
)

#: ``Pipeline.set_backend``: leave the preview geometry as it is.
_KEEP = object()


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
    #: a fast geometry backend (e.g. ``mediapipe-mesh``) run first when the configured one (e.g. the
    #: ``morphable`` fit) must compute: its mesh and the texture on it are reported as ``preview``
    #: events, so a GUI shows a mesh at once; the run's result is the configured backend's
    preview_geometry: str | None = None


@dataclass(frozen=True)
class StageEvent:
    stage: str
    index: int               # 0-based position in STAGES
    total: int
    state: str               # "started" | "finished" | "cached"
    seconds: float = 0.0
    result: Any = None
    #: a "finished" result of the fast preview geometry (``PipelineConfig.preview_geometry``) or of
    #: the texture on it, shown until the configured geometry's own result replaces it
    preview: bool = False


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
        self._reads: dict[str, tuple[str, ...]] | None = None
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

    def reads(self) -> dict[str, tuple[str, ...]]:
        """``{stage: inputs its backend reads}`` for the stages whose backend reads only some of
        them (``backends.reads_of``): only those enter the stage's cache key."""
        if self._reads is None:
            self._reads = _backends.reads_of(self.config.backends)
        return self._reads

    def set_backend(self, name: str, backend: str | None, settings=None, *,
                    preview_geometry: str | None | object = _KEEP) -> bool:
        """Use ``backend`` (None: the default) with ``settings`` (None: its defaults) for stage
        ``name`` from the next run on, and set ``preview_geometry`` when given; True when that is a
        change. Nothing cached is dropped: the backend id is part of every key, so the next run
        recomputes this stage and what follows only (the GUI's I_out and geometry switches)."""
        from dataclasses import replace

        backend = None if backend is None else _backends.resolve(name, backend)
        preview = self.config.preview_geometry if preview_geometry is _KEEP else preview_geometry
        if (self.config.backends.get(name) == backend and self.config.settings.get(name) == settings
                and preview == self.config.preview_geometry):
            return False
        chosen = {k: v for k, v in self.config.backends.items() if k != name}
        if backend is not None:
            chosen[name] = backend
        st = {k: v for k, v in self.config.settings.items() if k != name}
        if settings is not None:
            st[name] = settings
        self.config = replace(self.config, backends=chosen, settings=st, preview_geometry=preview)
        self._backend_objs.pop(name, None)
        self._reads = None
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
                if name == "geometry" and self._preview_name() is not None:
                    self._preview(res, alpha_edit, keys, config, last, progress, cancel)
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

    # -- the fast preview geometry ----------------------------------------------------------------
    def _preview_name(self) -> str | None:
        """The preview geometry backend's name, or None when there is none or it is the configured one."""
        want = self.config.preview_geometry
        if not want:
            return None
        name = _backends.resolve("geometry", want)
        return None if name == _backends.resolve("geometry", self.config.backends.get("geometry")) else name

    def _preview(self, res: PipelineResult, alpha_edit, keys: dict[str, str], config, last: int, progress,
                 cancel) -> None:
        """Compute (or take from the cache) the preview geometry and, when the run goes that far,
        the texture on it; report both as ``preview`` events. Cache slots and ``run_counts`` use
        the names ``geometry@preview`` and ``texture@preview``."""
        name = self._preview_name()
        obj = self._backend_objs.get("geometry@preview")
        if obj is None or obj.name != name:
            ctx = _backends.BackendContext(self.device, self.config.crop_size, self.config.texture_size,
                                           _backends.default_settings("geometry", name))
            obj = self._backend_objs["geometry@preview"] = _backends.create("geometry", name, ctx)
        g_spec, t_spec = stage("geometry"), stage("texture")
        reads = {"geometry": _backends.reads_of({"geometry": name}).get("geometry", g_spec.inputs)}
        g_key = _digest("geometry@preview", _backends.backend_id(obj), self.config.crop_size,
                        *(keys[d] for d in inputs_read(g_spec, reads)),
                        *(("painted:" + alpha_edit.digest(),) if alpha_edit is not None and "parse" in reads["geometry"]
                          else ()))

        def cached_or(slot: str, key: str, compute):
            hit = self._cache.get(slot)
            if hit is not None and hit[0] == key:
                return hit[1], 0.0
            t0 = time.perf_counter()
            value = compute()
            self.run_counts[slot] += 1
            self._cache[slot] = (key, value)
            return value, time.perf_counter() - t0

        def inputs(spec, read):
            vals = [res.get(d) if d in read else None for d in spec.inputs]
            if alpha_edit is not None:
                vals = [self._painted_alpha(res, alpha_edit) if d == "parse" and v is not None else v
                        for d, v in zip(spec.inputs, vals)]
            return vals

        mesh, dt = cached_or("geometry@preview", g_key,
                             lambda: g_spec.function(obj, *inputs(g_spec, reads["geometry"])))
        res.seconds["geometry@preview"] = dt
        if progress:
            progress(StageEvent("geometry", STAGES.index("geometry"), len(STAGES), "finished", dt, mesh, preview=True))
        if STAGES.index("texture") > last or (cancel is not None and cancel()):
            return
        t_read = inputs_read(t_spec, self.reads())
        t_key = _digest("texture@preview", self.backend_id("texture"), self.config.crop_size,
                        *(g_key if d == "geometry" else keys[d] for d in t_read),
                        *self._config_args(t_spec, config).values(),
                        *(("painted:" + alpha_edit.digest(),) if alpha_edit is not None else ()))

        def texture():
            vals = [mesh if d == "geometry" else v for d, v in zip(t_spec.inputs, inputs(t_spec, t_read))]
            return t_spec.function(self.backend("texture"), *vals, **self._config_args(t_spec, config))

        tex, dt = cached_or("texture@preview", t_key, texture)
        res.seconds["texture@preview"] = dt
        if progress:
            progress(StageEvent("texture", STAGES.index("texture"), len(STAGES), "finished", dt, tex, preview=True))

    def _config_args(self, spec, config: PipelineConfig | None = None) -> dict:
        return {c: getattr(config or self.config, c) for c in spec.config}

    def _key(self, spec, keys: dict[str, str], source, landmarks, alpha_edit=None,
             config: PipelineConfig | None = None) -> str:
        if spec.protocol is None:                      # load: the source itself
            from ..imageio import source_key
            return _digest(spec.name, source_key(source), *self._config_args(spec, config).values())
        parts = [spec.name, self.backend_id(spec.name), self.config.crop_size,
                 *(keys[d] for d in inputs_read(spec, self.reads())), *self._config_args(spec, config).values()]
        if spec.name == "landmarks" and landmarks is not None:
            parts.append(np.asarray(landmarks, dtype=np.float64))
        if spec.name in painted_alpha_readers(self.reads()) and alpha_edit is not None:
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
        read = inputs_read(spec, self.reads())
        inputs = [res.get(d) if d in read else None for d in spec.inputs]
        if alpha_edit is not None and name in painted_alpha_readers(self.reads()):
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
