"""The ``morphable`` geometry backend behind the stage seam (issue 15, points 2, 5, 7, 8): what the
geometry stage reads, the fit on I_out, the de-lit texture, ``report.json`` / ``coefficients.json``,
``--geometry``, and the warm-started re-fit."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from test_export import result  # noqa: F401,F811  (the hand-assembled astronaut result, reused)

from occgui.errors import OccguiError
from occgui.pipeline import backends
from occgui.pipeline.stages import downstream_of, painted_alpha_readers, stage
from occgui.results import FaceMesh, HeadPose, MorphableFit, Texture

#: A cheaper fit for the tests (the default is measured by bench/morphable_backend.py).
FAST = {"iterations": 30, "image_iterations": 1, "refit_iterations": 10, "refit_image_iterations": 0}


# ----------------------------------------------------------------------------- the seam (fast)
def test_geometry_stage_declares_iout_and_the_maps_but_mediapipe_reads_only_the_landmarks():
    assert stage("geometry").inputs == ("load", "detect", "landmarks", "synthesize", "parse", "merge")
    default = backends.reads_of()
    morph = backends.reads_of({"geometry": "morphable"})
    assert default["geometry"] == ("load", "detect", "landmarks") and "geometry" not in morph
    # a paint or a new I_out re-runs the morphable fit, never the MediaPipe mesh
    assert "geometry" in painted_alpha_readers(morph) and "geometry" not in painted_alpha_readers(default)
    assert "geometry" in downstream_of("synthesize", morph) and "geometry" not in downstream_of("synthesize", default)
    assert "geometry" in downstream_of("landmarks", default) and "texture" in downstream_of("synthesize", default)


def test_register_refuses_reads_that_are_not_inputs_of_the_stage():
    with pytest.raises(ValueError, match="not inputs of the stage"):
        backends.register("geometry", "bad-reads", lambda ctx: None, reads=("load", "texture"))


def test_morphable_settings_parse_from_the_command_line_and_enter_the_backend_id():
    from occgui.geometry.settings import MorphableSettings

    st = backends.parse_settings(["geometry.iterations=7", "geometry.use_identity=false"], {"geometry": "morphable"})
    assert st["geometry"] == MorphableSettings(iterations=7, use_identity=False)
    with pytest.raises(OccguiError, match="unknown setting"):
        backends.parse_settings(["geometry.iterations=7"], {"geometry": "mediapipe-mesh"})
    obj = SimpleNamespace(name="morphable", version="1")
    assert backends.backend_id(obj, st["geometry"]) != backends.backend_id(obj, MorphableSettings())


def test_geometry_flag_is_sugar_for_the_backend_option():
    from occgui.cli import build_parser, geometry_backend_items

    args = build_parser().parse_args(["run", "a.jpg", "-o", "out", "--geometry", "morphable"])
    assert args.geometry == "morphable"
    assert geometry_backend_items(args.backend, args.geometry) == ["geometry=morphable"]
    assert geometry_backend_items(["parse=unet"], "mediapipe") == ["parse=unet", "geometry=mediapipe-mesh"]
    assert geometry_backend_items(["geometry=morphable"], "morphable") == ["geometry=morphable", "geometry=morphable"]
    assert geometry_backend_items(None, None) == []
    with pytest.raises(OccguiError, match="contradicts"):
        geometry_backend_items(["geometry=mediapipe-mesh"], "morphable")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "a.jpg", "-o", "out", "--geometry", "bfm"])


def test_choosing_the_morphable_geometry_on_the_command_line_imports_no_torch():
    """The CLI's argument handling (``--geometry``, ``--option geometry.*``, ``occgui backends``)
    stays torch-free; only creating the backend loads torch."""
    code = ("import sys; from occgui.cli import build_parser, geometry_backend_items, cmd_backends; "
            "from occgui.pipeline.backends import parse_backend_choices, parse_settings; "
            "a = build_parser().parse_args(['run', 'x.jpg', '-o', 'o', '--geometry', 'morphable', "
            "'--option', 'geometry.iterations=5']); "
            "c = parse_backend_choices(geometry_backend_items(a.backend, a.geometry)); "
            "s = parse_settings(a.option, c); cmd_backends(a); "
            "print(c['geometry'], s['geometry'].iterations, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["morphable", "5", "False"], out.stdout[-500:]
    assert "morphable" in out.stdout and "geometry.refit_iterations" in out.stdout


# ----------------------------------------------------------------------------- texture, export (fast)
def _fit(n_vertices: int, shading: float | np.ndarray = 0.5) -> MorphableFit:
    sh = np.broadcast_to(np.asarray(shading, np.float32), (n_vertices, 3)).copy()
    return MorphableFit(model="test-model", identity=np.arange(3.0), expression=np.zeros(2), albedo=np.zeros(0),
                        gamma=np.ones((3, 9)), pose=HeadPose(1.0, -2.0, 3.0, 100.0, 120.0, 0.6),
                        crop_pose=np.array([0.1, 0.2, 0.3, 0.9, 128.0, 130.0]),
                        loss={"total": 0.2, "landmark": 5.0, "photometric": 0.1, "regularisation": 20.0,
                              "identity": 0.1},
                        shading=sh, landmark_error=0.02, iterations=62, warm_start=False, seconds=1.5)


def test_delit_texture_divides_by_the_fitted_shading():
    from occgui.texture.uv_sampler import delit, uv_raster

    uv = np.array([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]])
    mesh = FaceMesh(vertices=np.zeros((3, 3)), faces=np.array([[0, 1, 2]]), uv=uv, camera=None)
    r = uv_raster(uv, mesh.faces, 64)
    colour = np.full((64, 64, 3), 100.0, np.float32)
    assert delit(colour, mesh, r) is None                                  # no fit: no albedo
    out = delit(colour, replace(mesh, fit=_fit(3, 0.5)), r)
    assert np.allclose(out[r.inside], 200.0, atol=0.5)
    # a shading gradient is divided out texel by texel: one vertex twice as lit as the others
    sh = np.full((3, 3), 0.8, np.float32)
    sh[0] = 1.6
    lit = np.zeros((64, 64, 3), np.float32)
    lit[r.rows, r.cols] = 100.0 * np.asarray(r.interp @ sh)
    out = delit(lit, replace(mesh, fit=_fit(3, sh)), r)
    assert np.allclose(out[r.inside], 100.0, atol=0.5) and lit[r.inside].std() > 10
    # shading at or below zero is clamped, never divided by
    sh_neg = np.array([[-0.5] * 3, [1.0] * 3, [1.0] * 3], np.float32)
    assert np.isfinite(delit(colour, replace(mesh, fit=_fit(3, sh_neg)), r)).all()


def test_export_writes_coefficients_and_the_albedo_when_a_fit_made_the_mesh(result, tmp_path):  # noqa: F811
    from occgui import export as E

    plain = E.export_result(result, tmp_path / "plain", stem="a")
    assert not (plain / "coefficients.json").exists() and not (plain / "texture_albedo.png").exists()
    assert json.loads((plain / "report.json").read_text())["geometry_fit"] is None

    fit = _fit(len(result.mesh.vertices))
    tex = result.texture
    fitted = replace(result, mesh=replace(result.mesh, fit=fit, backend="morphable"),
                     texture=Texture(tex.image, tex.source, tex.backend, albedo=tex.image[::-1].copy()))
    folder = E.export_result(fitted, tmp_path / "fit", stem="a")
    coeffs = json.loads((folder / "coefficients.json").read_text())
    assert coeffs["model"] == "test-model" and coeffs["identity"] == [0.0, 1.0, 2.0]
    assert coeffs["pose"] == {"pitch_deg": 1.0, "yaw_deg": -2.0, "roll_deg": 3.0, "tx_px": 100.0, "ty_px": 120.0,
                              "scale_px_per_mm": 0.6}
    assert np.asarray(coeffs["sh_gamma_rgb"]).shape == (3, 9) and coeffs["crop_pose"]["tx_px"] == 128.0
    report = json.loads((folder / "report.json").read_text())
    assert report["geometry_fit"]["pose"]["yaw_deg"] == -2.0 and report["geometry_fit"]["loss"]["photometric"] == 0.1
    assert {"coefficients.json", "texture_albedo.png"} <= set(report["files"])
    import cv2

    albedo = cv2.imread(str(folder / "texture_albedo.png"))[:, :, ::-1]
    assert np.array_equal(albedo, tex.image[::-1])
    assert set(E.MESH_FILES) <= {p.name for p in folder.iterdir()}          # the mesh files are unchanged


# ----------------------------------------------------------------------------- the fit itself (slow)
@pytest.fixture(scope="module")
def morphable_run(sample_photo):
    """One pipeline run with the morphable geometry (cheaper fit settings) and its pipeline."""
    pytest.importorskip("pytorch3d")
    import torch

    from occgui.geometry.settings import MorphableSettings
    from occgui.pipeline.runner import Pipeline, PipelineConfig

    torch.set_num_threads(1)
    p = Pipeline(PipelineConfig(device="cpu", backends={"geometry": "morphable"},
                                settings={"geometry": MorphableSettings(**FAST)}))
    return p, p.run(sample_photo)


def test_morphable_backend_on_a_real_photo_gives_mesh_coefficients_pose_and_a_report(morphable_run, tmp_path):
    from occgui import export as E
    from occgui.morphable import load_default_model

    p, r = morphable_run
    model = load_default_model()
    mesh, fit = r.mesh, r.mesh.fit
    assert r.backends["geometry"].startswith("morphable@") and mesh.backend == "morphable"
    assert mesh.vertices.shape == (model.num_vertices, 3) and np.array_equal(mesh.faces, model.triangles)
    assert np.allclose(mesh.uv, model.uv) and np.array_equal(mesh.landmark_vertices, model.landmarks)
    assert fit.identity.shape == (model.num_identity,) and fit.gamma.shape == (3, 9)
    assert np.abs(fit.identity).max() > 0 and not fit.warm_start
    assert abs(fit.pose.yaw) < 30 and abs(fit.pose.pitch) < 30 and abs(fit.pose.roll) < 30
    assert set(fit.loss) == {"total", "landmark", "photometric", "regularisation", "identity"}
    assert fit.iterations == FAST["iterations"] + FAST["image_iterations"]
    assert fit.landmark_error < 0.08                     # the fitted model lies on the landmarks
    # the model's landmarks project onto the photo where the landmark stage put them (photo px)
    proj = mesh.camera.project(mesh.vertices[mesh.landmark_vertices])
    iod = np.linalg.norm(r.landmarks_in_photo()[36] - r.landmarks_in_photo()[45])
    assert np.linalg.norm(proj - r.landmarks_in_photo(), axis=1).mean() < 0.08 * iod
    # the head's position: the camera projects the model origin at the pose's translation
    assert np.allclose([mesh.camera.u0, mesh.camera.v0], [fit.pose.tx, fit.pose.ty])
    assert r.texture.image.shape == (1024, 1024, 3) and r.texture.albedo.shape == (1024, 1024, 3)
    assert (r.texture.source == 1).mean() > 0.15                 # observed texels through the model's UVs

    folder = E.export_result(r, tmp_path, stem="astronaut")
    report = json.loads((folder / "report.json").read_text())
    assert report["backends"]["geometry"].startswith("morphable@") and report["mesh"]["backend"] == "morphable"
    assert report["geometry_fit"]["model"] == model.name and "yaw_deg" in report["geometry_fit"]["pose"]
    coeffs = json.loads((folder / "coefficients.json").read_text())
    assert len(coeffs["identity"]) == model.num_identity and len(coeffs["expression"]) == model.num_expression
    import trimesh

    glb = trimesh.load(folder / "mesh.glb", force="mesh", process=False)
    assert len(glb.vertices) == model.num_vertices


@pytest.mark.slow
def test_the_fit_reads_iout_while_the_mediapipe_mesh_ignores_it(morphable_run):
    from occgui.geometry.mesh_builder import MediaPipeMeshGeometry
    from occgui.geometry.morphable_mesh import MorphableGeometry
    from occgui.geometry.settings import MorphableSettings

    p, r = morphable_run
    img = r.synthesis.image.astype(np.int16)
    face = r.gamma.labels > 0
    tinted = img.copy()
    tinted[face] = tinted[face] * np.array([1.0, 0.7, 0.55])     # a redder face inside M_gamma only
    syn2 = replace(r.synthesis, image=np.clip(tinted, 0, 255).astype(np.uint8))
    args = dict(alpha=r.effective_alpha(), gamma=r.gamma)

    geo = MorphableGeometry(SimpleNamespace(device="cpu", settings=MorphableSettings(**FAST, warm_start=False)))
    a = geo.build(r.image, r.crop, r.landmarks, synthesis=r.synthesis, **args)
    b = geo.build(r.image, r.crop, r.landmarks, synthesis=syn2, **args)
    ga, gb = a.fit.gamma[:, 0], b.fit.gamma[:, 0]                  # ambient light per channel
    assert gb[1] / gb[0] < 0.85 * ga[1] / ga[0], (ga, gb)         # green/red light follows the tint
    assert not np.allclose(a.vertices, b.vertices)
    # ... and so does the de-lit texture
    from occgui.texture.uv_sampler import UVTextureBuilder

    tb = UVTextureBuilder(SimpleNamespace(texture_size=1024))
    ta = tb.build(r.image, r.crop, r.effective_alpha().labels, r.synthesis, a)
    tt = tb.build(r.image, r.crop, r.effective_alpha().labels, syn2, b)
    assert np.abs(ta.albedo.astype(int) - tt.albedo.astype(int)).mean() > 2

    mp = MediaPipeMeshGeometry()
    lm = p.run(r.image.source, stop_after="landmarks").landmarks if r.landmarks.mesh is None else r.landmarks
    m1 = mp.build(r.image, r.crop, lm)
    m2 = mp.build(r.image, r.crop, lm, synthesis=syn2, **args)
    assert np.array_equal(m1.vertices, m2.vertices)


def test_iout_paint_and_landmark_edits_refit_from_the_previous_solution(morphable_run, sample_photo):
    from occgui.corrections import AlphaEdit

    p, r = morphable_run
    before = dict(p.run_counts)
    # a landmark edit: the mouth corners moved 5 px apart; the re-fit is warm-started
    pts = np.array(r.landmarks.points, dtype=np.float64)
    pts[48] -= [5.0, 0.0]
    pts[54] += [5.0, 0.0]
    edited = p.run(sample_photo, landmarks=r.image.working_to_photo(r.crop.crop_to_working(pts)))
    assert p.run_counts["geometry"] == before["geometry"] + 1 and p.run_counts["parse"] == before["parse"]
    fit = edited.mesh.fit
    assert fit.warm_start and fit.iterations == FAST["refit_iterations"] + FAST["refit_image_iterations"]
    # the fit follows the edit: the same fit with and without it (a 10-step warm re-fit from an
    # unconverged 30-step solution is no baseline: its own steps move the mouth as much; with the
    # fit's expression prior a 10 px wider target widens the fitted mouth by ~2 px)
    from occgui.morphable import load_default_model
    from occgui.morphable.fit import FitSettings, FitTarget, MorphableFitter

    model = load_default_model()
    fitter = MorphableFitter(model, FitSettings(iterations=FAST["iterations"], image_iterations=0))
    target = FitTarget.from_pipeline(r.synthesis, r.landmarks, r.gamma, r.alpha)
    moved = FitTarget(target.image, pts, target.gamma_labels, target.alpha_labels)

    def mouth(res):                     # the fitted mouth corners' distance in the crop (px)
        return np.linalg.norm(res.landmarks2d[48] - res.landmarks2d[54])

    assert mouth(fitter.fit(moved)) > mouth(fitter.fit(target)) + 1.0
    # painting an occluder re-runs the fit too (it reads M_alpha as painted); the MediaPipe mesh would not
    edit = AlphaEdit.blank(r.image, r.crop)
    edit.added[150:180, 100:150] = True
    n = p.run_counts["geometry"]
    painted = p.run(sample_photo, alpha_edit=edit)
    assert p.run_counts["geometry"] == n + 1 and painted.mesh.fit.warm_start
    # another photo starts cold
    other = p.run(np.ascontiguousarray(r.image.rgb[:, ::-1]))
    assert not other.mesh.fit.warm_start


def test_the_fit_adam_takes_torch_adams_steps():
    """occgui.morphable.fit.Adam stands in for torch.optim.Adam (whose import of torch._dynamo crashes
    a process that has a display's LLVM loaded); same steps on a quadratic with two groups."""
    import torch

    from occgui.morphable.fit import Adam

    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g)
    h = a @ a.T + torch.eye(6)
    x0, y0 = torch.randn(6, generator=g), torch.randn(3, generator=g)
    runs = []
    for make in (lambda groups: torch.optim.Adam(groups), Adam):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        opt = make([{"params": [x], "lr": 0.05}, {"params": [y], "lr": 0.2}])
        for _ in range(50):
            opt.zero_grad(set_to_none=True)
            loss = x @ h @ x + (y ** 2).sum() + (x[:3] * y).sum()
            loss.backward()
            opt.step()
        runs.append(torch.cat([x.detach(), y.detach()]))
    assert torch.allclose(runs[0], runs[1], atol=1e-5), runs
    assert not torch.allclose(runs[0], torch.cat([x0, y0]), atol=1e-2)
