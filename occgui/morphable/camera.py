"""Camera of the paper's Eq. 10: ``V_2d = f * P_r * R * S + t_2d``.

* ``R`` from (pitch, yaw, roll) in radians: ``R = R_z(roll) @ R_y(yaw) @ R_x(pitch)`` (rotations about
  the model frame's X, Y and Z axes; X to the image's right, Y up, Z towards the viewer). A positive
  yaw turns the face towards the image's right, a positive pitch lifts the chin, a positive roll
  turns the face counter-clockwise on screen.
* ``P_r`` is the **scaled orthographic** (weak perspective) projection -- the form Eq. 10 writes (a
  scale ``f`` times a fixed projection matrix, no division by depth): ``P_r = [[1, 0, 0], [0, -1, 0]]``,
  the minus because image rows grow downwards while Y grows upwards.
* ``f`` is in image pixels per millimetre, ``t_2d`` in image pixels; so a model point ``X`` (mm)
  lands at ``u = f (R X)_x + t_x``, ``v = -f (R X)_y + t_y`` -- exactly the project's
  :class:`occgui.results.Camera` (``k = f``, ``u0 = t_x``, ``v0 = t_y``) applied to the
  rotated mesh. Depth for z-buffering is ``(R X)_z`` (larger = nearer).

Weak perspective is exact enough for faces photographed from more than ~10 face depths away; the
paper's pose vector p = (pitch, yaw, roll, f, t_2d) has the same six numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Pose:
    """Head pose and scaled-orthographic camera (Eq. 10). Angles in radians."""

    pitch: float
    yaw: float
    roll: float
    scale: float        # f: image pixels per millimetre
    tx: float           # t_2d, image pixels
    ty: float

    def as_array(self) -> np.ndarray:
        return np.array([self.pitch, self.yaw, self.roll, self.scale, self.tx, self.ty], np.float64)

    @classmethod
    def from_array(cls, a) -> "Pose":
        a = [float(x) for x in np.asarray(a, np.float64).reshape(6)]
        return cls(*a)

    def degrees(self) -> tuple[float, float, float]:
        """(pitch, yaw, roll) in degrees, for reports."""
        return tuple(float(np.degrees(x)) for x in (self.pitch, self.yaw, self.roll))  # type: ignore[return-value]

    def rotation(self) -> np.ndarray:
        return rotation_matrix(torch.tensor([self.pitch, self.yaw, self.roll], dtype=torch.float64)).numpy()

    def project(self, points) -> np.ndarray:
        """(N, 3) model points (mm) -> (N, 2) image pixels."""
        p = torch.as_tensor(np.asarray(points, np.float64))
        return project(p, torch.tensor(self.as_array())).numpy()


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """``R_z(roll) @ R_y(yaw) @ R_x(pitch)`` of (..., 3) angles (pitch, yaw, roll) -> (..., 3, 3)."""
    x, y, z = angles[..., 0], angles[..., 1], angles[..., 2]
    cx, sx, cy, sy, cz, sz = torch.cos(x), torch.sin(x), torch.cos(y), torch.sin(y), torch.cos(z), torch.sin(z)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*x.shape, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*x.shape, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*x.shape, 3, 3)
    return rz @ ry @ rx


def rotate(points: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """(..., N, 3) model points -> camera frame ``R X`` (mm)."""
    return points @ rotation_matrix(angles).transpose(-1, -2)


def project_rotated(rotated: torch.Tensor, scale: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Eq. 10 after the rotation: ``f * P_r * (R X) + t`` -> (..., N, 2) pixels."""
    scale = scale[..., None, None] if torch.is_tensor(scale) and scale.ndim else scale
    uv = torch.stack([rotated[..., 0], -rotated[..., 1]], -1) * scale
    return uv + t[..., None, :]


def project(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Eq. 10: (..., N, 3) model points and (..., 6) poses (pitch, yaw, roll, f, tx, ty) -> pixels."""
    return project_rotated(rotate(points, pose[..., :3]), pose[..., 3], pose[..., 4:6])
