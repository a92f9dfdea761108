"""Piecewise-affine (Delaunay) warps between point sets, used by the de-occlusion stage (§3.3).

A :class:`PiecewiseAffine` is built from corresponding ``dst`` and ``src`` points: the plane of
``dst`` is triangulated (Delaunay) and every triangle maps affinely onto the triangle of the
same vertices in ``src``. :meth:`PiecewiseAffine.map` gives, for destination pixels, where to
sample the source image; :func:`sample` resamples an image there (``cv2.remap``). Only the
pixels that are asked for are mapped, so filling a small hole stays cheap.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

_ROW = 4096  # samples per row of the remap maps


class PiecewiseAffine:
    """Maps points of the ``dst`` frame to the ``src`` frame through a Delaunay triangulation of ``dst``."""

    def __init__(self, dst: np.ndarray, src: np.ndarray):
        dst = np.asarray(dst, dtype=np.float64)
        src = np.asarray(src, dtype=np.float64)
        if dst.shape != src.shape or dst.ndim != 2 or dst.shape[1] != 2 or len(dst) < 3:
            raise ValueError(f"need two (N,2) point sets of equal size, got {dst.shape} and {src.shape}")
        self.dst, self.src = dst, src
        self.tri = Delaunay(dst)
        simplices = self.tri.simplices
        # per triangle: 3x3 affine (dst homogeneous -> src), solved from its three vertices
        d = np.concatenate([dst[simplices], np.ones((len(simplices), 3, 1))], axis=2)   # (T,3,3)
        s = src[simplices]                                                             # (T,3,2)
        self._affine = np.linalg.solve(d + 1e-12 * np.eye(3), s)                        # (T,3,2)
        self._index: tuple[np.ndarray, np.ndarray] | None = None

    def _raster(self) -> tuple[np.ndarray, np.ndarray]:
        """Triangle index of every pixel centre of the triangulation's bounding box (-1 outside),
        drawn once with 1/16-px vertex precision; (index image, integer origin)."""
        if self._index is None:
            lo = np.floor(self.dst.min(axis=0)).astype(np.int64) - 1
            hi = np.ceil(self.dst.max(axis=0)).astype(np.int64) + 2
            img = np.full((int(hi[1] - lo[1]), int(hi[0] - lo[0])), -1, np.int32)
            tris = np.round((self.dst[self.tri.simplices] - lo) * 16).astype(np.int32)
            for k, t in enumerate(tris):
                cv2.fillConvexPoly(img, t, int(k), lineType=cv2.LINE_8, shift=4)
            self._index = (img, lo)
        return self._index

    def find(self, xy: np.ndarray) -> np.ndarray:
        """Triangle index (-1 outside) of ``(N,2)`` points, looked up at their nearest pixel centre."""
        img, lo = self._raster()
        q = np.round(np.asarray(xy, dtype=np.float64) - lo).astype(np.int64)
        ok = (q[:, 0] >= 0) & (q[:, 1] >= 0) & (q[:, 0] < img.shape[1]) & (q[:, 1] < img.shape[0])
        out = np.full(len(q), -1, np.int64)
        out[ok] = img[q[ok, 1], q[ok, 0]]
        return out

    def map(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N,2)`` destination points -> (``(N,2)`` source points, ``(N,)`` bool inside the mesh)."""
        xy = np.asarray(xy, dtype=np.float64)
        simplex = self.find(xy)
        inside = simplex >= 0
        out = np.full(xy.shape, np.nan)
        if inside.any():
            a = self._affine[simplex[inside]]                                          # (M,3,2)
            h = np.concatenate([xy[inside], np.ones((int(inside.sum()), 1))], axis=1)
            out[inside] = np.einsum("mi,mij->mj", h, a)
        return out, inside


def fit_affine(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 affine taking ``dst`` points to ``src`` points (a reflection allowed)."""
    dst = np.asarray(dst, dtype=np.float64)
    h = np.concatenate([dst, np.ones((len(dst), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(h, np.asarray(src, dtype=np.float64), rcond=None)
    return sol.T


def pixel_grid(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of ``mask``'s pixels and their (N,2) x,y coordinates."""
    ys, xs = np.nonzero(mask)
    return (ys, xs), np.stack([xs, ys], axis=1).astype(np.float64)


def sample(image: np.ndarray, src_xy: np.ndarray, *, interpolation=cv2.INTER_LINEAR,
           border_value=0) -> np.ndarray:
    """Bilinear samples of ``image`` at ``(N,2)`` float positions (NaN positions give ``border_value``)."""
    xy = np.asarray(src_xy, dtype=np.float32)
    xy = np.where(np.isfinite(xy), xy, -1e4).astype(np.float32)
    n = len(xy)
    if n == 0:
        return np.zeros((0,) + image.shape[2:], dtype=image.dtype)
    cols = min(n, _ROW)
    rows = -(-n // cols)
    pad = np.full((rows * cols, 2), -1e4, np.float32)   # remap maps must stay below 32767 px a side
    pad[:n] = xy
    mx = np.ascontiguousarray(pad[:, 0].reshape(rows, cols))
    my = np.ascontiguousarray(pad[:, 1].reshape(rows, cols))
    out = cv2.remap(image, mx, my, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
    return out.reshape((rows * cols,) + image.shape[2:])[:n]


def warp_image(image: np.ndarray, warp: PiecewiseAffine, shape: tuple[int, int], *,
               interpolation=cv2.INTER_LINEAR) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``image`` (source frame) onto a full ``shape`` destination grid; returns
    (warped image, bool map of the destination pixels inside the triangulation)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    xy = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    src, inside = warp.map(xy)
    vals = sample(image, src, interpolation=interpolation)
    return vals.reshape((h, w) + image.shape[2:]), inside.reshape(h, w)
