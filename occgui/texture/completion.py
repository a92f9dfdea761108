"""Completing a UV texture: push-pull filling, mirror colour matching and seam feathering.

* :func:`push_pull` -- smooth scattered-data interpolation on an image grid (Gortler et al.
  1996): known pixels are averaged down a pyramid (normalised convolution), and every level
  fills its unknown pixels from the coarser estimate on the way back up. Known pixels keep their
  values; unknown ones receive a smooth membrane-like extension of their surroundings.
* :func:`mirror_gain` -- a low-frequency, per-channel colour gain that makes the mirrored half of
  the face match the lighting of the side it fills: the ratio of each side's colours where both
  are observed, smoothed heavily and extended into the holes by push-pull.
* :func:`cross_fade` -- a linear fade from a completed region's colours into the observed
  texels next to it, where both are known.
* :func:`feather_seams` -- a narrow blur across the borders between texels of different
  provenance, which hides the residual steps between sources.
"""
from __future__ import annotations

import cv2
import numpy as np


def push_pull(values: np.ndarray, weights: np.ndarray, *, min_size: int = 2) -> np.ndarray:
    """Fill the pixels of ``values`` (HxW or HxWxC float) where ``weights`` (HxW, in [0,1]) is 0.

    Pixels with weight 1 keep their values; unknown ones get a smooth estimate from the known
    ones around them (partial weights blend the two). The finest level of the estimate is the
    half-resolution one, upsampled: the fill is smooth, so this loses nothing and halves the cost.
    """
    v = np.asarray(values, dtype=np.float32)
    w = np.clip(np.asarray(weights, dtype=np.float32), 0.0, 1.0)
    squeeze = v.ndim == 2
    if squeeze:
        v = v[:, :, None]
    h, wd = w.shape
    pyramid = [(_area_half(v * w[:, :, None]), _area_half(w))]
    while min(pyramid[-1][1].shape) > min_size:
        p, q = pyramid[-1]
        pyramid.append((_area_half(p), _area_half(q)))
    p, q = pyramid[-1]
    total = float(q.sum())
    mean = p.reshape(-1, p.shape[2]).sum(axis=0) / total if total > 0 else np.zeros(p.shape[2], np.float32)
    est = np.where(q[:, :, None] > 1e-6, p / np.maximum(q, 1e-6)[:, :, None], mean[None, None, :]).astype(np.float32)
    for p, q in reversed(pyramid[:-1]):
        up = _resize(est, q.shape)
        # a level's own average counts fully once a quarter of its footprint is known
        alpha = np.clip(q * 4.0, 0.0, 1.0)[:, :, None]
        est = alpha * (p / np.maximum(q, 1e-6)[:, :, None]) + (1.0 - alpha) * up
    up = _resize(est, (h, wd))
    wf = w[:, :, None]
    out = v.copy()
    partial = (wf < 1.0) & (wf > 0.0)
    np.copyto(out, up, where=wf <= 0.0)
    if partial.any():
        np.copyto(out, wf * v + (1.0 - wf) * up, where=partial)
    return out[:, :, 0] if squeeze else out


def _area_half(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    out = cv2.resize(a, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    return out[:, :, None] if a.ndim == 3 and out.ndim == 2 else out


def _resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return out[:, :, None] if a.ndim == 3 and out.ndim == 2 else out


def normalised_blur(values: np.ndarray, mask: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian average of ``values`` over ``mask`` only: returns (blurred values, blurred mask)."""
    m = mask.astype(np.float32)
    v = np.asarray(values, dtype=np.float32)
    num = cv2.GaussianBlur(v * (m[:, :, None] if v.ndim == 3 else m), (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    out = num / np.maximum(den, 1e-6)[..., None] if v.ndim == 3 else num / np.maximum(den, 1e-6)
    return out, den


def mirror_gain(colours: np.ndarray, observed: np.ndarray, *, sigma: float, clip: tuple[float, float] = (0.6, 1.6),
                work_size: int = 256) -> np.ndarray:
    """Per-texel, per-channel gain that maps mirrored colours (``colours[:, ::-1]``) onto this side's lighting.

    ``sigma`` is in texels of ``colours``; the field is computed on a ``work_size`` grid (it is
    smooth) and resized back.
    """
    h, w = observed.shape
    f = min(1.0, work_size / float(max(h, w)))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    c = cv2.resize(colours.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    o = cv2.resize(observed.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.99
    both = o & o[:, ::-1]
    log_ratio = np.log(c + 8.0) - np.log(c[:, ::-1] + 8.0)
    smooth, den = normalised_blur(log_ratio, both, max(1.0, sigma * f))
    weight = np.clip(den * 4.0, 0.0, 1.0)
    filled = push_pull(smooth, weight)
    gain = np.exp(np.clip(filled, np.log(clip[0]), np.log(clip[1])))
    return cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)


def cross_fade(colour: np.ndarray, near: np.ndarray, blend: np.ndarray, layer: np.ndarray, width: float) -> None:
    """Blend ``colour`` towards ``layer`` (in place) on the ``blend`` texels within ``width``
    texels of the ``near`` region: weight 1 for ``layer`` at the region's border, 0 at ``width``.

    Used on the observed side of a border with a completed region, so that the completion's
    colours fade in instead of starting with a step.
    """
    if not near.any():
        return
    d = cv2.distanceTransform((~near).astype(np.uint8), cv2.DIST_L2, 3)
    band = blend & (d < width)
    if not band.any():
        return
    a = np.clip(d[band] / float(width), 0.0, 1.0)[:, None]
    colour[band] = a * colour[band] + (1.0 - a) * layer[band]


def feather_seams(image: np.ndarray, labels: np.ndarray, valid: np.ndarray, *, radius: int = 3,
                  sigma: float = 1.5) -> np.ndarray:
    """Blur ``image`` within ``radius`` texels of any border between different ``labels`` inside ``valid``."""
    lab = labels.astype(np.int16)
    border = np.zeros(lab.shape, dtype=bool)
    border[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    border[:, :-1] |= lab[:, 1:] != lab[:, :-1]
    border[1:, :] |= lab[1:, :] != lab[:-1, :]
    border[:-1, :] |= lab[1:, :] != lab[:-1, :]
    border &= valid
    if not border.any():
        return image
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    band = cv2.dilate(border.astype(np.uint8), k) > 0
    band &= valid
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    out = image.copy()
    out[band] = blurred[band]
    return out
