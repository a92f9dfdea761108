"""The labelled set of real occlusions (``resources/real_occlusions/``): reader and validation.

One JSON file per LFW photo of ``natural_occlusions.csv`` (``labels/<stem>.json``), labelled by eye
with the project's own tools: the occluder as polygons in photo pixels, its type, and the 68 iBUG
landmarks where the face is (hidden points placed where they would be). ``splits.csv`` fixes which
photos form the *test* split (a third, chosen per listed occluder type before any labelling: every
third photo in path order) that nothing is trained or tuned on; the rest is the *dev* split.

This is a dataset: training and evaluation read it, inference never does.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import OccguiError

#: Occluder types of the set, in report order.
TYPES: tuple[str, ...] = ("hand", "microphone", "object", "sunglasses", "glasses_thick", "scarf_or_mask", "hair",
                          "hat", "other_person")
SPLITS: tuple[str, ...] = ("dev", "test")


@dataclass(frozen=True)
class RealOcclusionLabel:
    """One labelled photo. Coordinates are photo pixels (x right, y down)."""

    stem: str
    photo: str                              # person/file.jpg, relative to the LFW photo folder
    type: str                               # one of TYPES
    split: str                              # "dev" | "test"
    polygons: tuple[np.ndarray, ...]        # each (K,2) float64, K >= 3
    landmarks: np.ndarray                   # (68,2) float64
    hidden: tuple[int, ...]                 # landmark indices inside the occluder mask
    note: str = ""

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The occluder as a boolean (H, W) mask in photo pixels (polygon interiors, 1/8 px precision)."""
        m = np.zeros(shape[:2], np.uint8)
        for poly in self.polygons:
            cv2.fillPoly(m, [np.round(poly * 8).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=3)
        return m.astype(bool)

    def photo_path(self, faces_dir) -> Path:
        return Path(faces_dir) / self.photo


def default_folder() -> Path:
    from ..resources import resource_path

    return resource_path("real_occlusions")


def read_splits(folder) -> dict[str, str]:
    """``stem -> split`` from ``splits.csv``."""
    path = Path(folder) / "splits.csv"
    if not path.is_file():
        raise OccguiError(f"real-occlusion splits not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        out = {row["stem"]: row["split"] for row in csv.DictReader(fh)}
    bad = sorted({s for s in out.values() if s not in SPLITS})
    if bad:
        raise OccguiError(f"{path}: unknown split name(s) {', '.join(bad)}")
    return out


def parse_label(doc: dict, stem: str, split: str) -> RealOcclusionLabel:
    """Validate one label document; a malformed one raises a one-line :class:`OccguiError`."""
    where = f"real-occlusion label {stem}"
    if not isinstance(doc, dict):
        raise OccguiError(f"{where}: expected a JSON object")
    t = doc.get("type")
    if t not in TYPES:
        raise OccguiError(f"{where}: type {t!r} is not one of {', '.join(TYPES)}")
    photo = doc.get("photo")
    if not isinstance(photo, str) or not photo.endswith(".jpg"):
        raise OccguiError(f"{where}: 'photo' must name the LFW .jpg")
    parts = Path(photo).parts
    rel = "/".join(parts[-2:])
    from ..landmarks.ibug68 import checked_points68

    pts = checked_points68(doc.get("landmarks"), where)
    polys = []
    for k, poly in enumerate(doc.get("occluder_polygons") or []):
        try:
            p = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError):
            raise OccguiError(f"{where}: polygon {k} is not a list of [x, y] numbers") from None
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3 or not np.isfinite(p).all():
            raise OccguiError(f"{where}: polygon {k} needs at least 3 finite [x, y] vertices")
        polys.append(p)
    hidden = tuple(int(i) for i in doc.get("hidden", []))
    if any(not 0 <= i < 68 for i in hidden):
        raise OccguiError(f"{where}: hidden landmark indices must be in 0..67")
    return RealOcclusionLabel(stem=stem, photo=rel, type=t, split=split, polygons=tuple(polys), landmarks=pts,
                              hidden=hidden, note=str(doc.get("note", "")))


def load_labels(folder=None, *, split: str | None = None, checked_only: bool = True) -> list[RealOcclusionLabel]:
    """Every label of the set (sorted by stem), optionally of one ``split``; labels not yet
    marked as checked by their labeller are skipped unless ``checked_only`` is False."""
    folder = Path(folder) if folder is not None else default_folder()
    splits = read_splits(folder)
    if split is not None and split not in SPLITS:
        raise OccguiError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    files = sorted((folder / "labels").glob("*.json"))
    if not files:
        raise OccguiError(f"no real-occlusion labels in {folder / 'labels'}")
    out = []
    for f in files:
        stem = f.stem
        if stem not in splits:
            raise OccguiError(f"{f}: photo {stem} is not in {folder / 'splits.csv'}")
        if split is not None and splits[stem] != split:
            continue
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise OccguiError(f"{f}: not readable JSON ({e})") from None
        if checked_only and not doc.get("checked", False):
            continue
        out.append(parse_label(doc, stem, splits[stem]))
    return out
