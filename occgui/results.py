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
class HeadPose:
    """The head pose of a morphable-model fit in the *photo's* frame (paper Eq. 10).

    Angles in degrees of ``R = R_z(roll) R_y(yaw) R_x(pitch)`` (X right, Y up, Z towards the
    viewer: a positive yaw turns the face towards the image's right, a positive pitch lifts the
    chin, a positive roll turns it counter-clockwise on screen); ``tx, ty``: photo pixels where the
    model's origin projects; ``scale``: photo pixels per millimetre (scaled orthographic camera)."""

    pitch: float
    yaw: float
    roll: float
    tx: float
    ty: float
    scale: float

    def to_dict(self) -> dict:
        return {"pitch_deg": self.pitch, "yaw_deg": self.yaw, "roll_deg": self.roll,
                "tx_px": self.tx, "ty_px": self.ty, "scale_px_per_mm": self.scale}


@dataclass(frozen=True)
class MorphableFit:
    """What a morphable-model geometry backend fitted (paper §3.4-3.5): the coefficient vector y,
    the pose, the lighting and the fit's loss, for reports, ``coefficients.json``, de-lighting the
    texture and warm-starting a re-fit."""

    model: str                  # the model's id (``MorphableModel.name``)
    identity: np.ndarray        # (K_id,) normalised identity coefficients (alpha tilde)
    expression: np.ndarray      # (K_exp,) expression coefficients (beta tilde)
    albedo: np.ndarray          # (K_alb,) albedo coefficients (empty without an albedo basis)
    gamma: np.ndarray           # (3, 9) SH lighting per colour channel (Eq. 11)
    pose: HeadPose              # in the photo's frame
    crop_pose: np.ndarray       # (6,) the fit's pose: pitch, yaw, roll (rad), f (crop px/mm), tx, ty (crop px)
    loss: dict                  # last step's Eq. 16 terms: total, landmark, photometric, regularisation, identity
    shading: np.ndarray         # (N, 3) float32, the fitted SH irradiance at every mesh vertex (de-lighting)
    landmark_error: float       # mean 2D distance fitted-model vs. given landmarks, in inter-ocular distances
    iterations: int             # optimiser steps this fit took
    warm_start: bool            # started from the previous solution (a re-fit after an edit)
    seconds: float


@dataclass(frozen=True)
class FaceMesh:
    """Stage ``geometry``: a triangle mesh of the face in the photo's camera frame (millimetres)."""

    vertices: np.ndarray        # (N,3) float64, mm, camera frame (see Camera)
    faces: np.ndarray           # (F,3) int64
    uv: np.ndarray              # (N,2) float64 in [0,1], per-vertex texture coordinates
    camera: Camera
    landmark_vertices: np.ndarray | None = None  # (68,) vertex ids whose projections are the 68 landmarks
    backend: str = ""
    fit: MorphableFit | None = None  # the fitted coefficients when a morphable model made the mesh


@dataclass(frozen=True)
class Texture:
    """Stage ``texture``: a UV texture map and where each texel came from."""

    image: np.ndarray           # TxTx3 uint8 (lit: the photo's shading, for display)
    source: np.ndarray          # TxT uint8: 0 outside chart, 1 observed, 2 mirrored, 3 synthesized, 4 filled
    backend: str
    albedo: np.ndarray | None = None  # TxTx3 uint8, de-lit by the fitted SH shading (morphable meshes only)

    SOURCE_NAMES = ("outside", "observed", "mirrored", "synthesized", "filled")
