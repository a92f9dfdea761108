"""A user's corrections of one photo: the 68 landmarks and the painted occluder, in one file.

When the parser misses an occluder (or marks one that is not there), the user paints it: a
brush adds occluder pixels to M_alpha, an eraser removes them. The paint is kept apart from the
parser's map as an :class:`AlphaEdit` -- two masks in *crop* pixels, ``added`` and ``erased`` --
so that

* the runner applies it to M_alpha where merge, synthesis and texture read it, while the
  landmark stage keeps the parser's own map (``pipeline.runner``: a paint edit recomputes only
  ``merge`` and what follows; the edit's digest enters their cache keys);
* undo/redo and the file store exactly what the user did, not a copy of the whole map.

Applying an edit (:meth:`AlphaEdit.apply`): ``added`` pixels become ``occluder``; ``erased``
pixels the parser had labelled ``occluder`` become ``skin`` (Algorithm 1 then draws the facial
features there from M_beta, as it does for any skin pixel). Erasing never touches other labels.

``corrections.json`` (:func:`write_corrections`, :func:`read_corrections`; the GUI's File menu,
``occgui run --corrections``, and the export writes it into the output folder when there are
corrections)::

    {"format": "occgui-corrections", "version": 1,
     "photo": "...", "photo_size": [w, h], "face_index": 0,
     "landmarks": [[x, y], ... 68] | null,           # photo pixels
     "occluder_paint": null | {
         "crop_size": 256,
         "photo_to_crop": [[a, b, c], [d, e, f]],    # 2x3: crop = M @ [x, y, 1] (photo px)
         "added": "<base64 PNG>", "erased": "<base64 PNG>"}}   # 1 bit per crop pixel

The crop size and the photo->crop transform are checked against the photo's crop before the
paint is used (:meth:`AlphaEdit.check_fits`): a file made on another photo, another face of a
group photo or another crop size is refused with one line, never silently misplaced.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import labels as L
from .errors import OccguiError
from .results import FaceCrop, LoadedImage

FORMAT = "occgui-corrections"
VERSION = 1
FILE_NAME = "corrections.json"
#: A painted map is refused when the file's crop lies more than this many crop pixels away from
#: the photo's crop (the crop's corners, mapped through both transforms).
MAX_CROP_MISMATCH_PX = 1.0


def photo_to_crop(image: LoadedImage, crop: FaceCrop) -> np.ndarray:
    """2x3 affine from photo pixels to the crop in which the parsing maps and I_out live."""
    s = float(image.scale)
    return np.asarray(crop.to_crop, dtype=np.float64) @ np.diag([s, s, 1.0])


class CorrectionsError(OccguiError):
    """A corrections file is missing, malformed, or made for another photo or crop."""


# --------------------------------------------------------------------------------------------
# The painted occluder
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AlphaEdit:
    """The user's paint on M_alpha, in crop pixels (see the module docstring).

    ``added`` and ``erased`` are SxS bool masks (never both true at one pixel); ``photo_to_crop``
    (2x3) is the transform of the crop they were painted on, ``photo_size`` that photo's size.
    """

    added: np.ndarray
    erased: np.ndarray
    photo_to_crop: np.ndarray
    photo_size: tuple[int, int]

    @classmethod
    def blank(cls, image: LoadedImage, crop: FaceCrop) -> "AlphaEdit":
        """No paint yet, on the crop of ``image``."""
        z = np.zeros((crop.size, crop.size), bool)
        return cls(z, z.copy(), photo_to_crop(image, crop), tuple(int(v) for v in image.photo_size))

    @property
    def size(self) -> int:
        return int(self.added.shape[0])

    @property
    def empty(self) -> bool:
        return not (self.added.any() or self.erased.any())

    def digest(self) -> str:
        """A content key: '' for an empty edit, else a hash of both masks (the cache keys' part)."""
        if self.empty:
            return ""
        h = hashlib.sha1()
        for m in (self.added, self.erased):
            h.update(np.packbits(np.asarray(m, bool)).tobytes())
        h.update(str(self.added.shape).encode())
        return h.hexdigest()[:16]

    def apply(self, alpha: np.ndarray) -> np.ndarray:
        """M_alpha with the paint applied (a new array; ``alpha`` is not modified)."""
        a = np.asarray(alpha)
        if a.shape != self.added.shape:
            raise CorrectionsError(f"the painted occluder is {self.size}x{self.size} crop pixels but M_alpha is "
                                   f"{a.shape[1]}x{a.shape[0]}: it was made with another crop size")
        out = a.astype(np.uint8, copy=True)
        out[self.erased & (out == L.OCCLUDER)] = L.SKIN
        out[self.added] = L.OCCLUDER
        return out

    def check_fits(self, image: LoadedImage, crop: FaceCrop) -> None:
        """Raise :class:`CorrectionsError` unless the paint was made on this photo's crop."""
        if tuple(image.photo_size) != tuple(self.photo_size):
            raise CorrectionsError(f"the painted occluder was made on a {self.photo_size[0]}x{self.photo_size[1]} "
                                   f"photo, this one is {image.photo_size[0]}x{image.photo_size[1]}")
        if crop.size != self.size:
            raise CorrectionsError(f"the painted occluder was made on a {self.size} px crop, this run uses "
                                   f"{crop.size} px (--crop-size)")
        off = crop_mismatch_px(self.photo_to_crop, photo_to_crop(image, crop), self.size)
        if off > MAX_CROP_MISMATCH_PX:
            raise CorrectionsError(f"the painted occluder was made on another face crop (it lies {off:.1f} crop px "
                                   f"away): another photo, face (--face) or detector")

    def painted(self, alpha: np.ndarray, brush_mask: np.ndarray, *, erase: bool) -> "AlphaEdit":
        """This edit plus a brush (``erase=False``) or eraser stroke covering ``brush_mask``."""
        m = np.asarray(brush_mask, bool)
        if erase:
            added = self.added & ~m
            erased = self.erased | (m & (np.asarray(alpha) == L.OCCLUDER))
        else:
            added = self.added | (m & (np.asarray(alpha) != L.OCCLUDER))
            erased = self.erased & ~m
        return AlphaEdit(added, erased, self.photo_to_crop, self.photo_size)

    def counts(self) -> dict[str, int]:
        return {"added_px": int(self.added.sum()), "erased_px": int(self.erased.sum())}


def edit_digest(edit: AlphaEdit | None) -> str:
    """:meth:`AlphaEdit.digest`, with '' for no edit."""
    return "" if edit is None else edit.digest()


def crop_mismatch_px(a: np.ndarray, b: np.ndarray, size: int) -> float:
    """How far apart (crop pixels) two photo->crop transforms put the crop: the crop's corners
    are mapped to the photo by ``a``'s inverse and back into the crop by ``b``."""
    a3 = np.vstack([np.asarray(a, np.float64), [0.0, 0.0, 1.0]])
    b3 = np.vstack([np.asarray(b, np.float64), [0.0, 0.0, 1.0]])
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64).T
    back = b3 @ np.linalg.inv(a3) @ corners
    return float(np.abs(back[:2] - corners[:2]).max())


def brush_mask(size: int, points_crop, radius: float) -> np.ndarray:
    """The SxS bool mask a round brush of ``radius`` crop pixels covers along ``points_crop``
    (one point: a disc; several: the discs joined by thick round-capped segments)."""
    pts = np.asarray(points_crop, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros((size, size), np.uint8)
    if len(pts) == 0:
        return mask.astype(bool)
    shift = 4                                           # sub-pixel precision of OpenCV's drawing
    f = float(1 << shift)
    ipts = np.round(pts * f).astype(np.int64)
    r = max(int(round(radius * f)), 1)
    for p in ipts:
        cv2.circle(mask, (int(p[0]), int(p[1])), r, 1, -1, cv2.LINE_8, shift)
    thick = max(int(round(2 * radius)), 1)
    for p, q in zip(ipts[:-1], ipts[1:]):
        cv2.line(mask, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, thick, cv2.LINE_8, shift)
    return mask.astype(bool)


def occluder_mask(alpha: np.ndarray, edit: AlphaEdit | None) -> np.ndarray:
    """The occluder pixels of M_alpha as painted (the parser's, plus ``added``, minus ``erased``)."""
    labels = edit.apply(alpha) if edit is not None else np.asarray(alpha)
    return labels == L.OCCLUDER


# --------------------------------------------------------------------------------------------
# The corrections file
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Corrections:
    """What ``corrections.json`` holds: the landmarks (photo px) and/or the painted occluder."""

    landmarks: np.ndarray | None = None
    alpha_edit: AlphaEdit | None = None
    photo: str = ""
    photo_size: tuple[int, int] | None = None
    face_index: int = 0

    @property
    def empty(self) -> bool:
        return self.landmarks is None and (self.alpha_edit is None or self.alpha_edit.empty)

    def check_photo(self, image: LoadedImage) -> None:
        """Raise :class:`CorrectionsError` when the file was made for a photo of another size."""
        if self.photo_size is not None and tuple(self.photo_size) != tuple(image.photo_size):
            raise CorrectionsError(f"corrections made for a {self.photo_size[0]}x{self.photo_size[1]} photo, "
                                   f"this one is {image.photo_size[0]}x{image.photo_size[1]}")

    def check_fits(self, image: LoadedImage, crop: FaceCrop) -> None:
        """Both checks: the photo's size and, when there is paint, its crop."""
        self.check_photo(image)
        if self.alpha_edit is not None:
            self.alpha_edit.check_fits(image, crop)


def _mask_to_text(mask: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", np.asarray(mask, bool).astype(np.uint8) * 255,
                           [cv2.IMWRITE_PNG_BILEVEL, 1, cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise CorrectionsError("could not encode the painted occluder as PNG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _mask_from_text(text, name: str, size: int, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(str(text), validate=True)
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE)
    except (ValueError, TypeError, cv2.error):
        img = None
    if img is None:
        raise CorrectionsError(f"{where}: occluder_paint.{name} is not a base64 PNG mask")
    if img.shape != (size, size):
        raise CorrectionsError(f"{where}: occluder_paint.{name} is {img.shape[1]}x{img.shape[0]}, "
                               f"crop_size says {size}x{size}")
    return img > 127


def corrections_document(c: Corrections) -> dict:
    """The JSON document of ``c`` (see the module docstring)."""
    doc: dict = {"format": FORMAT, "version": VERSION, "photo": c.photo,
                 "photo_size": None if c.photo_size is None else [int(v) for v in c.photo_size],
                 "face_index": int(c.face_index),
                 "landmarks_format": "iBUG 300-W 68 points, photo pixels (x right, y down, origin at the top-left "
                                     "pixel's centre)",
                 "landmarks": None if c.landmarks is None else
                 [[round(float(x), 3), round(float(y), 3)] for x, y in np.asarray(c.landmarks, np.float64)],
                 "occluder_paint": None}
    e = c.alpha_edit
    if e is not None and not e.empty:
        doc["occluder_paint"] = {
            "crop_size": e.size,
            "photo_to_crop": [[round(float(v), 8) for v in row] for row in np.asarray(e.photo_to_crop)],
            "photo_size": [int(v) for v in e.photo_size],
            "note": "added: pixels painted as occluder; erased: parser occluder pixels removed (they become skin); "
                    "1-bit PNGs in crop pixels, base64",
            **e.counts(),
            "added": _mask_to_text(e.added), "erased": _mask_to_text(e.erased)}
    return doc


def corrections_json(c: Corrections) -> str:
    return json.dumps(corrections_document(c), indent=1) + "\n"


def write_corrections(path, c: Corrections) -> Path:
    """Write ``corrections.json`` atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_text(corrections_json(c), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CorrectionsError(f"{path}: could not write the corrections ({e.strerror or e})") from None
    return path


def _points(value, where: str) -> np.ndarray:
    from .landmarks.ibug68 import checked_points68

    try:
        pts = checked_points68(value, where)
    except OccguiError as e:
        raise CorrectionsError(str(e)) from None
    return pts


def _size_pair(value, what: str, where: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value)
    except (TypeError, ValueError):
        raise CorrectionsError(f"{where}: '{what}' must be [width, height]") from None
    return w, h


def parse_corrections(data, where: str = "corrections") -> Corrections:
    """A :class:`Corrections` from a decoded JSON document. A plain ``landmarks.json``
    (``{"points": [...]}``) is accepted as landmarks-only corrections."""
    if isinstance(data, dict) and "format" not in data and "points" in data:
        return Corrections(landmarks=_points(data["points"], where), photo=str(data.get("photo", "")),
                           photo_size=_size_pair(data["photo_size"], "photo_size", where)
                           if data.get("photo_size") is not None else None)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorrectionsError(f"{where}: not an occgui corrections file (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise CorrectionsError(f"{where}: corrections version {data.get('version')!r} is not supported "
                               f"(this occgui reads version {VERSION})")
    landmarks = None if data.get("landmarks") is None else _points(data["landmarks"], where)
    photo_size = None if data.get("photo_size") is None else _size_pair(data["photo_size"], "photo_size", where)
    edit = None
    paint = data.get("occluder_paint")
    if paint is not None:
        if not isinstance(paint, dict):
            raise CorrectionsError(f"{where}: 'occluder_paint' must be an object")
        try:
            size = int(paint["crop_size"])
            m = np.asarray(paint["photo_to_crop"], dtype=np.float64)
            added_text, erased_text = paint["added"], paint["erased"]
        except KeyError as e:
            raise CorrectionsError(f"{where}: occluder_paint has no {e.args[0]!r}") from None
        except (TypeError, ValueError):
            raise CorrectionsError(f"{where}: occluder_paint.crop_size / photo_to_crop are malformed") from None
        if size < 16 or m.shape != (2, 3) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:, :2])) < 1e-9:
            raise CorrectionsError(f"{where}: occluder_paint needs a crop_size and an invertible 2x3 photo_to_crop")
        psize = paint.get("photo_size", data.get("photo_size"))
        if psize is None:
            raise CorrectionsError(f"{where}: occluder_paint needs the photo_size it was painted on")
        added = _mask_from_text(added_text, "added", size, where)
        erased = _mask_from_text(erased_text, "erased", size, where) & ~added
        edit = AlphaEdit(added, erased, m, _size_pair(psize, "photo_size", where))
    try:
        face_index = int(data.get("face_index", 0) or 0)
    except (TypeError, ValueError):
        raise CorrectionsError(f"{where}: 'face_index' must be an integer") from None
    c = Corrections(landmarks, edit, str(data.get("photo", "")), photo_size, face_index)
    if c.empty:
        raise CorrectionsError(f"{where}: the file holds no correction (no landmarks, no painted occluder)")
    return c


def read_corrections(path) -> Corrections:
    """Read ``corrections.json``; a one-line :class:`CorrectionsError` when it is missing or malformed."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorrectionsError(f"{p.name}: corrections file not found") from None
    except IsADirectoryError:
        raise CorrectionsError(f"{p.name}: is a folder, not a corrections file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CorrectionsError(f"{p.name}: not a JSON corrections file ({type(e).__name__})") from None
    except OSError as e:
        raise CorrectionsError(f"{p.name}: cannot be read ({e.strerror or e})") from None
    return parse_corrections(data, p.name)


def result_corrections(result) -> Corrections | None:
    """The corrections a finished run was given (its edited landmarks and its paint), or None."""
    lm = result.landmarks
    edit = getattr(result, "alpha_edit", None)
    has_paint = edit is not None and not edit.empty
    if not (lm is not None and lm.edited) and not has_paint:
        return None
    return Corrections(landmarks=result.landmarks_in_photo() if lm.edited else None,
                       alpha_edit=edit if has_paint else None, photo=str(result.image.source),
                       photo_size=tuple(result.image.photo_size), face_index=int(result.crop.face_index))
