"""R-Net: the coefficient regressor of the paper's §3.4 ("a fixed ResNet-50 network to regress these
coefficients"): torchvision's ResNet-50 with a linear head that outputs the flat coefficient vector
of :class:`~.coefficients.CoefficientLayout` (identity, expression, albedo, SH lighting, pose).

**The shipped R-Net** (``checkpoints/recon_regressor.safetensors``, card
``checkpoints/recon_regressor.md``, trained here by ``occgui train recon``,
:mod:`occgui.training.recon`): ResNet-50 truncated after ``layer2`` (``stages=2``: conv1, bn1,
layer1, layer2; about 1.5 M parameters with the head; fp16), global average pooling, a linear head,
distilled from per-photo fits of clean LFW photos with clean and occluded/de-occluded inputs.
:class:`RNet` runs it: input = I_out (the crop the fit sees) as RGB in [0, 1] resampled to the
header's ``input_size`` (:func:`to_input`); output = the :class:`CoefficientLayout` vector whose
pose the network gives in *unit-crop* form (:func:`pose_to_unit`: f / S, (t + 0.5) / S) and
:meth:`RNet.predict` returns in the crop's pixels. ``MorphableSettings.initial`` = ``rnet`` /
``rnet-pose`` makes it the fit's initial value (:func:`repose`: its shape with the landmark pose).

The untrained module: the head's weights start at zero and ``target_mean`` / ``target_std`` at
0 / 1, so an untrained regressor outputs the zero vector (mean face, neutral expression, no light,
zero pose scale: callers must not use it as a pose before training).

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

from ..errors import CheckpointError, OccguiError
from .coefficients import NUM_GAMMA, CoefficientLayout

INPUT_SIZE = 224
FEATURES = 2048
#: Deep3DFaceRecon's output groups, in the order of its ``final_layers``.
DEEP3D_GROUPS: tuple[tuple[str, int], ...] = (("identity", 80), ("expression", 64), ("texture", 80), ("angles", 3),
                                              ("gamma", 27), ("xy", 2), ("z", 1))
#: Its camera: focal length (pixels at 224²), image centre, camera distance (model units).
DEEP3D_FOCAL, DEEP3D_CENTER, DEEP3D_CAMERA_D = 1015.0, 112.0, 10.0


#: Channels after each ResNet-50 stage (layer1..layer4).
STAGE_FEATURES = {1: 256, 2: 512, 3: 1024, 4: 2048}


class CoefficientRegressor(nn.Module):
    """ResNet-50 (torchvision, no pretrained weights) -> the coefficient vector of ``layout``.

    ``stages`` keeps the stem and the first ``stages`` residual stages (4: the full ResNet-50 of
    Deep3DFaceRecon; the shipped R-Net uses 2: conv1, bn1, layer1, layer2, about 1.4 M parameters),
    followed by global average pooling and the linear head.

    ``target_mean`` / ``target_std`` (buffers, saved with the weights) map the head's normalised
    output to coefficients: :meth:`coefficients` = ``forward * std + mean`` (0 and 1 by default, so
    an untrained or Deep3DFaceRecon regressor outputs its head as it is).

    With ``deep3d_translation=True`` three more outputs follow the vector: Deep3DFaceRecon's
    (tx, ty, tz), which :func:`deep3d_pose` turns into the pose's scale and 2-D translation."""

    def __init__(self, layout: CoefficientLayout, *, deep3d_translation: bool = False, stages: int = 4):
        super().__init__()
        from torchvision.models import resnet50

        if stages not in STAGE_FEATURES:
            raise ValueError(f"stages must be 1-4, got {stages}")
        if deep3d_translation and stages != 4:
            raise ValueError("the Deep3DFaceRecon layout needs the full ResNet-50 (stages=4)")
        self.layout = layout
        self.stages = int(stages)
        self.deep3d_translation = bool(deep3d_translation)
        backbone = resnet50(weights=None)
        backbone.fc = nn.Identity()
        for i in range(stages + 1, 5):
            setattr(backbone, f"layer{i}", nn.Identity())
        self.backbone = backbone
        n_out = layout.size + (3 if deep3d_translation else 0)
        self.head = nn.Linear(STAGE_FEATURES[stages], n_out)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("target_mean", torch.zeros(n_out))
        self.register_buffer("target_std", torch.ones(n_out))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, layout.size [+ 3]), normalised (see the class docstring)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(image.shape)}")
        return self.head(self.backbone(image))

    def coefficients(self, image: torch.Tensor) -> torch.Tensor:
        """The de-normalised output: ``forward(image) * target_std + target_mean``."""
        return self(image) * self.target_std + self.target_mean


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


def to_input(crop_rgb: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """An (S, S, 3) uint8 crop -> the (1, 3, size, size) float input: RGB in [0, 1], resampled with
    area averaging (224: Deep3DFaceRecon's input; the shipped R-Net's size is in its header)."""
    import cv2

    img = np.asarray(crop_rgb)
    if img.ndim != 3 or img.shape[2] < 3 or img.shape[0] != img.shape[1] or img.dtype != np.uint8:
        raise OccguiError(f"the R-Net needs a square RGB uint8 crop, got {img.dtype} {img.shape}")
    img = cv2.resize(img[:, :, :3], (size, size), interpolation=cv2.INTER_AREA if size <= img.shape[0]
                     else cv2.INTER_LINEAR)
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


# ----------------------------------------------------------------------------- the trained R-Net
#: Default file of the trained R-Net (``occgui train recon``) in ``checkpoints/``.
RNET_CHECKPOINT = "recon_regressor.safetensors"
FORMAT = "occgui.rnet"
FORMAT_VERSION = 1


def pose_to_unit(vector, layout: CoefficientLayout, crop_size: float) -> np.ndarray:
    """Coefficient vectors (..., layout.size) with the pose in pixels of a ``crop_size`` crop ->
    the trained R-Net's *unit-crop* pose: f / S, and (t + 0.5) / S (pixel centres at integers,
    the crop spanning [0, 1]); the angles are unchanged. The R-Net regresses this form, so its
    output holds for a crop of any size."""
    v = np.array(vector, np.float64, copy=True)
    p0 = layout.slices()["pose"].start
    v[..., p0 + 3] = v[..., p0 + 3] / crop_size
    v[..., p0 + 4:p0 + 6] = (v[..., p0 + 4:p0 + 6] + 0.5) / crop_size
    return v


def pose_from_unit(vector, layout: CoefficientLayout, crop_size: float) -> np.ndarray:
    """The inverse of :func:`pose_to_unit`."""
    v = np.array(vector, np.float64, copy=True)
    p0 = layout.slices()["pose"].start
    v[..., p0 + 3] = v[..., p0 + 3] * crop_size
    v[..., p0 + 4:p0 + 6] = v[..., p0 + 4:p0 + 6] * crop_size - 0.5
    return v


def save_regressor(path, model: CoefficientRegressor, *, input_size: int, model_name: str, meta: dict | None = None,
                   half: bool = True) -> Path:
    """Write a trained R-Net as safetensors (atomically): the state dict (fp16 weights with ``half``;
    the target statistics stay fp32) and one JSON ``header`` (format, layout, stages, input size,
    the morphable model's name, the training record)."""


    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        keep = k.startswith("target_") or not v.is_floating_point()
        tensors[k] = v if keep or not half else v.half()
    lay = model.layout
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "stages": model.stages, "input_size": int(input_size),
              "layout": [lay.num_identity, lay.num_expression, lay.num_albedo], "model": model_name,
              "pose": "unit-crop", "meta": meta or {}}
    from ..weights_header import write_with_json_header

    return write_with_json_header(path, tensors, header)


def load_regressor(path) -> tuple[CoefficientRegressor, dict]:
    """A trained R-Net (eval mode, float32) and its header; any defect of the file is one
    :class:`CheckpointError` line."""
    from ..weights_header import read_json_header

    path = Path(path)
    header, tensors = read_json_header(path, what="R-Net weights", fmt=FORMAT, version=FORMAT_VERSION,
                                       train_cmd="occgui train recon", tensors=True)
    try:
        layout = CoefficientLayout(*(int(x) for x in header["layout"]))
        net = CoefficientRegressor(layout, stages=int(header["stages"]))
        size = int(header["input_size"])
        if size < 16:
            raise ValueError(f"input size {size}")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path.name}: invalid R-Net header ({e})") from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    bad = sorted(k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape))
    if missing or bad:
        raise CheckpointError(f"{path.name} does not fit its R-Net header: {len(missing)} tensors missing, "
                              f"{len(bad)} of another shape (e.g. {(missing + bad)[:1]})")
    state = {k: tensors[k].to(expected[k].dtype) for k in expected}
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CheckpointError(f"{path.name} holds non-finite weights")
    net.load_state_dict(state, strict=True)
    return net.eval(), header


class RNet:
    """The trained R-Net for inference: a crop (I_out, crop pixels) -> the coefficient vector of
    :class:`CoefficientLayout` with the pose in that crop's pixels -- the fit's initial value."""

    def __init__(self, network: CoefficientRegressor, header: dict, source: str = ""):
        self.network = network.eval()
        self.header = header
        self.layout = network.layout
        self.input_size = int(header["input_size"])
        self.model_name = str(header.get("model", ""))
        self.source = source

    @classmethod
    def load(cls, path=None) -> "RNet":
        """``path`` or the shipped ``checkpoints/recon_regressor.safetensors``."""
        if not path:
            from ..resources import checkpoint_path

            path = checkpoint_path(RNET_CHECKPOINT)
        net, header = load_regressor(path)
        return cls(net, header, str(path))

    def check_model(self, model) -> None:
        """Refuse a morphable model of another coefficient layout than the R-Net's."""
        lay = CoefficientLayout.of(model)
        if lay != self.layout:
            raise OccguiError(f"the R-Net ({Path(self.source).name or 'weights'}) regresses {self.layout}, the "
                              f"morphable model {model.name!r} has {lay}")

    @torch.no_grad()
    def predict(self, crop_rgb: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 crop -> (layout.size,) float64, pose in the crop's pixels (scale > 0)."""
        x = to_input(crop_rgb, self.input_size)
        unit = self.network.coefficients(x)[0].double().numpy()
        v = pose_from_unit(unit, self.layout, float(np.asarray(crop_rgb).shape[0]))
        p0 = self.layout.slices()["pose"].start
        v[p0 + 3] = max(v[p0 + 3], 1e-3)
        return v

    def initial_value(self, model, crop_rgb: np.ndarray, landmarks=None) -> np.ndarray:
        """The fit's initial vector for a crop: :meth:`predict`, and with ``landmarks`` ((68, 2)
        crop pixels) the pose re-estimated from them for the R-Net's identity and expression
        (scaled-orthographic least squares, :func:`occgui.morphable.init.pose_from_correspondences`)."""
        v = self.predict(crop_rgb)
        if landmarks is not None:
            v = repose(v, self.layout, model, landmarks)
        return v


def repose(vector, layout: CoefficientLayout, model, landmarks) -> np.ndarray:
    """``vector`` with its pose replaced by the least-squares pose that maps its shape's 68 model
    landmarks onto ``landmarks`` (crop pixels; jaw-line points down-weighted as in :mod:`.init`)."""
    from .coefficients import Coefficients
    from .init import landmark_weights, pose_from_correspondences

    c = Coefficients.from_vector(vector, layout)
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise OccguiError(f"68 finite landmarks are needed to re-pose the R-Net's output, got {pts.shape}")
    shape = model.shape(c.identity, c.expression)[model.landmarks]
    pose = pose_from_correspondences(shape, pts, landmark_weights())
    v = np.array(vector, np.float64, copy=True)
    v[layout.slices()["pose"]] = pose.as_array()
    return v


__all__ = ["CoefficientRegressor", "DEEP3D_GROUPS", "NUM_GAMMA", "RNET_CHECKPOINT", "RNet", "STAGE_FEATURES",
           "deep3d_pose", "head_rows", "load_deep3d_state_dict", "load_regressor", "pose_from_unit", "pose_to_unit",
           "read_deep3d_checkpoint", "repose", "save_regressor", "to_input"]
