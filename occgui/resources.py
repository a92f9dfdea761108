"""Locating the files shipped with the product (``resources/`` and ``checkpoints/``).

Works from a source checkout or editable install (the repository's top level), an installed
wheel (data installed under ``<prefix>/share/occgui``) and a PyInstaller bundle (``sys._MEIPASS``).
"""
from __future__ import annotations

import hashlib
import sys
from functools import lru_cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _roots() -> list[Path]:
    roots = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        roots.append(Path(meipass))
    roots += [_PKG.parent, Path(sys.prefix) / "share" / "occgui"]
    return roots


def _find(top: str, rel: str) -> Path:
    for root in _roots():
        p = root / top / rel
        if p.exists():
            return p
    return _roots()[0] / top / rel  # not found: report the first place looked


def resource_path(rel: str) -> Path:
    """Path of ``resources/<rel>``."""
    return _find("resources", rel)


def checkpoint_path(rel: str) -> Path:
    """Path of ``checkpoints/<rel>``."""
    return _find("checkpoints", rel)


def sample_photo() -> Path:
    """The bundled sample photo used by ``occgui run`` demos and the GUI self-test."""
    return resource_path("samples/astronaut_hand.png")


@lru_cache(maxsize=8)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:10]


def checkpoint_digest(path) -> str:
    """Short content digest of a checkpoint file (the ``version`` of the backends that read it)."""
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
