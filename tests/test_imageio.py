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
