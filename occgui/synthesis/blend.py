"""Poisson (gradient-domain) blending of synthesized content into a hole (Pérez et al. 2003).

The default de-occlusion (§3.3) assembles a guide image G inside the hole (mirrored face,
mean-face template, inpainting); :func:`poisson_fill` returns the image F that equals the photo
outside the hole and, inside, has G's gradients while meeting the photo at the hole's border:
``F = G + h`` with ``h`` harmonic in the hole and ``h = I - G`` on its border (the "seamless
cloning" of ``cv2.seamlessClone``, without its bounding-box and border limitations). With
``log_domain`` the correction is multiplicative (``log F = log G + h``), which keeps the
contrast of dark features such as pupils and brows when the lighting differs.

The Laplace equation for ``h`` (5-point stencil, Dirichlet at the hole's border, Neumann at the
image border) is solved with sparse direct factorisations (:func:`harmonic_fill`: directly for
small holes, coarse-grid plus exact border band for large ones); pixels outside the hole are
never modified.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import splu

#: Holes larger than this many pixels are solved on a half-resolution grid, with an exact solve in
#: a band of :data:`BAND_PX` pixels along the border (see :func:`harmonic_fill`).
DIRECT_MAX_PX = 3000
BAND_PX = 6
#: Width (chessboard distance) of the ring around the hole on which the guide must be valid.
RING_PX = 3


def laplacian_system(hole: np.ndarray) -> tuple[csr_matrix, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The hole's Laplacian (Dirichlet at non-hole neighbours, Neumann at the image border).

    Returns (A over the hole pixels in ``np.nonzero`` order, boundary links): for each of the four
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
    vals.append(diag)
    a = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return a, links


def push_pull(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the unknown pixels of ``values`` (HxWxC) smoothly from the ``known`` ones (HxW bool)
    with a push-pull pyramid (Gortler et al. 1996); known pixels keep their values."""
    v = values.astype(np.float32) * known[:, :, None]
    wgt = known.astype(np.float32)
    levels = []
    while True:
        levels.append((v, wgt))
        if min(v.shape[:2]) <= 2 or wgt.min() > 0:
            break
        v = cv2.resize(v, (max(1, v.shape[1] // 2), max(1, v.shape[0] // 2)), interpolation=cv2.INTER_AREA)
        wgt = cv2.resize(wgt, (v.shape[1], v.shape[0]), interpolation=cv2.INTER_AREA)
        if v.ndim == 2:
            v = v[:, :, None]
    v, wgt = levels[-1]
    filled = v / np.maximum(wgt, 1e-8)[:, :, None]
    for v, wgt in reversed(levels[:-1]):
        up = cv2.resize(filled, (v.shape[1], v.shape[0]), interpolation=cv2.INTER_LINEAR)
        if up.ndim == 2:
            up = up[:, :, None]
        a = np.clip(wgt, 0.0, 1.0)[:, :, None]
        filled = (v / np.maximum(wgt, 1e-8)[:, :, None]) * a + up * (1.0 - a)
    return np.where(known[:, :, None], values, filled)


def _solve(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Harmonic values on ``mask`` pixels (``np.nonzero`` order) with Dirichlet data ``values``
    (HxWxC) at their non-mask neighbours: a direct sparse solve (SuperLU)."""
    a, links = laplacian_system(mask)
    b = np.zeros((a.shape[0], values.shape[2]), np.float64)
    for k, by, bx in links:
        np.add.at(b, k, values[by, bx].astype(np.float64))
    return splu(a.tocsc(), permc_spec="MMD_AT_PLUS_A").solve(b)


def harmonic_fill(values: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Solve Laplace's equation in ``hole`` with Dirichlet data ``values`` (HxWxC, which must be
    valid on the :data:`RING_PX`-pixel ring around the hole) and Neumann conditions at the image
    border; returns HxWxC with the solution inside the hole and ``values`` elsewhere.

    Small holes are solved directly. Large ones are first solved on a half-resolution grid (the
    ring's data area-averaged), upsampled, and then solved exactly again in a band of
    :data:`BAND_PX` pixels along the border, with the upsampled solution as the band's inner
    boundary: exact at the border, where a seam would show, and within a small fraction of an
    intensity level inside, at a fraction of the cost.
    """
    out = values.astype(np.float32).copy()
    ys, xs = np.nonzero(hole)
    if len(ys) <= DIRECT_MAX_PX:
        out[ys, xs] = _solve(hole, out)
        return out
    h, w = hole.shape
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((2 * RING_PX + 1,) * 2, np.uint8)).astype(bool) & ~hole
    ext = push_pull(np.where(ring[:, :, None], out, 0.0), ring)   # only the image border's blocks use it
    size = ((w + 1) // 2, (h + 1) // 2)
    hole_c = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    val_c = cv2.resize(ext, size, interpolation=cv2.INTER_AREA)
    if val_c.ndim == 2:
        val_c = val_c[:, :, None]
    yc, xc = np.nonzero(hole_c)
    val_c[yc, xc] = _solve(hole_c, val_c)
    up = cv2.resize(val_c, (w, h), interpolation=cv2.INTER_LINEAR)
    if up.ndim == 2:
        up = up[:, :, None]
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    band = hole & (dist <= BAND_PX)
    inner = hole & ~band
    out[inner] = up[inner]
    by, bx = np.nonzero(band)
    out[by, bx] = _solve(band, out)
    return out


def poisson_fill(image: np.ndarray, guide: np.ndarray, hole: np.ndarray, *, log_domain: bool = True) -> np.ndarray:
    """Blend ``guide`` (HxWxC float, meaningful in the hole and on a :data:`RING_PX` ring around
    it) into ``image``
    (HxWxC) inside ``hole`` (HxW bool). Returns a float32 HxWxC image equal to ``image`` outside."""
    img = np.asarray(image, dtype=np.float32)
    out = img.copy()
    if not hole.any():
        return out
    g = np.asarray(guide, dtype=np.float32)
    if log_domain:
        img_t, g_t = np.log1p(np.maximum(img, 0.0)), np.log1p(np.maximum(g, 0.0))
    else:
        img_t, g_t = img, g
    diff = img_t - g_t                                   # h on the border
    hsol = harmonic_fill(diff, hole)
    ys, xs = np.nonzero(hole)
    v = g_t[ys, xs] + hsol[ys, xs]
    out[ys, xs] = np.expm1(v) if log_domain else v
    return out
