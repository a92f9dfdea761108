"""Vectorised CPU triangle rasterisation with a depth buffer (numpy only).

Used twice by the texture stage: to render the face mesh's depth and triangle ids in crop
pixels (the visibility test), and to find, once per UV layout, which triangle and barycentric
coordinates every texel of the UV texture belongs to.

Pixel ``(row, col)`` has its centre at ``(x, y) = (col, row)`` (OpenCV's ``remap``/``warpAffine``
convention); a pixel is covered when its centre lies inside the triangle (edges included).
Triangles are processed in groups of similar bounding-box size: every triangle of a group tests
the same small grid of candidate pixels, so the work is a few large numpy operations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CHUNK = 1 << 21  # candidate pixels per batch (bounds the temporary memory)


@dataclass(frozen=True)
class Raster:
    """Per-pixel result of :func:`rasterize`."""

    triangle: np.ndarray   # (H,W) int32, -1 where no triangle covers the pixel centre
    bary: np.ndarray       # (H,W,3) float32 barycentric coordinates in that triangle
    depth: np.ndarray      # (H,W) float32 interpolated depth (larger = nearer), -inf where empty


def rasterize(xy: np.ndarray, depth: np.ndarray | None, faces: np.ndarray, width: int, height: int,
              *, eps: float = 1e-7) -> Raster:
    """Rasterise triangles ``faces`` with vertex pixel positions ``xy`` (N,2).

    ``depth`` (N,) per vertex, larger = nearer (the nearest triangle wins); ``None`` for flat
    layouts (e.g. a UV chart), where overlaps are resolved arbitrarily.
    """
    xy = np.asarray(xy, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    z = np.zeros(len(xy)) if depth is None else np.asarray(depth, dtype=np.float64)
    tri_xy = xy[faces]                                   # (F,3,2)
    lo = np.ceil(tri_xy.min(axis=1) - eps).astype(np.int64)
    hi = np.floor(tri_xy.max(axis=1) + eps).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    size = hi - lo + 1
    d1 = tri_xy[:, 1] - tri_xy[:, 0]
    d2 = tri_xy[:, 2] - tri_xy[:, 0]
    area = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    ok = (size > 0).all(axis=1) & (np.abs(area) > 1e-12) & np.isfinite(area)
    best_z = np.full(width * height, -np.inf)
    best_t = np.full(width * height, -1, dtype=np.int64)
    best_b = np.zeros((width * height, 3))
    nice = _nice_sizes(int(size.max(initial=1)))
    grid = nice[np.searchsorted(nice, size)]                # bounding boxes rounded up to a few sizes
    key = np.where(ok, grid[:, 0] * 65536 + grid[:, 1], -1)
    for k_wh in np.unique(key[key >= 0]):
        bw, bh = int(k_wh) // 65536, int(k_wh) % 65536
        oy, ox = np.divmod(np.arange(bw * bh), bw)
        tris = np.flatnonzero(key == k_wh)
        step = max(1, _CHUNK // (bw * bh))
        for k in range(0, len(tris), step):
            t = tris[k:k + step]
            px = lo[t, 0:1] + ox[None, :]
            py = lo[t, 1:2] + oy[None, :]
            a, bb, c = tri_xy[t, 0], tri_xy[t, 1], tri_xy[t, 2]
            inv = 1.0 / area[t][:, None]
            l0 = ((bb[:, 0:1] - px) * (c[:, 1:2] - py) - (bb[:, 1:2] - py) * (c[:, 0:1] - px)) * inv
            l1 = ((c[:, 0:1] - px) * (a[:, 1:2] - py) - (c[:, 1:2] - py) * (a[:, 0:1] - px)) * inv
            l2 = 1.0 - l0 - l1
            inside = (l0 >= -eps) & (l1 >= -eps) & (l2 >= -eps) & (px <= hi[t, 0:1]) & (py <= hi[t, 1:2])
            ti, ci = np.nonzero(inside)
            if not len(ti):
                continue
            tt = t[ti]
            lam = np.stack([l0[ti, ci], l1[ti, ci], l2[ti, ci]], axis=1)
            zz = (lam * z[faces[tt]]).sum(axis=1)
            pix = py[ti, ci] * width + px[ti, ci]
            _resolve(best_z, best_t, best_b, pix, zz, tt, lam)
    return Raster(triangle=best_t.reshape(height, width).astype(np.int32),
                  bary=best_b.reshape(height, width, 3).astype(np.float32),
                  depth=best_z.reshape(height, width).astype(np.float32))


def _nice_sizes(largest: int) -> np.ndarray:
    """1, 2, 3, 4, 6, 8, 12, 16, ...: grid sizes that waste at most a third of a group's work."""
    out, k = [1, 2, 3], 4
    while out[-1] < largest:
        out += [k, k * 3 // 2]
        k *= 2
    return np.array(out, dtype=np.int64)


def _resolve(best_z, best_t, best_b, pix, zz, tt, lam) -> None:
    """Keep, per pixel, the nearest candidate (ties: any one of them)."""
    np.maximum.at(best_z, pix, zz)
    win = zz >= best_z[pix]
    best_t[pix[win]] = tt[win]
    best_b[pix[win]] = lam[win]
