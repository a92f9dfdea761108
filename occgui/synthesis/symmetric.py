"""Default I_out backend: symmetry + fitted-template de-occlusion guided by M_gamma (paper §3.3).

The paper's FISN (§3.3: a Pix2PixHD generator with SFT/SEAN normalisation, trained adversarially;
not implemented here, issue 16) moves the face's own feature styles to the positions M_gamma
gives. Until it is trained, this backend does the same with explicit steps; its only learned part
is the linear appearance model of step 3 (``docs/deocclusion.md``):

1. **Hole.** The pixels M_alpha labels ``occluder``, dilated (:func:`baselines.occluder_mask`);
   everything else is returned bit-identical.
2. **Mirror** (``mirror.py``): every hole pixel samples its mirror partner *on the face*
   (piecewise-affine warp through the mesh's mirror vertex map, or the 68 points with
   ``ibug68.MIRROR``), used only where the partner is visible and of a compatible class
   (face <-> face, so hair or background never fills skin). A hidden brow's partners are moved
   by the offset between the visible brow as parsed (M_alpha) and as drawn (M_beta), so the
   mirrored brow lands on M_gamma's brow band (:meth:`SymmetricDeocclusion._align_features`).
3. **Template** (``template.py``, ``appearance.py``): where the partner is hidden too (both eyes
   under sunglasses, nose and mouth under a mask), a person-specific template: the face
   appearance model (a linear basis of shape-free face appearance learned from training faces)
   fitted to the visible face pixels (MAP with a Gaussian prior, occlusion-masked, Huber
   re-weighted: the 2D counterpart of §3.5's occlusion-masked photometric fit), falling back to
   the plain mean face when the model is absent or switched off (``--option synthesize.appearance=false``). It is
   warped through the same landmarks M_beta is drawn from (so its features land on M_gamma's).
   The fit already carries the person's colours and light; the plain mean face is colour-matched
   to the visible skin near the hole (Lab statistics compared at the same pixels), then relit by
   a smooth local gain interpolated from that skin.
4. **Outside the face** (M_gamma background/hair/occluder): a smooth fill from the surrounding
   pixels (push-pull, then harmonic through step 6); backgrounds are rarely symmetric.
5. **Region style** (:meth:`SymmetricDeocclusion._region_style`, a pixel-space analogue of
   SEAN's per-region normalisation, §3.3): each feature group M_gamma draws in the hole takes the
   Lab mean and spread of the same group where the photo shows it, when enough of it is visible
   (a brow across the face; not a nose bridge above a mask), so the feature fills M_gamma's region
   in the person's own colour.
6. The sources are cross-faded with soft weights into a guide image, which is Poisson-blended
   into the hole in the log domain (``blend.py``), so lighting differences between the two sides
   of the face become a smooth multiplicative correction and no seam remains.

``Synthesis.details`` records the hole size, the fraction of it filled from each source, and for
each facial feature group M_gamma has inside the hole whether it was mirrored or templated.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import labels as L
from ..results import Landmarks, Synthesis
from .appearance import fitted_face, model_available, model_digest
from .baselines import occluder_mask
from .blend import RING_PX, poisson_fill, push_pull
from .mirror import MirrorMap
from .settings import SymmetricSettings
from .template import TemplateMap, load_mean_face, match_colour, template_correspondence, to_lab, to_rgb
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
    #: 3: appearance-model template and brow alignment; 2: region-wise style of the hidden
    #: features; 1: neither (the model's digest is appended when the model is used)
    version = "3"

    def __init__(self, ctx=None):
        #: the backend's typed settings (every tuning number, named: ``settings.py``)
        self.settings: SymmetricSettings = getattr(ctx, "settings", None) or SymmetricSettings()
        st = self.settings
        self.align_features = tuple(g for g, on in (("brows", st.align_brows), ("eyes", st.align_eyes)) if on)
        if st.appearance and model_available():     # the model's digest keys the stage's cache
            self.version = f"{self.version}+{model_digest()}"

    # ------------------------------------------------------------------------------------
    def synthesize(self, crop_rgb: np.ndarray, landmarks: Landmarks, alpha: np.ndarray, beta: np.ndarray,
                   gamma: np.ndarray) -> Synthesis:
        st = self.settings
        rgb = np.ascontiguousarray(crop_rgb[:, :, :3], dtype=np.uint8)
        hole = occluder_mask(alpha, max(1, int(round(st.dilate_px * alpha.shape[0] / 256))))
        if not hole.any():
            return Synthesis(image=rgb.copy(), filled=hole, backend=self.name,
                             details={"hole_px": 0, "sources": {}, "features": {}})
        h, w = hole.shape
        iod = float(np.linalg.norm(landmarks.points[36] - landmarks.points[45]))
        soft = max(st.crossfade_min_px, st.crossfade_iod * iod)   # cross-fade width between sources
        # distance to the hole: the Poisson ring, the band where source weights are decided (so
        # that their smoothing sees real values) and the visible pixels near the hole
        dist = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
        work = cv2.dilate(hole.astype(np.uint8), np.ones((2 * RING_PX + 1,) * 2, np.uint8)).astype(bool)
        band = dist <= np.ceil(3 * soft) + RING_PX + 2
        (bys, bxs), bxy = pixel_grid(band)
        in_work = work[bys, bxs]
        ys, xs = bys[in_work], bxs[in_work]
        img = rgb.astype(np.float32)
        visible = dist > st.visible_margin_px             # away from the occluder's fringe
        tgt_face = L.mask_of(gamma, FACE_IDS)[bys, bxs]

        def weight(valid: np.ndarray) -> np.ndarray:
            g = np.zeros((h, w), bool)
            g[bys, bxs] = valid
            return _soft(g, soft)[bys, bxs][in_work]

        # 1. mirror partners on the face, usable where visible face (never hair or background);
        #    the hidden brows' partners moved onto M_gamma's brow band
        src, _ = MirrorMap(landmarks).sources(bxy)
        aligned: list[str] = []
        if self.align_features:
            src, aligned = self._align_features(src, (bys, bxs), alpha, beta, gamma, hole, visible, iod)
        ok_src = (visible & L.mask_of(alpha, FACE_IDS)).astype(np.float32)
        w_mir = weight(tgt_face & (sample(ok_src, src, interpolation=cv2.INTER_NEAREST) > 0.5))
        mir = sample(img, src[in_work])
        # 2. template on the face: fitted to the visible face, else the mean face colour-matched
        #    to the visible skin near the hole
        # (the fit only where some face pixel of the hole has no usable mirror partner)
        need = bool(np.any(w_mir < 1.0 - 1e-3))
        person = self._person_template(rgb, landmarks, alpha, visible) if need else None
        tm = TemplateMap(landmarks, person)
        tpl, tpl_ok = tm.sample(bxy[in_work], st.template_strength)
        if person is None:       # the fitted template has the person's colours and light already
            tpl = self._match_template(tpl, tm, img, alpha, visible, dist, iod, (ys, xs), st)
        cover = np.ones(len(bys), bool)                   # beyond the work ring: no edge erosion
        cover[in_work] = tpl_ok
        w_tpl = weight(cover & tgt_face)
        # 3. a smooth fill where neither applies (background, hair, occluder left in M_gamma):
        #    push-pull interpolation of the visible pixels, made harmonic by the Poisson step
        base = w_tpl[:, None] * tpl
        if np.any((1.0 - w_mir) * (1.0 - w_tpl) > 1e-3):
            base += (1.0 - w_tpl)[:, None] * push_pull(img, ~hole)[ys, xs]
        guide = img.copy()
        guide[ys, xs] = w_mir[:, None] * mir + (1.0 - w_mir[:, None]) * base
        styled: list[str] = []
        if st.region_style > 0:
            guide, styled = self._region_style(guide, img, alpha, gamma, hole, visible, soft)
        out = poisson_fill(img, guide, hole, log_domain=st.log_domain)
        result = rgb.copy()
        result[hole] = np.clip(out[hole] + 0.5, 0, 255).astype(np.uint8)
        details = self._details(hole, ys, xs, w_mir, w_tpl, gamma)
        details["styled"] = styled
        details["aligned"] = aligned
        return Synthesis(image=result, filled=hole, backend=self.name, details=details)

    # ------------------------------------------------------------------------------------
    def _align_features(self, src, at, alpha, beta, gamma, hole, visible, iod):
        """Warp the mirrored feature to the region M_gamma gives it (§3.3): where the parser puts
        the visible brow (M_alpha) and where the landmarks put it (M_beta) may differ by a few
        pixels; the hidden brow's region in M_gamma is M_beta's, so its mirror sources are moved
        by that offset (feathered, at most ``align_max_iod`` inter-ocular distances) and the parsed
        visible brow lands on it. Only when the visible partner is parsed over at least half of its
        M_beta area. ``beta`` is M_beta of the ``landmark_map`` stage."""
        st = self.settings
        out = src.copy()
        done = []
        for name in self.align_features:
            for hid in L.FEATURE_GROUPS.get(name, ()):
                partner = int(L.MIRROR[hid])
                region = L.mask_of(gamma, (hid,))
                if (region & hole).sum() < max(10, 0.5 * region.sum()):
                    continue                               # not hidden
                seen = (alpha == partner) & visible & ~hole
                drawn = beta == partner
                if drawn.sum() < 10 or (drawn & hole).sum() > 0.25 * drawn.sum() or seen.sum() < 0.5 * drawn.sum():
                    continue                               # the partner is not visible enough
                # compare like with like: only the columns both span (hair over the brow's tail
                # must not pull the offset sideways)
                sy, sx = np.nonzero(seen)
                dy, dx = np.nonzero(drawn)
                lo, hi = max(sx.min(), dx.min()), min(sx.max(), dx.max())
                ks, kd = (sx >= lo) & (sx <= hi), (dx >= lo) & (dx <= hi)
                if hi - lo < st.align_min_span_iod * iod or ks.sum() < 5 or kd.sum() < 5:
                    continue
                delta = np.array([sx[ks].mean() - dx[kd].mean(), sy[ks].mean() - dy[kd].mean()])
                norm = float(np.linalg.norm(delta))
                if norm > st.align_max_iod * iod:
                    delta *= st.align_max_iod * iod / norm
                r = max(1, int(round(st.align_feather_iod * iod)))
                wgt = cv2.GaussianBlur(cv2.dilate(region.astype(np.float32), _disk(r)), (0, 0), r / 2.0)
                out += wgt[at][:, None] * delta[None, :]
                done.append(L.NAMES[hid])
        return out, done

    def _person_template(self, rgb, landmarks, alpha, visible):
        """The mean face with the appearance model fitted to the visible face pixels (M_alpha's
        face classes away from the hole), or None (the plain mean face) when switched off or when
        the model file is absent (a model that does not match the template is an error)."""
        st = self.settings
        if not st.appearance or not model_available():
            return None
        face = load_mean_face()
        dst, src = template_correspondence(landmarks, face)
        person, _ = fitted_face(rgb, visible & L.mask_of(alpha, FACE_IDS), dst, src, face, st.appearance_noise,
                                st.appearance_huber, st.appearance_iterations)
        return person

    @staticmethod
    def _match_template(tpl: np.ndarray, tm: TemplateMap, img: np.ndarray, alpha: np.ndarray,
                        visible: np.ndarray, dist: np.ndarray, iod: float, at, st: SymmetricSettings) -> np.ndarray:
        """Colour statistics of the template -> the person's, compared at the same pixels: the
        visible skin within ``colour_near_iod`` inter-ocular distances of the hole (all visible skin when too
        little is near), where the warped template is sampled too. Comparing like with like
        also cancels the mean face's own shading (e.g. darker eye sockets).

        A smooth local gain follows: the log ratio of the photo to the matched template on that
        skin, smoothed and interpolated into the hole (push-pull), read at ``at`` (the rows and
        columns of ``tpl``), so that the template takes the light falling on each part of the face."""
        skin = (alpha == L.SKIN) & visible
        near = skin & (dist <= st.colour_near_iod * iod)
        ref = near if near.sum() >= 200 else skin
        (ry, rx), rxy = pixel_grid(ref)
        tref, ok = tm.sample(rxy)
        if ok.sum() < 50:                                 # the template does not reach them
            face = tm.face
            return match_colour(tpl, face.image[face.skin], img[ref])
        ry, rx, tref = ry[ok], rx[ok], tref[ok]
        out = match_colour(tpl, tref, img[ry, rx])
        tref = match_colour(tref, tref, img[ry, rx])
        h, w = alpha.shape
        ratio = np.zeros((h, w, 3), np.float32)
        known = np.zeros((h, w), np.float32)
        ratio[ry, rx] = np.log1p(img[ry, rx]) - np.log1p(tref)
        known[ry, rx] = 1.0
        sigma = max(1.0, st.gain_sigma_iod * iod)
        num = cv2.GaussianBlur(ratio, (0, 0), sigma)
        den = cv2.GaussianBlur(known, (0, 0), sigma)
        have = den > 0.05
        smooth = np.where(have[:, :, None], num / np.maximum(den, 1e-6)[:, :, None], 0.0)
        gain = push_pull(smooth, have)
        return np.expm1(np.log1p(np.maximum(out, 0.0)) + gain[at]).astype(np.float32)

    def _region_style(self, guide: np.ndarray, img: np.ndarray, alpha: np.ndarray, gamma: np.ndarray,
                      hole: np.ndarray, visible: np.ndarray, soft: float) -> tuple[np.ndarray, list[str]]:
        """Region-wise style, a pixel-space analogue of SEAN's per-region normalisation (§3.3):
        inside the hole, each facial-feature group M_gamma draws is given the Lab mean and spread
        of the same group where the photo shows it (M_alpha, away from the occluder), so the
        feature takes the colour of the person's own and fills the region M_gamma gives it.
        Groups with no visible counterpart of at least half the hidden part's size (both eyes
        under sunglasses; the nose under a mask, whose bridge alone is not the nose) keep the guide."""
        st = self.settings
        out = guide.copy()
        styled = []
        for name, ids in L.FEATURE_GROUPS.items():
            region = hole & L.mask_of(gamma, ids)
            style = visible & ~hole & L.mask_of(alpha, ids)
            # the visible part must be able to describe the feature: at least half as large as
            # the hidden part (a brow or an eye across the face, not a nose bridge above a mask)
            if region.sum() < 10 or style.sum() < max(20, st.style_min_fraction * region.sum()):
                continue
            full = L.mask_of(gamma, ids)                  # the whole region, for the guide's statistics
            g = to_lab(guide[full])
            t = to_lab(img[style])
            gain = np.clip(t.std(axis=0) / (g.std(axis=0) + 1e-3), st.style_gain_min, st.style_gain_max)
            w = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(0.5, soft / 2)) * region
            yy, xx = np.nonzero(w > 1e-3)
            lab = (to_lab(guide[yy, xx]) - g.mean(axis=0)) * gain + t.mean(axis=0)
            a = (st.region_style * w[yy, xx])[:, None]
            out[yy, xx] = (1 - a) * guide[yy, xx] + a * to_rgb(lab)
            styled.append(name)
        return out, styled

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
