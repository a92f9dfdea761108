"""Per-vertex inputs of the texture GCN (:mod:`.gcn_refiner`): what the photo, I_out and the
fitted lighting say about every vertex of a morphable mesh (numpy only).

For a mesh with per-vertex SH irradiance (``FaceMesh.fit.shading``, or the training data's
least-squares light), every vertex gets, in *albedo units* (colour / 255 / irradiance, the
irradiance clamped below as the de-lit texture clamps it, :func:`shading_floor`):

* ``obs`` -- I_out bilinearly sampled at the vertex's crop projection, de-lit (0 where the vertex
  is hidden);
* ``visible`` -- the crop's depth buffer does not hold a surface in front of the vertex, its normal
  faces the camera and it projects into the crop;
* ``occluded`` -- visible, but M_alpha's occluder or I_out's re-synthesised pixels (dilated as the
  texture stage dilates them, ``uv_sampler.occluder_mask``) cover its projection;
* ``clean`` = visible and not occluded: the photo's own colour;
* the mirror vertex's ``obs`` and ``clean`` (the model's UV chart is mirror-symmetric: the mirror
  vertex is the one nearest to (1 - u, v));
* ``fill`` -- the harmonic extension over the mesh graph of the ``clean`` vertices' ``obs``
  (uniform-weight Laplace equation, clean vertices fixed): the long-range guess a few graph
  convolutions cannot reach;
* the irradiance itself, the UV position (u, v, |2u - 1|) and the normal's z.

:attr:`VertexInputs.base` is the per-vertex version of the texture stage's rules (photo colour
where clean; else the mirror vertex's when that one is clean; else I_out where visible; else the
fill) -- the unrefined estimate the GCN corrects.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.spatial import cKDTree

from .rasterize import rasterize

#: Number of per-vertex input channels (see :func:`vertex_inputs`).
NUM_FEATURES = 19
#: Names of the input channels, in order (the checkpoint card lists them).
FEATURE_NAMES = ("obs_r", "obs_g", "obs_b", "visible", "occluded", "mirror_r", "mirror_g", "mirror_b",
                 "mirror_clean", "fill_r", "fill_g", "fill_b", "shading_r", "shading_g", "shading_b",
                 "u", "v", "abs_2u_minus_1", "normal_z")
VERTEX_DEPTH_TOLERANCE_MM = 2.0   # a surface more than this in front of a vertex hides it
FRONT_FACING_MIN = 0.05           # minimum z of a vertex's unit normal to count as facing the camera
MIN_SHADING = 0.1                 # as uv_sampler.MIN_SHADING / MIN_SHADING_RATIO: de-lighting never
MIN_SHADING_RATIO = 0.6           # divides by less (grazing normals of a second-order SH fit)
MIRROR_MAX_UV = 0.01              # a vertex farther than this (UV units) from (1-u, v) has no mirror
HARMONIC_RIDGE = 1e-4             # ties vertices with no path to a clean one to the clean mean


@dataclass(frozen=True)
class VertexInputs:
    """The GCN's inputs for one mesh (N vertices)."""

    features: np.ndarray    # (N, NUM_FEATURES) float32
    base: np.ndarray        # (N, 3) float32, the unrefined per-vertex albedo
    visible: np.ndarray     # (N,) bool
    occluded: np.ndarray    # (N,) bool, visible and covered by the occluder / re-synthesised pixels
    shading: np.ndarray     # (N, 3) float32, the irradiance after the floor (what colours were divided by)

    @property
    def clean(self) -> np.ndarray:
        return self.visible & ~self.occluded


@dataclass(frozen=True)
class MeshGraph:
    """Topology-only data of a mesh: its undirected edges, mirror map and graph Laplacian."""

    edges: np.ndarray       # (E, 2) int64, each undirected edge once
    mirror: np.ndarray      # (N,) int64 mirror vertex, -1 where none
    laplacian: sp.csr_matrix  # (N, N) degree - adjacency


_GRAPHS: dict[str, MeshGraph] = {}


def mesh_graph(faces: np.ndarray, uv: np.ndarray) -> MeshGraph:
    """The (cached) :class:`MeshGraph` of a triangle list and its UVs."""
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    uv = np.ascontiguousarray(uv, dtype=np.float64)
    key = hashlib.sha1(faces.tobytes() + uv.tobytes() + str(faces.shape).encode()).hexdigest()
    hit = _GRAPHS.get(key)
    if hit is None:
        n = len(uv)
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        e = np.unique(np.sort(e, axis=1), axis=0)
        e = e[e[:, 0] != e[:, 1]]
        adj = sp.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                            shape=(n, n)).tocsr()
        adj.data[:] = 1.0
        lap = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()
        dist, idx = cKDTree(uv).query(np.column_stack([1.0 - uv[:, 0], uv[:, 1]]))
        mirror = np.where(dist <= MIRROR_MAX_UV, idx, -1).astype(np.int64)
        hit = MeshGraph(edges=e.astype(np.int64), mirror=mirror, laplacian=lap)
        if len(_GRAPHS) >= 4:
            _GRAPHS.pop(next(iter(_GRAPHS)))
        _GRAPHS[key] = hit
    return hit


def shading_floor(shading: np.ndarray, where: np.ndarray | None = None) -> float:
    """The smallest irradiance de-lighting divides by: :data:`MIN_SHADING`, or
    :data:`MIN_SHADING_RATIO` times the median (over ``where``) of the channel-mean irradiance."""
    s = np.asarray(shading, np.float32)
    if where is not None:
        s = s[where]
    if not len(s):
        return MIN_SHADING
    return max(MIN_SHADING, MIN_SHADING_RATIO * float(np.median(s.reshape(-1, 3).mean(axis=1))))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) area-weighted unit vertex normals (counter-clockwise triangles)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for i in range(3):
        np.add.at(n, f[:, i], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def vertex_visibility(crop_xy: np.ndarray, depth: np.ndarray, faces: np.ndarray, normals: np.ndarray,
                      size: int) -> np.ndarray:
    """(N,) bool: the vertex projects into the ``size``² crop, faces the camera, and the crop's depth
    buffer (larger = nearer) holds no surface more than :data:`VERTEX_DEPTH_TOLERANCE_MM` in front."""
    xy = np.asarray(crop_xy, np.float64)
    zb = rasterize(xy, depth, faces, size, size).depth
    empty = ~np.isfinite(zb)
    zb = np.where(empty, cv2.dilate(np.where(empty, np.float32(-1e9), zb), np.ones((3, 3), np.uint8)), zb)
    inside = (xy[:, 0] > -0.5) & (xy[:, 0] < size - 0.5) & (xy[:, 1] > -0.5) & (xy[:, 1] < size - 0.5)
    col = np.clip(np.rint(xy[:, 0]), 0, size - 1).astype(np.intp)
    row = np.clip(np.rint(xy[:, 1]), 0, size - 1).astype(np.intp)
    return inside & (normals[:, 2] > FRONT_FACING_MIN) & (depth >= zb[row, col] - VERTEX_DEPTH_TOLERANCE_MM)


def sample_vertices(image: np.ndarray, crop_xy: np.ndarray) -> np.ndarray:
    """(N, C) float32 bilinear samples of ``image`` at crop positions ``crop_xy`` (0 outside)."""
    xy = np.asarray(crop_xy, np.float32)
    mx = np.ascontiguousarray(xy[None, :, 0])
    my = np.ascontiguousarray(xy[None, :, 1])
    out = cv2.remap(np.ascontiguousarray(image), mx, my, interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)[0].astype(np.float32)
    return out[:, None] if out.ndim == 1 else out


def harmonic_fill(values: np.ndarray, known: np.ndarray, laplacian: sp.csr_matrix) -> np.ndarray:
    """``values`` (N, C) kept on ``known`` vertices, the solution of the graph Laplace equation
    elsewhere (ties to the known mean by :data:`HARMONIC_RIDGE`, so every component is solvable)."""
    out = np.array(values, np.float64)
    known = np.asarray(known, bool)
    if not known.any():
        out[:] = 0.5
        return out.astype(np.float32)
    mean = out[known].mean(axis=0)
    u = np.flatnonzero(~known)
    if not len(u):
        return out.astype(np.float32)
    k = np.flatnonzero(known)
    a = laplacian[u][:, u] + HARMONIC_RIDGE * sp.eye(len(u))
    b = -(laplacian[u][:, k] @ out[k]) + HARMONIC_RIDGE * mean[None, :]
    out[u] = spla.splu(a.tocsc()).solve(np.asarray(b))
    return out.astype(np.float32)


def vertex_inputs(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, crop_xy: np.ndarray,
                  iout: np.ndarray, occluder: np.ndarray, shading: np.ndarray,
                  region: np.ndarray | None = None) -> VertexInputs:
    """The GCN inputs (module docstring) of a mesh: camera-frame ``vertices`` (mm, Z to the viewer),
    ``faces``, ``uv``, the vertices' ``crop_xy`` positions, I_out (``iout``, SxSx3 uint8), the
    occluder mask of the crop (SxS bool) and the per-vertex irradiance ``shading`` (N, 3);
    ``region`` (N,) bool: the vertices whose irradiance sets the floor (default: all)."""
    n = len(vertices)
    size = int(iout.shape[0])
    graph = mesh_graph(faces, uv)
    normals = vertex_normals(vertices, faces)
    visible = vertex_visibility(crop_xy, np.asarray(vertices, np.float64)[:, 2], faces, normals, size)
    xy = np.asarray(crop_xy, np.float64)
    col = np.clip(np.rint(xy[:, 0]), 0, size - 1).astype(np.intp)
    row = np.clip(np.rint(xy[:, 1]), 0, size - 1).astype(np.intp)
    occluded = visible & np.asarray(occluder, bool)[row, col]
    clean = visible & ~occluded
    sh = np.asarray(shading, np.float32)
    sh = np.maximum(sh, shading_floor(sh, region))
    obs = np.where(visible[:, None], sample_vertices(iout, crop_xy) / 255.0 / sh, 0.0).astype(np.float32)
    m = graph.mirror
    has_mirror = m >= 0
    mirror_clean = has_mirror & clean[np.where(has_mirror, m, 0)]
    mirror_obs = np.where(mirror_clean[:, None], obs[np.where(has_mirror, m, 0)], 0.0)
    fill = harmonic_fill(obs, clean, graph.laplacian)
    u = np.asarray(uv, np.float32)
    features = np.column_stack([obs, visible, occluded, mirror_obs, mirror_clean, fill, sh,
                                u[:, 0], u[:, 1], np.abs(2.0 * u[:, 0] - 1.0), normals[:, 2]]).astype(np.float32)
    base = np.where(clean[:, None], obs, np.where(mirror_clean[:, None], mirror_obs,
                                                  np.where(visible[:, None], obs, fill))).astype(np.float32)
    if features.shape != (n, NUM_FEATURES):
        raise AssertionError(f"vertex features {features.shape}, expected ({n}, {NUM_FEATURES})")
    return VertexInputs(features=features, base=base, visible=visible, occluded=occluded, shading=sh)
