"""The refiner's guard rules (``occgui/landmarks/refine_guard.py``): stray occluder pixels move no
point, only hidden points move, moves are bounded and stay on the face."""
from __future__ import annotations

import numpy as np
import pytest

from occgui.landmarks import refine_guard as G


def _mesh(scale: float = 80.0, centre: float = 128.0) -> np.ndarray:
    """A face-shaped (478, 3) mesh: the project's mean face in crop pixels."""
    import json

    from occgui.resources import resource_path

    pts = np.asarray(json.loads(resource_path("templates/mean_face.json").read_text())["points"], dtype=np.float64)
    xy = pts[:, :2]
    iod = np.linalg.norm(xy[468] - xy[473])
    xy = (xy - xy[:468].mean(axis=0)) / iod * scale + centre
    return np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)


def test_stray_pixels_do_not_open_the_gate():
    mesh = _mesh()
    occ = np.zeros((256, 256), bool)
    occ[100, 100] = occ[150:152, 140:142] = occ[180, 90] = True      # a few specks on the face
    assert not G.should_refine(occ, mesh)
    assert not G.cleaned_occluder(occ, mesh).any()


def test_a_real_occluder_opens_the_gate():
    mesh = _mesh()
    occ = np.zeros((256, 256), bool)
    occ[150:210, 90:170] = True                                      # the lower face
    assert G.should_refine(occ, mesh)
    assert G.occluder_on_face(occ, mesh) > 0.1


def test_only_hidden_points_move_and_moves_are_bounded():
    mesh = _mesh()
    occ = np.zeros((256, 256), bool)
    occ[160:256, :] = True                                           # everything below y = 160
    rng = np.random.default_rng(0)
    after = mesh.copy()
    after[:, :2] += rng.normal(scale=3.0, size=(len(mesh), 2))       # the network moves every point a little
    after[10, :2] += [500.0, 0.0]                                     # and one point far away
    out = G.bound_refinement(mesh, after, occ)
    hidden = G.hidden_vertices(occ, mesh[:, :2])
    assert hidden.any() and not hidden.all()
    assert np.array_equal(out[~hidden], mesh[~hidden])                # visible points keep MediaPipe's place
    assert not np.array_equal(out[hidden], mesh[hidden])
    iod = G.interocular(mesh)
    shift = np.linalg.norm(out[:, :2] - mesh[:, :2], axis=1)
    assert shift.max() <= G.MAX_SHIFT_IOD * iod + 1e-6
    region = G.face_hull(mesh[:, :2], occ.shape, G.FACE_GROWTH)
    xi, yi = np.rint(out[hidden, 0]).astype(int), np.rint(out[hidden, 1]).astype(int)
    assert region[yi, xi].all()
    assert np.array_equal(out[:, 2], mesh[:, 2])


def test_default_backend_keeps_mediapipe_points_under_stray_pixels(sample_photo):
    """The shipped refined backend on a real crop with a speck of 'occluder': MediaPipe's points."""
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks, RefinedMeshLandmarks
    from occgui.landmarks.refiner import checkpoint_exists
    from occgui.pipeline.runner import Pipeline, PipelineConfig

    if not checkpoint_exists():
        pytest.skip("needs the landmark refiner checkpoint")
    crop = Pipeline(PipelineConfig(device="cpu")).run(sample_photo, stop_after="detect").crop.image
    alpha = np.zeros(crop.shape[:2], np.uint8)
    alpha[120:123, 100:103] = 11                                      # 9 stray occluder pixels
    ref = RefinedMeshLandmarks().detect(crop, alpha).points
    plain = MediaPipeMeshLandmarks().detect(crop).points
    assert np.array_equal(ref, plain)


def test_refined_points_stand_only_when_at_least_as_face_like():
    from occgui.landmarks.correspondence import mesh_to_ibug68

    mesh = _mesh()
    before = mesh_to_ibug68(mesh)
    assert G.accept_refinement(before, before)                       # no change: kept
    worse = before.copy()
    worse[48:68] += [0.0, 40.0]                                       # the mouth dragged down to the neck
    assert not G.accept_refinement(before, worse)
    # a distorted MediaPipe shape that the refiner pulls back towards a face is kept
    bent = before.copy()
    bent[0:17] += np.linspace(0, 25, 17)[:, None] * [1.0, 0.0]
    assert G.accept_refinement(bent, before)
    assert G.accept_refinement(before, worse, slack=10.0)             # the slack admits anything


def test_default_backend_falls_back_to_mediapipe_when_refined_points_look_less_like_a_face(sample_photo, monkeypatch):
    """The backend with ``plausibility_gate`` and a real occluder: if the refiner's output is less face-like
    than MediaPipe's, MediaPipe's points stand (rule 4); if it is not, the refined points are used. Without
    the setting (the default) the refined points are used either way."""
    from occgui.landmarks import refiner as R
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks, RefinedMeshLandmarks
    from occgui.landmarks.refiner import checkpoint_exists
    from occgui.pipeline.runner import Pipeline, PipelineConfig

    if not checkpoint_exists():
        pytest.skip("needs the landmark refiner checkpoint")
    crop = Pipeline(PipelineConfig(device="cpu")).run(sample_photo, stop_after="detect").crop.image
    plain = MediaPipeMeshLandmarks().detect(crop)
    alpha = np.zeros(crop.shape[:2], np.uint8)
    lower = int(plain.points[33, 1])
    alpha[lower:, :] = 11                                             # an occluder over the lower face
    backend = RefinedMeshLandmarks(plausibility_gate=True)

    def scatter(weights, mesh, occluder):                             # a refiner that throws hidden points about
        out = np.asarray(mesh, np.float64).copy()
        out[:, :2] += np.random.default_rng(0).normal(scale=15.0, size=(len(out), 2))
        return out

    monkeypatch.setattr(R, "refine", scatter)
    assert np.array_equal(backend.detect(crop, alpha).points, plain.points)
    assert not np.array_equal(RefinedMeshLandmarks().detect(crop, alpha).points, plain.points)

    def nudge(weights, mesh, occluder):                               # a refiner that moves them by one pixel
        out = np.asarray(mesh, np.float64).copy()
        out[:, 1] += 1.0
        return out

    monkeypatch.setattr(R, "refine", nudge)
    got = backend.detect(crop, alpha).points
    assert not np.array_equal(got, plain.points)
    above = list(range(17, 27)) + list(range(36, 48))                  # brows and eyes, far above the occluder
    assert np.array_equal(got[above], plain.points[above])            # points the occluder does not hide never move
