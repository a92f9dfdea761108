"""The pipeline runner: cache keys, re-runs after a landmark correction, progress and cancellation.

Heavy stages are replaced by small test backends registered through the public backend seam, so
these tests check the runner's own logic quickly; the real stages are covered by their own tests
and by tests/test_cli.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from occgui import labels as L
from occgui.errors import Cancelled, NoFaceError
from occgui.pipeline import backends
from occgui.pipeline.runner import STAGES, Pipeline, PipelineConfig, downstream_of
from occgui.results import Camera, FaceMesh, Synthesis, Texture


class _Parse:
    name, version = "test", "1"

    def parse(self, crop):
        m = np.full(crop.shape[:2], L.SKIN, np.uint8)
        m[100:130, 140:190] = L.OCCLUDER
        return m


class _Synth:
    name, version = "test", "1"

    def synthesize(self, crop, landmarks, alpha, beta, gamma):
        return Synthesis(image=crop.copy(), filled=alpha == L.OCCLUDER, backend=self.name)


class _Geom:
    name, version = "test", "1"

    def build(self, image, crop, landmarks):
        pts = image.working_to_photo(crop.crop_to_working(landmarks.points))
        v = np.column_stack([pts[:, 0], -pts[:, 1], np.zeros(68)])
        return FaceMesh(vertices=v, faces=np.array([[0, 8, 16]]), uv=np.zeros((68, 2)), camera=Camera(1.0, 0.0, 0.0))


class _FitGeom(_Geom):
    """A geometry backend that reads I_out and the maps (as the morphable fit does)."""
    name = "test-fit"

    def build(self, image, crop, landmarks, *, synthesis=None, alpha=None, gamma=None):
        self.seen = (synthesis, alpha, gamma)
        return super().build(image, crop, landmarks)


class _Tex:
    name, version = "test", "1"

    def __init__(self, size: int):
        self.size = size

    def build(self, image, crop, alpha, synthesis, mesh):
        n = self.size
        return Texture(image=np.zeros((n, n, 3), np.uint8), source=np.ones((n, n), np.uint8), backend=self.name)


backends.register("parse", "test", lambda ctx: _Parse())
backends.register("synthesize", "test", lambda ctx: _Synth())
backends.register("geometry", "test", lambda ctx: _Geom(), reads=("load", "detect", "landmarks"))
backends.register("geometry", "test-fit", lambda ctx: _FitGeom())
backends.register("texture", "test", lambda ctx: _Tex(ctx.texture_size))
TEST_BACKENDS = {"parse": "test", "synthesize": "test", "geometry": "test", "texture": "test"}


@pytest.fixture()
def pipeline():
    return Pipeline(PipelineConfig(device="cpu", backends=dict(TEST_BACKENDS)))


def test_downstream_of_landmarks_excludes_crop_and_alpha():
    d = downstream_of("landmarks")
    assert "parse" not in d and "detect" not in d and "load" not in d
    assert set(d) == {"landmark_map", "merge", "synthesize", "geometry", "texture"}


def test_rerun_with_corrected_landmarks_recomputes_only_downstream(pipeline, sample_photo):
    r1 = pipeline.run(sample_photo)
    assert all(r1.get(s) is not None for s in STAGES)
    counts1 = dict(pipeline.run_counts)
    assert all(counts1[s] == 1 for s in STAGES)

    r2 = pipeline.run(sample_photo)                      # same inputs: everything cached
    assert r2.cached == list(STAGES) and dict(pipeline.run_counts) == counts1

    pts = r1.landmarks_in_photo().copy()
    pts[45] += (6.0, -4.0)
    r3 = pipeline.run(sample_photo, landmarks=pts)
    for s in ("load", "detect", "landmarks", "parse"):
        assert pipeline.run_counts[s] == 1, s             # crop, detection and M_alpha reused
    for s in ("landmark_map", "merge", "synthesize", "geometry", "texture"):
        assert pipeline.run_counts[s] == 2, s
    assert r3.alpha is r1.alpha and r3.crop is r1.crop
    assert r3.landmarks.edited and np.allclose(r3.landmarks_in_photo(), pts, atol=1e-6)
    assert not np.array_equal(r3.beta.labels, r1.beta.labels)
    assert not np.allclose(r3.mesh.vertices, r1.mesh.vertices)

    r4 = pipeline.run(sample_photo)                      # back to detected: no new detection
    assert pipeline.run_counts["landmarks"] == 1 and not r4.landmarks.edited


def test_geometry_backends_are_keyed_by_the_inputs_they_read(sample_photo):
    """A geometry backend that reads I_out and the maps gets them (M_alpha as painted) and is re-run
    when they change; one registered as reading the landmarks only is given none and kept."""
    from occgui.corrections import AlphaEdit

    fit = Pipeline(PipelineConfig(device="cpu", backends={**TEST_BACKENDS, "geometry": "test-fit"}))
    plain = Pipeline(PipelineConfig(device="cpu", backends=dict(TEST_BACKENDS)))
    r = fit.run(sample_photo)
    syn, alpha, gamma = fit.backend("geometry").seen
    assert syn is r.synthesis and alpha is r.alpha and gamma is r.gamma
    plain.run(sample_photo)
    edit = AlphaEdit.blank(r.image, r.crop)
    edit.added[20:60, 20:60] = True
    r2 = fit.run(sample_photo, alpha_edit=edit)
    plain.run(sample_photo, alpha_edit=edit)
    assert fit.run_counts["geometry"] == 2 and plain.run_counts["geometry"] == 1
    assert fit.backend("geometry").seen[1] is r2.alpha_painted and r2.alpha_painted is not r2.alpha
    assert fit.run_counts["parse"] == 1 and fit.run_counts["synthesize"] == 2


def test_preview_geometry_is_reported_first_and_replaced_by_the_configured_one(sample_photo):
    """The GUI's fast path: with ``preview_geometry`` the fast mesh and its texture arrive as
    ``preview`` events before the configured (slow) geometry runs; the result is the configured one's."""
    p = Pipeline(PipelineConfig(device="cpu", backends={**TEST_BACKENDS, "geometry": "test-fit"},
                                preview_geometry="test"))
    events = []
    r = p.run(sample_photo, progress=events.append)
    seq = [(e.stage, e.state, e.preview) for e in events if e.stage in ("geometry", "texture")]
    assert seq == [("geometry", "finished", True), ("texture", "finished", True), ("geometry", "started", False),
                   ("geometry", "finished", False), ("texture", "started", False), ("texture", "finished", False)]
    preview_mesh = events[[e.preview for e in events].index(True)].result
    assert preview_mesh is not r.mesh and np.allclose(preview_mesh.vertices, r.mesh.vertices)   # same maths, two runs
    assert p.run_counts["geometry@preview"] == 1 and p.run_counts["texture@preview"] == 1
    assert r.backends["geometry"] == "test-fit@1"
    events.clear()
    p.run(sample_photo, progress=events.append)                # all cached: no preview needed
    assert not any(e.preview for e in events) and p.run_counts["geometry@preview"] == 1
    pts = r.landmarks_in_photo().copy()
    pts[45] += (6.0, -4.0)
    p.run(sample_photo, landmarks=pts, progress=events.append)  # an edit: the preview first again
    assert p.run_counts["geometry@preview"] == 2 and p.run_counts["geometry"] == 2
    # the preview is skipped when it is the configured backend itself, and stops with the run
    same = Pipeline(PipelineConfig(device="cpu", backends=dict(TEST_BACKENDS), preview_geometry="test"))
    events.clear()
    same.run(sample_photo, progress=events.append)
    assert not any(e.preview for e in events)
    events.clear()
    p2 = Pipeline(PipelineConfig(device="cpu", backends={**TEST_BACKENDS, "geometry": "test-fit"},
                                 preview_geometry="test"))
    p2.run(sample_photo, stop_after="geometry", progress=events.append)
    assert [e.stage for e in events if e.preview] == ["geometry"]


def test_progress_events_and_cancel(pipeline, sample_photo):
    events = []
    pipeline.run(sample_photo, progress=events.append)
    states = [(e.stage, e.state) for e in events]
    assert states[0] == ("load", "started") and states[-1] == ("texture", "finished")
    assert all(e.result is not None for e in events if e.state == "finished")

    seen = []

    def cancel():
        return len(seen) >= 3

    with pytest.raises(Cancelled):
        pipeline.run(sample_photo, landmarks=np.zeros((68, 2)) + 200, progress=lambda e: seen.append(e), cancel=cancel)


def test_stop_after_and_bad_face_index(sample_photo):
    p = Pipeline(PipelineConfig(device="cpu", backends=dict(TEST_BACKENDS)))
    r = p.run(sample_photo, stop_after="parse")
    assert r.alpha is not None and r.gamma is None
    p2 = Pipeline(PipelineConfig(device="cpu", face_index=3, backends=dict(TEST_BACKENDS)))
    with pytest.raises(NoFaceError, match="only 1 face"):
        p2.run(sample_photo)


def test_array_source_and_bad_landmarks(pipeline):
    import skimage.data

    from occgui.errors import OccguiError

    r = pipeline.run(skimage.data.astronaut(), stop_after="landmarks")
    assert r.image.source == "<array>" and r.landmarks.points.shape == (68, 2)
    with pytest.raises(OccguiError, match="68"):
        pipeline.run(skimage.data.astronaut(), landmarks=np.zeros((5, 2)))


def test_device_auto_without_a_cuda_driver_is_cpu(monkeypatch):
    from occgui import device
    from occgui.errors import OccguiError

    monkeypatch.setattr(device, "cuda_driver_present", lambda: False)
    assert device.resolve_device("auto") == "cpu" and device.resolve_device("cpu") == "cpu"
    with pytest.raises(OccguiError, match="no CUDA device"):
        device.resolve_device("cuda")
    with pytest.raises(OccguiError, match="unknown device"):
        device.resolve_device("tpu")


# ----------------------------------------------------------------------------- typed settings
from dataclasses import dataclass  # noqa: E402

from occgui.settings import setting  # noqa: E402


@dataclass(frozen=True)
class _GainSettings:
    gain: float = setting(1.0, "multiplies the output", "ratio")
    on: bool = setting(True, "a flag")


class _GainSynth(_Synth):
    name = "test-gain"

    def __init__(self, ctx):
        self.settings = ctx.settings


backends.register("synthesize", "test-gain", _GainSynth, settings=_GainSettings)


def test_settings_enter_the_backend_id_and_recompute_only_their_stage(sample_photo):
    cfg = dict(device="cpu", backends={**TEST_BACKENDS, "synthesize": "test-gain"})
    p = Pipeline(PipelineConfig(**cfg))
    r1 = p.run(sample_photo)
    assert r1.backends["synthesize"] == "test-gain@1" and p.backend("synthesize").settings == _GainSettings()
    p2 = Pipeline(PipelineConfig(**cfg, settings=backends.parse_settings(["synthesize.gain=2.5"], cfg["backends"])))
    p2._cache, p2._detected_landmarks = p._cache, p._detected_landmarks
    r2 = p2.run(sample_photo)
    assert p2.backend("synthesize").settings.gain == 2.5
    assert r2.backends["synthesize"].startswith("test-gain@1+s") and r2.backends["parse"] == r1.backends["parse"]
    assert "synthesize" not in r2.cached and "parse" in r2.cached and "texture" not in r2.cached


@pytest.mark.parametrize("item,message", [
    ("synthesize.bogus=1", "unknown setting 'bogus' of backend synthesize=test-gain (settings: gain, on)"),
    ("synthesize.gain=abc", "setting 'gain' of backend synthesize=test-gain expects a number, got 'abc'"),
    ("synthesize.on=maybe", "setting 'on' of backend synthesize=test-gain expects true or false, got 'maybe'"),
    ("synthesize=1", "--option expects STAGE.SETTING=VALUE, got 'synthesize=1'"),
    ("nostage.x=1", "unknown stage 'nostage'"),
])
def test_bad_options_are_one_line_errors(item, message):
    from occgui.errors import OccguiError

    with pytest.raises(OccguiError) as e:
        backends.parse_settings([item], {"synthesize": "test-gain"})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_backend_has_one_name():
    from occgui.errors import OccguiError

    backends.register("merge", "test-alias", lambda ctx: type("M", (), {"name": "other", "version": "1"})())
    with pytest.raises(OccguiError, match="calls itself 'other'"):
        backends.create("merge", "test-alias", backends.BackendContext("cpu", 256, 1024))
    ctx = backends.BackendContext("cpu", 256, 1024)
    assert backends.create("merge", "none", ctx).name == "none"          # was "alpha-only"
