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
