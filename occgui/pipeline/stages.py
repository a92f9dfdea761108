"""Stage functions: each takes explicit typed inputs and its backend, and returns a typed result.

The backend interfaces (``typing.Protocol``) are the seams where the paper's trained networks and
the morphable-model fit replace today's defaults (see ``backends.py``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from ..errors import NoFaceError
from .results import FaceCrop, FaceDetection, FaceMesh, Landmarks, LoadedImage, ParsingMap, Synthesis, Texture


class FaceDetectorBackend(Protocol):
    name: str
    version: str

    def detect(self, rgb: np.ndarray) -> list[FaceDetection]: ...


class LandmarkBackend(Protocol):
    """Crop -> 68 points (and the dense mesh when the backend has one). ``alpha`` is M_alpha of the
    same crop: an occlusion-aware backend uses it to place the points the occluder hides."""
    name: str
    version: str

    def detect(self, crop_rgb: np.ndarray, alpha: np.ndarray | None = None) -> Landmarks: ...


class ParsingBackend(Protocol):
    """N_alpha: crop (SxSx3 uint8) -> M_alpha label ids (SxS uint8)."""
    name: str
    version: str

    def parse(self, crop_rgb: np.ndarray) -> np.ndarray: ...


class LandmarkMapBackend(Protocol):
    name: str
    version: str

    def render(self, points: np.ndarray, size: int) -> np.ndarray: ...


class MergeBackend(Protocol):
    name: str
    version: str

    def merge(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray: ...


class SynthesisBackend(Protocol):
    name: str
    version: str

    def synthesize(self, crop_rgb: np.ndarray, landmarks: Landmarks, alpha: np.ndarray,
                   gamma: np.ndarray) -> Synthesis: ...


class GeometryBackend(Protocol):
    name: str
    version: str

    def build(self, image: LoadedImage, crop: FaceCrop, landmarks: Landmarks) -> FaceMesh: ...


class TextureBackend(Protocol):
    name: str
    version: str

    def build(self, image: LoadedImage, crop: FaceCrop, alpha: np.ndarray, synthesis: Synthesis,
              mesh: FaceMesh) -> Texture: ...


def load(source, *, max_side: int) -> LoadedImage:
    from ..imageio import load_image

    return load_image(source, max_side=max_side)


def detect(backend: FaceDetectorBackend, image: LoadedImage, face_index: int, crop_size: int) -> FaceCrop:
    """Detect faces, pick the ``face_index``-th largest, and cut the similarity-aligned crop."""
    from ..detection.crop import aligned_crop

    faces = sorted(backend.detect(image.rgb), key=lambda d: -d.area)
    if not faces:
        raise NoFaceError("no face found in the photo")
    if not 0 <= face_index < len(faces):
        raise NoFaceError(f"face {face_index} requested but only {len(faces)} face(s) found "
                          f"(faces are numbered from 0, largest first)")
    return aligned_crop(image.rgb, faces[face_index], crop_size, face_index=face_index, num_faces=len(faces))


def detect_landmarks(backend: LandmarkBackend, crop: FaceCrop, alpha: ParsingMap | None = None) -> Landmarks:
    """The landmarks of the crop (paper §3.1); M_alpha tells an occlusion-aware backend what is hidden."""
    lm = backend.detect(crop.image, None if alpha is None else alpha.labels)
    if lm.detected_points is None:
        lm = replace(lm, detected_points=lm.points.copy())
    return replace(lm, warnings=_landmark_warnings(lm.points, crop))


def _landmark_warnings(points: np.ndarray, crop: FaceCrop) -> tuple[str, ...]:
    from ..landmarks.plausibility import check

    return tuple(check(points, crop.size, crop.working_to_crop(crop.detection.keypoints[:4])))


def apply_landmark_edit(detected: Landmarks, image: LoadedImage, crop: FaceCrop, photo_points) -> Landmarks:
    """Replace the detected 68 points by user-corrected ones given in photo pixels."""
    pts = np.asarray(photo_points, dtype=np.float64)
    if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
        from ..errors import OccguiError
        raise OccguiError(f"corrected landmarks must be 68 finite (x, y) points, got shape {pts.shape}")
    crop_pts = crop.working_to_crop(image.photo_to_working(pts))
    return replace(detected, points=crop_pts, edited=True, warnings=_landmark_warnings(crop_pts, crop))


def parse(backend: ParsingBackend, crop: FaceCrop) -> ParsingMap:
    """M_alpha = N_alpha(I_fac) (paper §3.2)."""
    return ParsingMap(backend.parse(crop.image), "alpha", backend.name)


def landmark_map(backend: LandmarkMapBackend, landmarks: Landmarks, size: int) -> ParsingMap:
    """M_beta: regions formed by connecting the landmarks (paper §3.2)."""
    return ParsingMap(backend.render(landmarks.points, size), "beta", backend.name)


def merge(backend: MergeBackend, alpha: ParsingMap, beta: ParsingMap) -> ParsingMap:
    """M_gamma = Algorithm 1 (M_alpha, M_beta)."""
    return ParsingMap(backend.merge(alpha.labels, beta.labels), "gamma", backend.name)


def synthesize(backend: SynthesisBackend, crop: FaceCrop, landmarks: Landmarks, alpha: ParsingMap,
               gamma: ParsingMap) -> Synthesis:
    """I_out: the de-occluded face following M_gamma (paper §3.3)."""
    return backend.synthesize(crop.image, landmarks, alpha.labels, gamma.labels)


def geometry(backend: GeometryBackend, image: LoadedImage, crop: FaceCrop, landmarks: Landmarks) -> FaceMesh:
    return backend.build(image, crop, landmarks)


def texture(backend: TextureBackend, image: LoadedImage, crop: FaceCrop, alpha: ParsingMap, synthesis: Synthesis,
            mesh: FaceMesh) -> Texture:
    return backend.build(image, crop, alpha.labels, synthesis, mesh)
