"""The parser's input preparation, shared by inference and training (the same resize both ways)."""
from __future__ import annotations

import cv2
import numpy as np


def resize_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize a crop to the network's input size (area averaging when shrinking), as at inference."""
    if rgb.shape[0] == size:
        return rgb
    interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)
