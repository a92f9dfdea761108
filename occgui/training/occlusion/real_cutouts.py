"""Occluders cut out of real photos: the labelled real occlusions as training material for N_alpha.

The labelled set (``resources/real_occlusions``, read by :mod:`occgui.training.real_occlusions`)
outlines the real occluder of each photo (a hand, a microphone, sunglasses, a hat brim...) as
polygons, with the 68 landmarks of the face. This module

* moves a label into the parser's crop (:func:`prepare_real_crop`: the pipeline's detector and
  ``aligned_crop``, the labelled face in a photo with several), giving a :class:`RealCrop`;
* cuts the occluder out of it (:func:`make_cutout`): an RGBA image whose alpha is the polygon mask,
  feathered by a fraction of a pixel, together with the source face's landmarks in the cut-out's
  own pixels and that face's skin colour and brightness (:class:`RealCutout`);
* pastes a cut-out onto another face (:func:`paste_real_cutout`) in the same place relative to the
  face: the similarity transform that takes the source's 68 landmarks onto the target's, jittered
  in scale, rotation and position, mirrored half of the time (landmarks mirrored with
  ``ibug68.MIRROR``); colour matched to the target (brightness by the two faces' luminance ratio,
  skin-bearing types by the ratio of the two skin colours) and then jittered, feathered, blurred
  and noised by :func:`occluders.composite`.

Only the *dev* split may be cut out for training (the trainer asks for it by name); the test split
is never read here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ...errors import OccguiError
from ...landmarks.ibug68 import MIRROR as LMK_MIRROR
from .occluders import FaceFrame, Occluder, Placement, _face_luminance, composite, face_skin_colour

#: Types whose cut-outs are mostly skin (colour-matched to the target's skin colour).
SKIN_TYPES = ("hand", "other_person")
#: Types that are symmetric about the face's axis in place (never mirrored off-centre): mirroring is fine for all.
CROP_SIZE = 256


@dataclass(frozen=True)
class RealCrop:
    """One labelled real occlusion in the parser's crop: the crop, the labelled occluder mask and the
    labelled 68 landmarks, all in crop pixels."""

    stem: str
    type: str
    crop: np.ndarray           # (S,S,3) uint8
    mask: np.ndarray           # (S,S) bool
    landmarks68: np.ndarray    # (68,2) float64


@dataclass(frozen=True)
class RealCutout:
    """A real occluder cut out of a :class:`RealCrop`: the ``occluder`` (RGBA cropped to the mask's
    bounding box, alpha = the feathered mask), the source face's landmarks in the cut-out's pixels,
    and the source face's skin colour (RGB 0..255) and luminance (0..1)."""

    occluder: Occluder
    landmarks68: np.ndarray
    skin: np.ndarray
    luminance: float

    @property
    def type(self) -> str:
        return self.occluder.kind[len("real_"):]


# ----------------------------------------------------------------------------- crops
def labelled_detection(detections, landmarks_working: np.ndarray):
    """The detection whose box holds the labelled landmarks' centre (else the largest), as ``occgui eval real``."""
    faces = sorted(detections, key=lambda d: -d.area)
    if not faces:
        return None
    c = np.asarray(landmarks_working, dtype=np.float64).mean(axis=0)
    for d in faces:
        x0, y0, x1, y1 = d.box
        if x0 <= c[0] <= x1 and y0 <= c[1] <= y1:
            return d
    return faces[0]


def prepare_real_crop(label, faces_dir, detector, size: int = CROP_SIZE) -> RealCrop | None:
    """The label moved into the crop the parser sees (``None`` when no face is detected)."""
    from ...detection.crop import aligned_crop
    from ...imageio import load_image

    img = load_image(label.photo_path(faces_dir))
    lmk_w = img.photo_to_working(label.landmarks)
    det = labelled_detection(detector.detect(img.rgb), lmk_w)
    if det is None:
        return None
    crop = aligned_crop(img.rgb, det, size)
    to_crop = np.asarray(crop.to_crop, dtype=np.float64)[:2]
    # the mask: polygons in photo pixels -> working pixels -> crop (as eval real: linear warp, >= 0.5)
    h, w = img.rgb.shape[:2]
    mask_w = label.mask(img.photo_size[::-1]).astype(np.float32)
    if mask_w.shape != (h, w):
        mask_w = cv2.resize(mask_w, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(mask_w, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0) >= 0.5
    pts = lmk_w @ to_crop[:, :2].T + to_crop[:, 2]
    return RealCrop(label.stem, label.type, np.ascontiguousarray(crop.image), mask, pts)


def prepare_real_crops(labels, faces_dir, size: int = CROP_SIZE, progress: bool = False) -> list[RealCrop]:
    from ...detection.mediapipe_detector import MediaPipeFaceDetector

    det = MediaPipeFaceDetector()
    it = labels
    if progress:
        from tqdm import tqdm
        it = tqdm(labels, desc="real crops", unit="photo")
    out = []
    for lab in it:
        if not lab.photo_path(faces_dir).is_file():
            continue
        rc = prepare_real_crop(lab, faces_dir, det, size)
        if rc is not None:
            out.append(rc)
    return out


def save_real_crops(path, crops: list[RealCrop]) -> None:
    np.savez_compressed(path, stems=np.array([c.stem for c in crops]), types=np.array([c.type for c in crops]),
                        crops=np.stack([c.crop for c in crops]), masks=np.stack([c.mask for c in crops]),
                        landmarks=np.stack([c.landmarks68 for c in crops]))


def load_real_crops(path) -> list[RealCrop]:
    z = np.load(path)
    return [RealCrop(str(s), str(t), c, m.astype(bool), p.astype(np.float64))
            for s, t, c, m, p in zip(z["stems"], z["types"], z["crops"], z["masks"], z["landmarks"])]


def real_crops_for_training(labels_dir, faces_dir, cache_dir=None, size: int = CROP_SIZE,
                            progress: bool = False) -> list[RealCrop]:
    """The **dev** split's labels as crops (cached as ``real_dev_crops_<size>.npz`` in ``cache_dir``).
    The test split is never read."""
    from ..real_occlusions import load_labels

    labels = load_labels(labels_dir, split="dev")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"real_dev_crops_{size}.npz"
        if cache.is_file():
            crops = load_real_crops(cache)
            if sorted(c.stem for c in crops) == sorted(lab.stem for lab in labels
                                                        if lab.photo_path(faces_dir).is_file()):
                return crops
    crops = prepare_real_crops(labels, faces_dir, size, progress=progress)
    if not crops:
        raise OccguiError(f"no labelled dev photo found under {faces_dir}")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_real_crops(cache, crops)
    return crops


def dev_val_stems(items, n: int, seed: int = 0) -> list[str]:
    """A seeded, type-stratified part of the dev photos held out of training as **dev-val** (to choose the
    step and stop on; the test split stays untouched). ``items`` have ``stem`` and ``type`` (labels or
    :class:`RealCrop`); each type gets ``n`` times its share of the photos (largest remainders first,
    ties by type name), and within a type the photos are a seeded permutation of the stems in order."""
    items = sorted(items, key=lambda it: it.stem)
    n = int(n)
    if n <= 0 or not items:
        return []
    if n >= len(items):
        raise OccguiError(f"dev-val of {n} photos leaves none of the {len(items)} dev photos to train on")
    types = sorted({it.type for it in items})
    counts = {t: sum(it.type == t for it in items) for t in types}
    quota = {t: n * counts[t] / len(items) for t in types}
    take = {t: int(math.floor(quota[t])) for t in types}
    for t in sorted(types, key=lambda t: (-(quota[t] - take[t]), t))[: n - sum(take.values())]:
        take[t] += 1
    rng = np.random.default_rng([int(seed), 1307])
    out = []
    for t in types:
        stems = [it.stem for it in items if it.type == t]
        out += [stems[i] for i in sorted(rng.permutation(len(stems))[: take[t]])]
    return sorted(out)


def dev_folds(items, k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint, type-stratified folds of the dev photos for cross-validation (hold out each fold in
    turn as dev-val; the test split stays untouched). ``items`` have ``stem`` and ``type``. Within a type
    the stems go, in a seeded permutation, round-robin over the folds, starting where the previous type
    stopped, so every type's photos and the folds' sizes differ by at most one between folds. Each fold
    is sorted; together they hold every stem once."""
    items = sorted(items, key=lambda it: it.stem)
    k = int(k)
    if k < 2 or k > len(items):
        raise OccguiError(f"cross-validation needs 2 to {len(items)} folds of the {len(items)} dev photos, got {k}")
    rng = np.random.default_rng([int(seed), 2609])
    folds: list[list[str]] = [[] for _ in range(k)]
    at = 0
    for t in sorted({it.type for it in items}):
        stems = [it.stem for it in items if it.type == t]
        for i in rng.permutation(len(stems)):
            folds[at % k].append(stems[i])
            at += 1
    return [sorted(f) for f in folds]


def parse_fold(value: str) -> tuple[int, int]:
    """``"I/K"`` (fold I of K, 0-based) -> ``(I, K)``; a one-line error otherwise."""
    try:
        i, k = (int(x) for x in str(value).split("/"))
    except ValueError:
        raise OccguiError(f"a fold is given as I/K (0 <= I < K), got {value!r}") from None
    if not 0 <= i < k or k < 2:
        raise OccguiError(f"a fold is given as I/K (0 <= I < K, K >= 2), got {value!r}")
    return i, k


def occluder_scores(pred_occ, gt_masks) -> dict[str, float]:
    """Pooled occluder IoU / precision / recall and the share of photos found (IoU >= 0.3) of predicted
    occluder masks against labelled ones (photos with an empty label count as found when nothing is
    predicted), as ``occgui eval real`` defines them, on the parser's crops."""
    tp = fp = fn = 0
    found = []
    for p, g in zip(pred_occ, gt_masks):
        p, g = np.asarray(p, bool), np.asarray(g, bool)
        a, b, c = int((p & g).sum()), int((p & ~g).sum()), int((~p & g).sum())
        tp, fp, fn = tp + a, fp + b, fn + c
        if g.any():
            found.append(a / max(a + b + c, 1) >= 0.3)
    return {"pooled_iou": tp / max(tp + fp + fn, 1), "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1), "found": float(np.mean(found)) if found else 0.0,
            "photos": len(found)}


# ----------------------------------------------------------------------------- cut-outs
def cutout_alpha(mask: np.ndarray, feather: float = 0.0) -> np.ndarray:
    """uint8 alpha of a boolean mask: exactly the mask (0/255) when ``feather`` is 0, else the mask
    blurred by a Gaussian of sigma ``feather`` pixels (its 50 % level stays on the mask's edge)."""
    a = np.asarray(mask, bool).astype(np.float32)
    if feather > 0:
        a = cv2.GaussianBlur(a, (0, 0), float(feather))
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def make_cutout(rc: RealCrop, feather: float = 0.6, margin: int = 3) -> RealCutout | None:
    """Cut the occluder out of ``rc`` (``None`` for an empty mask)."""
    m = np.asarray(rc.mask, bool)
    ys, xs = np.nonzero(m)
    if len(xs) < 16:
        return None
    h, w = m.shape
    x0, y0 = max(int(xs.min()) - margin, 0), max(int(ys.min()) - margin, 0)
    x1, y1 = min(int(xs.max()) + margin + 1, w), min(int(ys.max()) + margin + 1, h)
    alpha = cutout_alpha(m, feather)
    rgba = np.dstack([rc.crop[:, :, :3], alpha])[y0:y1, x0:x1]
    occ = Occluder(name=f"real:{rc.stem}", kind=f"real_{rc.type}", family=f"real_{rc.type}", variant="dev",
                   rgba=np.ascontiguousarray(rgba), source=rc.stem)
    return RealCutout(occ, np.asarray(rc.landmarks68, np.float64) - [x0, y0], face_skin_colour(rc.crop, rc.landmarks68),
                      _face_luminance(rc.crop, rc.landmarks68))


def make_cutouts(crops: list[RealCrop], feather: float = 0.6) -> list[RealCutout]:
    return [c for c in (make_cutout(rc, feather) for rc in crops) if c is not None]


def choose_cutout(rng: np.random.Generator, cutouts: list[RealCutout]) -> RealCutout:
    """A type first (weights: square root of the type's count), then one of its cut-outs uniformly."""
    types = sorted({c.type for c in cutouts})
    counts = np.array([sum(c.type == t for c in cutouts) for t in types], dtype=np.float64)
    w = np.sqrt(counts)
    t = types[int(rng.choice(len(types), p=w / w.sum()))]
    pool = [c for c in cutouts if c.type == t]
    return pool[int(rng.integers(len(pool)))]


# ----------------------------------------------------------------------------- pasting
def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[complex, complex]:
    """Least-squares similarity ``z -> a z + b`` (complex numbers: x + iy) taking ``src`` onto ``dst``."""
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    ms, md = zs.mean(), zd.mean()
    a = np.sum((zd - md) * np.conj(zs - ms)) / max(float(np.sum(np.abs(zs - ms) ** 2)), 1e-9)
    return complex(a), complex(md - a * ms)


def sample_real_placement(rng: np.random.Generator, cut: RealCutout, target68: np.ndarray) -> Placement:
    """Paste geometry (the source face's place on the target face, jittered) and appearance."""
    occ = cut.occluder
    w, h = occ.size
    flip = bool(rng.random() < 0.5)
    src = np.asarray(cut.landmarks68, np.float64)
    if flip:
        src = src[LMK_MIRROR].copy()
        src[:, 0] = w - src[:, 0]
    a, b = similarity(src, np.asarray(target68, np.float64))
    f = FaceFrame.of(target68)
    a *= math.exp(rng.normal(0.0, 0.07)) * complex(math.cos(math.radians(rng.normal(0, 5))),
                                                    math.sin(math.radians(rng.normal(0, 5))))
    centre = a * complex(w / 2, h / 2) + b + complex(*(rng.normal(0.0, 0.06 * f.iod, size=2)))
    colour = {"brightness": float(rng.uniform(0.85, 1.15)), "contrast": float(rng.uniform(0.85, 1.15)),
              "saturation": float(rng.uniform(0.8, 1.15)), "hue": float(rng.uniform(-5, 5)),
              "gamma": float(rng.uniform(0.9, 1.1)), "light_match": 0.0}
    return Placement(occluder=occ.name, family=occ.family, anchor="real", centre=(centre.real, centre.imag),
                     size=abs(a) * max(w, h), rotation=math.degrees(math.atan2(a.imag, a.real)), flip=flip,
                     colour=colour, opacity=1.0, feather=float(rng.uniform(0.2, 0.8)),
                     blur=float(rng.uniform(0.0, 1.0)) if rng.random() < 0.4 else 0.0,
                     noise=float(rng.uniform(0.0, 4.0)), noise_seed=int(rng.integers(2**31 - 1)),
                     shading=float(rng.uniform(0.0, 0.2)), shading_angle=float(rng.uniform(0, 360)),
                     shadow=float(rng.uniform(0.1, 0.35)) if rng.random() < 0.3 else 0.0,
                     shadow_offset=(float(rng.normal(0, 0.05 * f.iod)),
                                    float(abs(rng.normal(0.04 * f.iod, 0.03 * f.iod)))),
                     shadow_blur=float(rng.uniform(0.05, 0.12) * f.iod))


def matched_occluder(cut: RealCutout, rgb: np.ndarray, target68: np.ndarray, strength: float = 1.0) -> Occluder:
    """The cut-out with its colours moved toward the target face's light: the brightness by the
    ratio of the two faces' luminance, skin-bearing types (:data:`SKIN_TYPES`) by the ratio of the
    two skin colours (``strength`` 0..1 of the way)."""
    lum = _face_luminance(rgb, target68)
    gain = np.full(3, np.clip(lum / max(cut.luminance, 1e-3), 0.5, 2.0))
    if cut.type in SKIN_TYPES:
        skin = face_skin_colour(rgb, target68)
        gain = np.clip(skin / np.maximum(cut.skin, 1.0), 0.5, 2.0)
    gain = gain ** float(strength)
    rgba = cut.occluder.rgba.copy()
    rgba[:, :, :3] = np.clip(rgba[:, :, :3].astype(np.float32) * gain[None, None, :].astype(np.float32) + 0.5,
                             0, 255).astype(np.uint8)
    return replace(cut.occluder, rgba=rgba)


def paste_real_cutout(rng: np.random.Generator, rgb: np.ndarray, target68: np.ndarray,
                      cut: RealCutout) -> tuple[np.ndarray, np.ndarray, Placement]:
    """Paste ``cut`` on the face of ``rgb`` (landmarks ``target68``) -> (rgb, occluder mask, placement)."""
    occ = matched_occluder(cut, rgb, target68, strength=float(rng.uniform(0.5, 1.0)))
    pl = sample_real_placement(rng, cut, target68)
    out, mask = composite(rgb, target68, occ, pl)
    return out, mask, pl
