"""``landmarks.json``: the 68 points in photo pixels, ``{"points": [[x, y], ...]}``.

Written by the CLI and the GUI's export, read by ``occgui run --landmarks`` and the GUI's
File > Load landmarks, so that a correction made in one can be reused in the other.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import OccguiError


def landmarks_document(points_photo: np.ndarray, *, edited: bool = False, source: str = "") -> dict:
    """The JSON document for (68,2) photo-pixel points."""
    pts = np.asarray(points_photo, dtype=np.float64)
    return {"points": [[round(float(x), 3), round(float(y), 3)] for x, y in pts],
            "format": "iBUG 300-W 68 points, photo pixel coordinates "
                      "(x right, y down, origin at the top-left pixel's centre)",
            "edited": bool(edited), "photo": source}


def read_landmarks_json(path) -> np.ndarray:
    """Read a landmarks file; one-line :class:`OccguiError` when it is missing or malformed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        pts = np.asarray(data["points"] if isinstance(data, dict) else data, dtype=np.float64)
    except FileNotFoundError:
        raise OccguiError(f"{path}: landmarks file not found") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise OccguiError(f"{path}: not a landmarks JSON file with a 'points' list ({type(e).__name__})") from None
    from .ibug68 import checked_points68

    return checked_points68(pts, str(path))
