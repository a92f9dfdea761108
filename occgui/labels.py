"""The parsing label set shared by M_alpha, M_beta and M_gamma (paper §3.2).

A subset of the 19 CelebAMask-HQ classes plus an explicit ``occluder`` class. "Left" and
"right" are the *subject's* sides, as in CelebAMask-HQ: the subject's left eye appears on
the image's right (iBUG points 42-47), the subject's right eye on the image's left (36-41).

=====  ==========  ======================  ==============================================
 id     name        CelebAMask-HQ class     notes
=====  ==========  ======================  ==============================================
  0     background  background              also neck, clothes, ears (not modelled)
  1     skin        skin                    facial skin incl. forehead
  2     l_brow      l_brow                  subject's left eyebrow (image right)
  3     r_brow      r_brow                  subject's right eyebrow (image left)
  4     l_eye       l_eye                   subject's left eye (image right)
  5     r_eye       r_eye                   subject's right eye (image left)
  6     nose        nose
  7     u_lip       u_lip
  8     mouth       mouth                   inner mouth between the lips
  9     l_lip       l_lip                   lower lip
 10     hair        hair                    hair over the face: Algorithm 1 draws skin and
                                            features there in M_gamma (see ``OCCLUDING``)
 11     occluder    (new)                   anything in front of the face: hands,
                                            glasses, masks, microphones, ...
=====  ==========  ======================  ==============================================

Algorithm 1 uses two value ranges: ``O`` (facial skin) and ``S`` (the facial features:
eyebrows, eyes, nose, lips); they are ``SKIN_IDS`` and ``FEATURE_IDS`` here.
"""
from __future__ import annotations

import numpy as np

BACKGROUND, SKIN, L_BROW, R_BROW, L_EYE, R_EYE, NOSE, U_LIP, MOUTH, L_LIP, HAIR, OCCLUDER = range(12)

NAMES: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye",
    "nose", "u_lip", "mouth", "l_lip", "hair", "occluder",
)
NUM_CLASSES = len(NAMES)

#: Algorithm 1's ``O``: the facial-skin value range.
SKIN_IDS: tuple[int, ...] = (SKIN,)
#: Algorithm 1's ``S``: the facial-feature value range (eyebrows, eyes, nose, lips).
FEATURE_IDS: tuple[int, ...] = (L_BROW, R_BROW, L_EYE, R_EYE, NOSE, U_LIP, MOUTH, L_LIP)
#: Classes whose pixels do not show the face and must be re-synthesized. Hair is not among them:
#: M_gamma puts skin and features under hair that covers the face (Algorithm 1), but I_out keeps
#: the hair. Re-synthesizing hair inside M_gamma's face was tried and left blotches at the hairline,
#: where M_beta's forehead is only an estimate (facial thirds, ``parsing.landmark_map``).
OCCLUDING: tuple[int, ...] = (OCCLUDER,)
#: Feature groups used by metrics (per-feature IoU) and by the de-occlusion stage.
FEATURE_GROUPS: dict[str, tuple[int, ...]] = {
    "brows": (L_BROW, R_BROW),
    "eyes": (L_EYE, R_EYE),
    "nose": (NOSE,),
    "lips": (U_LIP, MOUTH, L_LIP),
}
#: Mirror partner of every label (left <-> right), for symmetry-based completion.
MIRROR = np.array([BACKGROUND, SKIN, R_BROW, L_BROW, R_EYE, L_EYE, NOSE, U_LIP, MOUTH, L_LIP, HAIR, OCCLUDER],
                  dtype=np.uint8)

#: RGB colours (CelebAMask-HQ-like palette), index = label id.
PALETTE = np.array([
    (0, 0, 0),        # background
    (204, 128, 96),   # skin
    (255, 204, 0),    # l_brow
    (204, 153, 0),    # r_brow
    (0, 170, 255),    # l_eye
    (0, 85, 255),     # r_eye
    (102, 204, 0),    # nose
    (255, 51, 102),   # u_lip
    (153, 0, 51),     # mouth
    (255, 102, 153),  # l_lip
    (120, 60, 200),   # hair
    (255, 255, 255),  # occluder
], dtype=np.uint8)


def colorize(label_map: np.ndarray) -> np.ndarray:
    """Map an ``HxW`` label-id array to an ``HxWx3`` uint8 RGB image using :data:`PALETTE`."""
    return PALETTE[np.clip(label_map, 0, NUM_CLASSES - 1)]


def mask_of(label_map: np.ndarray, ids) -> np.ndarray:
    """Boolean mask of the pixels whose label is in ``ids`` (an int or an iterable of ints)."""
    ids = (ids,) if np.isscalar(ids) else tuple(ids)
    return np.isin(label_map, ids)


def legend_items() -> list[tuple[int, str, tuple[int, int, int]]]:
    """``(id, name, rgb)`` for every class, in id order (GUI legend, exported colour maps)."""
    return [(i, NAMES[i], tuple(int(c) for c in PALETTE[i])) for i in range(NUM_CLASSES)]
