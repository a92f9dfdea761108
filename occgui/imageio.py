"""Robust photo loading: any common format -> 8-bit RGB, EXIF-rotated, huge photos downscaled.

Every failure becomes an :class:`~occgui.errors.ImageLoadError` with one clear line.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

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


def _to_uint8_rgb(arr: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Convert a decoded array (gray/RGB/RGBA, 8/16-bit/float) to HxWx3 uint8."""
    notes: list[str] = []
    a = arr
    if a.dtype == np.uint16 or a.dtype == np.int32 or a.dtype == np.uint32:
        hi = float(a.max()) if a.size else 0.0
        denom = 65535.0 if hi > 255 else 255.0
        a = np.clip(a.astype(np.float64) / denom * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append("converted 16-bit to 8-bit")
    elif a.dtype in (np.float32, np.float64):
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


def _decode_with_pillow(path: Path, max_side: int) -> tuple[np.ndarray, tuple[int, int], list[str]]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            im.load()
    except UnidentifiedImageError:
        raise ImageLoadError("not an image (unrecognised file format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"image is too large (more than {MAX_PIXELS // 1_000_000} megapixels)") from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, (SyntaxError,)):
            raise ImageLoadError(f"image file is truncated or corrupt ({msg})") from None
        raise ImageLoadError(f"cannot decode image ({msg})") from None
    if getattr(im, "n_frames", 1) > 1:
        notes.append("multi-frame file: used the first frame")
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must not stop loading
        orientation = 1
    if orientation not in (None, 1):
        im = ImageOps.exif_transpose(im)
        notes.append(f"applied EXIF orientation {orientation}")
    mode = im.mode
    if mode == "CMYK":
        im = im.convert("RGB")
        notes.append("converted CMYK to RGB")
        arr = np.asarray(im)
    elif mode in ("P", "PA"):
        im = im.convert("RGBA")
        notes.append("converted palette image to RGB")
        arr = np.asarray(im)
    elif mode in ("1", "L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
    elif mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im).astype(np.uint32)
        if mode == "I":
            arr = np.clip(arr, 0, 65535)
        if arr.max() <= 255:
            arr = arr.astype(np.uint8)
    elif mode == "F":
        arr = np.asarray(im).astype(np.float64)
    elif mode in ("YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        arr = np.asarray(im.convert("RGB"))
        notes.append(f"converted {mode} to RGB")
    else:
        raise ImageLoadError(f"unsupported image mode {mode}")
    if mode == "1":
        arr = arr.astype(np.uint8) * 255
    return arr, im.size, notes


def _decode_with_opencv(path: Path) -> np.ndarray | None:
    """Fallback for files Pillow cannot read (e.g. 16-bit multi-channel TIFF)."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if arr is None:
        return None
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    return arr


def load_image(source, *, max_side: int = 2048) -> LoadedImage:
    """Load a photo file (or take an HxWx3/HxW/HxWx4 array) as 8-bit RGB.

    JPEG/PNG/BMP/TIFF/WebP/PPM; EXIF orientation applied; grayscale, alpha (flattened onto
    white), palette, 16-bit and CMYK converted; photos with a side above ``max_side`` downscaled
    (``LoadedImage.scale`` maps back); truncated/non-image files and photos with a side below
    64 px are rejected with :class:`ImageLoadError`.
    """
    import cv2

    notes: list[str] = []
    if isinstance(source, np.ndarray):
        arr, name = source, "<array>"
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
            arr, _, notes = _decode_with_pillow(path, max_side)
        except ImageLoadError as first:
            if "unsupported" not in str(first) and "cannot decode" not in str(first):
                raise
            arr = _decode_with_opencv(path)
            if arr is None:
                raise first from None
            notes = ["decoded with OpenCV"]
    rgb, more = _to_uint8_rgb(np.asarray(arr))
    notes.extend(more)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageLoadError(f"image is too small ({w}x{h} px; at least {MIN_SIDE} px per side is needed)")
    scale = 1.0
    if max(h, w) > max_side:
        scale = max_side / float(max(h, w))
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        scale = rgb.shape[1] / float(w)
        notes.append(f"downscaled from {w}x{h} by {scale:.3f}")
    digest = hashlib.sha1(rgb.tobytes()).hexdigest()[:16]
    return LoadedImage(rgb=rgb, scale=scale, photo_size=(w, h), source=name, digest=digest, notes=tuple(notes))


def save_png(path, rgb: np.ndarray) -> None:
    """Write an RGB (HxWx3) or label (HxW) uint8 array as PNG (not atomic; see occgui.export)."""
    import cv2

    arr = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb
    if not cv2.imwrite(os.fspath(path), arr):
        raise OSError(f"could not write {path}")
