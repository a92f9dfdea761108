"""R-Net: the coefficient regressor of the paper's §3.4 ("a fixed ResNet-50 network to regress these
coefficients"): torchvision's ResNet-50 with a linear head that outputs the flat coefficient vector
of :class:`~.coefficients.CoefficientLayout` (identity, expression, albedo, SH lighting, pose).

**No trained weights ship yet** (training it, ``occgui train recon``, is still to be done), so it
is no default of anything: the fit (:mod:`.fit`) starts from the landmarks unless it is given a
vector. What is here: the network, its input convention, and a loader of Deep3DFaceRecon's
published R-Net checkpoint layout for users who hold that checkpoint and the BFM.

Input: RGB in [0, 1], (B, 3, 224, 224) — the face crop resampled to 224², the frame in which the
fit computes its landmark and photometric terms (:mod:`.fit`). The head's weights start at zero,
so an untrained regressor outputs the zero vector (mean face, neutral expression, no light, zero
pose scale: callers must not use it as a pose before training).

Deep3DFaceRecon layout (``epoch_20.pth``: a dict with ``net_recon``, the state dict of its
``ReconNetWrapper``): ``backbone.*`` are torchvision ResNet-50 names (no ``fc``), copied as they
are; ``final_layers.0..6`` are 1x1 convolutions from 2048 channels to, in order, identity (80),
expression (64), texture (80), angles (3: pitch, yaw, roll in radians), SH (27), xy translation (2),
z translation (1). They map onto the head's rows as: identity -> identity, expression ->
expression, texture -> albedo (Deep3DFaceRecon's BFM bases are scaled by their standard deviations,
as :mod:`.bfm` reads them, so its coefficients are this project's normalised ones), SH -> gamma,
angles -> pose pitch/yaw/roll. Its camera is a perspective one (focal 1015 px at a 224² input,
camera 10 units away); its xy and z outputs are kept in :attr:`CoefficientRegressor.deep3d_translation`
rows and converted to this project's scaled-orthographic pose by :func:`deep3d_pose` (the weak-
perspective approximation at the face's depth). The file is read with ``torch.load(weights_only=True)``:
no code in it runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from .coefficients import NUM_GAMMA, CoefficientLayout

INPUT_SIZE = 224
FEATURES = 2048
#: Deep3DFaceRecon's output groups, in the order of its ``final_layers``.
DEEP3D_GROUPS: tuple[tuple[str, int], ...] = (("identity", 80), ("expression", 64), ("texture", 80), ("angles", 3),
                                              ("gamma", 27), ("xy", 2), ("z", 1))
#: Its camera: focal length (pixels at 224²), image centre, camera distance (model units).
DEEP3D_FOCAL, DEEP3D_CENTER, DEEP3D_CAMERA_D = 1015.0, 112.0, 10.0


class CoefficientRegressor(nn.Module):
    """ResNet-50 (torchvision, no pretrained weights) -> the coefficient vector of ``layout``.

    With ``deep3d_translation=True`` three more outputs follow the vector: Deep3DFaceRecon's
    (tx, ty, tz), which :func:`deep3d_pose` turns into the pose's scale and 2-D translation."""

    def __init__(self, layout: CoefficientLayout, *, deep3d_translation: bool = False):
        super().__init__()
        from torchvision.models import resnet50

        self.layout = layout
        self.deep3d_translation = bool(deep3d_translation)
        backbone = resnet50(weights=None)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(FEATURES, layout.size + (3 if deep3d_translation else 0))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, layout.size [+ 3])."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(image.shape)}")
        return self.head(self.backbone(image))


def head_rows(layout: CoefficientLayout) -> dict[str, slice]:
    """Rows of the head that each Deep3DFaceRecon group fills (``xy`` and ``z``: the extra rows)."""
    s = layout.slices()
    pose0 = s["pose"].start
    n = layout.size
    return {"identity": s["identity"], "expression": s["expression"], "texture": s["albedo"],
            "angles": slice(pose0, pose0 + 3), "gamma": s["gamma"], "xy": slice(n, n + 2), "z": slice(n + 2, n + 3)}


def read_deep3d_checkpoint(path) -> dict[str, torch.Tensor]:
    """The ``net_recon`` state dict of a Deep3DFaceRecon checkpoint, read without running code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"R-Net checkpoint not found: {path}")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any unpickling refusal or corruption is a bad file)
        raise CheckpointError(f"cannot read {path.name} as a weights-only checkpoint: "
                              f"{str(e).splitlines()[0][:160]}") from None
    sd = data.get("net_recon", data) if isinstance(data, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path.name} holds no Deep3DFaceRecon 'net_recon' state dict")
    return sd


def load_deep3d_state_dict(model: CoefficientRegressor, sd: dict[str, torch.Tensor], *, source: str = "") -> None:
    """Fill ``model`` (built with ``deep3d_translation=True`` for a BFM-sized layout: 80 identity,
    64 expression, 80 albedo components) from Deep3DFaceRecon's ``net_recon`` state dict; every
    backbone tensor and every final layer must be present with its shape, else :class:`CheckpointError`."""
    where = source or "the R-Net state dict"
    if not model.deep3d_translation:
        raise CheckpointError("a Deep3DFaceRecon R-Net needs CoefficientRegressor(..., deep3d_translation=True)")
    lay = model.layout
    want = {"identity": lay.num_identity, "expression": lay.num_expression, "texture": lay.num_albedo}
    for name, size in DEEP3D_GROUPS[:3]:
        if want[name] != size:
            raise CheckpointError(f"{where}: Deep3DFaceRecon regresses {size} {name} coefficients, the model has "
                                  f"{want[name]} (pair it with the BFM of BFM_model_front.mat)")
    own = model.backbone.state_dict()
    backbone = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.") and ".fc." not in k
                and not k.startswith("backbone.fc.")}
    missing = [k for k in own if k not in backbone]
    bad = [k for k in own if k in backbone and tuple(backbone[k].shape) != tuple(own[k].shape)]
    if missing or bad:
        raise CheckpointError(f"{where}: not a ResNet-50 R-Net ({len(missing)} backbone tensors missing, "
                              f"{len(bad)} of another shape)")
    weight = torch.zeros_like(model.head.weight)
    bias = torch.zeros_like(model.head.bias)
    rows = head_rows(lay)
    for i, (name, size) in enumerate(DEEP3D_GROUPS):
        w, b = sd.get(f"final_layers.{i}.weight"), sd.get(f"final_layers.{i}.bias")
        if w is None or b is None or tuple(w.shape) != (size, FEATURES, 1, 1) or tuple(b.shape) != (size,):
            raise CheckpointError(f"{where}: final layer {i} ({name}) is missing or not ({size}, {FEATURES}, 1, 1)")
        weight[rows[name]] = w.reshape(size, FEATURES).to(weight.dtype)
        bias[rows[name]] = b.to(bias.dtype)
    model.backbone.load_state_dict(backbone, strict=True)
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)


def deep3d_pose(output: torch.Tensor, layout: CoefficientLayout, *, crop_size: float = INPUT_SIZE,
                mm_per_unit: float = 100.0) -> torch.Tensor:
    """Replace the pose scale and translation of Deep3DFaceRecon outputs (B, layout.size + 3) by the
    weak-perspective equivalent of its perspective camera, in pixels of a ``crop_size`` crop and
    millimetre model units; returns (B, layout.size). The y axis flips (its image y grows upwards)."""
    n = layout.size
    vec = output[:, :n].clone()
    tx, ty, tz = output[:, n], output[:, n + 1], output[:, n + 2]
    depth = DEEP3D_CAMERA_D - tz
    k = crop_size / INPUT_SIZE
    f = DEEP3D_FOCAL / depth / mm_per_unit * k
    p0 = layout.slices()["pose"].start
    vec[:, p0 + 3] = f
    vec[:, p0 + 4] = (DEEP3D_CENTER + DEEP3D_FOCAL * tx / depth) * k
    vec[:, p0 + 5] = (DEEP3D_CENTER - DEEP3D_FOCAL * ty / depth) * k
    return vec


def to_input(crop_rgb: np.ndarray) -> torch.Tensor:
    """An (S, S, 3) uint8 crop -> the (1, 3, 224, 224) float input."""
    import cv2

    img = cv2.resize(np.asarray(crop_rgb)[:, :, :3], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


__all__ = ["CoefficientRegressor", "DEEP3D_GROUPS", "NUM_GAMMA", "deep3d_pose", "head_rows", "load_deep3d_state_dict",
           "read_deep3d_checkpoint", "to_input"]
