"""A small, deterministic CPU renderer for the evaluation suite (no display, no GPU).

Two uses:

* the *frontal render* of a reconstruction (:func:`render_frontal`): the textured
  :class:`~occgui.results.FaceMesh` turned to a canonical frontal pose with a fixed
  scaled-orthographic camera, unlit (the texture already carries the photo's shading), on a
  grey background -- the image whose face embedding measures identity (paper §3.5's face
  features loss, §5's verification);
* the *scan renderer* (:func:`render_mesh`): a textured mesh under a known camera with
  Lambertian lighting, used to make test photos of a head scan with known geometry (paper §5,
  MICC Florence with artificial occluders, Fig. 4).

Rasterisation is the texture stage's z-buffer rasteriser (:mod:`occgui.texture.rasterize`)
with back-face culling added here.

View coordinates: x right and y down in pixels (pixel centres at integers), z towards the
viewer (larger z = nearer). A triangle is front-facing when it is counter-clockwise seen from
the viewer (the glTF and FaceMesh convention).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..texture.rasterize import Raster, rasterize

#: Background grey of the renders (mid-grey, like a studio backdrop).
BACKGROUND = (128, 128, 128)


def interpolate(raster: Raster, faces: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Interpolate per-vertex ``values`` (N, C) at the pixels ``raster`` covers -> (H, W, C), 0 elsewhere."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    out = np.zeros(raster.triangle.shape + (v.shape[1],))
    m = raster.triangle >= 0
    tri = np.asarray(faces)[raster.triangle[m]]
    out[m] = (v[tri] * raster.bary[m][:, :, None]).sum(axis=1)
    return out


def front_facing(view_vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Boolean per face: counter-clockwise as seen by the viewer (y down => negative area)."""
    p = np.asarray(view_vertices, dtype=np.float64)[np.asarray(faces)]
    a, b, c = p[:, 0, :2], p[:, 1, :2], p[:, 2, :2]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return cross < 0


def rasterize_view(view_vertices: np.ndarray, faces: np.ndarray, size: tuple[int, int], *,
                   cull_back: bool = True) -> Raster:
    """Z-buffer rasterisation (:func:`occgui.texture.rasterize.rasterize`) of triangles in view
    coordinates into a ``size = (width, height)`` buffer, back faces culled; triangle ids refer
    to ``faces``."""
    v = np.asarray(view_vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    ids = np.flatnonzero(front_facing(v, f)) if cull_back else np.arange(len(f))
    if not len(ids):
        w, h = int(size[0]), int(size[1])
        return Raster(triangle=np.full((h, w), -1, np.int32), bary=np.zeros((h, w, 3), np.float32),
                      depth=np.full((h, w), -np.inf, np.float32))
    r = rasterize(v[:, :2], v[:, 2], f[ids], int(size[0]), int(size[1]))
    tri = np.where(r.triangle >= 0, ids[np.maximum(r.triangle, 0)], -1).astype(np.int32)
    return Raster(triangle=tri, bary=r.bary, depth=r.depth)


@dataclass(frozen=True)
class TexelRaster:
    """The chart texels of a UV layout: their (row, col), triangle vertices and barycentrics."""

    size: int
    rows: np.ndarray
    cols: np.ndarray
    vertex_ids: np.ndarray     # (M,3)
    bary: np.ndarray           # (M,3) float64

    def interpolate(self, values: np.ndarray) -> np.ndarray:
        """Per-vertex values (N,C) -> per-texel values (M,C)."""
        v = np.asarray(values, dtype=np.float64)
        return np.einsum("mk,mkc->mc", self.bary, v[self.vertex_ids])


_TEXEL_RASTERS: dict[str, TexelRaster] = {}


def texel_raster(uv: np.ndarray, faces: np.ndarray, size: int) -> TexelRaster:
    """Which triangle and barycentric coordinates each chart texel of a ``size`` x ``size`` texture
    belongs to (v up: texel row ``(1 - v) * size - 0.5``, the texture stage's convention); cached
    by the layout's content."""
    import hashlib

    h = hashlib.sha1()
    for a in (np.ascontiguousarray(uv, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    key = f"{h.hexdigest()}:{int(size)}"
    hit = _TEXEL_RASTERS.get(key)
    if hit is None:
        u = np.asarray(uv, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        xy = np.stack([u[:, 0] * size - 0.5, (1.0 - u[:, 1]) * size - 0.5], axis=1)
        r = rasterize(xy, None, f, int(size), int(size))
        rows, cols = np.nonzero(r.triangle >= 0)
        hit = TexelRaster(int(size), rows, cols, f[r.triangle[rows, cols]], r.bary[rows, cols].astype(np.float64))
        if len(_TEXEL_RASTERS) >= 4:
            _TEXEL_RASTERS.pop(next(iter(_TEXEL_RASTERS)))
        _TEXEL_RASTERS[key] = hit
    return hit


def sample_texture(texture: np.ndarray, uv: np.ndarray, *, v_up: bool = True) -> np.ndarray:
    """Bilinear texture lookup: ``uv`` (..., 2) in [0, 1] -> (..., 3) float RGB in 0..255.

    ``v_up=True``: v = 0 is the bottom row of the texture image (OpenGL convention)."""
    t = np.asarray(texture)[:, :, :3].astype(np.float32)
    th, tw = t.shape[:2]
    u = np.asarray(uv, dtype=np.float64)
    x = np.clip(u[..., 0] * tw - 0.5, 0.0, tw - 1.0)
    y = np.clip(((1.0 - u[..., 1]) if v_up else u[..., 1]) * th - 0.5, 0.0, th - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), tw - 2 if tw > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(np.int64), th - 2 if th > 1 else 0)
    x1, y1 = np.minimum(x0 + 1, tw - 1), np.minimum(y0 + 1, th - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = t[y0, x0] * (1 - fx) + t[y0, x1] * fx
    bottom = t[y1, x0] * (1 - fx) + t[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a counter-clockwise (outward) triangle mesh."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class OrthoCamera:
    """Known scaled-orthographic camera: world point X -> view ``(k * (R X + t))`` with y flipped.

    ``R`` rotates world into camera axes (x right, y up, z towards the viewer), ``k`` is pixels
    per world unit and ``centre`` the pixel the camera-frame origin projects to.
    """

    R: np.ndarray
    t: np.ndarray
    k: float
    centre: tuple[float, float]
    size: tuple[int, int]

    def to_view(self, points: np.ndarray) -> np.ndarray:
        c = np.asarray(points, dtype=np.float64) @ self.R.T + self.t
        return np.stack([self.centre[0] + self.k * c[:, 0], self.centre[1] - self.k * c[:, 1], self.k * c[:, 2]],
                        axis=1)

    def project(self, points: np.ndarray) -> np.ndarray:
        return self.to_view(points)[:, :2]

    def to_dict(self) -> dict:
        return {"R": self.R.tolist(), "t": self.t.tolist(), "k": self.k, "centre": list(self.centre),
                "size": list(self.size)}


def rotation_yaw_pitch_roll(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Rotation (degrees) of a head in camera axes (x right, y up, z towards the viewer): yaw about
    y (positive turns the face towards the image's right), pitch about x (positive turns the face
    down), roll about z (positive = counter-clockwise on screen)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def render_mesh(vertices: np.ndarray, faces: np.ndarray, camera: OrthoCamera, *, uv: np.ndarray | None = None,
                texture: np.ndarray | None = None, vertex_colors: np.ndarray | None = None,
                light_dir: np.ndarray | None = None, ambient: float = 1.0, diffuse: float = 0.0,
                v_up: bool = True, background=BACKGROUND) -> tuple[np.ndarray, Raster]:
    """Render a mesh (world coordinates) with ``camera``.

    Colour comes from ``texture`` sampled at ``uv`` or from ``vertex_colors`` (N,3, 0..255).
    Shading is ``ambient + diffuse * max(0, n . l)`` with ``light_dir`` (camera axes, pointing
    from the surface towards the light); the defaults render unlit. Returns the uint8 RGB image
    and the raster (for per-pixel correspondence with the mesh).
    """
    view = camera.to_view(vertices)
    r = rasterize_view(view, faces, camera.size)
    h, w = camera.size[1], camera.size[0]
    img = np.empty((h, w, 3), np.float64)
    img[:] = np.asarray(background, dtype=np.float64)
    m = r.triangle >= 0
    if not m.any():
        return img.astype(np.uint8), r
    if texture is not None and uv is not None:
        col = sample_texture(texture, interpolate(r, faces, uv)[m], v_up=v_up)
    elif vertex_colors is not None:
        col = interpolate(r, faces, vertex_colors)[m]
    else:
        col = np.full((int(m.sum()), 3), 200.0)
    if diffuse and light_dir is not None:
        n_cam = vertex_normals(vertices, faces) @ camera.R.T
        n = interpolate(r, faces, n_cam)[m]
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        ld = np.asarray(light_dir, dtype=np.float64)
        ld = ld / np.linalg.norm(ld)
        col = col * (ambient + diffuse * np.clip(n @ ld, 0.0, None))[:, None]
    else:
        col = col * ambient
    img[m] = col
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), r


# ----------------------------------------------------------------------------- frontal render
def face_frame(landmarks3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A head-fixed frame from a reconstruction's 68 landmark vertices (camera axes, Y up).

    x: from the image-left eye centre to the image-right eye centre; y: from the mouth centre up to
    the eyes' midpoint, made orthogonal to x; z = x cross y (towards the face's front). Returns
    (rotation whose rows are the axes, origin = midpoint between eyes and mouth).
    """
    p = np.asarray(landmarks3d, dtype=np.float64)
    el, er = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    mouth = p[48:68].mean(axis=0)
    x = er - el
    x /= max(np.linalg.norm(x), 1e-12)
    up = (el + er) / 2 - mouth
    y = up - (up @ x) * x
    y /= max(np.linalg.norm(y), 1e-12)
    z = np.cross(x, y)
    return np.stack([x, y, z]), ((el + er) / 2 + mouth) / 2


def frontal_camera(landmarks3d: np.ndarray, size: int = 256, *, eye_fraction: float = 0.3) -> OrthoCamera:
    """The fixed frontal camera for a face: the face turned to its canonical frontal pose,
    the eye-centre distance ``eye_fraction * size`` pixels, the eye-mouth midpoint slightly below
    the image centre."""
    from .metrics import eye_distance

    rot, origin = face_frame(landmarks3d)
    k = eye_fraction * size / max(eye_distance(landmarks3d), 1e-12)
    return OrthoCamera(R=rot, t=-rot @ origin, k=k, centre=(size / 2.0, size * 0.54), size=(size, size))


def render_frontal(mesh, texture_image: np.ndarray, size: int = 256, *, vertex_colors: np.ndarray | None = None
                   ) -> np.ndarray:
    """Frontal, unlit render of a textured :class:`FaceMesh` (see the module docstring).

    Needs ``mesh.landmark_vertices`` (the 68 landmark vertex ids) to define the frontal pose.
    ``vertex_colors`` (N,3) replaces the texture (used for error heat maps).
    """
    if mesh.landmark_vertices is None:
        raise ValueError("the frontal render needs the mesh's 68 landmark vertices")
    lm3d = mesh.vertices[np.asarray(mesh.landmark_vertices)]
    cam = frontal_camera(lm3d, size)
    img, _ = render_mesh(mesh.vertices, mesh.faces, cam, uv=mesh.uv,
                         texture=texture_image if vertex_colors is None else None,
                         vertex_colors=vertex_colors, v_up=True)
    return img
