"""Stage ``texture`` default backend: a UV texture sampled from the photo / I_out through the camera.

For every texel of the ``ctx.texture_size`` square texture (row 0 = v 1, OBJ/glTF convention):

1. UV raster (cached per UV layout and size): the mesh triangle and barycentric coordinates of
   the texel centre; texels outside the chart get class 0 ("outside").
2. Projection: the texel's 3D point (barycentric on the mesh) is projected through
   ``FaceMesh.camera`` into the photo and into the crop.
3. Visibility: a depth buffer of the whole mesh rendered in crop pixels (:mod:`.rasterize`,
   at :data:`ZBUFFER_SCALE` times the crop resolution) must not hold a surface in front of the
   texel by more than :data:`DEPTH_TOLERANCE_MM` plus the triangle's depth change over one buffer
   pixel (self-occlusion); the texel's triangle must face the camera (back-facing test); its
   projection must lie inside the photo.
4. Classes (``Texture.source``), in priority order:
   1 *observed* -- visible and not occluded (M_alpha occluder or ``Synthesis.filled``, dilated):
     the photo's own colour, sampled from the full-resolution working image (identical to I_out
     there, and sharper than the crop);
   2 *mirrored* -- else the mirror texel (the texture flipped left/right: the project's UV layout
     is mirror-symmetric, u -> 1 - u) when that one is observed, times a low-frequency gain that matches it to
     this side's lighting (:func:`~occgui.texture.completion.mirror_gain`);
   3 *synthesized* -- else, where the texel is visible but the parser declared an occluder, I_out
     (the de-occlusion stage re-synthesized those pixels);
   4 *filled* -- everything else inside the chart: a smooth push-pull fill of its surroundings.
   Borders between classes are feathered, and colours are extended beyond the chart's edges
   (push-pull) so that texture filtering never pulls in black at the seams.
5. De-lit albedo (meshes of the ``morphable`` geometry, which carry their fitted SH lighting): the
   finished texture divided by the per-texel irradiance of the fit (:func:`delit`), kept beside the
   lit one (``Texture.albedo``); the lit one stays the display texture.
6. GCN refinement (``UVSamplerSettings.gcn_refine``: ``auto``, the default, refines the textures of
   morphable meshes and leaves others as they are; ``on`` refuses a mesh without a fit; ``off``):
   the texture GCN (:mod:`.gcn_refiner`, paper §3.4 after Lin et al.) predicts a per-vertex albedo
   from what the photo, I_out and the fit say about every vertex (:mod:`.vertex_features`); its
   difference from the texture's low-pass albedo corrects every texel that was not observed
   (mirrored, re-synthesized, filled), faded in from their border with the observed ones (which are
   never changed), in the albedo and (times the irradiance) in the lit texture.

Any mesh works whose UV chart is mirror-symmetric (u -> 1 - u for the mirrored surface point): the
project's layout for the MediaPipe mesh, and the ICT-FaceKit model's own UVs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp

from ..labels import OCCLUDING, mask_of
from ..results import FaceCrop, FaceMesh, LoadedImage, Synthesis, Texture
from .completion import cross_fade, feather_seams, mirror_gain, push_pull
from .rasterize import rasterize

ZBUFFER_SCALE = 1               # depth-buffer pixels per crop pixel
DEPTH_TOLERANCE_MM = 1.5        # a surface more than this (plus the local slope) in front hides a texel
MAX_DEPTH_TOLERANCE_MM = 8.0
FRONT_FACING_MIN = 0.05         # minimum z of a triangle's unit normal to count as facing the camera
OCCLUDER_DILATION_PX = 2        # crop pixels added around M_alpha occluders / I_out's filled pixels
MIRROR_GAIN_SIGMA = 0.03        # low-frequency scale of the mirror colour gain (fraction of the side)
SEAM_FADE = 0.012               # width of the fade from observed texels into a completion (fraction of the side)
SEAM_RADIUS = 0.003             # half-width of the final blur across class borders (fraction of the side)
OUTSIDE, OBSERVED, MIRRORED, SYNTHESIZED, FILLED = range(5)
MIN_SHADING = 0.1               # de-lighting never divides by a smaller irradiance (unit: white ambient = 1) ...
MIN_SHADING_RATIO = 0.6         # ... nor by less than this fraction of the chart's median irradiance (SH fits
                                # of a crude albedo can go negative on grazing normals: chin, nostrils)


@dataclass(frozen=True)
class UVRaster:
    """Texel -> mesh triangle assignment of one UV layout at one texture size."""

    size: int
    inside: np.ndarray          # (T,T) bool, texel centre inside the chart
    rows: np.ndarray            # (M,) row of every inside texel
    cols: np.ndarray            # (M,) column of every inside texel
    triangle: np.ndarray        # (M,) triangle id of every inside texel
    interp: sp.csr_matrix       # (M,N) barycentric weights: per-vertex values -> per-texel values


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
        vid = np.asarray(faces, dtype=np.int64)[tri]
        interp = sp.csr_matrix((r.bary[rows, cols].ravel(), vid.ravel(), np.arange(0, 3 * len(tri) + 1, 3)),
                               shape=(len(tri), len(uv)))
        hit = UVRaster(size=size, inside=inside, rows=rows, cols=cols, triangle=tri, interp=interp)
        if len(_UV_RASTERS) >= 4:
            _UV_RASTERS.pop(next(iter(_UV_RASTERS)))
        _UV_RASTERS[key] = hit
    return hit


def vertices_to_crop(image: LoadedImage, crop: FaceCrop, mesh: FaceMesh) -> np.ndarray:
    """(N,2) crop-pixel positions of the mesh's vertices."""
    return crop.working_to_crop(image.photo_to_working(mesh.camera.project(mesh.vertices)))


def depth_tolerance(mesh: FaceMesh, xy: np.ndarray) -> np.ndarray:
    """(F,) how far (mm) a depth-buffer pixel may lie in front of a texel of each triangle without
    hiding it: :data:`DEPTH_TOLERANCE_MM` plus the triangle's depth change over one buffer pixel
    (``xy``: vertex positions in buffer pixels), capped at :data:`MAX_DEPTH_TOLERANCE_MM`."""
    f = mesh.faces
    p = xy[f]
    z = mesh.vertices[f, 2]
    d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    dz1, dz2 = z[:, 1] - z[:, 0], z[:, 2] - z[:, 0]
    det = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    safe = np.where(np.abs(det) > 1e-9, det, np.inf)
    gx = (dz1 * d2[:, 1] - dz2 * d1[:, 1]) / safe
    gy = (dz2 * d1[:, 0] - dz1 * d2[:, 0]) / safe
    slope = np.hypot(gx, gy)
    return np.minimum(DEPTH_TOLERANCE_MM + slope, MAX_DEPTH_TOLERANCE_MM)


def front_facing(mesh: FaceMesh) -> np.ndarray:
    """(F,) bool: the triangle's unit normal points towards the camera (+Z) by at least FRONT_FACING_MIN."""
    p = mesh.vertices[mesh.faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    nz = n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-12)
    return nz > FRONT_FACING_MIN


class UVTextureBuilder:
    """Stage ``texture`` backend (see the module docstring)."""

    name = "uv-sampler"
    version = "1"

    def __init__(self, ctx=None):
        from .settings import UVSamplerSettings

        self.size = int(getattr(ctx, "texture_size", 1024) or 1024)
        st = getattr(ctx, "settings", None)
        self.settings = st if isinstance(st, UVSamplerSettings) else UVSamplerSettings()
        from .gcn_checkpoint import weights_for

        self.refine_mode = self.settings.gcn_refine.strip().lower()
        #: the texture GCN's weights file (None: no refinement); the network loads at the first
        #: morphable mesh, so that a run of another geometry never imports torch
        self.gcn_weights = weights_for(self.refine_mode, self.settings.gcn_checkpoint)
        self._refiner = None
        if self.gcn_weights is not None:
            self.version = f"{UVTextureBuilder.version}+gcn{self.gcn_weights.digest}"

    def build(self, image: LoadedImage, crop: FaceCrop, alpha: np.ndarray, synthesis: Synthesis,
              mesh: FaceMesh) -> Texture:
        t = self.size
        r = uv_raster(mesh.uv, mesh.faces, t)
        vxy = vertices_to_crop(image, crop, mesh)
        # per-vertex attributes interpolated to every inside texel: crop x, y; working x, y; depth
        attr = np.column_stack([vxy, crop.crop_to_working(vxy), mesh.vertices[:, 2]]).astype(np.float32)
        texel = np.asarray(r.interp @ attr)
        visible = visible_texels(image, crop, mesh, vxy, r, texel)
        cx, cy = texel[:, 0], texel[:, 1]
        n = crop.size
        in_crop = (cx > -0.5) & (cx < n - 0.5) & (cy > -0.5) & (cy < n - 0.5)
        occ = occluder_mask(alpha, synthesis)
        occluded = occ[np.clip(np.rint(cy), 0, n - 1).astype(np.intp), np.clip(np.rint(cx), 0, n - 1).astype(np.intp)]

        # provenance classes, in priority order
        src = np.zeros((t, t), dtype=np.uint8)
        src[r.rows, r.cols] = np.where(visible & ~occluded, OBSERVED,
                                       np.where(visible & occluded & in_crop, SYNTHESIZED, FILLED))
        observed = src == OBSERVED
        mirrored = r.inside & ~observed & observed[:, ::-1]
        src[mirrored] = MIRRORED
        synthesized = src == SYNTHESIZED

        # colours: observed, then the completion layers, faded in across their borders
        photo, px, py = _photo_source(image.rgb, texel[:, 2], texel[:, 3], _footprint(mesh, attr[:, 2:4], t))
        colour = _remap(photo, px, py, r)
        layers = []
        if mirrored.any():
            gain = mirror_gain(colour, observed, sigma=MIRROR_GAIN_SIGMA * t)
            layers.append((mirrored, np.ascontiguousarray(colour[:, ::-1]) * gain, observed[:, ::-1]))
        if synthesized.any():
            iout_ok = np.zeros((t, t), dtype=bool)
            iout_ok[r.rows, r.cols] = visible & in_crop
            layers.append((synthesized, _remap(np.ascontiguousarray(synthesis.image), cx, cy, r), iout_ok))
        for region, layer, available in layers:
            cross_fade(colour, region, observed & available, layer, max(1.0, SEAM_FADE * t))
        for region, layer, _ in layers:
            np.copyto(colour, layer, where=region[:, :, None])
        # filled texels and the margin beyond the chart: smooth extension of everything known
        colour = push_pull(colour, ((src >= OBSERVED) & (src <= SYNTHESIZED)).astype(np.float32))
        radius = max(1, round(SEAM_RADIUS * t))
        colour = feather_seams(colour, src, r.inside, radius=radius, sigma=max(0.5, radius / 2))
        field = shading_field(mesh, r)
        albedo = None if field is None else colour / field
        if self.gcn_weights is not None and (field is not None or self.refine_mode == "on"):
            colour, albedo = self._refine(colour, albedo, field, src, r, mesh, vxy, alpha, synthesis)
        return Texture(image=np.clip(colour + 0.5, 0, 255).astype(np.uint8), source=src, backend=self.name,
                       albedo=None if albedo is None else np.clip(albedo + 0.5, 0, 255).astype(np.uint8))


    def _refine(self, colour, albedo, field, src, r, mesh, vxy, alpha, synthesis):
        """The GCN step (``UVSamplerSettings.gcn_refine``, :mod:`.gcn_refiner`): morphable meshes only."""
        from ..errors import OccguiError

        if field is None:
            raise OccguiError(f"texture.gcn_refine=on needs the morphable geometry (--geometry morphable): the mesh "
                              f"of {mesh.backend or 'this geometry'!r} has no fitted lighting to de-light by")
        from .gcn_refiner import load_refiner, refine_texture, run_refiner, trained_vertices
        from .vertex_features import mesh_graph, vertex_inputs

        if self._refiner is None:
            self._refiner, _digest = load_refiner(self.gcn_weights.path)
        inputs = vertex_inputs(mesh.vertices, mesh.faces, mesh.uv, vxy, np.asarray(synthesis.image),
                               occluder_mask(alpha, synthesis), mesh.fit.shading)
        trained = trained_vertices(self._refiner, inputs)
        refined = run_refiner(self._refiner, inputs, mesh_graph(mesh.faces, mesh.uv).edges)
        out = refine_texture(colour, albedo, field, src == OBSERVED, r.inside, r.interp, r.rows, r.cols, mesh.uv,
                             refined, trained)
        return out.colour, out.albedo


def shading_field(mesh: FaceMesh, r: UVRaster) -> np.ndarray | None:
    """(T, T, 3) float32: the fitted SH irradiance of a morphable mesh (``FaceMesh.fit.shading``, per
    vertex) interpolated to the texels, extended smoothly beyond the chart and clamped below at
    :data:`MIN_SHADING` and :data:`MIN_SHADING_RATIO` times its median over the chart (grazing or
    unlit normals, where a second-order SH fit can even go negative). None for a mesh without a fit."""
    fit = getattr(mesh, "fit", None)
    shading = None if fit is None else getattr(fit, "shading", None)
    if shading is None:
        return None
    shading = np.asarray(shading, np.float32)
    if shading.shape != (len(mesh.vertices), 3):
        raise ValueError(f"the fit's shading has shape {shading.shape}, the mesh {len(mesh.vertices)} vertices")
    t = r.size
    field = np.zeros((t, t, 3), np.float32)
    field[r.rows, r.cols] = np.asarray(r.interp @ shading, np.float32)
    field = push_pull(field, r.inside.astype(np.float32))
    floor = max(MIN_SHADING, MIN_SHADING_RATIO * float(np.median(field[r.inside].mean(axis=1)))) if r.inside.any() \
        else MIN_SHADING
    return np.maximum(field, floor)


def delit(colour: np.ndarray, mesh: FaceMesh, r: UVRaster) -> np.ndarray | None:
    """The lit texture ``colour`` (TxTx3 float, 0-255) divided by :func:`shading_field`: the albedo,
    in the same 0-255 units; None for a mesh without a fit. Completed texels are divided by the
    shading of where they are, so the albedo has no light from either side."""
    field = shading_field(mesh, r)
    return None if field is None else colour / field


def visible_texels(image: LoadedImage, crop: FaceCrop, mesh: FaceMesh, vxy: np.ndarray, r: UVRaster,
                   texel: np.ndarray) -> np.ndarray:
    """(M,) bool: the inside texels the photo shows (depth test, front-facing, inside the photo).

    ``texel`` holds per inside texel: crop x, y, working x, y and depth (mm, larger = nearer).
    """
    s = ZBUFFER_SCALE
    zsize = crop.size * s
    zb = rasterize((vxy + 0.5) * s - 0.5, mesh.vertices[:, 2], mesh.faces, zsize, zsize).depth
    # pixel centres missed by tiny triangles stay empty: give them their neighbours' depth
    empty = ~np.isfinite(zb)
    zb = np.where(empty, cv2.dilate(np.where(empty, np.float32(-1e9), zb), np.ones((3, 3), np.uint8)), zb)
    cx, cy, wx, wy, tz = texel.T
    zx = np.clip(np.rint((cx + 0.5) * s - 0.5), 0, zsize - 1).astype(np.intp)
    zy = np.clip(np.rint((cy + 0.5) * s - 0.5), 0, zsize - 1).astype(np.intp)
    hgt, wid = image.rgb.shape[:2]
    tolerance = depth_tolerance(mesh, vxy * s)[r.triangle]
    return ((tz >= zb[zy, zx] - tolerance) & front_facing(mesh)[r.triangle]
            & (wx >= 0) & (wx <= wid - 1) & (wy >= 0) & (wy <= hgt - 1))


def occluder_mask(alpha: np.ndarray, synthesis: Synthesis) -> np.ndarray:
    """Crop pixels that do not show the face: M_alpha's occluder classes and the pixels I_out
    re-synthesized, dilated by :data:`OCCLUDER_DILATION_PX` against colour bleeding at their edges."""
    occ = mask_of(np.asarray(alpha), OCCLUDING) | np.asarray(synthesis.filled, dtype=bool)
    k = 2 * OCCLUDER_DILATION_PX + 1
    return cv2.dilate(occ.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


def _footprint(mesh: FaceMesh, working_xy: np.ndarray, size: int) -> float:
    """Working-image pixels per texel over the camera-facing triangles (area ratio, square-rooted)."""
    f = mesh.faces[front_facing(mesh)]
    if not len(f):
        return 1.0

    def area(p):
        q = p[f]
        d1, d2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
        return np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]).sum()

    a_uv = area(np.asarray(mesh.uv) * size)
    return float(np.sqrt(area(np.asarray(working_xy, dtype=np.float64)) / a_uv)) if a_uv > 0 else 1.0


def _photo_source(rgb: np.ndarray, x: np.ndarray, y: np.ndarray, footprint: float):
    """The working image (or its face region shrunk with area averaging when a texel spans more
    than 1.5 pixels, against aliasing) and the sample positions in it."""
    if footprint <= 1.5 or not len(x):
        return rgb, x, y
    f = 1.25 / footprint
    x0 = int(max(0, np.floor(x.min()) - 2))
    y0 = int(max(0, np.floor(y.min()) - 2))
    x1 = int(min(rgb.shape[1], np.ceil(x.max()) + 3))
    y1 = int(min(rgb.shape[0], np.ceil(y.max()) + 3))
    region = rgb[y0:y1, x0:x1]
    size = (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f)))
    small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    fx, fy = size[0] / region.shape[1], size[1] / region.shape[0]
    return small, (x - x0 + 0.5) * fx - 0.5, (y - y0 + 0.5) * fy - 0.5


def _remap(img: np.ndarray, x: np.ndarray, y: np.ndarray, r: UVRaster) -> np.ndarray:
    """(T,T,C) float32 bilinear samples of ``img`` at the inside texels' positions (0 elsewhere)."""
    mx = np.full((r.size, r.size), -1e4, dtype=np.float32)
    my = np.full((r.size, r.size), -1e4, dtype=np.float32)
    mx[r.rows, r.cols] = x
    my[r.rows, r.cols] = y
    out = cv2.remap(np.ascontiguousarray(img), mx, my, interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = out.astype(np.float32)
    return out[:, :, None] if out.ndim == 2 else out
