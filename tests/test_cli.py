"""The headless CLI end to end (issue points 2, 12, 14): outputs, --landmarks re-run, batches and
every bad-input case (one clear line, non-zero exit, no traceback, no partial output)."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from occgui.cli import main

EXPECTED = ["landmarks.json", "parsing_alpha.png", "parsing_beta.png", "parsing_gamma.png",
            "parsing_alpha_color.png", "parsing_beta_color.png", "parsing_gamma_color.png",
            "deoccluded.png", "mesh.obj", "mesh.mtl", "texture.png", "mesh.ply", "mesh.glb", "report.json"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, sample_photo):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", str(sample_photo), "-o", str(out), "-q", "--device", "cpu"]) == 0
    return out / sample_photo.stem


@pytest.fixture(scope="module")
def astro():
    import skimage.data

    return skimage.data.astronaut()


def test_sample_run_writes_every_file(sample_run):
    for name in EXPECTED:
        assert (sample_run / name).is_file() and (sample_run / name).stat().st_size > 0, name
    pts = json.loads((sample_run / "landmarks.json").read_text())["points"]
    assert np.asarray(pts).shape == (68, 2)
    report = json.loads((sample_run / "report.json").read_text())
    for key in ("backends", "seconds", "warnings", "device"):
        assert key in report
    alpha = cv2.imread(str(sample_run / "parsing_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.ndim == 2 and alpha.max() <= 11
    assert not list(sample_run.parent.glob(".*tmp*")), "temporary files left behind"


def test_landmarks_rerun_changes_beta_gamma_mesh_not_alpha(sample_run, sample_photo, tmp_path):
    pts = np.asarray(json.loads((sample_run / "landmarks.json").read_text())["points"])
    pts[48:68] += (0.0, 8.0)   # move the mouth down
    pts[8] += (0.0, 10.0)      # and the chin
    lm = tmp_path / "fixed.json"
    lm.write_text(json.dumps({"points": pts.tolist()}))
    assert main(["run", str(sample_photo), "-o", str(tmp_path), "-q", "--landmarks", str(lm), "--device", "cpu"]) == 0
    new = tmp_path / sample_photo.stem
    read = lambda d, n: cv2.imread(str(d / n), cv2.IMREAD_UNCHANGED)  # noqa: E731
    assert np.array_equal(read(sample_run, "parsing_alpha.png"), read(new, "parsing_alpha.png"))
    assert not np.array_equal(read(sample_run, "parsing_beta.png"), read(new, "parsing_beta.png"))
    assert not np.array_equal(read(sample_run, "parsing_gamma.png"), read(new, "parsing_gamma.png"))
    assert (sample_run / "mesh.obj").read_bytes() != (new / "mesh.obj").read_bytes()
    saved = np.asarray(json.loads((new / "landmarks.json").read_text())["points"])
    assert np.allclose(saved, pts, atol=0.01)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("case", ["text", "truncated", "tiny", "noface", "missing"])
def test_bad_single_inputs(tmp_path, astro, capsys, case):
    p = tmp_path / f"{case}.jpg"
    if case == "text":
        p.write_text("hello")
    elif case == "truncated":
        Image.fromarray(astro).save(p)
        p.write_bytes(p.read_bytes()[:5000])
    elif case == "tiny":
        Image.fromarray(astro[:50, :60]).save(p)
    elif case == "noface":
        import skimage.data

        Image.fromarray(skimage.data.coffee()).save(p)
    out = tmp_path / "out"
    code = main(["run", str(p), "-o", str(out), "-q", "--device", "cpu"])
    assert code != 0
    line = _one_line_error(capsys)
    assert str(p.name) in line
    assert not (out / case).exists(), "no partial output for a failed photo"


def test_several_faces_largest_by_default_and_face_option(tmp_path, astro, capsys):
    small = cv2.resize(astro, (256, 256))
    canvas = np.full((512, 800, 3), 200, np.uint8)
    canvas[:, :512] = astro
    canvas[128:384, 530:786] = small
    p = tmp_path / "two.png"
    Image.fromarray(canvas).save(p)
    out = tmp_path / "out"
    assert main(["run", str(p), "-o", str(out), "-q", "--device", "cpu"]) == 0
    big = np.asarray(json.loads((out / "two" / "landmarks.json").read_text())["points"])
    assert big[:, 0].mean() < 512
    out2 = tmp_path / "out2"
    assert main(["run", str(p), "-o", str(out2), "-q", "--face", "1", "--device", "cpu"]) == 0
    second = np.asarray(json.loads((out2 / "two" / "landmarks.json").read_text())["points"])
    assert second[:, 0].mean() > 530
    assert main(["run", str(p), "-o", str(tmp_path / "o3"), "-q", "--face", "4", "--device", "cpu"]) != 0
    assert "face 4" in _one_line_error(capsys)


def test_exif_rotated_and_huge_photos_map_back(tmp_path, astro):
    rotated = np.ascontiguousarray(np.rot90(astro, k=1))    # stored rotated; EXIF 6 turns it upright
    im = Image.fromarray(rotated)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    big = cv2.resize(astro, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "rot.jpg"), str(tmp_path / "big.jpg"), "-o", str(out), "-q",
                 "--device", "cpu"]) == 0
    rot = np.asarray(json.loads((out / "rot" / "landmarks.json").read_text())["points"])
    huge = np.asarray(json.loads((out / "big" / "landmarks.json").read_text())["points"])
    assert np.abs(huge / (3000 / 512) - rot).mean() < 4.0     # same face, same upright frame
    assert rot[8, 1] > rot[27, 1]                              # chin below the nose root: upright


def test_batch_continues_past_bad_files(tmp_path, astro, sample_photo, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    Image.fromarray(astro).save(folder / "good.jpg")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out"
    code = main(["run", str(folder), "-o", str(out), "-q", "--device", "cpu"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err
    assert (out / "good" / "mesh.glb").is_file() and not (out / "broken").exists()


def test_subprocess_bad_file_has_no_traceback(tmp_path):
    p = tmp_path / "x.png"
    p.write_text("not a png")
    r = subprocess.run([sys.executable, "-m", "occgui", "run", str(p), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("occgui:")]
    assert len(lines) == 1 and "not an image" in lines[0] and "Traceback" not in r.stderr


def test_bad_landmarks_file(tmp_path, sample_photo, capsys):
    lm = tmp_path / "bad.json"
    lm.write_text(json.dumps({"points": [[1, 2]] * 10}))
    assert main(["run", str(sample_photo), "-o", str(tmp_path), "--landmarks", str(lm)]) != 0
    assert "68" in _one_line_error(capsys)


def test_corrections_file_applies_landmarks_and_painted_occluder_headless(sample_run, sample_photo, tmp_path, capsys):
    from occgui import labels as L
    from occgui.corrections import AlphaEdit, Corrections, brush_mask, read_corrections, write_corrections

    report = json.loads((sample_run / "report.json").read_text())
    size = report["crop"]["size"]
    alpha = cv2.imread(str(sample_run / "parsing_alpha.png"), cv2.IMREAD_UNCHANGED)
    pts = np.asarray(json.loads((sample_run / "landmarks.json").read_text())["points"])
    pts[8] += (0.0, 10.0)
    blank = AlphaEdit(np.zeros((size, size), bool), np.zeros((size, size), bool),
                      np.asarray(report["crop"]["photo_to_crop"]), tuple(report["photo_size"]))
    edit = blank.painted(alpha, brush_mask(size, [(40, 200), (90, 210)], 10), erase=False)
    path = write_corrections(tmp_path / "corrections.json",
                             Corrections(pts, edit, str(sample_photo), tuple(report["photo_size"]), 0))
    out = tmp_path / "out"
    assert main(["run", str(sample_photo), "-o", str(out), "-q", "--corrections", str(path), "--device", "cpu"]) == 0
    new = out / sample_photo.stem
    painted = cv2.imread(str(new / "parsing_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(painted, edit.apply(alpha)), "parsing_alpha.png is M_alpha as painted"
    assert (painted == L.OCCLUDER).sum() > (alpha == L.OCCLUDER).sum()
    assert np.allclose(json.loads((new / "landmarks.json").read_text())["points"], pts, atol=0.01)
    new_report = json.loads((new / "report.json").read_text())
    assert new_report["occluder_painted"]["added_px"] == int(edit.added.sum()) and new_report["landmarks_edited"]
    again = read_corrections(new / "corrections.json")          # the export carries the corrections along
    assert again.alpha_edit.digest() == edit.digest() and np.allclose(again.landmarks, pts, atol=0.01)
    assert "corrections.json" not in {p.name for p in sample_run.iterdir()}, "no corrections, no file"

    wrong = write_corrections(tmp_path / "wrong.json", Corrections(pts, None, "", (100, 80), 0))
    assert main(["run", str(sample_photo), "-o", str(tmp_path / "o2"), "--corrections", str(wrong)]) != 0
    assert "100x80 photo" in _one_line_error(capsys) and not (tmp_path / "o2" / sample_photo.stem).exists()
    assert main(["run", str(sample_photo), "-o", str(tmp_path / "o3"), "--corrections", str(path),
                 "--landmarks", str(sample_run / "landmarks.json")]) != 0
    assert "either" in _one_line_error(capsys)
    (tmp_path / "broken.json").write_text("{")
    assert main(["run", str(sample_photo), "-o", str(tmp_path / "o4"),
                 "--corrections", str(tmp_path / "broken.json")]) != 0
    assert "broken.json" in _one_line_error(capsys)
