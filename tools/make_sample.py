"""Build the bundled sample photos from scikit-image's public-domain ``astronaut.png``
(NASA portrait of Eileen Collins, shipped inside the scikit-image wheel), with occluders drawn
procedurally by this script: a hand over the subject's left eye, and a surgical mask.

    python tools/make_sample.py            # writes resources/samples/*.png

Deterministic: the same scikit-image release gives byte-identical files.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from occgui.detection.crop import aligned_crop  # noqa: E402
from occgui.detection.mediapipe_detector import MediaPipeFaceDetector  # noqa: E402
from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks  # noqa: E402


def landmarks_in_photo(rgb: np.ndarray) -> np.ndarray:
    det = max(MediaPipeFaceDetector().detect(rgb), key=lambda d: d.area)
    crop = aligned_crop(rgb, det, 256)
    return crop.crop_to_working(MediaPipeMeshLandmarks().detect(crop.image).points)


def _capsule(mask: np.ndarray, a, b, r: float) -> None:
    a, b = np.round(np.asarray(a) * 16).astype(int), np.round(np.asarray(b) * 16).astype(int)
    cv2.line(mask, tuple(a), tuple(b), 255, int(round(2 * r)), cv2.LINE_AA, shift=4)
    for p in (a, b):
        cv2.circle(mask, tuple(p), int(round(r * 16)), 255, -1, cv2.LINE_AA, shift=4)


def _shade(rgb: np.ndarray, alpha: np.ndarray, base: np.ndarray, seed: int) -> np.ndarray:
    """Rounded shading from the distance to the mask edge, plus faint skin texture."""
    dist = cv2.distanceTransform((alpha > 127).astype(np.uint8), cv2.DIST_L2, 5)
    rel = np.clip(dist / max(dist.max(), 1e-6), 0, 1)
    light = 0.72 + 0.38 * np.sqrt(rel)
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, alpha.shape).astype(np.float32), (0, 0), 1.2) * 0.03
    col = base[None, None, :] * (light + noise)[:, :, None]
    a = (alpha.astype(np.float32) / 255.0)[:, :, None]
    return np.clip(rgb * (1 - a) + col * a, 0, 255)


def draw_hand(rgb: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A hand entering from the image right, fingers over the subject's left eye (points 42-47)."""
    eye = p[42:48].mean(0)
    iod = np.linalg.norm(p[45] - p[36])
    u = (p[45] - p[36]) / iod                       # face x axis
    v = np.array([-u[1], u[0]])                    # face y axis (down)
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    palm_c = eye + u * 0.95 * iod + v * 0.55 * iod
    cv2.ellipse(mask, tuple(np.round(palm_c).astype(int)), (int(0.55 * iod), int(0.42 * iod)),
                float(np.degrees(np.arctan2(u[1], u[0]))) - 35, 0, 360, 255, -1, cv2.LINE_AA)
    fingers = [(-0.42, 0.30, 0.62), (-0.28, 0.10, 0.70), (-0.12, -0.10, 0.66), (0.05, -0.28, 0.54)]
    tips = []
    for k, (du, dv, length) in enumerate(fingers):
        base = palm_c + u * (du - 0.05) * iod + v * (dv - 0.25) * iod
        d = -u * 0.82 - v * 0.57
        tip = base + d * length * iod * 1.25
        _capsule(mask, base, tip, 0.085 * iod + 0.005 * iod * k)
        tips.append((base, tip))
    thumb_base = palm_c + v * 0.25 * iod - u * 0.2 * iod
    _capsule(mask, thumb_base, thumb_base - u * 0.55 * iod + v * 0.28 * iod, 0.1 * iod)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.8)
    # soft shadow on the face, offset down-left
    shadow = cv2.GaussianBlur(mask, (0, 0), 0.09 * iod)
    m = np.float32([[1, 0, -0.06 * iod], [0, 1, 0.08 * iod]])
    shadow = cv2.warpAffine(shadow, m, (w, h)).astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * (1 - 0.38 * shadow[:, :, None])
    skin = np.array([214, 160, 130], np.float32)  # a warm hand tone, distinct from the face
    out = _shade(out, mask, skin, seed=1)
    # creases between fingers
    for (b0, t0), (b1, t1) in zip(tips[:-1], tips[1:]):
        a = (b0 + b1) / 2 + (t0 + t1 - b0 - b1) * 0.05
        b = a + ((t0 + t1) / 2 - a) * 0.55
        cv2.line(out, tuple(np.round(a * 16).astype(int)), tuple(np.round(b * 16).astype(int)), (120, 80, 65), 1,
                 cv2.LINE_AA, shift=4)
    for _, t in tips:  # nails
        c = tuple(np.round((t - (-u * 0.82 - v * 0.57) * 0.045 * iod) * 16).astype(int))
        cv2.ellipse(out, c, (int(0.05 * iod * 16), int(0.035 * iod * 16)),
                    float(np.degrees(np.arctan2(-0.57, -0.82) + np.arctan2(u[1], u[0]))), 0, 360,
                    (232, 196, 182), -1, cv2.LINE_AA, shift=4)
    return np.clip(out, 0, 255).astype(np.uint8)


def draw_mask(rgb: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A light-blue surgical mask over the nose and mouth, with pleats and ear loops."""
    h, w = rgb.shape[:2]
    top_l = p[1] + (p[28] - p[1]) * 0.1
    top_r = p[15] + (p[28] - p[15]) * 0.1
    poly = np.vstack([top_l, p[28] + (p[27] - p[28]) * 0.2, top_r, p[14], p[12], p[10], p[8] + (p[8] - p[57]) * 0.15,
                      p[6], p[4], p[2]])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.8)
    out = _shade(rgb.astype(np.float32), mask, np.array([150, 196, 222], np.float32), seed=2)
    iod = np.linalg.norm(p[45] - p[36])
    for t in (0.35, 0.55, 0.75):  # pleats
        a = top_l + (p[3] - top_l) * t
        b = top_r + (p[13] - top_r) * t
        cv2.line(out, tuple(np.round(a * 16).astype(int)), tuple(np.round(b * 16).astype(int)), (110, 150, 175),
                 max(1, int(iod * 0.02)), cv2.LINE_AA, shift=4)
    for a, b in ((top_l, p[0] - (p[16] - p[0]) * 0.05), (top_r, p[16] + (p[16] - p[0]) * 0.05)):
        cv2.line(out, tuple(np.round(a * 16).astype(int)), tuple(np.round(b * 16).astype(int)), (235, 240, 245),
                 max(1, int(iod * 0.025)), cv2.LINE_AA, shift=4)
    return np.clip(out, 0, 255).astype(np.uint8)


def main() -> None:
    import skimage.data

    rgb = skimage.data.astronaut()
    p = landmarks_in_photo(rgb)
    out = ROOT / "resources" / "samples"
    out.mkdir(parents=True, exist_ok=True)
    for name, img in (("astronaut_hand.png", draw_hand(rgb, p)), ("astronaut_mask.png", draw_mask(rgb, p))):
        cv2.imwrite(str(out / name), img[:, :, ::-1])
        print("wrote", out / name)


if __name__ == "__main__":
    main()
