"""Robust loading (issue point 2): formats, conversions, EXIF, sizes and clear one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from occgui.errors import ImageLoadError
from occgui.imageio import load_image


@pytest.fixture(scope="module")
def astro():
    import skimage.data

    return skimage.data.astronaut()


@pytest.mark.parametrize("ext", ["jpg", "png", "bmp", "tif", "webp"])
def test_formats_load_as_rgb8(tmp_path, astro, ext):
    p = tmp_path / f"a.{ext}"
    Image.fromarray(astro).save(p)
    img = load_image(p)
    assert img.rgb.dtype == np.uint8 and img.rgb.shape == astro.shape
    assert np.abs(img.rgb.astype(int) - astro).mean() < 6


def test_grayscale_alpha_palette_cmyk_16bit(tmp_path, astro):
    gray = Image.fromarray(astro).convert("L")
    gray.save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.rgb.shape == astro.shape and np.array_equal(g.rgb[..., 0], g.rgb[..., 2])

    rgba = np.dstack([astro, np.full(astro.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "a.png")
    a = load_image(tmp_path / "a.png")
    assert a.rgb.shape == astro.shape and (a.rgb[:10, :10] == 255).all()

    Image.fromarray(astro).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").rgb.shape == astro.shape

    Image.fromarray(astro).convert("CMYK").save(tmp_path / "c.jpg")
    c = load_image(tmp_path / "c.jpg")
    assert c.rgb.shape == astro.shape and any("CMYK" in n for n in c.notes)
    assert np.abs(c.rgb.astype(int) - astro).mean() < 20

    import cv2

    sixteen = (astro.astype(np.uint16) * 257)[:, :, ::-1]
    cv2.imwrite(str(tmp_path / "s.png"), sixteen)
    cv2.imwrite(str(tmp_path / "s.tif"), sixteen)
    cv2.imwrite(str(tmp_path / "sg.png"), sixteen[:, :, 0])
    for name in ("s.png", "s.tif", "sg.png"):
        s = load_image(tmp_path / name)
        assert s.rgb.dtype == np.uint8 and s.rgb.shape == astro.shape
    assert np.abs(load_image(tmp_path / "s.png").rgb.astype(int) - astro).max() <= 1


def test_exif_orientation_applied(tmp_path, astro):
    im = Image.fromarray(astro[:, :300])          # 512 tall x 300 wide
    exif = im.getexif()
    exif[0x0112] = 6                              # rotate 90 degrees clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif.tobytes())
    img = load_image(tmp_path / "r.jpg")
    assert img.rgb.shape[:2] == (300, 512)
    assert img.photo_size == (512, 300)


def test_huge_is_downscaled_with_scale_kept(tmp_path, astro):
    import cv2

    big = cv2.resize(astro, (4000, 4000), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=80)
    img = load_image(tmp_path / "big.jpg", max_side=2048)
    assert max(img.rgb.shape[:2]) == 2048 and img.photo_size == (4000, 4000)
    assert img.scale == pytest.approx(2048 / 4000)
    assert np.allclose(img.working_to_photo(np.array([[1024.0, 512.0]])), [[2000.0, 1000.0]])


@pytest.mark.parametrize("case", ["text", "truncated", "empty", "tiny", "missing", "folder"])
def test_bad_files_give_one_line_errors(tmp_path, astro, case):
    p = tmp_path / "x.jpg"
    if case == "text":
        p.write_text("this is not an image\n")
    elif case == "truncated":
        Image.fromarray(astro).save(p, quality=90)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 3])
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "tiny":
        Image.fromarray(astro[:40, :40]).save(p)
    elif case == "missing":
        p = tmp_path / "nope.jpg"
    elif case == "folder":
        p = tmp_path
    with pytest.raises(ImageLoadError) as e:
        load_image(p)
    msg = str(e.value)
    assert msg and "\n" not in msg and "Traceback" not in msg


# ----------------------------------------------------------------------------- huge photos (issue 17, point 4)
BG, FG = 40, 220


def _strip_writers():
    """``write_jpeg_strips`` / ``write_png_strips`` of ``bench/memory.py``: photos of any size written
    16 rows at a time, so making a 12000x9000 photo costs a few MB."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "memory.py"
    spec = importlib.util.spec_from_file_location("bench_memory", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _marker_rows(width: int, centres, radius: float):
    """Rows of a dark photo with bright anti-aliased discs centred at ``centres`` (photo pixels,
    pixel centres at integers)."""
    def rows(y0: int, y1: int) -> np.ndarray:
        out = np.full((y1 - y0, width, 3), BG, np.uint8)
        yy = np.arange(y0, y1, dtype=np.float64)[:, None]
        for cx, cy in centres:
            if cy + radius + 2 < y0 or cy - radius - 2 > y1:
                continue
            x0, x1 = max(0, int(cx - radius - 2)), min(width, int(cx + radius + 3))
            cov = np.clip(radius + 0.5 - np.hypot(np.arange(x0, x1)[None, :] - cx, yy - cy), 0, 1)
            disc = (BG + (FG - BG) * cov + 0.5).astype(np.uint8)[:, :, None]
            out[:, x0:x1] = np.maximum(out[:, x0:x1], disc)
        return out
    return rows


def _centroids_in_photo(img, centres, radius: float) -> np.ndarray:
    """Each disc's centroid measured in the working image, mapped back to photo pixels."""
    g = img.rgb.astype(np.float64).mean(axis=2) - BG
    found = []
    for c in centres:
        w = img.photo_to_working(np.array([c]))[0]
        r = radius * img.scale + 4
        x0, y0 = int(w[0] - r), int(w[1] - r)
        win = np.clip(g[y0:int(w[1] + r) + 1, x0:int(w[0] + r) + 1], 0, None)
        ys, xs = np.mgrid[y0:y0 + win.shape[0], x0:x0 + win.shape[1]]
        found.append([(win * xs).sum() / win.sum(), (win * ys).sum() / win.sum()])
    return img.working_to_photo(np.array(found))


HUGE = (12000, 9000)
CENTRES = [(1000.3, 800.6), (6000.0, 4500.0), (11000.7, 8200.2), (3333.3, 7777.7), (11700.5, 250.25)]
RADIUS = 150.0


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory):
    p = tmp_path_factory.mktemp("huge") / "huge.jpg"
    _strip_writers().write_jpeg_strips(p, *HUGE, _marker_rows(HUGE[0], CENTRES, RADIUS))
    return p


_PEAK_SCRIPT = """
import resource, sys
from occgui.imageio import load_image
import cv2, PIL.Image  # noqa: F401  (imports counted in the baseline)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
img = load_image(sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(img.rgb.shape[1], img.rgb.shape[0], img.photo_size[0], img.photo_size[1], (peak - base) / 1024)
"""


def test_huge_jpeg_is_decoded_reduced_with_bounded_memory(huge_jpeg):
    """A 12000x9000 JPEG (432 MB as Pillow's full-size RGB, 324 MB more as a numpy copy) loads
    while the process's peak RSS grows by under 100 MB: it is decoded at 1/4 by libjpeg."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(huge_jpeg)], check=True, capture_output=True,
                         text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}).stdout.split()
    w, h, pw, ph, growth_mb = int(out[0]), int(out[1]), int(out[2]), int(out[3]), float(out[4])
    assert (w, h) == (2048, 1536) and (pw, ph) == HUGE
    assert growth_mb < 100, f"loading a 12000x9000 JPEG raised the peak RSS by {growth_mb:.0f} MB"


@pytest.mark.parametrize("max_side", [2048, 1000])
def test_huge_jpeg_working_image_maps_back_to_photo_pixels_exactly(huge_jpeg, max_side):
    """Disc centres measured in the reduced working image and mapped back by ``working_to_photo``
    land on their photo positions within 0.05 working pixels (the half-pixel error of a resize that
    ignores pixel centres would be 0.5 - 0.5 * scale, about 0.45 here)."""
    img = load_image(huge_jpeg, max_side=max_side)
    assert img.photo_size == HUGE and max(img.rgb.shape[:2]) == max_side
    assert img.scale == max_side / HUGE[0]
    assert any("decoded at 1/" in n for n in img.notes)
    err = np.abs(_centroids_in_photo(img, CENTRES, RADIUS) - np.array(CENTRES)) * img.scale
    assert err.max() < 0.05, err


def test_huge_png_is_box_reduced_and_maps_back_exactly(tmp_path):
    """Formats without DCT scaling are decoded whole and box-reduced in strips (factor 5 here):
    same exact mapping back."""
    size, centres = (6001, 4503), [(500.5, 400.25), (3000.0, 2251.0), (5400.7, 4000.3)]
    p = tmp_path / "huge.png"
    _strip_writers().write_png_strips(p, *size, _marker_rows(size[0], centres, 60.0))
    img = load_image(p, max_side=1000)
    assert img.photo_size == size and img.rgb.shape[1] == 1000
    assert "decoded at 1/5 size" in img.notes
    err = np.abs(_centroids_in_photo(img, centres, 60.0) - np.array(centres)) * img.scale
    assert err.max() < 0.05, err


def _stored_for(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels a viewer shows as ``displayed`` after applying EXIF ``orientation``."""
    t = Image.Transpose
    undo = {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_90,
            7: t.TRANSVERSE, 8: t.ROTATE_270}
    return displayed if orientation == 1 else np.asarray(Image.fromarray(displayed).transpose(undo[orientation]))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_match_pillow_and_stay_exact_when_reduced(tmp_path, orientation):
    """Each EXIF orientation gives Pillow's ``exif_transpose`` pixels; reduced (odd sizes, so the
    partial last DCT block lands at the origin under flips), discs still map back exactly."""
    from PIL import ImageOps

    size, centres = (3001, 2003), [(400.5, 300.25), (1500.0, 1001.0), (2600.7, 1700.3)]
    displayed = _marker_rows(size[0], centres, 40.0)(0, size[1])
    stored = _stored_for(displayed, orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.jpg"
    Image.fromarray(stored).save(p, quality=92, exif=exif.tobytes())

    full = load_image(p, max_side=4000)
    with Image.open(p) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert full.scale == 1.0 and full.photo_size == size and np.array_equal(full.rgb, ref)

    small = load_image(p, max_side=512)
    assert small.photo_size == size and "decoded at 1/4 size" in small.notes
    err = np.abs(_centroids_in_photo(small, centres, 40.0) - np.array(centres)) * small.scale
    assert err.max() < 0.05, err


def _jpeg_declaring(tmp_path, width: int, height: int):
    """A small valid JPEG whose frame header is patched to claim ``width`` x ``height``."""
    import io
    import struct

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    p = tmp_path / f"claims_{width}x{height}.jpg"
    p.write_bytes(bytes(data))
    return p


def test_pixel_limit_refusal_before_any_decoding(tmp_path):
    """17321x17321 is above the 300 MP limit: refused from the header, one line. 17320x17320 is the
    largest accepted square: accepted (libjpeg fills the rows its data lacks; decoded at 1/8)."""
    from occgui.imageio import MAX_PIXELS

    assert 17321 ** 2 > MAX_PIXELS >= 17320 ** 2
    with pytest.raises(ImageLoadError, match="too large") as e:
        load_image(_jpeg_declaring(tmp_path, 17321, 17321))
    assert "\n" not in str(e.value)
    img = load_image(_jpeg_declaring(tmp_path, 17320, 17320))
    assert img.photo_size == (17320, 17320) and img.rgb.shape == (2048, 2048, 3)


def test_huge_array_input_is_box_reduced(astro):
    """Arrays (tools, evaluation) take the same path. Photo pixels 3i..3i+2 repeat astro's pixel i
    (centre 3i + 1); working pixel i shows photo point 3i, i.e. astro at i - 1/3: exactly that."""
    import cv2

    big = cv2.resize(astro, (1536, 1536), interpolation=cv2.INTER_NEAREST)
    img = load_image(big, max_side=512)
    assert img.rgb.shape == (512, 512, 3) and img.scale == 512 / 1536 and img.photo_size == (1536, 1536)
    m = np.array([[1.0, 0.0, -1 / 3], [0.0, 1.0, -1 / 3]])
    expected = cv2.warpAffine(astro, m, (512, 512), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(img.rgb.astype(int) - expected).max() <= 1


def test_pipeline_on_a_huge_jpeg_gives_landmarks_in_original_photo_pixels(tmp_path):
    """The sample face scaled by ``a`` into a 12000x9000 JPEG (decoded at 1/4, worked on at 2048 px):
    its landmarks, in photo pixels, are the sample's landmarks scaled by ``a`` and moved by ``t``;
    the photo->crop transform of the report maps them onto the crop's landmarks."""
    from occgui.corrections import photo_to_crop
    from occgui.pipeline.runner import Pipeline, PipelineConfig
    from occgui.resources import sample_photo

    bench = _strip_writers()
    size = (12000, 9000)
    p = tmp_path / "huge_face.jpg"
    bench.write_jpeg_strips(p, *size, bench.face_rows(*size, face_fraction=0.5))
    pipe = Pipeline(PipelineConfig(device="cpu"))
    ref = pipe.run(sample_photo()).landmarks_in_photo()
    res = pipe.run(p)
    assert res.image.photo_size == size and res.image.scale == 2048 / 12000
    got = res.landmarks_in_photo()
    a = 0.5 * size[1] / 512
    expected = a * ref + [(size[0] - a * 512) / 2, (size[1] - a * 512) / 2]
    iod = float(np.linalg.norm(expected[36] - expected[45]))
    err = np.linalg.norm(got - expected, axis=1) / iod
    print(f"landmark error vs the scaled sample: median {np.median(err):.4f}, max {err.max():.4f} IOD")
    assert np.median(err) < 0.02 and err.max() < 0.06, (np.median(err), err.max())
    m = photo_to_crop(res.image, res.crop)
    assert np.allclose(got @ m[:, :2].T + m[:, 2], res.landmarks.points, atol=1e-6)
