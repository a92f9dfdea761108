"""The backend seam of every stage: a registry of named implementations per stage.

A backend is created by a factory ``factory(ctx) -> object`` where ``ctx`` is a
:class:`BackendContext`. The default backend of a stage is the available one with the highest
priority, so a later, better component (the paper's FISN generator, the landmark net N_lmk, the
morphable-model fit of §3.4-3.5) replaces a default by registering with a higher priority and an
``available`` check (e.g. "its checkpoint exists") -- callers never change.

Backend objects expose ``name`` (str) and ``version`` (str, e.g. a checkpoint digest); both
enter the cache keys of the stage's results.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import OccguiError

STAGES_WITH_BACKENDS = ("detect", "landmarks", "parse", "landmark_map", "merge", "synthesize", "geometry", "texture")


@dataclass(frozen=True)
class BackendContext:
    device: str                 # "cpu" or "cuda" (already resolved)
    crop_size: int
    texture_size: int
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: Callable[[BackendContext], Any]
    priority: int
    available: Callable[[], bool]
    description: str


_REGISTRY: dict[str, dict[str, _Entry]] = {s: {} for s in STAGES_WITH_BACKENDS}
_DEFAULTS_LOADED = False


def register(stage: str, name: str, factory: Callable[[BackendContext], Any], *, priority: int = 0,
             available: Callable[[], bool] = lambda: True, description: str = "") -> None:
    """Register ``factory`` as backend ``name`` of ``stage``."""
    if stage not in _REGISTRY:
        raise ValueError(f"unknown stage {stage!r}")
    _REGISTRY[stage][name] = _Entry(name, factory, priority, available, description)


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


def create(stage: str, name: str | None, ctx: BackendContext) -> Any:
    """Instantiate backend ``name`` of ``stage`` (the default when ``name`` is None)."""
    _ensure_defaults()
    names = available(stage)
    if name is None:
        if not names:
            raise OccguiError(f"no backend is available for stage {stage!r}")
        name = names[0]
    entry = _REGISTRY[stage].get(name)
    if entry is None:
        raise OccguiError(f"unknown backend {name!r} for stage {stage!r}; known: {', '.join(_REGISTRY[stage])}")
    if not entry.available():
        raise OccguiError(f"backend {name!r} of stage {stage!r} is not available here")
    return entry.factory(ctx)


def describe_all() -> dict[str, list[dict]]:
    """Every registered backend with its availability (for ``occgui backends`` and reports)."""
    _ensure_defaults()
    return {s: [{"name": e.name, "priority": e.priority, "available": e.available(), "description": e.description}
                for e in sorted(r.values(), key=lambda e: -e.priority)] for s, r in _REGISTRY.items()}
