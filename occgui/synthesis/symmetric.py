"""Default I_out backend: symmetry + mean-face template de-occlusion guided by M_gamma (paper §3.3).

The paper's FISN (a Pix2PixHD generator with SFT/SEAN normalisation, Eq. 2-5, trained with
Eq. 6-9) moves the face's own feature styles to the positions M_gamma gives. Until its
checkpoint exists, this training-free backend does the same with explicit steps:

1. **Hole.** The pixels M_alpha labels ``occluder``, dilated (:func:`baselines.occluder_mask`);
   everything else is returned bit-identical.
2. **Mirror** (``mirror.py``): every hole pixel samples its mirror partner *on the face*
   (piecewise-affine warp through the mesh's mirror vertex map, or the 68 points with
   ``ibug68.MIRROR``), used only where the partner is visible and of a compatible class
   (face <-> face, so hair or background never fills skin).
3. **Template** (``template.py``): where the partner is hidden too (both eyes under sunglasses,
   nose and mouth under a mask), the mean face warped through the same landmarks M_beta is
   drawn from (so its features land on M_gamma's), colour-matched to the visible skin near the
   hole.
4. **Outside the face** (M_gamma background/hair/occluder): Telea inpainting, or the mirror where
   its partner is visible hair/background.
5. The sources are cross-faded with soft weights into a guide image, which is Poisson-blended
   into the hole in the log domain (``blend.py``), so lighting differences between the two sides
   of the face become a smooth multiplicative correction and no seam remains.

``Synthesis.details`` records the hole size, the fraction of it filled from each source, and for
each facial feature group M_gamma has inside the hole whether it was mirrored or templated.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import labels as L
from ..pipeline.results import Landmarks, Synthesis
from .baselines import occluder_mask, telea
from .blend import poisson_fill
from .mirror import MirrorMap
from .template import TemplateMap, match_colour
from .warp import pixel_grid, sample

FACE_IDS: tuple[int, ...] = L.SKIN_IDS + L.FEATURE_IDS


def _disk(r: int) -> np.ndarray:
    r = max(int(r), 0)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A mask eroded by ~sigma and blurred by sigma: 1 well inside, 0 outside, smooth in between."""
    m = mask.astype(np.float32)
    if sigma <= 0:
        return m
    m = cv2.erode(m, _disk(int(round(sigma))))
    return cv2.GaussianBlur(m, (0, 0), sigma)


class SymmetricDeocclusion:
    """Stage ``synthesize`` default backend (see the module docstring)."""

    name = "symmetric"
    version = "1"

    def __init__(self, ctx=None):
        opts = dict(getattr(ctx, "options", {}) or {})
        self.dilate_px = int(opts.get("synth_dilate_px", 3))
        self.log_domain = bool(opts.get("synth_log_domain", True))
        self.mirror_background = bool(opts.get("synth_mirror_background", False))

    # ------------------------------------------------------------------------------------
    def synthesize(self, crop_rgb: np.ndarray, landmarks: Landmarks, alpha: np.ndarray,
                   gamma: np.ndarray) -> Synthesis:
        rgb = np.ascontiguousarray(crop_rgb[:, :, :3], dtype=np.uint8)
        hole = occluder_mask(alpha, self.dilate_px)
        if not hole.any():
            return Synthesis(image=rgb.copy(), filled=hole, backend=self.name,
                             details={"hole_px": 0, "sources": {}, "features": {}})
        h, w = hole.shape
        iod = float(np.linalg.norm(landmarks.points[36] - landmarks.points[45]))
        soft = max(1.5, 0.04 * iod)
        # the hole plus a 1-px ring (Poisson needs the guide on the hole's border) and a wider
        # band where the source weights are decided, so that their smoothing sees real values
        work = cv2.dilate(hole.astype(np.uint8), _disk(1)).astype(bool)
        band = cv2.dilate(hole.astype(np.uint8), _disk(int(np.ceil(3 * soft)) + 1)).astype(bool)
        (bys, bxs), bxy = pixel_grid(band)
        in_work = work[bys, bxs]
        img = rgb.astype(np.float32)

        # which pixels may serve as mirror sources: visible, away from the occluder's fringe
        visible = ~cv2.dilate(hole.astype(np.uint8), _disk(2)).astype(bool)
        face_a = L.mask_of(alpha, FACE_IDS)
        face_g = L.mask_of(gamma, FACE_IDS)
        ok_face_src = (visible & face_a).astype(np.float32)
        tgt_face = face_g[bys, bxs]

        # 1. mirror partners, usable where visible and of a compatible class
        src, _ = MirrorMap(landmarks).sources(bxy)
        src_ok = tgt_face & (sample(ok_face_src, src, interpolation=cv2.INTER_NEAREST) > 0.5)
        if not self.mirror_background:
            pass
        else:
            ok_other = (visible & ~face_a & (alpha != L.OCCLUDER)).astype(np.float32)
            src_ok |= ~tgt_face & (sample(ok_other, src, interpolation=cv2.INTER_NEAREST) > 0.5)
        # 2. mean-face template (face pixels only), colour-matched to the visible skin near the hole
        tm = TemplateMap(landmarks)
        tpl, tpl_ok = tm.sample(bxy[in_work])
        tpl = self._match_template(tpl, tm, img, alpha, hole, iod)

        def weight(valid: np.ndarray) -> np.ndarray:
            g = np.zeros((h, w), bool)
            g[bys, bxs] = valid
            return _soft(g, soft)[bys, bxs][in_work]

        w_mir = weight(src_ok)
        tpl_cov = np.zeros(len(bys), bool)
        tpl_cov[in_work] = tpl_ok
        tpl_cov[~in_work] = True   # outside the work ring the template is not needed: no edge erosion
        w_tpl = weight(tpl_cov & tgt_face)
        ys, xs = bys[in_work], bxs[in_work]
        mir = sample(img, src[in_work])
        # 3. inpainting for what neither covers (background, hair, the hole's far corners)
        inp = telea(rgb, hole).astype(np.float32)[ys, xs]

        base = w_tpl[:, None] * tpl + (1 - w_tpl[:, None]) * inp
        guide = img.copy()
        guide[ys, xs] = w_mir[:, None] * mir + (1 - w_mir[:, None]) * base
        out = poisson_fill(img, guide, hole, log_domain=self.log_domain)
        result = rgb.copy()
        result[hole] = np.clip(out[hole] + 0.5, 0, 255).astype(np.uint8)
        details = self._details(hole, ys, xs, w_mir, w_tpl, gamma)
        return Synthesis(image=result, filled=hole, backend=self.name, details=details)

    # ------------------------------------------------------------------------------------
    @staticmethod
    def _match_template(tpl: np.ndarray, tm: TemplateMap, img: np.ndarray, alpha: np.ndarray,
                        hole: np.ndarray, iod: float) -> np.ndarray:
        """Colour statistics of the template's skin -> the person's visible skin near the hole."""
        skin = (alpha == L.SKIN) & ~cv2.dilate(hole.astype(np.uint8), _disk(2)).astype(bool)
        near = cv2.dilate(hole.astype(np.uint8), _disk(int(0.6 * iod))).astype(bool) & skin
        ref = img[near] if near.sum() >= 200 else img[skin]
        face = tm.face
        return match_colour(tpl, face.image[face.skin], ref)

    @staticmethod
    def _details(hole, ys, xs, w_mir, w_tpl, gamma) -> dict:
        in_hole = hole[ys, xs]
        wm, wt = w_mir[in_hole], w_tpl[in_hole]
        n = int(in_hole.sum())
        src = {"mirrored": float(np.mean(wm >= 0.5)),
               "template": float(np.mean((wm < 0.5) & (wt >= 0.5))),
               "inpainted": float(np.mean((wm < 0.5) & (wt < 0.5)))}
        feats = {}
        g = gamma[ys, xs][in_hole]
        for name, ids in L.FEATURE_GROUPS.items():
            m = np.isin(g, ids)
            if m.sum() >= 10:
                feats[name] = "mirrored" if np.mean(wm[m] >= 0.5) >= 0.5 else \
                    "template" if np.mean(wt[m] >= 0.5) >= 0.5 else "inpainted"
        return {"hole_px": n, "sources": src, "features": feats}
