"""Typed results of the pipeline's stages (paper Fig. 1), one dataclass per stage.

Coordinates: *photo* pixels are those of the original file (after EXIF rotation); the
*working* image is the photo possibly downscaled by ``LoadedImage.scale``; *crop* pixels are
those of the square, similarity-aligned face crop (``FaceCrop``). Every result is immutable
by convention: stages never modify their inputs, so cached results can be shared.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LoadedImage:
    """Stage ``load``: the photo as 8-bit RGB, EXIF-rotated, downscaled if huge."""

    rgb: np.ndarray                   # HxWx3 uint8, the working image
    scale: float                      # working pixels per photo pixel (<= 1)
    photo_size: tuple[int, int]       # (width, height) of the photo after EXIF rotation
    source: str                       # path or a description of the array it came from
    digest: str                       # content hash of the decoded photo (cache key)
    notes: tuple[str, ...] = ()       # conversions applied (EXIF, 16-bit, CMYK, ...)

    def working_to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N,2)`` working-image pixel coordinates to photo pixel coordinates."""
        return np.asarray(points, dtype=np.float64) / self.scale

    def photo_to_working(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N,2)`` photo pixel coordinates to working-image pixel coordinates."""
        return np.asarray(points, dtype=np.float64) * self.scale


@dataclass(frozen=True)
class FaceDetection:
    """One detected face in working-image pixels."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    keypoints: np.ndarray                   # (6,2): right eye, left eye, nose tip, mouth, right ear, left ear
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@dataclass(frozen=True)
class FaceCrop:
    """Stage ``detect``: the similarity-aligned square face crop I_fac and its transforms."""

    image: np.ndarray          # SxSx3 uint8
    to_crop: np.ndarray        # 2x3 affine, working pixels -> crop pixels
    detection: FaceDetection
    face_index: int
    num_faces: int

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def from_crop(self) -> np.ndarray:
        """2x3 affine, crop pixels -> working pixels."""
        a = np.vstack([self.to_crop, [0.0, 0.0, 1.0]])
        return np.linalg.inv(a)[:2]

    def crop_to_working(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return p @ self.from_crop[:, :2].T + self.from_crop[:, 2]

    def working_to_crop(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return p @ self.to_crop[:, :2].T + self.to_crop[:, 2]

    @property
    def crop_scale(self) -> float:
        """Crop pixels per working pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.to_crop[:, :2]))))


@dataclass(frozen=True)
class Landmarks:
    """Stage ``landmarks``: Z_lmk, the 68 iBUG 300-W points (paper §3.1), in crop pixels.

    ``mesh`` is the dense 3D face mesh the default backend also estimates (478x3, crop pixels,
    z in the same pixel units, larger z = farther from the camera), or ``None``.
    ``edited`` is True when the points were supplied or corrected by the user.
    """

    points: np.ndarray                 # (68,2) float64, crop pixels
    mesh: np.ndarray | None            # (478,3) float64 or None
    backend: str
    edited: bool = False
    detected_points: np.ndarray | None = None  # the backend's own 68 points before any edit
    warnings: tuple[str, ...] = ()     # implausible landmarks (``landmarks.plausibility``)


@dataclass(frozen=True)
class ParsingMap:
    """A per-pixel label map (M_alpha, M_beta or M_gamma) in crop pixels, ids from ``occgui.labels``."""

    labels: np.ndarray          # SxS uint8
    kind: str                   # "alpha" | "beta" | "gamma"
    backend: str


@dataclass(frozen=True)
class Synthesis:
    """Stage ``synthesize``: I_out, the de-occluded face (paper §3.3), in crop pixels."""

    image: np.ndarray           # SxSx3 uint8
    filled: np.ndarray          # SxS bool: pixels re-synthesized (M_alpha occluder, dilated)
    backend: str
    details: dict = field(default_factory=dict)  # per-region provenance (mirrored, template, ...)


@dataclass(frozen=True)
class Camera:
    """Scaled-orthographic camera of the photo: a mesh point (X, Y, Z) in millimetres projects to
    photo pixels ``u = u0 + k * X``, ``v = v0 - k * Y``; the camera looks along -Z (Z towards the
    viewer, right-handed, Y up)."""

    k: float      # photo pixels per millimetre
    u0: float
    v0: float

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """(N,3) mm -> (N,2) photo pixels."""
        v = np.asarray(vertices, dtype=np.float64)
        return np.stack([self.u0 + self.k * v[:, 0], self.v0 - self.k * v[:, 1]], axis=1)


@dataclass(frozen=True)
class FaceMesh:
    """Stage ``geometry``: a triangle mesh of the face in the photo's camera frame (millimetres)."""

    vertices: np.ndarray        # (N,3) float64, mm, camera frame (see Camera)
    faces: np.ndarray           # (F,3) int64
    uv: np.ndarray              # (N,2) float64 in [0,1], per-vertex texture coordinates
    camera: Camera
    landmark_vertices: np.ndarray | None = None  # (68,) vertex ids whose projections are the 68 landmarks
    backend: str = ""


@dataclass(frozen=True)
class Texture:
    """Stage ``texture``: a UV texture map and where each texel came from."""

    image: np.ndarray           # TxTx3 uint8
    source: np.ndarray          # TxT uint8: 0 outside chart, 1 observed, 2 mirrored, 3 synthesized, 4 filled
    backend: str

    SOURCE_NAMES = ("outside", "observed", "mirrored", "synthesized", "filled")
