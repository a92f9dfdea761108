"""Held-out "clean" photos checked by eye (``resources/clean_check/qs_clean_check.csv``).

The guard rails of the parser -- the false occluder area on clean held-out photos (``occgui eval
real --clean``) and the pasted-occluder protocol (``occgui.training.parsing.evaluate``, ``occgui eval
occlusion``) -- measure on photos that should show nothing in front of the face. Held-out photos
(identities Q-S) that ``natural_occlusions.csv`` does not list are not clean enough for that: the list
was drawn from a sample of LFW only, and caps, sunglasses, hands and microphones remain among the rest.
The file holds, for every Q-S photo those measures chose, a verdict made by eye: ``clean`` or
``occluded`` (with the occluders seen). Thin glasses and face paint are noted but stay ``clean``.
See the folder's README.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ...errors import OccguiError

VERDICTS = ("clean", "occluded")
FILE_NAME = "qs_clean_check.csv"


@dataclass(frozen=True)
class CleanVerdict:
    """One photo's verdict: ``photo`` relative to the LFW folder (``Name/Name_0001.jpg``)."""

    photo: str
    verdict: str
    occluders: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return self.verdict == "clean"


def default_path() -> Path:
    from ...resources import resource_path

    return resource_path("clean_check") / FILE_NAME


def _split(s: str) -> tuple[str, ...]:
    return tuple(x for x in (s or "").split(";") if x)


def read_clean_check(path=None) -> dict[str, CleanVerdict]:
    """``photo -> CleanVerdict`` of the by-eye check (default: the bundled file)."""
    path = Path(path) if path is not None else default_path()
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as e:
        raise OccguiError(f"clean check not readable: {path} ({e})") from None
    out: dict[str, CleanVerdict] = {}
    for i, r in enumerate(rows, start=2):
        photo, verdict = (r.get("photo") or "").strip(), (r.get("verdict") or "").strip()
        if not photo or verdict not in VERDICTS:
            raise OccguiError(f"{path}:{i}: need a photo and a verdict in {VERDICTS}, got {photo!r}, {verdict!r}")
        occ = _split(r.get("occluders", ""))
        if (verdict == "occluded") != bool(occ):
            raise OccguiError(f"{path}:{i}: an occluded photo names its occluders, a clean one none ({photo})")
        if photo in out:
            raise OccguiError(f"{path}:{i}: {photo} listed twice")
        out[photo] = CleanVerdict(photo, verdict, occ, _split(r.get("notes", "")))
    return out


@lru_cache(maxsize=4)
def _bundled() -> dict[str, CleanVerdict]:
    return read_clean_check(None)


def clean_check(path=None) -> dict[str, CleanVerdict]:
    """The by-eye verdicts (the bundled file is read once)."""
    return _bundled() if path is None else read_clean_check(path)


def judged_occluded(path=None) -> set[str]:
    """Photos (``Name/Name_0001.jpg``) judged by eye to show a real occluder over the face."""
    return {p for p, v in clean_check(path).items() if not v.clean}


def judged_clean(path=None) -> set[str]:
    """Photos checked by eye and judged clean (only these count as clean for the guard rails)."""
    return {p for p, v in clean_check(path).items() if v.clean}
