"""LFW-format protocol files and photo selection for the evaluation suite (paper §5, Table 1).

* ``pairs.txt`` (LFW View 2): a header ``<folds> <n>``, then per fold ``n`` matched lines
  ``name i j`` followed by ``n`` mismatched lines ``name1 i name2 j``; photo ``i`` of ``name`` is
  ``name/name_{i:04d}.jpg``. Pairs whose photos are absent are skipped and counted.
* ``natural_occlusions.csv``: ``path,occluder,region,severity`` rows of LFW photos with a real
  occluder (``path`` relative to the LFW folder's parent, e.g. ``lfw-deepfunneled/A/A_0001.jpg``).
* Photo selection for ``--limit``: spread over identities (one photo each from evenly spaced
  identities, then second photos, ...), so a small run is not all "Aaron".
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OccguiError


def photo_path(faces_dir, name: str, number: int) -> Path:
    return Path(faces_dir) / name / f"{name}_{int(number):04d}.jpg"


def relative_name(path: Path) -> str:
    """``person/file.jpg``: the stable identifier of an LFW-style photo used in reports and seeds."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def person_of(path: Path) -> str:
    return Path(path).parent.name


#: The identity groups every report separates: the networks were trained on identities whose
#: names start with A-P (``training.parsing.dataset.SPLITS``); Q-S are held out.
TRAINED_GROUP = "trained identities (A-P)"
HELD_OUT_GROUP = "held-out identities (Q-S)"


def identity_group(photo) -> str:
    """:data:`TRAINED_GROUP`, :data:`HELD_OUT_GROUP` or ``"other identities"`` of an LFW photo
    (a path or ``person/file.jpg``), by the first letter of the person's name."""
    from ..training.parsing.dataset import SPLITS

    letter = person_of(Path(photo))[:1].upper()
    if letter and letter in SPLITS["train"]:
        return TRAINED_GROUP
    if letter and letter in SPLITS["test"]:
        return HELD_OUT_GROUP
    return "other identities"


# ----------------------------------------------------------------------------- pairs
@dataclass(frozen=True)
class Pair:
    fold: int
    same: bool
    a: Path
    b: Path


@dataclass
class PairList:
    pairs: list[Pair]            # the pairs whose two photos exist
    skipped: int                 # pairs with at least one absent photo
    folds: int                   # folds in the file
    per_fold_listed: int         # matched (= mismatched) pairs per fold in the file

    def fold_counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for p in self.pairs:
            out[p.fold] = out.get(p.fold, 0) + 1
        return out


def read_pairs(path, faces_dir) -> PairList:
    """Parse an LFW ``pairs.txt`` (View 2, or the single-fold ``pairsDevTest.txt``)."""
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not lines:
        raise OccguiError(f"empty pairs file: {path}")
    if len(lines[0]) == 2:
        folds, n = int(lines[0][0]), int(lines[0][1])
    elif len(lines[0]) == 1:
        folds, n = 1, int(lines[0][0])
    else:
        raise OccguiError(f"{path}: the first line must be '<folds> <pairs per fold>' or '<pairs>'")
    body = lines[1:]
    if len(body) != folds * 2 * n:
        raise OccguiError(f"{path}: expected {folds * 2 * n} pair lines, found {len(body)}")
    pairs, skipped = [], 0
    for k, t in enumerate(body):
        fold = k // (2 * n)
        if len(t) == 3:
            a, b, same = photo_path(faces_dir, t[0], t[1]), photo_path(faces_dir, t[0], t[2]), True
        elif len(t) == 4:
            a, b, same = photo_path(faces_dir, t[0], t[1]), photo_path(faces_dir, t[2], t[3]), False
        else:
            raise OccguiError(f"{path}: malformed pair line {k + 2}: {' '.join(t)!r}")
        if a.is_file() and b.is_file():
            pairs.append(Pair(fold, same, a, b))
        else:
            skipped += 1
    return PairList(pairs, skipped, folds, n)


# ----------------------------------------------------------------------------- natural occlusions
@dataclass(frozen=True)
class NaturalCase:
    photo: Path
    occluder: str
    region: str
    severity: str


def read_natural_list(path, faces_dir) -> tuple[list[NaturalCase], list[str]]:
    """Rows of ``natural_occlusions.csv`` resolved under ``faces_dir`` (by ``person/file``);
    returns (cases whose photo exists, listed paths that are absent)."""
    cases, missing = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rel = Path(row["path"])
            p = Path(faces_dir) / rel.parent.name / rel.name
            if p.is_file():
                cases.append(NaturalCase(p, row["occluder"].strip(), row["region"].strip(), row["severity"].strip()))
            else:
                missing.append(row["path"])
    return cases, missing


# ----------------------------------------------------------------------------- selection
def find_photos(faces_dir) -> list[Path]:
    """Every photo under ``faces_dir`` (recursively), sorted."""
    from ..imageio import is_image_path

    root = Path(faces_dir)
    if not root.is_dir():
        raise OccguiError(f"face folder not found: {root}")
    return sorted(f for f in root.rglob("*") if f.is_file() and is_image_path(f))


def spread_selection(photos: list[Path], limit: int | None) -> list[Path]:
    """Up to ``limit`` photos spread over identities (folders): round ``r`` takes the ``r``-th
    photo of evenly spaced identities that have one, until ``limit`` are chosen. Deterministic;
    the result is in round order (so a larger limit extends a smaller one's first round)."""
    photos = sorted(photos)
    if limit is None or limit >= len(photos):
        return photos
    groups: dict[str, list[Path]] = {}
    for p in photos:
        groups.setdefault(str(p.parent), []).append(p)
    names = sorted(groups)
    out: list[Path] = []
    r = 0
    while len(out) < limit:
        have = [n for n in names if len(groups[n]) > r]
        need = limit - len(out)
        if len(have) <= need:
            pick = have
        else:
            idx = np.unique(np.floor(np.linspace(0, len(have), need, endpoint=False)).astype(int))
            pick = [have[i] for i in idx]
        out.extend(groups[n][r] for n in pick)
        r += 1
    return out[:limit]
