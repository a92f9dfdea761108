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


class RealMixSampler(OcclusionSampler):
    """:class:`OcclusionSampler` with real photos and real cut-outs mixed in (see the module docstring)."""

    def __init__(self, clean, library, *, seed: int, input_size: int, real_photos: list[RealCrop],
                 real_targets: np.ndarray, cutouts: list[RealCutout], p_photo: float = 0.2,
                 p_cutout: float = 0.35, **kw):
        super().__init__(clean, library, seed=seed, input_size=input_size, **kw)
        if len(real_photos) != len(real_targets):
            raise ValueError("one target per real photo")
        self.real_photos, self.real_targets, self.cutouts = list(real_photos), np.asarray(real_targets), list(cutouts)
        self.p_photo = float(p_photo) if self.real_photos else 0.0
        self.p_cutout = float(p_cutout) if self.cutouts else 0.0

    def sample(self, rng: np.random.Generator, i: int):
        u = rng.random()
        if u < self.p_photo:
            j = int(rng.integers(len(self.real_photos)))
            rgb, lab = self.real_photos[j].crop.copy(), self.real_targets[j].copy()
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

