"""Export: textured OBJ/MTL/PNG, PLY with colours, GLB; the per-photo folder; atomicity on failure."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from occgui import export as E
from occgui import labels
from occgui.errors import ExportError
from occgui.pipeline.runner import PipelineResult
from occgui.results import ParsingMap, Synthesis

FOLDER_FILES = {"landmarks.json", "parsing_alpha.png", "parsing_beta.png", "parsing_gamma.png",
                "parsing_alpha_color.png", "parsing_beta_color.png", "parsing_gamma_color.png", "deoccluded.png",
                "mesh.obj", "mesh.mtl", "texture.png", "mesh.ply", "mesh.glb", "report.json"}


@pytest.fixture(scope="module")
def result():
    """A PipelineResult assembled by hand from the real load/detect/landmark/geometry/texture stages
    on the clean astronaut photo, with hand-made parsing maps and I_out."""
    from skimage.data import astronaut

    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
    from occgui.geometry.mesh_builder import MediaPipeMeshGeometry
    from occgui.imageio import load_image
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks
    from occgui.pipeline import stages as S
    from occgui.texture.uv_sampler import UVTextureBuilder

    image = load_image(astronaut())
    crop = S.detect(MediaPipeFaceDetector(), image, face_index=0, crop_size=256)
    lm = S.detect_landmarks(MediaPipeMeshLandmarks(), crop)
    alpha = np.full((256, 256), labels.SKIN, np.uint8)
    alpha[:40] = labels.HAIR
    alpha[150:190, 60:100] = labels.OCCLUDER
    gamma = alpha.copy()
    gamma[150:190, 60:100] = labels.SKIN
    beta = np.zeros((256, 256), np.uint8)
    cv2.fillConvexPoly(beta, np.rint(lm.points[:17]).astype(np.int32), labels.SKIN)
    filled = alpha == labels.OCCLUDER
    synthesis = Synthesis(image=crop.image, filled=filled, backend="test")
    mesh = MediaPipeMeshGeometry().build(image, crop, lm)
    texture = UVTextureBuilder(SimpleNamespace(texture_size=1024)).build(image, crop, alpha, synthesis, mesh)
    return PipelineResult(image=image, crop=crop, landmarks=lm, alpha=ParsingMap(alpha, "alpha", "test"),
                          beta=ParsingMap(beta, "beta", "test"), gamma=ParsingMap(gamma, "gamma", "test"),
                          synthesis=synthesis, mesh=mesh, texture=texture,
                          seconds={"geometry": 0.01, "texture": 0.2}, backends={"geometry": "mediapipe-mesh@1"},
                          warnings=["a warning"], device="cpu")


def test_mesh_files_round_trip_with_trimesh(result, tmp_path):
    import trimesh

    written = E.write_mesh_files(result.mesh, result.texture, tmp_path)
    assert {p.name for p in written} == set(E.MESH_FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(E.MESH_FILES)   # no staging left
    obj_text = (tmp_path / "mesh.obj").read_text()
    assert "\nvt " in obj_text and "mtllib mesh.mtl" in obj_text and "\nusemtl " in obj_text and "\nvn " in obj_text
    assert "map_Kd texture.png" in (tmp_path / "mesh.mtl").read_text()

    obj = trimesh.load(tmp_path / "mesh.obj", process=False)
    assert isinstance(obj.visual, trimesh.visual.TextureVisuals)
    assert obj.visual.material.image is not None and obj.visual.material.image.size == (1024, 1024)
    assert len(obj.vertices) == len(result.mesh.vertices) and len(obj.faces) == len(result.mesh.faces)
    assert obj.visual.uv.min() >= 0 and obj.visual.uv.max() <= 1
    assert np.abs(obj.visual.uv - result.mesh.uv).max() < 1e-4
    assert np.asarray(obj.visual.material.image).std() > 10         # a real texture, not a flat colour

    glb = trimesh.load(tmp_path / "mesh.glb", process=False)
    (geom,) = glb.geometry.values()
    assert isinstance(geom.visual, trimesh.visual.TextureVisuals)
    tex = geom.visual.material.baseColorTexture
    assert tex is not None and tex.size == (1024, 1024) and np.asarray(tex).std() > 10
    assert np.abs(geom.visual.uv - result.mesh.uv).max() < 1e-4
    assert np.allclose(geom.vertices, result.mesh.vertices * E.GLB_SCALE, atol=1e-6)
    assert np.array_equal(np.asarray(tex)[..., :3], result.texture.image)

    ply = trimesh.load(tmp_path / "mesh.ply", process=False)
    colours = np.asarray(ply.visual.vertex_colors)
    assert colours.shape == (len(result.mesh.vertices), 4) and colours[:, :3].std() > 10
    assert np.allclose(ply.vertices, result.mesh.vertices, atol=1e-4)

    png = cv2.imread(str(tmp_path / "texture.png"))[:, :, ::-1]
    assert np.array_equal(png, result.texture.image)


def test_export_result_writes_the_whole_folder(result, tmp_path):
    folder = E.export_result(result, tmp_path, stem="astronaut", total_seconds=1.25)
    assert folder == tmp_path / "astronaut"
    assert {p.name for p in folder.iterdir()} == FOLDER_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["astronaut"]

    doc = json.loads((folder / "landmarks.json").read_text())
    assert np.abs(np.asarray(doc["points"]) - result.landmarks_in_photo()).max() < 1e-3 and doc["edited"] is False
    from occgui.landmarks.landmarks_json import read_landmarks_json

    assert read_landmarks_json(folder / "landmarks.json").shape == (68, 2)      # reusable by `run --landmarks`
    for kind in ("alpha", "beta", "gamma"):
        ids = cv2.imread(str(folder / f"parsing_{kind}.png"), cv2.IMREAD_UNCHANGED)
        assert ids.ndim == 2 and np.array_equal(ids, result.get({"alpha": "parse", "beta": "landmark_map",
                                                                  "gamma": "merge"}[kind]).labels)
        colour = cv2.imread(str(folder / f"parsing_{kind}_color.png"))
        assert colour.shape[1] == colour.shape[0] + E.LEGEND_WIDTH
    assert np.array_equal(cv2.imread(str(folder / "deoccluded.png"))[:, :, ::-1], result.synthesis.image)

    report = json.loads((folder / "report.json").read_text())
    assert report["backends"] == result.backends and report["seconds"]["texture"] == pytest.approx(0.2)
    assert report["warnings"] == ["a warning"] and report["device"] == "cpu" and report["total_seconds"] == 1.25
    assert report["photo_size"] == [512, 512] and report["face_count"] >= 1 and report["landmarks_edited"] is False
    fractions = report["texture"]["source_fractions"]
    assert set(fractions) == {"outside", "observed", "mirrored", "synthesized", "filled"}
    assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-3) and fractions["observed"] > 0.2
    assert set(report["files"]) == FOLDER_FILES
    # the photo -> crop transform lets anyone lay the maps and I_out over the photo
    m = np.asarray(report["crop"]["photo_to_crop"])
    pts = result.landmarks_in_photo()
    assert m.shape == (2, 3) and report["crop"]["size"] == result.crop.size
    assert np.allclose(pts @ m[:, :2].T + m[:, 2], result.landmarks.points, atol=1e-3)


def test_export_replaces_an_older_folder(result, tmp_path):
    old = tmp_path / "face"
    old.mkdir()
    (old / "stale.txt").write_text("old run")
    folder = E.export_result(result, tmp_path, stem="face")
    assert {p.name for p in folder.iterdir()} == FOLDER_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["face"]


def test_failed_export_leaves_nothing(result, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(E, "glb_bytes", broken)
    with pytest.raises(ExportError, match="disk full") as err:
        E.export_result(result, tmp_path / "out", stem="astronaut")
    assert "\n" not in str(err.value)
    assert list((tmp_path / "out").iterdir()) == []

    previous = tmp_path / "out2" / "astronaut"
    previous.mkdir(parents=True)
    (previous / "mesh.obj").write_text("previous export")
    with pytest.raises(ExportError):
        E.export_result(result, tmp_path / "out2", stem="astronaut")
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["astronaut"]
    assert (previous / "mesh.obj").read_text() == "previous export"         # untouched

    with pytest.raises(ExportError):
        E.write_mesh_files(result.mesh, result.texture, tmp_path / "gui")
    assert list((tmp_path / "gui").iterdir()) == []


def test_failure_while_writing_files_leaves_nothing(result, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = E.atomic_write_bytes

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("no space left on device")
        return real(path, data)

    monkeypatch.setattr(E, "atomic_write_bytes", flaky)
    with pytest.raises(ExportError, match="no space"):
        E.export_result(result, tmp_path, stem="astronaut")
    assert list(tmp_path.iterdir()) == []


def test_array_photos_need_a_stem_and_partial_results_are_refused(result, tmp_path):
    with pytest.raises(ExportError, match="stem"):
        E.export_result(result, tmp_path)
    partial = PipelineResult(image=result.image, crop=result.crop)
    with pytest.raises(ExportError, match="texture"):
        E.export_result(partial, tmp_path, stem="x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_single_file_helpers(tmp_path):
    p = E.atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert json.loads(p.read_text()) == {"x": 1.5, "y": [0, 1, 2]}
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 255
    q = E.atomic_write_png(tmp_path / "red.png", img)
    assert np.array_equal(cv2.imread(str(q))[:, :, ::-1], img)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json", "red.png"]
    assert E.safe_stem("../we/ird:name") == "_we_ird_name" and Path(E.safe_stem("..")).name == "photo"
