"""Reference I_out backends used as baselines and ablations (not the default).

* ``TeleaInpaint``: OpenCV's Telea inpainting of the M_alpha occluder mask -- the classical baseline
  the default de-occlusion must beat.
* ``NoDeocclusion``: I_out = I_fac, the "raw" ablation of the evaluation suite (texture straight
  from the occluded photo).
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import labels as L
from ..results import Landmarks, Synthesis
from .settings import TeleaSettings


def occluder_mask(alpha: np.ndarray, dilate_px: int = 2) -> np.ndarray:
    """Pixels M_alpha labels as occluding, slightly dilated to cover anti-aliased borders."""
    m = L.mask_of(alpha, L.OCCLUDING).astype(np.uint8)
    if dilate_px > 0 and m.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        m = cv2.dilate(m, k)
    return m.astype(bool)


def telea(rgb: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """``cv2.inpaint(..., cv2.INPAINT_TELEA)`` on an RGB image and a boolean mask."""
    if not mask.any():
        return rgb.copy()
    return cv2.inpaint(rgb, mask.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)


class TeleaInpaint:
    name = "telea"
    version = "1"

    def __init__(self, ctx=None):
        self.settings: TeleaSettings = getattr(ctx, "settings", None) or TeleaSettings()

    def synthesize(self, crop_rgb: np.ndarray, landmarks: Landmarks, alpha: np.ndarray, beta: np.ndarray,
                   gamma: np.ndarray) -> Synthesis:
        mask = occluder_mask(alpha, self.settings.dilate_px)
        return Synthesis(image=telea(crop_rgb, mask, self.settings.radius_px), filled=mask, backend=self.name)


class NoDeocclusion:
    name = "none"
    version = "1"

    def synthesize(self, crop_rgb: np.ndarray, landmarks: Landmarks, alpha: np.ndarray, beta: np.ndarray,
                   gamma: np.ndarray) -> Synthesis:
        return Synthesis(image=crop_rgb.copy(), filled=np.zeros(alpha.shape, bool), backend=self.name)
