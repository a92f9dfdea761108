"""dlib's 5-point face alignment (``get_face_chip_details`` + ``extract_image_chip``), reproduced.

Geometry, from ``dlib/image_transforms/interpolation.h`` and ``dlib/geometry/drectangle.h``:

* the 5 points of dlib's ``shape_predictor_5_face_landmarks`` (0, 1: outer and inner corner of the
  eye on the image's right; 2, 3: outer and inner corner of the other eye; 4: the base of the
  nose) are matched to a fixed template (padded by ``padding`` of the face size on each side and
  scaled to the chip size) by Umeyama's least-squares similarity (``find_similarity_transform``,
  chip -> image);
* the chip is the ``size x size`` rectangle centred at the image of the chip's centre, rotated by
  the similarity's angle and scaled by its scale (``centered_drect``: corner to corner spans
  ``size*scale - 1``); pixel (c, r) of the chip samples the image at the affine map of its corners;
* sampling is dlib's ``interpolate_bilinear``: a sample whose 2x2 neighbourhood is not entirely
  inside the image is black, the interpolated value is truncated to an integer (``assign_pixel``
  of a double to ``unsigned char``).

* for a face more than twice the chip's size dlib first crops the image to the chip's bounding box
  (grown by a margin) and halves it with its ``pyramid_down<2>`` (a [1 4 6 4 1] filter in integer
  arithmetic) as often as needed; both are reproduced.

:func:`face_chip_affine` gives the chip -> image map for a differentiable chip:
:func:`extract_face_chips_torch` samples a batch of images with ``grid_sample`` (same geometry
and zero border, no truncation to integers and no pyramid: for faces up to twice the chip's size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import OccguiError

#: The template of dlib's 5 points in a unit face box (``get_face_chip_details``).
TEMPLATE_5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])

#: dlib's ``compute_face_descriptor`` chip: 150 px with a padding of 0.25.
DEFAULT_SIZE = 150
DEFAULT_PADDING = 0.25

#: Indices of the 68-point (iBUG) landmarks that correspond to dlib's 5 points.
FIVE_FROM_68 = (45, 42, 36, 39, 33)


@dataclass(frozen=True)
class FaceChipDetails:
    """dlib's ``chip_details``: a rectangle (left, top, right, bottom) in image pixels, its rotation
    about its centre in radians, and the chip's size."""
    left: float
    top: float
    right: float
    bottom: float
    angle: float
    rows: int
    cols: int

    def corners(self) -> np.ndarray:
        """The rotated rectangle's top-left, top-right and bottom-left corners in the image (3, 2)."""
        cx, cy = (self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0
        c, s = math.cos(self.angle), math.sin(self.angle)
        pts = np.array([[self.left, self.top], [self.right, self.top], [self.left, self.bottom]]) - (cx, cy)
        rot = np.array([[c, -s], [s, c]])
        return pts @ rot.T + (cx, cy)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Umeyama's least-squares similarity mapping ``src`` points onto ``dst`` (dlib's
    ``find_similarity_transform``): returns (2x2 matrix ``c*R``, translation)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mean_s, mean_d = src.mean(0), dst.mean(0)
    ds, dd = src - mean_s, dst - mean_d
    sigma_s = (ds ** 2).sum(1).mean()
    cov = dd.T @ ds / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det = np.linalg.det(cov)
    if det < 0 or (det == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        if d[1] < d[0]:
            s[1, 1] = -1
        else:
            s[0, 0] = -1
    r = u @ s @ vt
    c = (d * np.diag(s)).sum() / sigma_s if sigma_s != 0 else 1.0
    return c * r, mean_d - c * r @ mean_s


def face_chip_details(points5, size: int = DEFAULT_SIZE, padding: float = DEFAULT_PADDING) -> FaceChipDetails:
    """dlib's ``get_face_chip_details`` for its 5-point landmarks ``points5`` (5, 2) in (x, y) pixels."""
    pts = np.asarray(points5, np.float64)
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        raise OccguiError(f"face alignment needs 5 finite (x, y) points, got shape {pts.shape}")
    if padding < 0 or size <= 0:
        raise OccguiError(f"invalid face chip size {size} / padding {padding}")
    template = (padding + TEMPLATE_5) / (2 * padding + 1) * size
    m, t = similarity_transform(template, pts)
    p = m @ np.array([1.0, 0.0])
    angle = math.atan2(p[1], p[0])
    scale = math.hypot(p[0], p[1])
    centre = m @ np.array([size / 2.0, size / 2.0]) + t
    w = size * scale - 1
    return FaceChipDetails(left=centre[0] - w / 2, top=centre[1] - w / 2, right=centre[0] + w / 2,
                           bottom=centre[1] + w / 2, angle=angle, rows=size, cols=size)


def face_chip_affine(details: FaceChipDetails) -> np.ndarray:
    """The 2x3 affine map from chip pixel (col, row, 1) to image (x, y) (dlib's mapping from the
    chip's top-left, top-right and bottom-left pixels to the rotated rectangle's corners)."""
    tl, tr, bl = details.corners()
    ax = (tr - tl) / (details.cols - 1)
    ay = (bl - tl) / (details.rows - 1)
    return np.stack([np.array([ax[0], ay[0], tl[0]]), np.array([ax[1], ay[1], tl[1]])])


def _rect_down(rect):
    """dlib's ``pyramid_down<2>::rect_down`` of (left, top, right, bottom)."""
    l, t, r, b = rect
    return l / 2.0 - 1.25, t / 2.0 - 0.75, r / 2.0 - 1.25, b / 2.0 - 0.75


def _area(rect) -> float:
    l, t, r, b = rect
    if t > b or l > r:
        return 0.0
    return (r - l + 1) * (b - t + 1)


def _rotated_corners(rect, angle: float) -> np.ndarray:
    """tl, tr, bl, br of ``rect`` rotated by ``angle`` about its centre (dlib's ``rotate_point``)."""
    l, t, r, b = rect
    cx, cy = (l + r) / 2.0, (t + b) / 2.0
    c, s = math.cos(angle), math.sin(angle)
    pts = np.array([[l, t], [r, t], [l, b], [r, b]]) - (cx, cy)
    return pts @ np.array([[c, -s], [s, c]]).T + (cx, cy)


def _round_rect(rect) -> tuple[int, int, int, int]:
    """dlib's ``drectangle`` -> ``rectangle`` conversion (``floor(x + 0.5)`` per side)."""
    return tuple(int(math.floor(v + 0.5)) for v in rect)  # type: ignore[return-value]


def pyramid_down_2(img: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>`` of an RGB uint8 image: a separable [1 4 6 4 1] filter, every other
    row and column kept (integer arithmetic, the sum divided by 256 and truncated)."""
    h, w = img.shape[:2]
    if h <= 8 or w <= 8:
        return np.zeros((0, 0, 3), np.uint8)
    x = img.astype(np.int64)
    wc = (w - 3) // 2
    k = (1, 4, 6, 4, 1)
    tmp = sum(k[i] * x[:, i:i + 2 * wc:2][:, :wc] for i in range(5))          # (h, wc, 3)
    hr = (h - 3) // 2
    rows = 2 + 2 * np.arange(hr)
    out = sum(k[i] * tmp[rows - 2 + i] for i in range(5))
    return (out // 256).astype(np.uint8)


def _sample_bilinear(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """dlib's ``interpolate_bilinear`` on an RGB uint8 image, black where it fails."""
    h, w = img.shape[:2]
    out = np.zeros(xs.shape + (3,), np.uint8)
    if h < 2 or w < 2:
        return out
    left = np.floor(xs).astype(np.int64)
    top = np.floor(ys).astype(np.int64)
    inside = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    lc = np.clip(left, 0, w - 2)
    tc = np.clip(top, 0, h - 2)
    fx = (xs - left)[..., None]
    fy = (ys - top)[..., None]
    im = img.astype(np.float64)
    tl, tr = im[tc, lc], im[tc, lc + 1]
    bl, br = im[tc + 1, lc], im[tc + 1, lc + 1]
    val = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    vals = np.clip(val, 0, 255).astype(np.uint8)  # truncation, as dlib's assign_pixel
    out[inside] = vals[inside]
    return out


def extract_face_chip(rgb: np.ndarray, details: FaceChipDetails) -> np.ndarray:
    """The ``rows x cols x 3`` uint8 chip of an RGB uint8 image: dlib's ``extract_image_chip`` with
    bilinear interpolation, including its crop to the chip's bounding box and its ``pyramid_down<2>``
    levels for faces larger than twice the chip."""
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
        raise OccguiError(f"a face chip needs an RGB uint8 image, got {img.dtype} {img.shape}")
    img = img[:, :, :3]
    h, w = img.shape[:2]
    rect = (details.left, details.top, details.right, details.bottom)
    size = details.rows * details.cols
    if (details.angle == 0 and details.rows == details.bottom - details.top + 1
            and details.cols == details.right - details.left + 1):
        # dlib's plain copy of an unrotated, unscaled rectangle (zero outside the image)
        l, t, _r, _b = _round_rect(rect)
        out = np.zeros((details.rows, details.cols, 3), np.uint8)
        ys, xs = np.mgrid[t:t + details.rows, l:l + details.cols]
        ok = (xs >= 0) & (ys >= 0) & (xs < w) & (ys < h)
        out[ok] = img[ys[ok], xs[ok]]
        return out
    # pyramid depth and the bounding box of what is read (extract_image_chips)
    depth, grow = 0, 2.0
    down = _rect_down(rect)
    while _area(down) > size:
        down = _rect_down(down)
        depth += 1
        grow = grow * 2 + 2
    rot = _rotated_corners(rect, details.angle)
    box = (max(rot[:, 0].min() - grow, 0.0), max(rot[:, 1].min() - grow, 0.0),
           min(rot[:, 0].max() + grow, w - 1.0), min(rot[:, 1].max() + grow, h - 1.0))
    bl_, bt, br_, bb = _round_rect(box)
    sub = img[bt:bb + 1, bl_:br_ + 1] if (bb >= bt and br_ >= bl_) else np.zeros((0, 0, 3), np.uint8)
    levels = []
    for _ in range(depth):
        levels.append(pyramid_down_2(levels[-1] if levels else sub))
    rect = (rect[0] - bl_, rect[1] - bt, rect[2] - bl_, rect[3] - bt)
    level = -1
    while _area(_rect_down(rect)) > size:
        level += 1
        rect = _rect_down(rect)
    src = sub if level == -1 else levels[level]
    tl, tr, bl, _br = _rotated_corners(rect, details.angle)
    ax = (tr - tl) / (details.cols - 1)
    ay = (bl - tl) / (details.rows - 1)
    cc, rr = np.meshgrid(np.arange(details.cols, dtype=np.float64), np.arange(details.rows, dtype=np.float64))
    xs = ax[0] * cc + ay[0] * rr + tl[0]
    ys = ax[1] * cc + ay[1] * rr + tl[1]
    return _sample_bilinear(src, xs, ys)


def face_chip(rgb: np.ndarray, points5, size: int = DEFAULT_SIZE, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """dlib's aligned face chip (``dlib.get_face_chip``) of ``rgb`` from its 5 landmarks."""
    return extract_face_chip(rgb, face_chip_details(points5, size, padding))


def five_points_from_68(landmarks68) -> np.ndarray:
    """dlib's 5 points taken from 68-point (iBUG) landmarks: the eye corners 45, 42, 36, 39 and
    the nose base 33. dlib's 5-point predictor was trained on its own annotation, so chips from
    these points are close to, not identical with, those of ``shape_predictor_5_face_landmarks``."""
    p = np.asarray(landmarks68, np.float64)
    if p.shape != (68, 2):
        raise OccguiError(f"expected 68 (x, y) landmarks, got shape {p.shape}")
    return p[list(FIVE_FROM_68)]


def extract_face_chips_torch(images, affines, size: int = DEFAULT_SIZE):
    """Differentiable chips: ``images`` (N, C, H, W) float, ``affines`` (N, 2, 3) chip -> image maps
    (:func:`face_chip_affine`); bilinear sampling, zero outside the image, no integer truncation."""
    import torch
    import torch.nn.functional as F

    images = torch.as_tensor(images)
    a = torch.as_tensor(affines, dtype=images.dtype, device=images.device).reshape(-1, 2, 3)
    n, _c, h, w = images.shape
    r, c = torch.meshgrid(torch.arange(size, dtype=images.dtype, device=images.device),
                          torch.arange(size, dtype=images.dtype, device=images.device), indexing="ij")
    ones = torch.ones_like(c)
    pix = torch.stack([c, r, ones], dim=-1).reshape(1, -1, 3)          # (1, S*S, 3)
    xy = pix @ a.transpose(1, 2)                                        # (N, S*S, 2) image pixels
    gx = xy[..., 0] * (2.0 / (w - 1)) - 1.0
    gy = xy[..., 1] * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(n, size, size, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
