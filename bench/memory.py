"""Peak memory of ``occgui run`` on the largest photo the loader accepts (issue 17, point 4: the
largest accepted photo stays under the benchmark's memory bound, 2.5 GB).

    python bench/memory.py [--sizes 17320,16000] [--formats jpeg,png,progressive] [--compute-host] [--device cpu]

For each size and format it writes a photo of that size (the bundled sample face scaled into it)
a strip at a time -- so this script never holds the photo's pixels (except ``progressive``,
which Pillow encodes from the whole image) -- then runs a fresh
``occgui run`` process on it and reads that process's peak RSS (``ru_maxrss`` of the waited
child). ``17320`` x ``17320`` is the largest square photo under ``occgui.imageio.MAX_PIXELS``
(300 MP); ``16000`` is the photo of issue 17. ``--compute-host`` also runs the photo through the
GUI's compute process (``ProcessPipelineHost``, the path the window uses) and reads that
process's peak RSS (``VmHWM``). The sample photo gives the process's baseline. Exit status 1
when a peak exceeds the bound.

A baseline JPEG is decoded by libjpeg at 1/8 and costs nothing over the baseline; a PNG is
decoded whole by Pillow (4 bytes per pixel) then box-reduced in strips; a progressive JPEG makes
libjpeg keep every DCT coefficient of the photo (about 3 bytes per pixel at 4:2:0) whatever the
scale it decodes at.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOUND_GB = 2.5
AIM_GB = 1.5
SAMPLE = ROOT / "resources" / "samples" / "astronaut_hand.png"

#: rows(y0, y1) -> (y1 - y0, width, 3) uint8: the photo's rows [y0, y1)
Rows = Callable[[int, int], np.ndarray]


# ------------------------------------------------------------------ photos written a strip at a time
def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """The marker segments of a baseline JPEG up to and including SOS: [(marker, whole segment)]."""
    out, i = [], 2
    while True:
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((marker, data[i:i + 2 + length]))
        i += 2 + length
        if marker == 0xDA:
            return out


def _scan(data: bytes) -> bytes:
    """The entropy-coded data of a single-scan JPEG (after SOS, before EOI)."""
    start = sum(len(s) for _, s in _segments(data)) + 2
    end = data.rindex(b"\xff\xd9")
    return data[start:end]


def write_jpeg_strips(path, width: int, height: int, rows: Rows, *, quality: int = 90, exif: bytes | None = None,
                      ) -> None:
    """Write a ``width`` x ``height`` baseline JPEG (4:2:0) without holding more than 16 of its rows.

    Each 16-row strip (one row of MCUs) is encoded by Pillow with the standard tables; the strips'
    scans are joined with restart markers (a DRI of one MCU row resets the DC predictors, so each
    strip decodes on its own) under one frame header carrying the full height.
    """
    from PIL import Image

    mcu = 16
    with open(path, "wb") as f:
        for n, y0 in enumerate(range(0, height, mcu)):
            strip = np.ascontiguousarray(rows(y0, min(y0 + mcu, height)), dtype=np.uint8)
            buf = io.BytesIO()
            kw = {"exif": exif} if (exif and n == 0) else {}
            Image.fromarray(strip).save(buf, "JPEG", quality=quality, subsampling=2, optimize=False, **kw)
            data = buf.getvalue()
            if n == 0:
                f.write(b"\xff\xd8")
                for marker, seg in _segments(data):
                    if marker == 0xC0:      # SOF0: precision, height, width
                        seg = seg[:5] + struct.pack(">HH", height, width) + seg[9:]
                    if marker == 0xDA:      # restart every MCU row, right before the scan
                        f.write(b"\xff\xdd" + struct.pack(">HH", 4, math.ceil(width / mcu)))
                    f.write(seg)
            else:
                f.write(bytes([0xFF, 0xD0 + (n - 1) % 8]))
            f.write(_scan(data))
        f.write(b"\xff\xd9")


def write_png_strips(path, width: int, height: int, rows: Rows, *, strip: int = 64) -> None:
    """Write a ``width`` x ``height`` 8-bit RGB PNG a strip of rows at a time (zlib level 1)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    z = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for y0 in range(0, height, strip):
            a = np.ascontiguousarray(rows(y0, min(y0 + strip, height)), dtype=np.uint8)
            raw = np.concatenate([np.zeros((a.shape[0], 1), np.uint8), a.reshape(a.shape[0], -1)], axis=1)
            body = z.compress(raw.tobytes())
            if body:
                f.write(chunk(b"IDAT", body))
        f.write(chunk(b"IDAT", z.flush()) + chunk(b"IEND", b""))


def write_progressive_jpeg(path, width: int, height: int, rows: Rows) -> None:
    """A progressive JPEG, made by Pillow from the whole image (this one does hold the pixels: about
    7 bytes per pixel in this process, 2.1 GB at 300 MP)."""
    from PIL import Image

    Image.fromarray(rows(0, height)).save(path, "JPEG", quality=90, progressive=True)


def face_rows(width: int, height: int, *, face_fraction: float = 0.5, background=(96, 110, 124)) -> Rows:
    """Rows of a photo showing the bundled sample face centred, ``face_fraction`` of the shorter
    side wide (bilinear upscaling of the 512 px sample), on a plain background."""
    import cv2

    from occgui.imageio import load_image

    src = load_image(SAMPLE).rgb
    a = face_fraction * min(width, height) / src.shape[1]
    tx, ty = (width - a * src.shape[1]) / 2, (height - a * src.shape[0]) / 2

    def rows(y0: int, y1: int) -> np.ndarray:
        m = np.array([[1 / a, 0, -tx / a], [0, 1 / a, (y0 - ty) / a]])
        return cv2.warpAffine(src, m, (width, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    return rows


# ------------------------------------------------------------------ measurements
def cli_peak_gb(photo: Path, device: str) -> tuple[float, float, int]:
    """(peak RSS in GB, seconds, exit status) of a fresh ``occgui run`` process on ``photo``.

    ``ru_maxrss`` of RUSAGE_CHILDREN is the largest peak among the waited children, so each run
    is made from a fresh interpreter of this script (``--child``) that reports its own child's peak.
    """
    out = subprocess.run([sys.executable, __file__, "--child", str(photo), "--device", device],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    return float(out[-3]), float(out[-2]), int(out[-1])


def _child(photo: str, device: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", "occgui", "run", photo, "-q", "--device", device, "-o", tmp],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
        dt = time.perf_counter() - t0
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024, dt, rc)


def _vm_hwm_gb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 / 1024
    raise RuntimeError("no VmHWM")


def compute_host_peak_gb(photo: Path, device: str) -> tuple[float, float]:
    """(peak RSS in GB, seconds) of the GUI's compute process running ``photo`` (warm-up first)."""
    from occgui.gui.compute_host import ProcessPipelineHost
    from occgui.pipeline.runner import PipelineConfig

    host = ProcessPipelineHost(PipelineConfig(device=device))
    try:
        host.warm_up()
        t0 = time.perf_counter()
        host.run(1, str(photo), None, lambda ev: None)
        dt = time.perf_counter() - t0
        return _vm_hwm_gb(host._proc.pid), dt
    finally:
        host.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="17320,16000", help="square photo sides to try (comma separated)")
    ap.add_argument("--formats", default="jpeg,png")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compute-host", action="store_true", help="also measure the GUI's compute process")
    ap.add_argument("--keep", type=Path, help="write the photos here instead of a temporary folder")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        _child(a.child, a.device)
        return 0

    from occgui.imageio import MAX_PIXELS

    print(f"bound {BOUND_GB} GB (aim < {AIM_GB} GB); largest accepted: {MAX_PIXELS / 1e6:.0f} MP; "
          f"load average {os.getloadavg()[0]:.1f}")
    peak, dt, rc = cli_peak_gb(SAMPLE, a.device)
    print(f"{'sample 512x512 png':34s} occgui run: peak RSS {peak:.2f} GB  {dt:5.1f} s  exit {rc}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for side in (int(s) for s in a.sizes.split(",")):
            if side * side > MAX_PIXELS:
                print(f"{side}x{side}: above the pixel limit, refused by design")
                continue
            for fmt in a.formats.split(","):
                writer, suffix = {"jpeg": (write_jpeg_strips, "jpg"), "png": (write_png_strips, "png"),
                                  "progressive": (write_progressive_jpeg, "jpg")}[fmt]
                photo = folder / f"huge_{side}_{fmt}.{suffix}"
                t0 = time.perf_counter()
                writer(photo, side, side, face_rows(side, side))
                made = time.perf_counter() - t0
                label = f"{side}x{side} {fmt} ({photo.stat().st_size / 1e6:.0f} MB, made in {made:.0f} s)"
                peak, dt, rc = cli_peak_gb(photo, a.device)
                worst = max(worst, peak)
                print(f"{label:34s} occgui run: peak RSS {peak:.2f} GB  {dt:5.1f} s  exit {rc}  "
                      f"{peak / BOUND_GB:.0%} of the bound")
                if a.compute_host:
                    hpeak, hdt = compute_host_peak_gb(photo, a.device)
                    worst = max(worst, hpeak)
                    print(f"{'':34s} compute process: peak RSS {hpeak:.2f} GB  {hdt:5.1f} s  "
                          f"{hpeak / BOUND_GB:.0%} of the bound")
                if not a.keep:
                    photo.unlink()
    ok = worst <= BOUND_GB
    print(f"worst peak {worst:.2f} GB: {'within' if ok else 'ABOVE'} the {BOUND_GB} GB bound"
          + ("" if worst <= AIM_GB else f" (above the {AIM_GB} GB aim)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
