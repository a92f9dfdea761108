"""Robust photo loading: any common format -> 8-bit RGB, EXIF-rotated, huge photos downscaled.

Every failure becomes an :class:`~occgui.errors.ImageLoadError` with one clear line.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from struct import error as struct_error

import numpy as np

from .errors import ImageLoadError
from .results import LoadedImage

MIN_SIDE = 64                   # smaller photos cannot hold a usable face
MAX_PIXELS = 300_000_000        # refuse decompression bombs beyond this
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif")


def is_image_path(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def source_key(source) -> str:
    """A cheap cache key of a photo source: path + size + mtime, or the array's content hash."""
    if isinstance(source, np.ndarray):
        h = hashlib.sha1(np.ascontiguousarray(source).tobytes()).hexdigest()[:16]
        return f"array:{source.shape}:{h}"
    p = Path(source)
    try:
        st = p.stat()
    except OSError:
        return f"path:{p}:missing"
    return f"path:{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _to_uint8_rgb(arr: np.ndarray, hi: float | None = None) -> tuple[np.ndarray, list[str]]:
    """Convert a decoded array (gray/RGB/RGBA, 8/16-bit/float) to HxWx3 uint8. ``hi``: the
    maximum of the whole photo when ``arr`` is a strip of it (it picks the 16-bit/float scale)."""
    notes: list[str] = []
    a = arr
    if a.dtype == np.uint16 or a.dtype == np.int32 or a.dtype == np.uint32:
        if hi is None:
            hi = float(a.max()) if a.size else 0.0
        denom = 65535.0 if hi > 255 else 255.0
        a = np.clip(a.astype(np.float64) / denom * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append("converted 16-bit to 8-bit")
    elif a.dtype in (np.float32, np.float64):
        if hi is None or not np.isfinite(hi):
            hi = float(np.nanmax(a)) if a.size else 1.0
        scale = 255.0 if hi <= 1.0 + 1e-6 else 1.0
        a = np.clip(np.nan_to_num(a) * scale + 0.5, 0, 255).astype(np.uint8)
        notes.append("converted floating-point image to 8-bit")
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
        notes.append("converted grayscale to RGB")
    elif a.ndim == 3 and a.shape[2] == 2:  # gray + alpha
        g, al = a[:, :, :1].astype(np.float32), a[:, :, 1:2].astype(np.float32) / 255.0
        a = np.repeat((g * al + 255.0 * (1 - al) + 0.5).astype(np.uint8), 3, axis=2)
        notes.append("flattened alpha onto white")
    elif a.ndim == 3 and a.shape[2] == 4:
        rgb, al = a[:, :, :3].astype(np.float32), a[:, :, 3:4].astype(np.float32) / 255.0
        if float(al.min()) < 1.0:
            notes.append("flattened alpha onto white")
        a = (rgb * al + 255.0 * (1 - al) + 0.5).astype(np.uint8)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ImageLoadError(f"unsupported image layout {a.shape}")
    return np.ascontiguousarray(a), notes


# ----------------------------------------------------------------------------- reduced decoding
#: Pillow's transposition for each EXIF orientation, as numpy ops on an (H, W, ...) array, and
#: which axis of the stored image each displayed axis comes from and whether it is reversed:
#: ``(x from stored "x"/"y", x reversed, y reversed)``.
_ORIENTATION = {
    2: (lambda a: a[:, ::-1], "x", True, False),                   # FLIP_LEFT_RIGHT
    3: (lambda a: a[::-1, ::-1], "x", True, True),                 # ROTATE_180
    4: (lambda a: a[::-1], "x", False, True),                      # FLIP_TOP_BOTTOM
    5: (lambda a: a.swapaxes(0, 1), "y", False, False),            # TRANSPOSE
    6: (lambda a: np.rot90(a, -1), "y", True, False),              # ROTATE_270 (90 degrees clockwise)
    7: (lambda a: a.swapaxes(0, 1)[::-1, ::-1], "y", True, True),  # TRANSVERSE
    8: (lambda a: np.rot90(a, 1), "y", False, True),               # ROTATE_90 (90 degrees counter-clockwise)
}
#: Pixels converted at a time when a photo is box-reduced in strips (bounds the temporaries).
_STRIP_PIXELS = 4_000_000


def working_size(photo_size: tuple[int, int], max_side: int) -> tuple[float, tuple[int, int]]:
    """``(scale, (width, height))`` of the working image of a photo of ``photo_size`` (w, h)."""
    w, h = photo_size
    if max(w, h) <= max_side:
        return 1.0, (w, h)
    s = max_side / float(max(w, h))
    return s, (max(1, round(w * s)), max(1, round(h * s)))


@dataclass
class _Reduced:
    """A photo decoded at 1/``k`` of its size, in its stored orientation (before EXIF).

    Pixel ``j`` of ``rgb`` is the mean of stored-photo pixels ``[k*j, k*j + k)`` on each axis:
    its centre is at stored-photo coordinate ``k*j + (k - 1)/2`` (pixel centres at integers).
    """

    rgb: np.ndarray      # (H_r, W_r, 3) uint8
    k: int
    notes: list[str]


def _pil_array(im, hi: float | None) -> tuple[np.ndarray, list[str]]:
    """One Pillow image (the whole photo or a strip of it) -> HxWx3 uint8 and the notes."""
    from PIL import Image  # noqa: F401  (Pillow is imported by the caller)

    notes: list[str] = []
    mode = im.mode
    if mode == "CMYK":
        arr = np.asarray(im.convert("RGB"))
        notes.append("converted CMYK to RGB")
    elif mode in ("P", "PA"):
        arr = np.asarray(im.convert("RGBA"))
        notes.append("converted palette image to RGB")
    elif mode == "1":
        arr = np.asarray(im).astype(np.uint8) * 255
    elif mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
    elif mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        arr = np.clip(arr, 0, 65535).astype(np.uint16) if mode == "I" else arr.astype(np.uint16, copy=False)
    elif mode == "F":
        arr = np.asarray(im).astype(np.float64)
    elif mode in ("YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        arr = np.asarray(im.convert("RGB"))
        notes.append(f"converted {mode} to RGB")
    else:
        raise ImageLoadError(f"unsupported image mode {mode}")
    rgb, more = _to_uint8_rgb(arr, hi=hi)
    return rgb, notes + more


def _box_reduce(rgb: np.ndarray, k: int) -> np.ndarray:
    """Mean of each ``k``x``k`` block of an (H, W, 3) uint8 array whose sides are multiples of ``k``
    (OpenCV's area resampling at an integer factor is exactly that block mean, rounded)."""
    import cv2

    h, w = rgb.shape[:2]
    return cv2.resize(np.ascontiguousarray(rgb), (w // k, h // k), interpolation=cv2.INTER_AREA)


def _reduce_pil(im, req: tuple[int, int], k: int) -> _Reduced:
    """Convert a loaded Pillow image to RGB uint8, box-reduced by the largest integer factor that
    keeps it at least ``req`` (w, h), a strip of rows at a time so the full-size RGB array never
    exists. The rows/columns past the last whole block are dropped (their pixels lie at the far
    edge; the returned ``k`` keeps the geometry exact)."""
    w, h = im.size
    f = max(1, min(w // max(1, req[0]), h // max(1, req[1])))
    hi = None
    if im.mode.startswith("I") or im.mode == "F":
        lo_hi = im.getextrema()
        hi = float(lo_hi[1]) if not isinstance(lo_hi[0], tuple) else float(max(b[1] for b in lo_hi))
    if f == 1:
        rgb, notes = _pil_array(im, hi)
        return _Reduced(rgb, k, notes)
    wr, hr = w // f, h // f
    step = f * max(1, _STRIP_PIXELS // max(1, w * f))
    out = np.empty((hr, wr, 3), np.uint8)
    notes: list[str] = []
    for y in range(0, hr * f, step):
        y1 = min(y + step, hr * f)
        strip, more = _pil_array(im.crop((0, y, wr * f, y1)), hi)
        out[y // f: y1 // f] = _box_reduce(strip, f)
        notes.extend(n for n in more if n not in notes)
    return _Reduced(out, k * f, notes)


def _reduce_array(rgb: np.ndarray, req: tuple[int, int]) -> _Reduced:
    """The same box reduction for an already decoded (H, W, 3) uint8 array."""
    h, w = rgb.shape[:2]
    f = max(1, min(w // max(1, req[0]), h // max(1, req[1])))
    if f == 1:
        return _Reduced(rgb, 1, [])
    hr, wr = h // f, w // f
    out = np.empty((hr, wr, 3), np.uint8)
    rows = f * max(1, _STRIP_PIXELS // max(1, w * f))
    for y in range(0, hr * f, rows):
        y1 = min(y + rows, hr * f)
        out[y // f: y1 // f] = _box_reduce(rgb[y:y1, : wr * f], f)
    return _Reduced(out, f, [])


def _decode_with_pillow(path: Path, max_side: int) -> tuple[_Reduced, tuple[int, int], int]:
    """Decode ``path`` reduced for a working image of at most ``max_side`` px: JPEGs through
    libjpeg's DCT scaling (``Image.draft``: 1/2, 1/4, 1/8, never the full-size pixels), other
    formats decoded whole by Pillow then box-reduced in strips. Returns the reduced image, the
    stored (pre-EXIF) size and the EXIF orientation."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return _decode_open(im, max_side)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError("not an image (unrecognised file format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"image is too large (more than {MAX_PIXELS // 1_000_000} megapixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct_error, ZeroDivisionError, MemoryError, KeyError,
            IndexError, TypeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, (SyntaxError,)):
            raise ImageLoadError(f"image file is truncated or corrupt ({msg})") from None
        raise ImageLoadError(f"cannot decode image ({msg})") from None


def _decode_open(im, max_side: int) -> tuple[_Reduced, tuple[int, int], int]:
    stored = im.size
    if min(stored) < MIN_SIDE:
        raise ImageLoadError(f"image is too small ({stored[0]}x{stored[1]} px; at least {MIN_SIDE} px per side "
                             f"is needed)")
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must not stop loading
        orientation = 1
    if orientation not in _ORIENTATION:
        orientation = 1
    scale, _ = working_size(stored, max_side)
    req = (max(1, ceil(stored[0] * scale)), max(1, ceil(stored[1] * scale)))
    notes: list[str] = []
    if getattr(im, "n_frames", 1) > 1:
        notes.append("multi-frame file: used the first frame")
    k = 1
    if scale < 1.0 and im.format in ("JPEG", "MPO"):
        drafted = im.draft(None, req)
        if drafted is not None:
            k = max(1, round(stored[0] / drafted[1][2]))
    im.load()
    red = _reduce_pil(im, req, k)
    red.notes[:0] = notes
    if red.k > 1:
        red.notes.append(f"decoded at 1/{red.k} size")
    return red, stored, orientation


def _decode_with_opencv(path: Path) -> np.ndarray | None:
    """Fallback for files Pillow cannot read (e.g. 16-bit multi-channel TIFF)."""
    import cv2

    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    arr = cv2.imread(str(path), flags)          # reads the file itself: no copy of its bytes
    if arr is None:
        data = np.fromfile(str(path), dtype=np.uint8)
        arr = cv2.imdecode(data, flags)
    if arr is None:
        return None
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    return arr


def _to_working(red: _Reduced, stored: tuple[int, int], orientation: int, max_side: int
                ) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Apply the EXIF orientation to the reduced image and resample it to the working image.

    The working image is exactly the photo (after EXIF rotation) scaled by ``scale`` about the
    origin, pixel centres at integers: working pixel ``(i, j)`` shows photo point ``(i, j) /
    scale`` -- the relation :class:`LoadedImage` states. One affine resample (bilinear, after a
    Gaussian pre-filter against aliasing) takes the reduced image there; it also absorbs the
    half-block offset of the block means and, where EXIF flips an axis, the part of a block past
    the photo's far edge that the flip brings to the origin.
    """
    import cv2

    rgb, k = red.rgb, red.k
    ws, hs = stored
    pad = {"x": k * rgb.shape[1] - ws, "y": k * rgb.shape[0] - hs}
    ox = oy = 0
    if orientation != 1:
        op, x_from, x_rev, y_rev = _ORIENTATION[orientation]
        rgb = np.ascontiguousarray(op(rgb))
        y_from = "y" if x_from == "x" else "x"
        ox, oy = (pad[x_from] if x_rev else 0), (pad[y_from] if y_rev else 0)
    photo = (hs, ws) if orientation in (5, 6, 7, 8) else (ws, hs)
    scale, size = working_size(photo, max_side)
    if k == 1 and scale == 1.0 and ox == 0 and oy == 0:
        return rgb, 1.0, photo
    t = scale * k                      # working pixels per reduced pixel (<= 1 up to rounding)
    sigma = (1.0 / t - 1.0) / 2.0
    if sigma > 0.05:
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    # reduced coordinate of working pixel w: r = (w / scale + o - (k - 1) / 2) / k
    m = np.array([[1.0 / t, 0.0, (ox - (k - 1) / 2.0) / k],
                  [0.0, 1.0 / t, (oy - (k - 1) / 2.0) / k]])
    out = cv2.warpAffine(rgb, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return out, scale, photo


def load_image(source, *, max_side: int = 2048) -> LoadedImage:
    """Load a photo file (or take an HxWx3/HxW/HxWx4 array) as 8-bit RGB.

    JPEG/PNG/BMP/TIFF/WebP/PPM; EXIF orientation applied; grayscale, alpha (flattened onto
    white), palette, 16-bit and CMYK converted; truncated/non-image files, photos with a side
    below 64 px and photos above :data:`MAX_PIXELS` are rejected with :class:`ImageLoadError`.

    **Huge photos.** A photo whose longer side exceeds ``max_side`` becomes a *working image*
    of ``max_side`` px on that side, and ``LoadedImage.scale = max_side / longer side`` maps it
    back: working pixel ``p`` is photo point ``p / scale`` (pixel centres at integers; photo =
    the file after EXIF rotation), exactly -- so landmarks, corrections, ``report.json``'s
    photo->crop transform and the GUI's editor stay in the original photo's pixels. The full-size
    pixels are never held as an RGB array: a JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8 of its
    size (DCT scaling, the largest that is still at least the working size), any other format
    is decoded by Pillow and box-reduced in strips; a single resample then gives the working
    image. A 16000x16000 JPEG thus costs about the memory of a 4000x4000 one.
    """
    if isinstance(source, np.ndarray):
        name = "<array>"
        rgb, notes = _to_uint8_rgb(np.asarray(source))
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ImageLoadError(f"image is too small ({w}x{h} px; at least {MIN_SIDE} px per side is needed)")
        scale, _ = working_size((w, h), max_side)
        red, stored, orientation = _reduce_array(rgb, (ceil(w * scale), ceil(h * scale))), (w, h), 1
        red.notes[:0] = notes
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ImageLoadError("file not found")
        if path.is_dir():
            raise ImageLoadError("is a folder, not an image")
        if path.stat().st_size == 0:
            raise ImageLoadError("file is empty")
        try:
            red, stored, orientation = _decode_with_pillow(path, max_side)
        except ImageLoadError as first:
            if "unsupported" not in str(first) and "cannot decode" not in str(first):
                raise
            arr = _decode_with_opencv(path)
            if arr is None:
                raise first from None
            if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
                raise ImageLoadError(f"image is too large (more than {MAX_PIXELS // 1_000_000} megapixels)") from None
            rgb, more = _to_uint8_rgb(arr)
            del arr
            h, w = rgb.shape[:2]
            if min(h, w) < MIN_SIDE:
                raise ImageLoadError(f"image is too small ({w}x{h} px; at least {MIN_SIDE} px per side is needed)"
                                     ) from None
            scale, _ = working_size((w, h), max_side)
            red, stored, orientation = _reduce_array(rgb, (ceil(w * scale), ceil(h * scale))), (w, h), 1
            red.notes[:0] = ["decoded with OpenCV", *more]
    notes = list(red.notes)
    if orientation != 1:
        notes.append(f"applied EXIF orientation {orientation}")
    rgb, scale, (w, h) = _to_working(red, stored, orientation, max_side)
    if scale < 1.0:
        notes.append(f"downscaled from {w}x{h} by {scale:.3f}")
    digest = hashlib.sha1(rgb.tobytes()).hexdigest()[:16]
    return LoadedImage(rgb=rgb, scale=scale, photo_size=(w, h), source=name, digest=digest, notes=tuple(notes))


def save_png(path, rgb: np.ndarray) -> None:
    """Write an RGB (HxWx3) or label (HxW) uint8 array as PNG (not atomic; see occgui.export)."""
    import cv2

    arr = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb
    if not cv2.imwrite(os.fspath(path), arr):
        raise OSError(f"could not write {path}")
