"""The R-Net module (``occgui/morphable/regressor.py``): torchvision ResNet-50 + coefficient head,
and the Deep3DFaceRecon checkpoint layout (tested on a random state dict saved in that layout)."""
from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from occgui.errors import CheckpointError
from occgui.morphable.coefficients import CoefficientLayout
from occgui.morphable.regressor import (
    DEEP3D_GROUPS,
    CoefficientRegressor,
    deep3d_pose,
    head_rows,
    load_deep3d_state_dict,
    read_deep3d_checkpoint,
)

BFM = CoefficientLayout(80, 64, 80)


def _deep3d_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in Deep3DFaceRecon's ReconNetWrapper naming (backbone.* + final_layers.i.*)."""
    from torchvision.models import resnet50

    torch.manual_seed(seed)
    net = resnet50(weights=None)
    sd = {f"backbone.{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    for i, (_, size) in enumerate(DEEP3D_GROUPS):
        sd[f"final_layers.{i}.weight"] = torch.randn(size, 2048, 1, 1) * 0.01
        sd[f"final_layers.{i}.bias"] = torch.randn(size)
    return sd


def test_untrained_regressor_outputs_the_zero_vector():
    m = CoefficientRegressor(CoefficientLayout(10, 5, 0)).eval()
    with torch.no_grad():
        y = m(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, 10 + 5 + 27 + 6) and torch.count_nonzero(y) == 0
    with pytest.raises(ValueError):
        m(torch.rand(2, 1, 64, 64))


def test_deep3d_layout_maps_every_group_onto_its_rows(tmp_path):
    sd = _deep3d_state_dict()
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": sd, "epoch": 20}, path)
    model = CoefficientRegressor(BFM, deep3d_translation=True).eval()
    load_deep3d_state_dict(model, read_deep3d_checkpoint(path), source=path.name)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours = model(x)
        feats = model.backbone(x)[:, :, None, None]       # the shared backbone, as Deep3D's avgpool output
        ref = {name: (nn.functional.conv2d(feats, sd[f"final_layers.{i}.weight"], sd[f"final_layers.{i}.bias"])
                      .flatten(1)) for i, (name, _) in enumerate(DEEP3D_GROUPS)}
    rows = head_rows(BFM)
    for name, _ in DEEP3D_GROUPS:
        assert torch.allclose(ours[:, rows[name]], ref[name], atol=1e-4), name
    # the rows no Deep3D group fills (pose scale and 2-D translation) stay zero before deep3d_pose
    p0 = BFM.slices()["pose"].start
    assert torch.count_nonzero(ours[:, p0 + 3:p0 + 6]) == 0


def test_deep3d_pose_is_the_weak_perspective_of_its_camera():
    out = torch.zeros(1, BFM.size + 3)
    out[0, BFM.size:] = torch.tensor([0.1, -0.2, 0.5])            # tx, ty, tz (model units)
    v = deep3d_pose(out, BFM, crop_size=224)
    p0 = BFM.slices()["pose"].start
    depth = 10.0 - 0.5
    assert v.shape == (1, BFM.size)
    assert v[0, p0 + 3].item() == pytest.approx(1015.0 / depth / 100.0)
    assert v[0, p0 + 4].item() == pytest.approx(112.0 + 1015.0 * 0.1 / depth)
    assert v[0, p0 + 5].item() == pytest.approx(112.0 + 1015.0 * 0.2 / depth)


def test_wrong_sizes_and_missing_layers_are_refused(tmp_path):
    sd = _deep3d_state_dict()
    with pytest.raises(CheckpointError, match="80 identity"):
        load_deep3d_state_dict(CoefficientRegressor(CoefficientLayout(100, 53, 0), deep3d_translation=True), sd)
    with pytest.raises(CheckpointError, match="deep3d_translation"):
        load_deep3d_state_dict(CoefficientRegressor(BFM), sd)
    broken = dict(sd)
    del broken["final_layers.4.weight"]
    with pytest.raises(CheckpointError, match="final layer 4"):
        load_deep3d_state_dict(CoefficientRegressor(BFM, deep3d_translation=True), broken)
    with pytest.raises(CheckpointError, match="not found"):
        read_deep3d_checkpoint(tmp_path / "none.pth")


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("touch RAN_CODE",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"net_recon": _RunsCode()}, f)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_deep3d_checkpoint(path)
    assert not (tmp_path / "RAN_CODE").exists()


# ----------------------------------------------------------------------------- the trained R-Net
def test_truncated_regressor_has_the_shipped_size():
    from occgui.morphable.regressor import STAGE_FEATURES

    m = CoefficientRegressor(CoefficientLayout(80, 53, 15), stages=2).eval()
    n = sum(p.numel() for p in m.parameters())
    assert 1.3e6 < n < 1.7e6, n                          # conv1, bn1, layer1, layer2 + the 512-wide head
    assert m.head.in_features == STAGE_FEATURES[2] == 512
    with torch.no_grad():
        assert m(torch.rand(1, 3, 128, 128)).shape == (1, 80 + 53 + 15 + 27 + 6)
    with pytest.raises(ValueError, match="full ResNet-50"):
        CoefficientRegressor(BFM, deep3d_translation=True, stages=2)
    with pytest.raises(ValueError):
        CoefficientRegressor(BFM, stages=5)


def test_input_convention_rgb_unit_range_square():
    import numpy as np

    from occgui.errors import OccguiError
    from occgui.morphable.regressor import to_input

    crop = np.zeros((256, 256, 3), np.uint8)
    crop[..., 0] = 255                                   # pure red
    crop[:128, :, 2] = 51
    x = to_input(crop, 128)
    assert x.shape == (1, 3, 128, 128) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.ones(128, 128)) and float(x[0, 1].abs().max()) == 0.0
    assert x[0, 2, :64].mean().item() == pytest.approx(0.2) and x[0, 2, 64:].max().item() == 0.0   # rows stay rows
    assert to_input(crop).shape == (1, 3, 224, 224)     # Deep3DFaceRecon's size by default
    with pytest.raises(OccguiError):
        to_input(np.zeros((200, 256, 3), np.uint8), 128)


def _random_rnet(layout, seed=0):
    torch.manual_seed(seed)
    net = CoefficientRegressor(layout, stages=2)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.01)
        net.target_mean.copy_(torch.randn(layout.size))
        net.target_std.uniform_(0.5, 2.0)
        p0 = layout.slices()["pose"].start
        net.target_mean[p0 + 3] = 0.004                 # unit-crop scale
        net.target_std[p0 + 3] = 1e-4
        net.target_mean[p0 + 4:p0 + 6] = 0.5
        net.target_std[p0 + 4:p0 + 6] = 0.02
    return net.eval()


def test_saved_weights_round_trip_and_the_pose_follows_the_crop_size(tmp_path):
    import cv2
    import numpy as np

    from occgui.morphable.regressor import RNet, load_regressor, save_regressor

    lay = CoefficientLayout(80, 53, 15)
    net = _random_rnet(lay)
    path = save_regressor(tmp_path / "r.safetensors", net, input_size=64, model_name="toy", meta={"steps": 1})
    assert path.stat().st_size < 4e6                     # fp16
    back, header = load_regressor(path)
    assert header["input_size"] == 64 and header["model"] == "toy" and header["meta"] == {"steps": 1}
    assert torch.equal(back.target_mean, net.target_mean) and torch.equal(back.target_std, net.target_std)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(back.coefficients(x), net.coefficients(x), rtol=1e-2, atol=1e-3)
    rnet = RNet(back, header, str(path))
    rng = np.random.default_rng(0)
    crop = cv2.resize(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), (256, 256))
    small = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)
    a, b = rnet.predict(crop), rnet.predict(small)
    p0 = lay.slices()["pose"].start
    assert a.shape == (lay.size,) and np.isfinite(a).all()
    assert np.allclose(a[:p0 + 3], b[:p0 + 3], atol=2e-3)                       # shape, light, angles
    assert b[p0 + 3] == pytest.approx(a[p0 + 3] / 2, rel=2e-3)                   # px per mm halves
    assert np.allclose(b[p0 + 4:], (a[p0 + 4:] + 0.5) / 2 - 0.5, atol=0.05)     # pixel centres


def test_malformed_weights_are_one_line_errors(tmp_path):
    from safetensors.torch import save_file

    from occgui.morphable.regressor import load_regressor, save_regressor

    with pytest.raises(CheckpointError, match="not found"):
        load_regressor(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01not a safetensors file" * 10)
    with pytest.raises(CheckpointError, match="cannot read") as e:
        load_regressor(junk)
    assert "\n" not in str(e.value)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"header": '{"format": "something else"}'})
    with pytest.raises(CheckpointError, match="not an occgui R-Net"):
        load_regressor(other)
    net = _random_rnet(CoefficientLayout(10, 5, 0))
    good = save_regressor(tmp_path / "good.safetensors", net, input_size=64, model_name="toy")
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    del tensors["head.weight"]
    save_file(tensors, str(tmp_path / "cut.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_regressor(tmp_path / "cut.safetensors")
    tensors["head.weight"] = torch.full((10 + 5 + 27 + 6, 512), float("nan"), dtype=torch.float16)
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_regressor(tmp_path / "nan.safetensors")


@pytest.fixture(scope="module")
def sample_run():
    from occgui.pipeline.runner import Pipeline, PipelineConfig
    from occgui.resources import sample_photo

    return Pipeline(PipelineConfig(device="cpu", crop_size=256)).run(str(sample_photo()), stop_after="synthesize")


def test_shipped_rnet_gives_a_plausible_pose_on_the_sample_photo(sample_run):
    import numpy as np

    from occgui.morphable import load_default_model
    from occgui.morphable.coefficients import Coefficients
    from occgui.morphable.init import initialise_from_landmarks
    from occgui.morphable.regressor import RNet

    model = load_default_model()
    rnet = RNet.load()
    rnet.check_model(model)
    assert rnet.input_size in (112, 128) and rnet.network.stages == 2
    v = rnet.predict(sample_run.synthesis.image)
    assert v.shape == (rnet.layout.size,) and np.isfinite(v).all()
    c = Coefficients.from_vector(v, rnet.layout)
    lm = np.asarray(sample_run.landmarks.points, np.float64)
    proj = c.pose.project(model.shape(c.identity, c.expression)[model.landmarks])
    iod = np.linalg.norm(lm[36] - lm[45])
    assert np.linalg.norm(proj - lm, axis=1).mean() / iod < 0.12
    ref, _, _ = initialise_from_landmarks(model, lm)
    assert 0.75 < c.pose.scale / ref.scale < 1.33
    assert all(abs(a) < 35 for a in c.pose.degrees())
    assert np.abs(c.identity).max() < 6                 # normalised coefficients: within the prior


def test_geometry_backend_initial_setting(tmp_path, sample_run):
    from dataclasses import replace

    from occgui.errors import OccguiError
    from occgui.geometry.morphable_mesh import MorphableGeometry
    from occgui.geometry.settings import MorphableSettings

    class Ctx:
        def __init__(self, st):
            self.settings, self.device = st, "cpu"

    fast = MorphableSettings(iterations=3, image_iterations=0)
    with pytest.raises(OccguiError, match="geometry.initial"):
        MorphableGeometry(Ctx(replace(fast, initial="regressor")))
    with pytest.raises(CheckpointError, match="not found"):
        MorphableGeometry(Ctx(replace(fast, initial="rnet", rnet_weights=str(tmp_path / "none.safetensors"))))
    r = sample_run
    for initial in ("rnet", "rnet-pose"):
        backend = MorphableGeometry(Ctx(replace(fast, initial=initial)))
        assert f"+{initial}-" in backend.version
        mesh = backend.build(r.image, r.crop, r.landmarks, synthesis=r.synthesis, alpha=r.alpha, gamma=r.gamma)
        assert mesh.fit is not None and mesh.fit.landmark_error < 0.12 and not mesh.fit.warm_start
