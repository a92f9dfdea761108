"""Poisson (gradient-domain) blending of synthesized content into a hole (Pérez et al. 2003).

The default de-occlusion (§3.3) assembles a guide image G inside the hole (mirrored face,
mean-face template, inpainting); :func:`poisson_fill` returns the image F that equals the photo
outside the hole and, inside, has G's gradients while meeting the photo at the hole's border:
``F = G + h`` with ``h`` harmonic in the hole and ``h = I - G`` on its border (the "seamless
cloning" of ``cv2.seamlessClone``, without its bounding-box and border limitations). With
``log_domain`` the correction is multiplicative (``log F = log G + h``), which keeps the
contrast of dark features such as pupils and brows when the lighting differs.

The sparse 5-point Laplacian of the hole is factorised once (SuperLU) and solved for the three
channels; pixels outside the hole are never modified.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu


def laplacian_system(hole: np.ndarray) -> tuple[csc_matrix, np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The hole's Laplacian (Dirichlet at non-hole neighbours, Neumann at the image border).

    Returns (A, index map (-1 outside the hole), boundary links): for each of the four
    directions, (row of the hole pixel in A, y, x of its non-hole neighbour).
    """
    h, w = hole.shape
    idx = -np.ones((h, w), dtype=np.int64)
    ys, xs = np.nonzero(hole)
    n = len(ys)
    idx[ys, xs] = np.arange(n)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    links = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        diag[ok] += 1.0
        k = np.nonzero(ok)[0]
        nb = idx[ny[k], nx[k]]
        inner = nb >= 0
        rows.append(k[inner])
        cols.append(nb[inner])
        vals.append(-np.ones(int(inner.sum())))
        outer = k[~inner]
        links.append((outer, ny[outer], nx[outer]))
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag + 1e-9)
    a = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return a, idx, links


def poisson_fill(image: np.ndarray, guide: np.ndarray, hole: np.ndarray, *, log_domain: bool = True) -> np.ndarray:
    """Blend ``guide`` (HxWxC float, meaningful in the hole and on its 1-px border) into ``image``
    (HxWxC) inside ``hole`` (HxW bool). Returns a float32 HxWxC image equal to ``image`` outside."""
    img = np.asarray(image, dtype=np.float64)
    g = np.asarray(guide, dtype=np.float64)
    out = img.astype(np.float32).copy()
    if not hole.any():
        return out
    if log_domain:
        img_t, g_t = np.log1p(np.maximum(img, 0.0)), np.log1p(np.maximum(g, 0.0))
    else:
        img_t, g_t = img, g
    a, idx, links = laplacian_system(hole)
    lu = splu(a)
    ys, xs = np.nonzero(hole)
    diff = img_t - g_t                     # h on the border
    for c in range(img.shape[2]):
        b = np.zeros(len(ys))
        for k, by, bx in links:
            np.add.at(b, k, diff[by, bx, c])
        hsol = lu.solve(b)
        v = g_t[ys, xs, c] + hsol
        out[ys, xs, c] = np.expm1(v) if log_domain else v
    return out
