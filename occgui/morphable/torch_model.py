"""The model as differentiable torch functions: coefficients -> vertices, albedo, screen positions."""
from __future__ import annotations

import numpy as np
import torch

from .camera import project_rotated, rotate
from .lighting import shade
from .model import MorphableModel
from .render import render_colors, vertex_normals

#: Uniform reflectance used when a model has no albedo at all.
DEFAULT_SKIN_ALBEDO = (0.72, 0.53, 0.44)


def linear_shape(mean: torch.Tensor, id_basis: torch.Tensor, exp_basis: torch.Tensor, identity: torch.Tensor,
                 expression: torch.Tensor) -> torch.Tensor:
    """(..., N, 3) mm: ``mean`` (N, 3) plus the flattened (K, 3N) bases times the leading
    coefficients (..., K_id) and (..., K_exp)."""
    d = identity @ id_basis[:identity.shape[-1]]
    if expression.shape[-1]:
        d = d + expression @ exp_basis[:expression.shape[-1]]
    return mean + d.reshape(*d.shape[:-1], -1, 3)


def screen(vertices: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 10 for model points and (..., 6) poses: (screen (..., N, 3): pixels + depth (mm, larger
    nearer), camera-frame vertices)."""
    cam = rotate(vertices, pose[..., :3])
    uv = project_rotated(cam, pose[..., 3], pose[..., 4:6])
    return torch.cat([uv, cam[..., 2:3]], -1), cam


class TorchMorphableModel:
    """Torch tensors of a :class:`MorphableModel` (float32 on ``device``).

    With ``vertex_ids`` and ``triangles`` (a coarse working mesh over those model vertices, which
    must include the 68 landmark vertices), the tensors cover those vertices followed by their
    one-ring neighbours in the full mesh, so that the working vertices keep the exact normals of
    the full surface (``normal_triangles``: their incident full-resolution triangles) while
    rasterisation uses the coarse ``triangles``. ``num_working`` vertices come first."""

    def __init__(self, model: MorphableModel, device: str = "cpu", dtype=torch.float32,
                 vertex_ids: np.ndarray | None = None, triangles: np.ndarray | None = None):
        self.model = model
        kw = dict(device=device, dtype=dtype)
        n = model.num_vertices
        if vertex_ids is None:
            ids, tris, normal_tris, self.num_working = np.arange(n), model.triangles, model.triangles, n
        else:
            work = np.asarray(vertex_ids, np.int64)
            incident = model.triangles[np.isin(model.triangles, work).any(1)]
            ring = np.setdiff1d(np.unique(incident), work)
            ids = np.concatenate([work, ring])
            self.num_working = len(work)
            position = np.full(n, -1, np.int64)
            position[ids] = np.arange(len(ids))
            tris = np.asarray(triangles, np.int64)          # indexes ``work`` = the first entries of ``ids``
            normal_tris = position[incident]
        position = np.full(n, -1, np.int64)
        position[ids] = np.arange(len(ids))
        lm = position[model.landmarks]
        if (lm < 0).any() or (lm >= self.num_working).any():
            raise ValueError("the working vertices must contain the 68 landmark vertices")
        self.vertex_ids = ids
        self.normal_triangles = torch.as_tensor(normal_tris, dtype=torch.int64, device=device)
        self.mean = torch.as_tensor(model.mean_shape[ids], **kw)
        self.id_basis = torch.as_tensor(model.id_basis[:, ids].reshape(model.num_identity, -1), **kw)
        self.exp_basis = torch.as_tensor(model.exp_basis[:, ids].reshape(model.num_expression, -1), **kw)
        alb = model.albedo_mean[ids] if model.albedo_mean is not None else np.tile(DEFAULT_SKIN_ALBEDO, (len(ids), 1))
        self.albedo_mean = torch.as_tensor(alb, **kw)
        self.albedo_basis = (torch.as_tensor(model.albedo_basis[:, ids].reshape(model.num_albedo, -1), **kw)
                             if model.num_albedo else None)
        self.triangles = torch.as_tensor(tris, dtype=torch.int64, device=device)
        self.landmarks = torch.as_tensor(lm, dtype=torch.int64, device=device)
        face = model.face_mask[ids].copy()
        face[self.num_working:] = False
        self.face_mask = torch.as_tensor(face, device=device)

    def vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(..., N, 3) mm for (..., K_id) and (..., K_exp) normalised coefficients."""
        return linear_shape(self.mean, self.id_basis, self.exp_basis, identity, expression)

    def albedo(self, albedo: torch.Tensor | None) -> torch.Tensor:
        if self.albedo_basis is None or albedo is None or albedo.shape[-1] == 0:
            return self.albedo_mean
        d = albedo @ self.albedo_basis[:albedo.shape[-1]]
        return self.albedo_mean + d.reshape(*d.shape[:-1], -1, 3)

    def screen(self, vertices: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(screen (..., N, 3): pixels + depth (mm, larger nearer), camera-frame vertices)."""
        return screen(vertices, pose)

    def colours(self, cam_vertices: torch.Tensor, albedo: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """Eq. 11 per vertex with camera-frame normals: (..., N, 3)."""
        return shade(albedo, self.normals(cam_vertices), gamma)

    def normals(self, cam_vertices: torch.Tensor) -> torch.Tensor:
        """Unit vertex normals of the full-resolution surface (exact at the working vertices)."""
        return vertex_normals(cam_vertices, self.normal_triangles)

    def render(self, identity, expression, albedo, gamma, pose, size: int,
               triangles: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Render the model into a ``size``² image whose pixels are the pose's units:
        ((B, size, size, 3) colours, (B, size, size) coverage)."""
        v = self.vertices(identity, expression)
        scr, cam = self.screen(v, pose)
        col = self.colours(cam, self.albedo(albedo), gamma)
        return render_colors(scr, self.triangles if triangles is None else triangles, col, size)
