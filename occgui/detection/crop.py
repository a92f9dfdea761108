"""The similarity-aligned square face crop I_fac (paper §3.2: "a squarely resized face image").

The alignment follows the FFHQ convention, driven by the *detector's* keypoints (eye centres and
mouth), never by the 68 landmarks, so that correcting a landmark cannot move the crop or change
M_alpha. The crop side spans about four inter-ocular distances: the whole face, the hair line and
some background, like CelebAMask-HQ crops.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..results import FaceCrop, FaceDetection


def alignment_quad(eye_image_left: np.ndarray, eye_image_right: np.ndarray,
                   mouth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FFHQ-style oriented square: returns (centre, x half-axis, y half-axis) in image pixels."""
    eye_avg = (eye_image_left + eye_image_right) * 0.5
    eye_to_eye = eye_image_right - eye_image_left
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x = x / max(np.hypot(*x), 1e-9)
    x = x * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return c, x, y


def crop_transform(detection: FaceDetection, size: int) -> np.ndarray:
    """2x3 similarity transform from working-image pixels to the ``size`` x ``size`` crop."""
    kp = np.asarray(detection.keypoints, dtype=np.float64)
    c, x, y = alignment_quad(kp[0], kp[1], kp[3])
    src = np.float32([c - x - y, c + x - y, c + x + y])   # top-left, top-right, bottom-right
    dst = np.float32([[0, 0], [size, 0], [size, size]])
    m, _ = cv2.estimateAffinePartial2D(src, dst)
    return m.astype(np.float64)


def warp_to_crop(rgb: np.ndarray, to_crop: np.ndarray, size: int, *, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    """Resample the working image into the crop (area-averaged first when shrinking a lot)."""
    scale = float(np.sqrt(abs(np.linalg.det(to_crop[:, :2]))))
    src, m = rgb, to_crop
    if scale < 0.5:  # pre-shrink to avoid aliasing, then warp with the adjusted transform
        f = max(scale * 1.5, 1e-3)
        src = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        fx, fy = src.shape[1] / rgb.shape[1], src.shape[0] / rgb.shape[0]
        m = to_crop @ np.diag([1 / fx, 1 / fy, 1.0])
    return cv2.warpAffine(src, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def aligned_crop(rgb: np.ndarray, detection: FaceDetection, size: int, *, face_index: int = 0,
                 num_faces: int = 1) -> FaceCrop:
    """Cut the aligned ``size`` x ``size`` crop of ``detection`` from the working image."""
    m = crop_transform(detection, size)
    return FaceCrop(image=warp_to_crop(rgb, m, size), to_crop=m, detection=detection, face_index=face_index,
                    num_faces=num_faces)
