"""Training batches that mix real occlusions into N_alpha's synthetic stream (issue 13, point 3).

Each sample of :class:`RealMixSampler` is, by a seeded draw:

* with probability ``p_photo``: a labelled **dev** photo itself (``real_cutouts.RealCrop``), its target
  the labelled occluder (class ``occluder``) over the initial parser's own prediction elsewhere
  (pseudo-labels for the face classes, :func:`pseudo_labels`); hats and hair in front of the face
  are occluder where the label says so;
* with probability ``p_cutout``: a clean training crop (identities A-P) with one occluder cut out of
  a dev photo pasted at the source's place relative to the face (``real_cutouts.paste_real_cutout``),
  and a synthetic occluder besides in a quarter of these;
* otherwise the original synthetic sample (:class:`dataset.OcclusionSampler`: pasted emoji, mask
  templates, procedural hands, or nothing), so that pasted-occluder accuracy and the clean
  false-positive rate are kept.

All three go through the same augmentation; batch ``t`` still depends only on ``(seed, t)``.
"""
from __future__ import annotations

import numpy as np

from ... import labels as L
from ..occlusion.real_cutouts import RealCrop, RealCutout, choose_cutout, paste_real_cutout
from .dataset import FAMILY_WEIGHTS, TRAIN_KIND_WEIGHTS, OcclusionSampler, occlude_sample


def pseudo_labels(predicted: np.ndarray, occluder_mask: np.ndarray) -> np.ndarray:
    """Target of a real photo: the labelled occluder over the parser's own labels. Occluder pixels the
    parser predicted outside the labelled mask become skin (the label says nothing covers them)."""
    lab = np.asarray(predicted, dtype=np.uint8).copy()
    lab[lab == L.OCCLUDER] = L.SKIN
    lab[np.asarray(occluder_mask, bool)] = L.OCCLUDER
    return lab


def warp_photo(rng: np.random.Generator, rgb: np.ndarray, lab: np.ndarray, strength: float):
    """Extra similarity jitter of a real photo and its target (scale up to +-0.2, rotation up to +-15
    degrees, shift up to 0.08 of the crop, each times ``strength``), so the few dev photos are seen in
    more framings than the common augmentation gives; label pixels brought in from outside are background."""
    import cv2

    s = rgb.shape[0]
    k = float(strength)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), rng.uniform(-15, 15) * k, float(np.exp(rng.uniform(-0.2, 0.2) * k)))
    m[:, 2] += rng.uniform(-0.08, 0.08, size=2) * k * s
    rgb = cv2.warpAffine(rgb, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lab = cv2.warpAffine(lab, m, (s, s), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=int(L.BACKGROUND))
    return rgb, lab


class RealMixSampler(OcclusionSampler):
    """:class:`OcclusionSampler` with real photos and real cut-outs mixed in (see the module docstring)."""

    def __init__(self, clean, library, *, seed: int, input_size: int, real_photos: list[RealCrop],
                 real_targets: np.ndarray, cutouts: list[RealCutout], p_photo: float = 0.2,
                 p_cutout: float = 0.35, photo_warp: float = 0.0, **kw):
        super().__init__(clean, library, seed=seed, input_size=input_size, **kw)
        if len(real_photos) != len(real_targets):
            raise ValueError("one target per real photo")
        self.real_photos, self.real_targets, self.cutouts = list(real_photos), np.asarray(real_targets), list(cutouts)
        self.p_photo = float(p_photo) if self.real_photos else 0.0
        self.p_cutout = float(p_cutout) if self.cutouts else 0.0
        self.photo_warp = float(photo_warp)

    def sample(self, rng: np.random.Generator, i: int):
        u = rng.random()
        if u < self.p_photo:
            j = int(rng.integers(len(self.real_photos)))
            rgb, lab = self.real_photos[j].crop.copy(), self.real_targets[j].copy()
            if self.photo_warp > 0:
                rgb, lab = warp_photo(rng, rgb, lab, self.photo_warp)
        elif u < self.p_photo + self.p_cutout:
            crop, lab0, lmk = self.clean.crops[i], self.clean.labels[i], self.clean.lmk68[i]
            rgb, mask, _ = paste_real_cutout(rng, np.asarray(crop), lmk, choose_cutout(rng, self.cutouts))
            lab = np.asarray(lab0).copy()
            if rng.random() < 0.25:
                rgb, lab, _ = occlude_sample(rng, rgb, lab, lmk, self.library, 1, FAMILY_WEIGHTS, TRAIN_KIND_WEIGHTS)
            lab[mask] = L.OCCLUDER
        else:
            return super().sample(rng, i)
        return self._finish(rng, rgb, lab)

