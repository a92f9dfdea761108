"""Typed settings of the stage backends: frozen dataclasses whose fields say what they mean.

Every backend has one settings class (:class:`NoSettings` when it has nothing to tune). A field
is declared with :func:`setting`, which records its meaning and unit in the field's metadata;
``occgui backends`` prints them and ``--option STAGE.FIELD=VALUE`` parses into them
(:func:`with_values`), with a one-line :class:`~occgui.errors.OccguiError` on an unknown field
or a value of the wrong type. :func:`settings_digest` is the short digest that enters the
stage's cache key (and ``report.json``) when a backend runs with other than its defaults.

This module is at the bottom floor with :mod:`occgui.results`: it imports nothing of the
project but :mod:`occgui.errors`.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, get_type_hints

from .errors import OccguiError


def setting(default: Any, doc: str, unit: str = "") -> Any:
    """A settings field: its default, what it means, and its unit ("" for flags and ratios named
    in ``doc``)."""
    return dataclasses.field(default=default, metadata={"doc": doc, "unit": unit})


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """The settings of a backend that has nothing to tune."""


def fields_of(cls) -> list[tuple[str, type, Any, str, str]]:
    """``(name, type, default, doc, unit)`` of every field of settings class ``cls``."""
    hints = get_type_hints(cls)
    return [(f.name, hints[f.name], f.default, f.metadata.get("doc", ""), f.metadata.get("unit", ""))
            for f in dataclasses.fields(cls)]


def _convert(kind: type, text: str, where: str):
    t = text.strip()
    if kind is bool:
        low = t.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise OccguiError(f"{where} expects true or false, got {text!r}")
    if kind is int:
        try:
            return int(t)
        except ValueError:
            raise OccguiError(f"{where} expects an integer, got {text!r}") from None
    if kind is float:
        try:
            return float(t)
        except ValueError:
            raise OccguiError(f"{where} expects a number, got {text!r}") from None
    if kind is str:
        return t
    raise OccguiError(f"{where} cannot be set from the command line")


def with_values(settings, values: dict[str, str], where: str = ""):
    """A copy of ``settings`` with the fields named in ``values`` parsed from text.

    ``where`` names the backend in error messages (e.g. ``synthesize=symmetric``)."""
    cls = type(settings)
    known = {name: kind for name, kind, *_ in fields_of(cls)}
    changes = {}
    for name, text in values.items():
        if name not in known:
            choices = ", ".join(known) or "none"
            raise OccguiError(f"unknown setting {name!r} of backend {where or cls.__name__} (settings: {choices})")
        changes[name] = _convert(known[name], text, f"setting {name!r} of backend {where or cls.__name__}")
    return dataclasses.replace(settings, **changes)


def non_default(settings) -> dict[str, Any]:
    """The fields of ``settings`` that differ from their class defaults."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if getattr(settings, f.name) != f.default}


def settings_digest(settings) -> str:
    """"" for default settings, else a short digest of the changed fields (cache keys, reports)."""
    changed = non_default(settings)
    if not changed:
        return ""
    return hashlib.sha1(repr(sorted(changed.items())).encode()).hexdigest()[:8]
