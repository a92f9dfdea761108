"""Rendering through pytorch3d's rasterizer (issue 15, point 3).

Inputs are *screen* vertices: image pixels (u, v) -- pixel (col, row) has its centre at
(u, v) = (col, row), as the project's landmarks -- and a depth where larger is nearer (the camera
frame's Z of :mod:`occgui.morphable.camera`). They are mapped to pytorch3d's NDC (+X left, +Y up,
pixel centres at ``1 - (2i + 1) / S``, smaller z nearer) and rasterised with
``rasterize_meshes``, one face per pixel, hard edges (``blur_radius = 0``).

CPU cost: pytorch3d's CPU rasterizer is the naive one (every pixel tests every face; coarse-to-fine
binning is CUDA-only), about 0.85 s for 5k faces at 224². The fit therefore renders images only
at low resolution with a coarse topology (:func:`coarse_topology`), and evaluates its photometric
term per vertex between occasional visibility passes (:func:`vertex_visibility`); on CUDA the same
functions run at full resolution with the model's own triangles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pytorch3d.ops import interpolate_face_attributes
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes

#: Added to depths so that pytorch3d's z (smaller = nearer) stays positive for faces within 1 m.
DEPTH_OFFSET = 1000.0


@dataclass(frozen=True)
class Rasterized:
    """One rasterization: face id per pixel (-1 = empty), barycentrics and depth (larger = nearer)."""

    pix_to_face: torch.Tensor   # (B, H, W) int64, face ids offset per batch element as in pytorch3d
    bary: torch.Tensor          # (B, H, W, 3)
    depth: torch.Tensor         # (B, H, W), -inf where empty

    @property
    def mask(self) -> torch.Tensor:
        return self.pix_to_face >= 0


def to_ndc(screen: torch.Tensor, size: int) -> torch.Tensor:
    """(B, N, 3) pixels + depth (larger nearer) -> pytorch3d NDC (B, N, 3) for a square image."""
    x = 1.0 - (2.0 * screen[..., 0] + 1.0) / size
    y = 1.0 - (2.0 * screen[..., 1] + 1.0) / size
    z = DEPTH_OFFSET - screen[..., 2]
    return torch.stack([x, y, z], -1)


def rasterize(screen: torch.Tensor, faces: torch.Tensor, size: int) -> Rasterized:
    """Rasterise (B, N, 3) screen vertices with (F, 3) triangles into a ``size`` x ``size`` image."""
    if screen.ndim == 2:
        screen = screen[None]
    b = screen.shape[0]
    faces = torch.as_tensor(faces, dtype=torch.int64, device=screen.device)
    meshes = Meshes(verts=list(to_ndc(screen.float(), size)), faces=[faces] * b)   # the rasterizer is float32
    p2f, zbuf, bary, _d = rasterize_meshes(meshes, image_size=size, blur_radius=0.0, faces_per_pixel=1,
                                           bin_size=0 if screen.device.type == "cpu" else None,
                                           perspective_correct=False, cull_backfaces=False)
    p2f = p2f[..., 0]
    depth = torch.where(p2f >= 0, DEPTH_OFFSET - zbuf[..., 0], torch.full_like(zbuf[..., 0], -float("inf")))
    return Rasterized(pix_to_face=p2f, bary=bary[..., 0, :], depth=depth)


def interpolate(r: Rasterized, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Per-pixel barycentric interpolation of (B, N, D) vertex attributes -> (B, H, W, D), 0 outside."""
    if attributes.ndim == 2:
        attributes = attributes[None]
    faces = torch.as_tensor(faces, dtype=torch.int64, device=attributes.device)
    face_attr = attributes[:, faces].reshape(-1, 3, attributes.shape[-1])   # packed like pytorch3d
    out = interpolate_face_attributes(r.pix_to_face[..., None], r.bary[..., None, :].to(face_attr.dtype), face_attr)
    return out[..., 0, :]


def render_colors(screen: torch.Tensor, faces, colors: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render per-vertex colours: ((B, H, W, C) image, (B, H, W) bool coverage)."""
    r = rasterize(screen, faces, size)
    return interpolate(r, faces, colors), r.mask


def vertex_normals(vertices: torch.Tensor, faces) -> torch.Tensor:
    """Area-weighted unit vertex normals of (..., N, 3) vertices, counter-clockwise triangles."""
    faces = torch.as_tensor(faces, dtype=torch.int64, device=vertices.device)
    a, b, c = (vertices[..., faces[:, i], :] for i in range(3))
    fn = torch.cross(b - a, c - a, dim=-1)
    n = torch.zeros_like(vertices)
    for i in range(3):
        n = n.index_add(-2, faces[:, i], fn)
    return F.normalize(n, dim=-1, eps=1e-12)


def vertex_visibility(screen: torch.Tensor, faces, size: int, normals: torch.Tensor | None = None,
                      tolerance: float = 1.0, scale: float = 1.0) -> torch.Tensor:
    """(B, N) bool: vertices in the image whose depth is within ``tolerance`` (depth units) of the
    nearest surface at their pixel, rasterised at ``size`` (screen pixels are multiplied by
    ``scale`` first, e.g. to rasterise a 512-px crop at 64 px) and, with normals, facing the camera."""
    with torch.no_grad():
        s = screen if screen.ndim == 3 else screen[None]
        s = torch.cat([s[..., :2] * scale, s[..., 2:]], -1)
        r = rasterize(s, faces, size)
        col = torch.round(s[..., 0]).long()
        row = torch.round(s[..., 1]).long()
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        bidx = torch.arange(s.shape[0], device=s.device)[:, None].expand_as(col)
        zbuf = r.depth[bidx, row.clamp(0, size - 1), col.clamp(0, size - 1)]
        vis = inside & (s[..., 2] >= zbuf - tolerance)
        if normals is not None:
            n = normals if normals.ndim == 3 else normals[None]
            vis &= n[..., 2] > 0
        return vis


def coarse_topology(vertices_xy: np.ndarray, faces: np.ndarray, keep: np.ndarray,
                    cell: float) -> tuple[np.ndarray, np.ndarray]:
    """A coarse triangulation for low-cost rendering: the vertices nearest to the centres of a
    ``cell``-sized grid over the frontal (X, Y) projection (plus every id in ``keep``), Delaunay
    re-triangulated in that plane; triangles whose centroid or edge midpoints fall outside the
    original surface (holes: eyes, mouth; concave borders) are dropped.
    Returns (vertex ids (M,), triangles (T, 3) indexing those ids)."""
    from scipy.spatial import Delaunay
    from skimage.draw import polygon

    xy = np.asarray(vertices_xy, np.float64)
    cells = np.floor((xy - xy.min(0)) / cell).astype(np.int64)
    centre = (cells + 0.5) * cell + xy.min(0)
    d = np.linalg.norm(xy - centre, axis=1)
    used = np.unique(np.asarray(faces).ravel())
    key = cells[used, 0] * 1_000_003 + cells[used, 1]
    order = np.lexsort((d[used], key))
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    ids = np.unique(np.concatenate([used[order][first], np.asarray(keep, np.int64)]))
    tri = Delaunay(xy[ids]).simplices
    # inside test against the original surface, drawn in the frontal plane
    res = 512
    lo, hi = xy[used].min(0), xy[used].max(0)
    span = float((hi - lo).max()) * 1.02
    org = lo - 0.01 * span
    q = (xy - org) / span * (res - 1)
    cover = np.zeros((res, res), bool)
    for t in np.asarray(faces):
        rr, cc = polygon(q[t, 1], q[t, 0], shape=cover.shape)
        cover[rr, cc] = True
        cover[np.round(q[t, 1]).astype(int).clip(0, res - 1), np.round(q[t, 0]).astype(int).clip(0, res - 1)] = True

    def inside(p):
        r = (p - org) / span * (res - 1)
        return cover[np.clip(np.round(r[:, 1]).astype(int), 0, res - 1),
                     np.clip(np.round(r[:, 0]).astype(int), 0, res - 1)]

    p = xy[ids][tri]
    ok = inside(p.mean(1))
    for i, j in ((0, 1), (1, 2), (2, 0)):
        ok &= inside(0.5 * (p[:, i] + p[:, j]))
    tri = tri[ok]
    # counter-clockwise in the frontal view (Y up)
    a, b, c = (xy[ids][tri[:, k]] for k in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tri[cross < 0] = tri[cross < 0][:, ::-1]
    return ids, tri.astype(np.int64)
