"""The project's UV layout of the 468-vertex face mesh: one mirror-symmetric chart for every face.

The table ``resources/geometry/face_uv_layout.npz`` is written by ``tools/build_uv_layout.py`` and
holds, for the 468 MediaPipe face-mesh vertices:

* ``uv`` (468, 2): texture coordinates in [0, 1] (u right, v up, OBJ/glTF-style before the
  image-row flip), identical for every face;
* ``mirror`` (468,): the mirror-vertex permutation, an involution that maps the mesh's edge
  graph onto itself except for three quads whose diagonal MediaPipe chose asymmetrically
  (:func:`mirror_edge_defects`), with ``uv[mirror[i]] == (1 - u_i, v_i)`` exactly, so "the symmetric
  counterpart of a texel" is a horizontal flip of the texture;
* ``landmark_uv`` (68, 2): where the 68 iBUG landmarks lie in the chart (mirror-symmetric under
  :data:`occgui.landmarks.ibug68.MIRROR`);
* ``meta``: a JSON string describing the derivation (reference photo, distortion statistics).

How the layout is derived (see the tool): the MediaPipe mesh of ``skimage.data.astronaut()`` and of
its mirror image give a reference face and the mirror permutation (Hungarian matching of one mesh
against the other mirrored back). The reference is frontalised (its symmetry plane made the
YZ plane) and made exactly left/right symmetric, and then parametrised by least-squares conformal
maps (:func:`lscm`, Lévy et al. 2002) with two pinned mid-line vertices (forehead top, chin), the
eye and mouth holes left free. The result is symmetrised, scaled into [margin, 1 - margin]
keeping its aspect, and checked for flipped triangles after the holes are filled
(:func:`occgui.geometry.topology.face_topology`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..resources import resource_path

LAYOUT_FILE = "geometry/face_uv_layout.npz"


@dataclass(frozen=True)
class UVLayout:
    uv: np.ndarray            # (468,2) float64 in [0,1]
    mirror: np.ndarray        # (468,) int64 involution
    landmark_uv: np.ndarray   # (68,2) float64
    meta: dict


@lru_cache(maxsize=None)
def load_uv_layout() -> UVLayout:
    """The shipped layout table (cached). Raises ``FileNotFoundError`` naming the tool when absent."""
    path = resource_path(LAYOUT_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run tools/build_uv_layout.py")
    with np.load(path, allow_pickle=False) as z:
        uv = np.array(z["uv"], dtype=np.float64)
        mirror = np.array(z["mirror"], dtype=np.int64)
        luv = np.array(z["landmark_uv"], dtype=np.float64)
        meta = json.loads(str(z["meta"]))
    for a in (uv, mirror, luv):
        a.setflags(write=False)
    return UVLayout(uv=uv, mirror=mirror, landmark_uv=luv, meta=meta)


def lscm(vertices: np.ndarray, faces: np.ndarray, pins: np.ndarray, pin_uv: np.ndarray) -> np.ndarray:
    """Least-squares conformal map of a triangle mesh with disk-like topology (holes allowed).

    Minimises, over all triangles T with area A_T, ``sum_T A_T |grad v - rot90(grad u)|^2`` (the
    Cauchy-Riemann residual of the map (u, v) expressed in each triangle's own orthonormal frame)
    with the ``pins`` fixed at ``pin_uv``; two pins fix the similarity freedom. Triangles must be
    consistently oriented; the map preserves their orientation (counter-clockwise stays so).
    Solved as a sparse linear least-squares problem (normal equations, ``spsolve``).
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = len(v)
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    normal = np.cross(p1 - p0, p2 - p0)
    area2 = np.linalg.norm(normal, axis=1)
    ok = area2 > 1e-12 * max(float(area2.max()), 1e-30)
    f, p0, p1, p2, normal, area2 = f[ok], p0[ok], p1[ok], p2[ok], normal[ok], area2[ok]
    e1 = (p1 - p0) / np.linalg.norm(p1 - p0, axis=1, keepdims=True)
    e2 = np.cross(normal / area2[:, None], e1)
    q = [np.stack([((p - p0) * e1).sum(1), ((p - p0) * e2).sum(1)], 1) for p in (p0, p1, p2)]
    # gradient of the barycentric function of vertex j: rot90(q_{j+2} - q_{j+1}) / (2A)
    grads = []
    for j in range(3):
        d = q[(j + 2) % 3] - q[(j + 1) % 3]
        grads.append(np.stack([-d[:, 1], d[:, 0]], 1) / area2[:, None])
    w = np.sqrt(area2 / 2.0)
    m = len(f)
    rows, cols, vals = [], [], []
    for j in range(3):
        gx, gy = grads[j][:, 0] * w, grads[j][:, 1] * w
        vid = f[:, j]
        # residual 1: du/dx - dv/dy ; residual 2: du/dy + dv/dx ; unknowns [u (n) | v (n)]
        rows += [np.arange(m), np.arange(m), m + np.arange(m), m + np.arange(m)]
        cols += [vid, n + vid, vid, n + vid]
        vals += [gx, -gy, gy, gx]
    a = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * m, 2 * n))
    pins = np.asarray(pins, dtype=np.int64)
    fixed = np.concatenate([pins, n + pins])
    fixed_val = np.concatenate([np.asarray(pin_uv, dtype=np.float64)[:, 0], np.asarray(pin_uv, dtype=np.float64)[:, 1]])
    free = np.setdiff1d(np.arange(2 * n), fixed)
    a_free, a_fixed = a[:, free], a[:, fixed]
    rhs = -(a_fixed @ fixed_val)
    x = spla.spsolve((a_free.T @ a_free).tocsc(), a_free.T @ rhs)
    sol = np.zeros(2 * n)
    sol[free] = x
    sol[fixed] = fixed_val
    return np.stack([sol[:n], sol[n:]], axis=1)


def symmetrize_uv(uv: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Average a layout with its mirror image so that ``uv[mirror[i]] == (1 - u_i, v_i)`` exactly."""
    uv = np.asarray(uv, dtype=np.float64)
    flipped = np.stack([1.0 - uv[mirror, 0], uv[mirror, 1]], axis=1)
    return 0.5 * (uv + flipped)


def fit_to_unit_square(uv: np.ndarray, margin: float) -> np.ndarray:
    """Scale and translate ``uv`` uniformly into ``[margin, 1 - margin]^2``, centred."""
    uv = np.asarray(uv, dtype=np.float64)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    s = (1.0 - 2.0 * margin) / float((hi - lo).max())
    return (uv - 0.5 * (lo + hi)) * s + 0.5


def mirror_edge_defects(edges: np.ndarray, mirror: np.ndarray) -> list[tuple[int, int]]:
    """Edges that ``mirror`` does not map onto an edge; raises ``ValueError`` unless tolerable.

    ``mirror`` must be an involution. MediaPipe's tessellation is symmetric except for a few quads
    whose diagonal was chosen asymmetrically (the mirror quad uses the other diagonal); such edges
    are returned. Any other unmapped edge means the permutation is wrong.
    """
    mirror = np.asarray(mirror)
    if not np.array_equal(mirror[mirror], np.arange(len(mirror))):
        raise ValueError("the mirror permutation is not an involution")
    und = {(min(a, b), max(a, b)) for a, b in np.asarray(edges).tolist()}
    adj: dict[int, set[int]] = {}
    for a, b in und:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    defects = []
    for a, b in sorted(und):
        ma, mb = int(mirror[a]), int(mirror[b])
        if (min(ma, mb), max(ma, mb)) in und:
            continue
        opposite = sorted(adj[a] & adj[b])
        mo = sorted(int(mirror[o]) for o in opposite)
        if len(mo) != 2 or (mo[0], mo[1]) not in und:
            raise ValueError(f"edge {(a, b)} has no mirror edge and is not a flipped quad diagonal")
        defects.append((a, b))
    return defects
