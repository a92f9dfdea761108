"""Smooth mesh deformation that moves a few handle vertices exactly and spreads the motion.

Used after a landmark correction: the 68 landmark vertices must reproject exactly onto the
corrected points while the rest of the face follows smoothly and far-away vertices barely move.

The displacement field ``d`` (one column per coordinate) minimises the *screened biharmonic*
energy ``||L d||^2 + mu ||d||^2`` subject to ``d[handles] = given``, where ``L = I - D^-1 A`` is
the mesh's uniform (graph) Laplacian. The biharmonic term makes the field smooth across the
handles; the screening term ``mu`` makes it decay away from them over about ``mu ** -0.25``
edge hops (a plain biharmonic field would extrapolate an affine motion over the whole face).
Eliminating the handles leaves one sparse symmetric positive-definite system whose matrix depends
only on the connectivity and the handle set, so it is factorised once per
:class:`ScreenedBiharmonicDeformer` and every correction costs a back-substitution.

The face mesh uses :class:`CotanBiharmonicDeformer` instead (the same energy with the cotangent
Laplacian and vertex areas of the rest mesh, so smooth in millimetres rather than in edge hops),
bounded by :func:`bounded_landmark_displacement`: local (nothing moves beyond
:data:`FAR_OUTER_MM` of a moved landmark) and fold-free (a correction too large to follow without
folding the surface is followed as far as it can be).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def uniform_laplacian(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """``I - D^-1 A`` of the mesh's edge graph (rows of isolated vertices are zero)."""
    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(num_vertices, num_vertices))
    adj.data[:] = 1.0  # edges shared by two faces were summed twice
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return (sp.diags((deg > 0).astype(np.float64)) - sp.diags(inv) @ adj).tocsr()


class ScreenedBiharmonicDeformer:
    """Displacement fields of one mesh connectivity with a fixed set of handle vertices."""

    def __init__(self, faces: np.ndarray, num_vertices: int, handles: np.ndarray, *, decay_hops: float = 12.0):
        handles = np.asarray(handles, dtype=np.int64)
        if len(np.unique(handles)) != len(handles):
            raise ValueError("handle vertices must be distinct")
        self.handles = handles
        self.num_vertices = int(num_vertices)
        lap = uniform_laplacian(faces, num_vertices)
        mu = float(decay_hops) ** -4
        q = (lap.T @ lap + mu * sp.identity(num_vertices)).tocsr()
        free = np.ones(num_vertices, dtype=bool)
        free[handles] = False
        self._free = np.flatnonzero(free)
        self._q_fh = q[self._free][:, handles].tocsr()
        self._solve = spla.factorized(q[self._free][:, self._free].tocsc())

    def displacement(self, handle_displacement: np.ndarray) -> np.ndarray:
        """(H, k) displacements of the handles -> (N, k) smooth displacement of every vertex."""
        dh = np.asarray(handle_displacement, dtype=np.float64)
        dh2 = dh.reshape(len(self.handles), -1)
        out = np.zeros((self.num_vertices, dh2.shape[1]))
        out[self.handles] = dh2
        rhs = -(self._q_fh @ dh2)
        for c in range(dh2.shape[1]):
            out[self._free, c] = self._solve(np.ascontiguousarray(rhs[:, c]))
        return out.reshape((self.num_vertices,) + dh.shape[1:])


# -- the landmark deformation of the face mesh: geometry-aware and bounded -----------------------------

#: Reach of a landmark correction (mm): the screening length of the cotangent biharmonic field.
DECAY_MM = 10.0
#: Around the moved landmarks (their old and new positions), vertices closer than FAR_INNER_MM
#: follow the field in full, those beyond FAR_OUTER_MM do not move at all (smooth step between).
FAR_INNER_MM = 40.0
FAR_OUTER_MM = 60.0
#: A deformed triangle is folded when its area, relative to before, falls under this (the
#: Jacobian determinant of the map in the image plane).
MIN_JACOBIAN = 0.05
#: Triangles checked for folding: not slivers in the image plane (2*area / longest edge^2) and
#: facing the camera (projected area / 3D area, the cosine of the angle to the view direction).
MIN_SHAPE = 0.05
MIN_FACING = 0.35


def cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """The cotangent Laplacian ``L`` (positive semi-definite, rows sum to 0) and the lumped
    vertex areas of a triangle mesh (3D or 2D vertices)."""
    x = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = len(x)
    if x.shape[1] == 2:
        x = np.column_stack([x, np.zeros(n)])
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j, o = f[:, k], f[:, (k + 1) % 3], f[:, (k + 2) % 3]
        u, v = x[i] - x[o], x[j] - x[o]
        cot = (u * v).sum(1) / np.maximum(np.linalg.norm(np.cross(u, v), axis=1), 1e-12)
        rows += [i, j]
        cols += [j, i]
        vals += [0.5 * cot, 0.5 * cot]
    w = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    lap = (sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w).tocsr()
    tri_area = 0.5 * np.linalg.norm(np.cross(x[f[:, 1]] - x[f[:, 0]], x[f[:, 2]] - x[f[:, 0]]), axis=1)
    area = np.zeros(n)
    for k in range(3):
        np.add.at(area, f[:, k], tri_area / 3.0)
    return lap, area


class CotanBiharmonicDeformer:
    """Like :class:`ScreenedBiharmonicDeformer`, with the mesh's geometry: the energy is
    ``d^T (L^T M^-1 L + decay_mm^-4 M) d`` with the cotangent Laplacian ``L`` and the lumped
    areas ``M`` of the rest mesh, so the field is smooth *in millimetres* and decays over about
    ``decay_mm`` whatever the density of the vertices. (The uniform graph Laplacian is smooth in
    edge hops only: where the subdivided face mesh is dense -- around the mouth and the eyes --
    its field changed by several millimetres per millimetre and folded the surface after a drag
    of a few pixels, the "sliver" of issue 17.) Factorised once per rest mesh and handle set."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, handles: np.ndarray, *, decay_mm: float = DECAY_MM):
        handles = np.asarray(handles, dtype=np.int64)
        if len(np.unique(handles)) != len(handles):
            raise ValueError("handle vertices must be distinct")
        n = len(vertices)
        self.handles = handles
        self.num_vertices = n
        lap, area = cotangent_laplacian(vertices, faces)
        area = np.maximum(area, 1e-12)
        q = (lap.T @ sp.diags(1.0 / area) @ lap + float(decay_mm) ** -4 * sp.diags(area)).tocsr()
        free = np.ones(n, dtype=bool)
        free[handles] = False
        self._free = np.flatnonzero(free)
        self._q_fh = q[self._free][:, handles].tocsr()
        self._solve = spla.factorized(q[self._free][:, self._free].tocsc())

    def displacement(self, handle_displacement: np.ndarray) -> np.ndarray:
        """(H, k) displacements of the handles -> (N, k) smooth displacement of every vertex."""
        dh = np.asarray(handle_displacement, dtype=np.float64).reshape(len(self.handles), -1)
        out = np.zeros((self.num_vertices, dh.shape[1]))
        out[self.handles] = dh
        rhs = -(self._q_fh @ dh)
        for c in range(dh.shape[1]):
            out[self._free, c] = self._solve(np.ascontiguousarray(rhs[:, c]))
        return out


def _signed_areas(xy: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a = xy[faces[:, 1]] - xy[faces[:, 0]]
    b = xy[faces[:, 2]] - xy[faces[:, 0]]
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def checked_triangles(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Triangles whose folding matters: facing the camera (their normal within about 70 degrees of
    the view direction, when 3D ``vertices`` are given) and not slivers in the image plane.
    Triangles seen edge-on -- along the silhouette, the sides of the nose -- turn away under any
    motion in the image plane and are not looked at."""
    v = np.asarray(vertices, dtype=np.float64)
    xy = v[:, :2]
    area2 = _signed_areas(xy, faces)
    longest2 = np.max([((xy[faces[:, k]] - xy[faces[:, (k + 1) % 3]]) ** 2).sum(1) for k in range(3)], axis=0)
    ok = area2 > MIN_SHAPE * longest2
    if v.shape[1] == 3:
        n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
        ok &= area2 > MIN_FACING * np.linalg.norm(n, axis=1)
    return ok


def jacobians(xy: np.ndarray, faces: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Per triangle, the determinant of the Jacobian of ``x -> x + displacement`` in the image
    plane (the area ratio after / before; <= 0: folded)."""
    return _signed_areas(np.asarray(xy) + displacement, faces) / _signed_areas(np.asarray(xy), faces)


def fold_free_fraction(xy: np.ndarray, faces: np.ndarray, displacement: np.ndarray,
                       checked: np.ndarray | None = None) -> float:
    """The largest ``t`` in [0, 1] for which ``xy + t * displacement`` folds no checked triangle
    (every Jacobian stays above :data:`MIN_JACOBIAN`); 1.0 when the full displacement is fine.

    The signed area of a triangle is a quadratic in ``t``; its smallest root above 0 where the
    area ratio reaches MIN_JACOBIAN is found in closed form per triangle."""
    xy = np.asarray(xy, dtype=np.float64)
    f = faces if checked is None else faces[checked]
    p = [xy[f[:, k]] for k in range(3)]
    d = [displacement[f[:, k]] for k in range(3)]
    a, b = p[1] - p[0], p[2] - p[0]
    da, db = d[1] - d[0], d[2] - d[0]
    area0 = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    # area(t) = area0 + t * c1 + t^2 * c2; fold when area(t) <= MIN_JACOBIAN * area0
    c1 = a[:, 0] * db[:, 1] - a[:, 1] * db[:, 0] + da[:, 0] * b[:, 1] - da[:, 1] * b[:, 0]
    c2 = da[:, 0] * db[:, 1] - da[:, 1] * db[:, 0]
    c0 = (1.0 - MIN_JACOBIAN) * area0
    t = np.full(len(f), np.inf)
    lin = np.abs(c2) < 1e-15 * np.maximum(np.abs(c1), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        tl = -c0 / c1
        t[lin] = np.where(tl[lin] > 0, tl[lin], np.inf)
        disc = c1 * c1 - 4.0 * c2 * c0
        sq = np.sqrt(np.maximum(disc, 0.0))
        r1 = (-c1 - sq) / (2.0 * c2)
        r2 = (-c1 + sq) / (2.0 * c2)
    quad = ~lin & (disc >= 0)
    r1 = np.where(quad & (r1 > 0), r1, np.inf)
    r2 = np.where(quad & (r2 > 0), r2, np.inf)
    t[~lin] = np.minimum(r1, r2)[~lin]
    first = float(np.min(t)) if len(t) else np.inf
    return 1.0 if first > 1.0 else max(0.0, first * 0.999)


def far_falloff(xy: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """1 within :data:`FAR_INNER_MM` of any of ``centres``, 0 beyond :data:`FAR_OUTER_MM`, a smooth
    step between."""
    dist = np.min(np.linalg.norm(np.asarray(xy)[:, None, :] - np.asarray(centres)[None], axis=2), axis=1)
    s = np.clip((FAR_OUTER_MM - dist) / (FAR_OUTER_MM - FAR_INNER_MM), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


@dataclass(frozen=True)
class LandmarkDeformation:
    """The image-plane displacement of every vertex after a landmark correction, and how far it
    goes: ``fraction`` 1.0 means the moved landmark vertices land exactly on the corrected points;
    below 1 the correction was so large that following it further would fold the surface, and
    every vertex moved that fraction of the way."""

    displacement: np.ndarray      # (N, 2) mm
    fraction: float


def bounded_landmark_displacement(deformer: CotanBiharmonicDeformer, xy: np.ndarray, faces: np.ndarray,
                                  handle_displacement: np.ndarray, rest: np.ndarray | None = None
                                  ) -> LandmarkDeformation:
    """The deformation of a landmark correction, bounded three ways (issue 17: "a 15 px
    mouth-corner drag leaves a sliver of mesh sticking out past the cheek"):

    1. smooth in millimetres (:class:`CotanBiharmonicDeformer`), the unmoved landmarks fixed;
    2. local: vertices farther than :data:`FAR_OUTER_MM` from every moved landmark (old or new
       position) do not move, and the field fades out from :data:`FAR_INNER_MM` on;
    3. fold-free: when the field would fold a triangle facing the camera (``rest``: the 3D rest
       vertices, to tell; :func:`checked_triangles`), it is applied only as far as it can be
       without folding any (:func:`fold_free_fraction`).
    """
    xy = np.asarray(xy, dtype=np.float64)
    dh = np.asarray(handle_displacement, dtype=np.float64).reshape(len(deformer.handles), 2)
    moved = np.linalg.norm(dh, axis=1) > 0.0
    if not moved.any():
        return LandmarkDeformation(np.zeros_like(xy), 1.0)
    disp = deformer.displacement(dh)
    start = xy[deformer.handles[moved]]
    env = far_falloff(xy, np.vstack([start, start + dh[moved]]))
    env[deformer.handles] = 1.0                      # every landmark vertex exactly where it is told
    disp *= env[:, None]
    t = fold_free_fraction(xy, faces, disp, checked_triangles(rest if rest is not None else xy, faces))
    return LandmarkDeformation(disp * t, t)


_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def cached_cotan_deformer(vertices: np.ndarray, faces: np.ndarray, handles) -> CotanBiharmonicDeformer:
    """The :class:`CotanBiharmonicDeformer` of this rest mesh and handle set, factorised once: every
    further correction of the same photo's landmarks costs a back-substitution."""
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    h = tuple(int(i) for i in handles)
    key = (hashlib.sha1(v.tobytes()).hexdigest(), hashlib.sha1(f.tobytes()).hexdigest(), h)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    deformer = CotanBiharmonicDeformer(v, f, np.array(h))
    with _CACHE_LOCK:
        _CACHE[key] = deformer
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return deformer
