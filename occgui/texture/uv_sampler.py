"""Stage ``texture`` default backend: a UV texture sampled from the photo / I_out through the camera.

For every texel of the ``ctx.texture_size`` square texture (row 0 = v 1, OBJ/glTF convention):

1. UV raster (cached per UV layout and size): the mesh triangle and barycentric coordinates of
   the texel centre; texels outside the chart get class 0 ("outside").
2. Projection: the texel's 3D point (barycentric on the mesh) is projected through
   ``FaceMesh.camera`` into the photo and into the crop.
3. Visibility: a depth buffer of the whole mesh rendered in crop pixels (:mod:`.rasterize`,
   at :data:`ZBUFFER_SCALE` times the crop resolution) must not hold a surface more than
   :data:`DEPTH_TOLERANCE_MM` in front of the texel (self-occlusion); the texel's triangle must
   face the camera (back-facing test); its projection must lie inside the photo.
4. Classes (``Texture.source``), in priority order:
   1 *observed* -- visible and not occluded (M_alpha occluder or ``Synthesis.filled``, dilated):
     the photo's own colour, sampled from the full-resolution working image (identical to I_out
     there, and sharper than the crop);
   2 *mirrored* -- else the mirror texel (the texture flipped left/right: the UV layout is
     mirror-symmetric) when that one is observed, times a low-frequency gain that matches it to
     this side's lighting (:func:`~occgui.texture.completion.mirror_gain`);
   3 *synthesized* -- else, where the texel is visible but the parser declared an occluder, I_out
     (the de-occlusion stage re-synthesized those pixels);
   4 *filled* -- everything else inside the chart: a smooth push-pull fill of its surroundings.
   Borders between classes are feathered, and colours are extended beyond the chart's edges
   (push-pull) so that texture filtering never pulls in black at the seams.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..labels import OCCLUDING, mask_of
from ..pipeline.results import FaceCrop, FaceMesh, LoadedImage, Synthesis, Texture
from .completion import feather_seams, mirror_gain, push_pull
from .rasterize import rasterize

ZBUFFER_SCALE = 2               # depth-buffer pixels per crop pixel
DEPTH_TOLERANCE_MM = 2.0        # a surface nearer than this in front of a texel hides it
FRONT_FACING_MIN = 0.05         # minimum z of a triangle's unit normal to count as facing the camera
OCCLUDER_DILATION_PX = 2        # crop pixels added around M_alpha occluders / I_out's filled pixels
MIRROR_GAIN_SIGMA = 0.03        # low-frequency scale of the mirror colour gain (fraction of the side)
SEAM_RADIUS = 0.003             # feathering half-width (fraction of the side)
OUTSIDE, OBSERVED, MIRRORED, SYNTHESIZED, FILLED = range(5)


@dataclass(frozen=True)
class UVRaster:
    """Texel -> mesh triangle assignment of one UV layout at one texture size."""

    size: int
    inside: np.ndarray          # (T,T) bool, texel centre inside the chart
    rows: np.ndarray            # (M,) row of every inside texel
    cols: np.ndarray            # (M,) column of every inside texel
    triangle: np.ndarray        # (M,) triangle id of every inside texel
    vertex_ids: np.ndarray      # (M,3) the triangle's vertices
    bary: np.ndarray            # (M,3) float32 barycentric coordinates


_UV_RASTERS: dict[str, UVRaster] = {}


def uv_raster(uv: np.ndarray, faces: np.ndarray, size: int) -> UVRaster:
    """The (cached) UV raster of a layout; keyed by the layout's content, so any mesh works."""
    h = hashlib.sha1()
    for a in (np.ascontiguousarray(uv, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    key = f"{h.hexdigest()}:{size}"
    hit = _UV_RASTERS.get(key)
    if hit is None:
        xy = np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], axis=1)
        r = rasterize(xy, None, faces, size, size)
        inside = r.triangle >= 0
        rows, cols = np.nonzero(inside)
        tri = r.triangle[rows, cols].astype(np.int64)
        hit = UVRaster(size=size, inside=inside, rows=rows, cols=cols, triangle=tri,
                       vertex_ids=np.asarray(faces, dtype=np.int64)[tri], bary=r.bary[rows, cols])
        if len(_UV_RASTERS) >= 4:
            _UV_RASTERS.pop(next(iter(_UV_RASTERS)))
        _UV_RASTERS[key] = hit
    return hit


def vertices_to_crop(image: LoadedImage, crop: FaceCrop, mesh: FaceMesh) -> np.ndarray:
    """(N,2) crop-pixel positions of the mesh's vertices."""
    return crop.working_to_crop(image.photo_to_working(mesh.camera.project(mesh.vertices)))


def front_facing(mesh: FaceMesh) -> np.ndarray:
    """(F,) bool: the triangle's unit normal points towards the camera (+Z) by at least FRONT_FACING_MIN."""
    p = mesh.vertices[mesh.faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    nz = n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-12)
    return nz > FRONT_FACING_MIN


def _scatter(raster: UVRaster, values: np.ndarray, fill=0) -> np.ndarray:
    out = np.full((raster.size, raster.size) + values.shape[1:], fill, dtype=values.dtype)
    out[raster.rows, raster.cols] = values
    return out


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` at float pixel positions (1-D arrays), as float32 (M,C)."""
    n = len(x)
    side = int(np.ceil(np.sqrt(max(n, 1))))
    pad = side * side - n
    mx = np.concatenate([x, np.full(pad, -10.0)]).astype(np.float32).reshape(side, side)
    my = np.concatenate([y, np.full(pad, -10.0)]).astype(np.float32).reshape(side, side)
    out = cv2.remap(img, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out.reshape(side * side, -1)[:n]
    return out.astype(np.float32)


class UVTextureBuilder:
    """Stage ``texture`` backend (see the module docstring)."""

    name = "uv-sampler"
    version = "1"

    def __init__(self, ctx=None):
        self.size = int(getattr(ctx, "texture_size", 1024) or 1024)

    def build(self, image: LoadedImage, crop: FaceCrop, alpha: np.ndarray, synthesis: Synthesis,
              mesh: FaceMesh) -> Texture:
        t = self.size
        r = uv_raster(mesh.uv, mesh.faces, t)
        vxy = vertices_to_crop(image, crop, mesh)
        b = r.bary
        txy = (b[:, :, None] * vxy[r.vertex_ids]).sum(axis=1)          # texel -> crop pixels
        tz = (b * mesh.vertices[r.vertex_ids, 2]).sum(axis=1)           # texel depth (mm, nearer = larger)

        # -- visibility ---------------------------------------------------------------------
        s = ZBUFFER_SCALE
        zsize = crop.size * s
        zb = rasterize((vxy + 0.5) * s - 0.5, mesh.vertices[:, 2], mesh.faces, zsize, zsize).depth
        zx = np.clip(np.rint((txy[:, 0] + 0.5) * s - 0.5), 0, zsize - 1).astype(np.int64)
        zy = np.clip(np.rint((txy[:, 1] + 0.5) * s - 0.5), 0, zsize - 1).astype(np.int64)
        visible = tz >= zb[zy, zx] - DEPTH_TOLERANCE_MM
        visible &= front_facing(mesh)[r.triangle]
        wxy = crop.crop_to_working(txy)
        hgt, wid = image.rgb.shape[:2]
        visible &= (wxy[:, 0] >= 0) & (wxy[:, 0] <= wid - 1) & (wxy[:, 1] >= 0) & (wxy[:, 1] <= hgt - 1)
        in_crop = (txy >= -0.5).all(axis=1) & (txy <= crop.size - 0.5).all(axis=1)

        # -- occluders (M_alpha occluder classes and the pixels I_out re-synthesized) ----------
        occ = mask_of(np.asarray(alpha), OCCLUDING) | np.asarray(synthesis.filled, dtype=bool)
        if OCCLUDER_DILATION_PX > 0:
            k = 2 * OCCLUDER_DILATION_PX + 1
            occ = cv2.dilate(occ.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
        occ_t = _sample(occ.astype(np.float32), txy[:, 0], txy[:, 1])[:, 0] > 0.0

        observed = visible & ~occ_t
        synthesized = visible & occ_t & in_crop

        # -- colours --------------------------------------------------------------------------
        photo_rgb = _sample_working(image.rgb, wxy, r, t)
        iout_rgb = _sample(np.ascontiguousarray(synthesis.image), txy[:, 0], txy[:, 1])

        obs_img = _scatter(r, observed, False)
        obs_col = _scatter(r, photo_rgb)
        src = np.zeros((t, t), dtype=np.uint8)
        src[obs_img] = OBSERVED
        mir = r.inside & ~obs_img & obs_img[:, ::-1]
        src[mir] = MIRRORED
        syn = _scatter(r, synthesized, False) & r.inside & (src == 0)
        src[syn] = SYNTHESIZED
        fil = r.inside & (src == 0)
        src[fil] = FILLED

        colour = obs_col
        if mir.any():
            gain = mirror_gain(obs_col, obs_img, sigma=MIRROR_GAIN_SIGMA * t)
            colour[mir] = (obs_col[:, ::-1] * gain)[mir]
        if syn.any():
            colour[syn] = _scatter(r, iout_rgb)[syn]
        known = (src >= OBSERVED) & (src <= SYNTHESIZED)
        colour = push_pull(colour, known.astype(np.float32))
        colour = feather_seams(colour, src, r.inside, radius=max(1, round(SEAM_RADIUS * t)), sigma=max(0.5, SEAM_RADIUS * t / 2))
        out = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
        return Texture(image=out, source=src, backend=self.name)


def _sample_working(rgb: np.ndarray, wxy: np.ndarray, r: UVRaster, t: int) -> np.ndarray:
    """Photo colours at working-image positions, prefiltered when a texel spans several pixels."""
    # texel footprint in working pixels: distance between horizontally adjacent texels' samples
    grid_x = np.full((t, t), np.nan, dtype=np.float64)
    grid_y = np.full((t, t), np.nan, dtype=np.float64)
    grid_x[r.rows, r.cols], grid_y[r.rows, r.cols] = wxy[:, 0], wxy[:, 1]
    step = np.hypot(np.diff(grid_x, axis=1), np.diff(grid_y, axis=1))
    footprint = float(np.nanmedian(step)) if np.isfinite(step).any() else 1.0
    src, x, y = rgb, wxy[:, 0], wxy[:, 1]
    if footprint > 1.5:
        f = 1.25 / footprint
        x0 = int(max(0, np.floor(x.min()) - 2))
        y0 = int(max(0, np.floor(y.min()) - 2))
        x1 = int(min(rgb.shape[1], np.ceil(x.max()) + 3))
        y1 = int(min(rgb.shape[0], np.ceil(y.max()) + 3))
        region = rgb[y0:y1, x0:x1]
        size = (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f)))
        src = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        fx, fy = size[0] / region.shape[1], size[1] / region.shape[0]
        x = (x - x0 + 0.5) * fx - 0.5
        y = (y - y0 + 0.5) * fy - 0.5
    return _sample(np.ascontiguousarray(src), x, y)
