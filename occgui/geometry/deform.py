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
"""
from __future__ import annotations

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
