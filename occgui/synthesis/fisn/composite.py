"""Between the pipeline's crop (256 px) and FISN's resolution (128 px by default), both ways.

* :func:`network_inputs`: the crop I_fac, M_alpha and M_gamma (crop pixels) -> the generator's
  inputs. The hole is M_alpha's occluder class dilated as the classical backend dilates it
  (:func:`occgui.synthesis.baselines.occluder_mask`, 2 px at 256); at the network's resolution a
  pixel is in the hole when any crop pixel it covers is. Images are area-averaged to ``R`` and
  scaled to [-1, 1]; the maps become class fractions (area-averaged one-hot), so a 2x2 block with
  an eye corner is partly eye, not shifted by half a crop pixel.
* :func:`composite`: the generated image, brought back to the crop with bilinear interpolation, is
  pasted **only inside the hole** (everything else is the photo, bit for bit), with a short ramp
  inside the hole's border (``feather_px``) so the seam is not a hard step.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ... import labels as L
from ..baselines import occluder_mask

#: Dilation of M_alpha's occluder mask at a 256 px crop (the classical backend's and Telea's).
DILATE_PX_256 = 2
#: Width of the blend ramp inside the hole's border at a 256 px crop.
FEATHER_PX_256 = 2.0


def hole_mask(alpha: np.ndarray, dilate_px_256: int = DILATE_PX_256) -> np.ndarray:
    """The pixels to re-synthesize: M_alpha's occluder, dilated (scaled with the crop size)."""
    alpha = np.asarray(alpha)
    return occluder_mask(alpha, max(1, round(dilate_px_256 * alpha.shape[0] / 256)))


def class_fractions(labels: np.ndarray, size: int, num_classes: int = L.NUM_CLASSES) -> np.ndarray:
    """``HxW`` label ids -> ``(num_classes, size, size)`` float32 area-averaged one-hot."""
    lab = np.asarray(labels)
    onehot = (lab[:, :, None] == np.arange(num_classes, dtype=lab.dtype)).astype(np.float32)
    if lab.shape[0] != size:
        if lab.shape[0] % size == 0 and lab.shape[1] == lab.shape[0]:
            k = lab.shape[0] // size
            onehot = onehot.reshape(size, k, size, k, num_classes).mean(axis=(1, 3))
        else:
            onehot = np.concatenate([cv2.resize(np.ascontiguousarray(onehot[:, :, c:c + 4]), (size, size),
                                                interpolation=cv2.INTER_AREA).reshape(size, size, -1)
                                     for c in range(0, num_classes, 4)], axis=2)
    return np.ascontiguousarray(onehot.transpose(2, 0, 1), dtype=np.float32)


def shrink_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A boolean mask at ``size``: a pixel is set when any pixel it covers is (no hole pixel lost)."""
    m = np.asarray(mask, dtype=np.float32)
    if m.shape[0] == size:
        return m > 0.5
    return cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA) > 1e-6


def image_to_network(rgb: np.ndarray, size: int) -> np.ndarray:
    """``HxWx3`` uint8 -> ``(3, size, size)`` float32 in [-1, 1] (area averaging when shrinking)."""
    img = np.asarray(rgb)[:, :, :3]
    if img.shape[0] != size:
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0


@dataclass(frozen=True)
class NetworkInputs:
    """One face's generator inputs (numpy, no batch axis) and the hole in crop pixels."""

    masked: np.ndarray      # (3, R, R) float32 in [-1, 1], 0 in the hole
    hole: np.ndarray        # (1, R, R) float32 0/1
    alpha: np.ndarray       # (J, R, R) float32 class fractions of M_alpha
    gamma: np.ndarray       # (J, R, R) float32 class fractions of M_gamma
    hole_crop: np.ndarray   # (S, S) bool: the hole in crop pixels


def network_inputs(crop_rgb: np.ndarray, alpha: np.ndarray, gamma: np.ndarray, size: int,
                   hole: np.ndarray | None = None) -> NetworkInputs:
    """The generator's inputs for a crop and its maps (``hole``: default :func:`hole_mask`)."""
    crop_rgb, alpha, gamma = np.asarray(crop_rgb), np.asarray(alpha), np.asarray(gamma)
    if crop_rgb.shape[:2] != alpha.shape or alpha.shape != gamma.shape:
        raise ValueError(f"crop {crop_rgb.shape[:2]}, M_alpha {alpha.shape} and M_gamma {gamma.shape} differ in size")
    hole_crop = hole_mask(alpha) if hole is None else np.asarray(hole, bool)
    h = shrink_mask(hole_crop, size).astype(np.float32)[None]
    img = image_to_network(crop_rgb, size)
    return NetworkInputs(masked=img * (1.0 - h), hole=h, alpha=class_fractions(alpha, size),
                         gamma=class_fractions(gamma, size), hole_crop=hole_crop)


def network_to_image(out: np.ndarray, size: int) -> np.ndarray:
    """``(3, R, R)`` in [-1, 1] -> ``(size, size, 3)`` float32 in 0..255 (bilinear)."""
    img = (np.asarray(out, np.float32).transpose(1, 2, 0) + 1.0) * 127.5
    if img.shape[0] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(img, 0.0, 255.0)


def blend_weights(hole: np.ndarray, feather_px: float) -> np.ndarray:
    """0 outside the hole; inside, ``min(1, d / feather_px)`` with ``d`` the distance (>= 1) to the
    nearest pixel outside it."""
    hole = np.asarray(hole, bool)
    if not hole.any():
        return np.zeros(hole.shape, np.float32)
    d = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    if feather_px <= 0:
        return hole.astype(np.float32)
    return np.where(hole, np.clip(d / float(feather_px), 0.0, 1.0), 0.0).astype(np.float32)


def composite(photo_rgb: np.ndarray, generated: np.ndarray, hole: np.ndarray,
              feather_px: float | None = None) -> np.ndarray:
    """``generated`` (HxWx3, 0..255) pasted into ``photo_rgb`` (uint8) inside ``hole`` only."""
    photo = np.asarray(photo_rgb, np.uint8)[:, :, :3]
    if feather_px is None:
        feather_px = FEATHER_PX_256 * photo.shape[0] / 256
    w = blend_weights(hole, feather_px)[:, :, None]
    out = photo.astype(np.float32) * (1.0 - w) + np.asarray(generated, np.float32) * w
    result = photo.copy()
    inside = np.asarray(hole, bool)
    result[inside] = np.clip(out[inside] + 0.5, 0, 255).astype(np.uint8)
    return result
