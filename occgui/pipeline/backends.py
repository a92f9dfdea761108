"""The backend seam of every stage: a registry of named implementations per stage.

A backend is registered with its name, a factory ``factory(ctx) -> object`` (``ctx`` is a
:class:`BackendContext`) and its typed settings class (frozen dataclass, ``occgui.settings``).
The default backend of a stage is the available one with the highest priority, so a later,
better component (the paper's FISN generator, the landmark net N_lmk, the morphable-model fit
of §3.4-3.5) replaces a default by registering with a higher priority and an ``available``
check (e.g. "its checkpoint exists") -- callers never change.

One name per backend: the registered name is what ``--backend STAGE=NAME`` takes, what
``occgui backends`` lists and what ``report.json`` records; :func:`create` checks that the
object calls itself by it. Backend objects expose ``name`` and ``version`` (e.g. a checkpoint
digest); both, and a digest of any non-default settings, enter the cache keys of the stage's
results (:func:`backend_id`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import OccguiError
from ..settings import NoSettings, fields_of, non_default, settings_digest, with_values
from .stages import STAGES_WITH_BACKENDS


@dataclass(frozen=True)
class BackendContext:
    device: str                 # "cpu" or "cuda" (already resolved)
    crop_size: int
    texture_size: int
    settings: Any = field(default_factory=NoSettings)   # the backend's typed settings (its settings class)


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: Callable[[BackendContext], Any]
    priority: int
    available: Callable[[], bool]
    description: str
    settings: type
    reads: tuple[str, ...] | None = None     # the stage inputs the backend reads (None: all)


_REGISTRY: dict[str, dict[str, _Entry]] = {s: {} for s in STAGES_WITH_BACKENDS}
_DEFAULTS_LOADED = False


def register(stage: str, name: str, factory: Callable[[BackendContext], Any], *, priority: int = 0,
             available: Callable[[], bool] = lambda: True, description: str = "",
             settings: type = NoSettings, reads: tuple[str, ...] | None = None) -> None:
    """Register ``factory`` as backend ``name`` of ``stage`` with its settings class.

    ``reads``: the stage's inputs (``StageSpec.inputs``) the backend actually reads, when not all
    of them -- the others do not enter its cache key and the stage function passes them as None
    (e.g. the MediaPipe mesh ignores I_out, so de-occlusion never recomputes it)."""
    if stage not in _REGISTRY:
        raise ValueError(f"unknown stage {stage!r}")
    if reads is not None:
        from .stages import stage as _spec

        unknown = set(reads) - set(_spec(stage).inputs)
        if unknown:
            raise ValueError(f"backend {stage}={name} reads {sorted(unknown)}, not inputs of the stage")
        reads = tuple(reads)
    _REGISTRY[stage][name] = _Entry(name, factory, priority, available, description, settings, reads)


def _ensure_defaults() -> None:
    global _DEFAULTS_LOADED
    if not _DEFAULTS_LOADED:
        _DEFAULTS_LOADED = True
        from . import default_backends  # noqa: F401  (registers the shipped backends)


def available(stage: str) -> list[str]:
    """Names of the available backends of ``stage``, best (default) first."""
    _ensure_defaults()
    entries = [e for e in _REGISTRY[stage].values() if e.available()]
    return [e.name for e in sorted(entries, key=lambda e: -e.priority)]


def _entry(stage: str, name: str | None) -> _Entry:
    _ensure_defaults()
    if stage not in _REGISTRY:
        raise OccguiError(f"unknown stage {stage!r}; stages with backends: {', '.join(_REGISTRY)}")
    if name is None:
        names = available(stage)
        if not names:
            raise OccguiError(f"no backend is available for stage {stage!r}")
        name = names[0]
    entry = _REGISTRY[stage].get(name)
    if entry is None:
        raise OccguiError(f"unknown backend {name!r} for stage {stage!r}; known: {', '.join(_REGISTRY[stage])}")
    return entry


def resolve(stage: str, name: str | None) -> str:
    """The name of backend ``name`` of ``stage``, or of the default one when ``name`` is None."""
    return _entry(stage, name).name


def settings_class(stage: str, name: str | None) -> type:
    """The settings class of backend ``name`` (the default when None) of ``stage``."""
    return _entry(stage, name).settings


def reads_of(chosen: dict[str, str] | None = None) -> dict[str, tuple[str, ...]]:
    """``{stage: inputs read}`` of the backends ``chosen`` (``{stage: name}``, the defaults for the
    stages not named) that read only some of their stage's inputs (``stages.inputs_read``)."""
    out = {}
    for stage in STAGES_WITH_BACKENDS:
        entry = _entry(stage, (chosen or {}).get(stage)) if available(stage) or (chosen or {}).get(stage) else None
        if entry is not None and entry.reads is not None:
            out[stage] = entry.reads
    return out


def default_settings(stage: str, name: str | None):
    return settings_class(stage, name)()


def create(stage: str, name: str | None, ctx: BackendContext) -> Any:
    """Instantiate backend ``name`` of ``stage`` (the default when ``name`` is None).

    ``ctx.settings`` must be an instance of the backend's settings class (its defaults when it is
    the class-less :class:`NoSettings` default of the context)."""
    entry = _entry(stage, name)
    if not entry.available():
        raise OccguiError(f"backend {entry.name!r} of stage {stage!r} is not available here")
    settings = ctx.settings
    if type(settings) is NoSettings and entry.settings is not NoSettings:
        settings = entry.settings()
    if not isinstance(settings, entry.settings):
        raise OccguiError(f"backend {stage}={entry.name} takes {entry.settings.__name__}, "
                          f"not {type(settings).__name__}")
    from dataclasses import replace

    obj = entry.factory(replace(ctx, settings=settings))
    own = getattr(obj, "name", None)
    if own != entry.name:
        raise OccguiError(f"backend {stage}={entry.name} calls itself {own!r}: a backend has one name")
    return obj


def backend_id(obj, settings=None) -> str:
    """``name@version``, plus ``+s<digest>`` when ``settings`` differ from their defaults: the
    backend's part of a cache key and what reports record."""
    ident = f"{getattr(obj, 'name', type(obj).__name__)}@{getattr(obj, 'version', '')}"
    digest = settings_digest(settings) if settings is not None else ""
    return f"{ident}+s{digest}" if digest else ident


def parse_backend_choices(items: list[str] | None) -> dict[str, str]:
    """``--backend STAGE=NAME`` items -> ``{stage: name}``; unknown stages and names are errors."""
    out = {}
    for it in items or []:
        if "=" not in it:
            raise OccguiError(f"--backend expects STAGE=NAME, got {it!r}")
        k, v = (x.strip() for x in it.split("=", 1))
        out[k] = resolve(k, v)
    return out


def parse_settings(items: list[str] | None, backends: dict[str, str] | None = None) -> dict[str, Any]:
    """``--option STAGE.FIELD=VALUE`` items -> ``{stage: settings}`` for the backends chosen in
    ``backends`` (else the defaults); an unknown stage or field, or a bad value, is a one-line error."""
    values: dict[str, dict[str, str]] = {}
    for it in items or []:
        key, sep, value = it.partition("=")
        stage, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise OccguiError(f"--option expects STAGE.SETTING=VALUE, got {it!r}")
        values.setdefault(stage, {})[name.strip()] = value
    out = {}
    for stage, vals in values.items():
        entry = _entry(stage, (backends or {}).get(stage))
        out[stage] = with_values(entry.settings(), vals, f"{stage}={entry.name}")
    return out


def describe_all() -> dict[str, list[dict]]:
    """Every registered backend with its availability and settings (``occgui backends``, reports)."""
    _ensure_defaults()
    return {s: [{"name": e.name, "priority": e.priority, "available": e.available(), "description": e.description,
                 "settings": [{"name": n, "type": t.__name__, "default": d, "doc": doc, "unit": unit}
                              for n, t, d, doc, unit in fields_of(e.settings)]}
                for e in sorted(r.values(), key=lambda e: -e.priority)] for s, r in _REGISTRY.items()}


__all__ = ["BackendContext", "STAGES_WITH_BACKENDS", "available", "backend_id", "create", "default_settings",
           "describe_all", "non_default", "parse_backend_choices", "parse_settings", "reads_of", "register",
           "resolve", "settings_class"]
