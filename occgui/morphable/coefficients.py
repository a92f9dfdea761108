"""The coefficient vector y of the paper (§3.4): identity α̃, expression β̃, albedo δ̃ (when the
model has an albedo basis), SH lighting γ (3 x 9) and pose p (pitch, yaw, roll, f, t_x, t_y).

:class:`CoefficientLayout` fixes the order of the flat vector a regressor (the R-Net of point 6)
outputs and the fit accepts as its initial value: ``[α̃ | β̃ | δ̃ | γ (RGB-major, 27) | p (6)]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import OccguiError
from .camera import Pose
from .lighting import NUM_SH, ambient_gamma
from .model import MorphableModel

NUM_POSE = 6
NUM_GAMMA = 3 * NUM_SH


@dataclass(frozen=True)
class CoefficientLayout:
    num_identity: int
    num_expression: int
    num_albedo: int

    @classmethod
    def of(cls, model: MorphableModel) -> "CoefficientLayout":
        return cls(model.num_identity, model.num_expression, model.num_albedo)

    @property
    def size(self) -> int:
        return self.num_identity + self.num_expression + self.num_albedo + NUM_GAMMA + NUM_POSE

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, n in (("identity", self.num_identity), ("expression", self.num_expression),
                        ("albedo", self.num_albedo), ("gamma", NUM_GAMMA), ("pose", NUM_POSE)):
            out[name] = slice(start, start + n)
            start += n
        return out


@dataclass(frozen=True)
class Coefficients:
    """All the fitted numbers (numpy float64)."""

    identity: np.ndarray      # (K_id,) normalised α̃
    expression: np.ndarray    # (K_exp,) β̃
    albedo: np.ndarray        # (K_alb,) δ̃ (empty without an albedo basis)
    gamma: np.ndarray         # (3, 9) SH coefficients per colour channel
    pose: Pose

    @property
    def layout(self) -> CoefficientLayout:
        return CoefficientLayout(len(self.identity), len(self.expression), len(self.albedo))

    def to_vector(self) -> np.ndarray:
        return np.concatenate([self.identity, self.expression, self.albedo, self.gamma.reshape(-1),
                               self.pose.as_array()])

    @classmethod
    def from_vector(cls, vector, layout: CoefficientLayout) -> "Coefficients":
        v = np.asarray(vector, np.float64).reshape(-1)
        if v.shape[0] != layout.size or not np.isfinite(v).all():
            raise OccguiError(f"a coefficient vector of {layout.size} finite numbers is expected "
                              f"({layout}), got {v.shape[0]}")
        s = layout.slices()
        pose = Pose.from_array(v[s["pose"]])
        if pose.scale <= 0:
            raise OccguiError(f"the pose scale f must be positive, got {pose.scale}")
        return cls(identity=v[s["identity"]].copy(), expression=v[s["expression"]].copy(),
                   albedo=v[s["albedo"]].copy(), gamma=v[s["gamma"]].reshape(3, NUM_SH).copy(), pose=pose)

    @classmethod
    def neutral(cls, layout: CoefficientLayout, pose: Pose) -> "Coefficients":
        """Mean shape, neutral expression, mean albedo, white ambient light."""
        return cls(identity=np.zeros(layout.num_identity), expression=np.zeros(layout.num_expression),
                   albedo=np.zeros(layout.num_albedo), gamma=ambient_gamma(dtype=torch.float64).numpy(),
                   pose=pose)

    def to_json(self) -> dict:
        """A JSON-ready description (for ``coefficients.json`` exports)."""
        pitch, yaw, roll = self.pose.degrees()
        return {"identity": self.identity.tolist(), "expression": self.expression.tolist(),
                "albedo": self.albedo.tolist(), "sh_gamma_rgb": self.gamma.tolist(),
                "pose": {"pitch_deg": pitch, "yaw_deg": yaw, "roll_deg": roll, "scale_px_per_mm": self.pose.scale,
                         "tx_px": self.pose.tx, "ty_px": self.pose.ty}}
