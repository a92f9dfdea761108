"""Procedural, photo-like hands: a training and evaluation occluder for N_alpha (paper §3.2).

The emoji hands of the occluder library are cartoons (flat colours, dark outlines). The hardest
real occlusion is a hand of the *same colour as the face*, so this module draws hands with no
outline and no colour of their own: a random hand shape (palm, 0-4 extended or curled fingers,
an optional thumb, a wrist stub or a long forearm) is rendered as a height field of soft capsules,
lit by a random light (Lambert shading, ambient occlusion in the creases, faint skin texture,
optional nails). The result is a *tint map*: RGB = per-channel multipliers of the skin colour,
128 = 1.0 (see :data:`TINT_UNIT`), alpha = the hand's shape. ``occgui.training.occlusion.occluders.composite``
multiplies it with the skin colour sampled from the photo's own face (with jitter), so the
hand's colour follows the person's.

Geometry of the canvas (``size`` x ``size``): the knuckle point (base of the middle finger) is
the canvas centre, the fingers point up (-y), the wrist/forearm points down (+y). The palm width
in canvas pixels is returned so that placements can size the hand relative to the face.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

#: Tint-map value meaning "multiply the skin colour by 1.0".
TINT_UNIT = 128.0
#: Relative lengths of the index, middle, ring and little finger (middle = 1).
FINGER_LENGTHS = (0.92, 1.0, 0.94, 0.74)


def _capsule_height(shape: tuple[int, int], a, b, r: float) -> np.ndarray:
    """Height field of a capsule (segment ``a``-``b``, radius ``r``): ``sqrt(r^2 - d^2)`` inside, 0 outside."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ab = b - a
    t = np.clip(((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / max(float(ab @ ab), 1e-6), 0.0, 1.0)
    d2 = (xs - a[0] - t * ab[0]) ** 2 + (ys - a[1] - t * ab[1]) ** 2
    return np.sqrt(np.clip(r * r - d2, 0.0, None))


def _palm_height(shape: tuple[int, int], centre, half_w: float, half_h: float, angle: float) -> np.ndarray:
    """A rounded (super-elliptic) palm slab: a flattened dome of height about ``0.55 * half_w``."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    u = ((xs - centre[0]) * c + (ys - centre[1]) * s) / half_w
    v = (-(xs - centre[0]) * s + (ys - centre[1]) * c) / half_h
    rho = (np.abs(u) ** 3.0 + np.abs(v) ** 3.0) ** (1 / 3.0)
    return 0.55 * half_w * np.sqrt(np.clip(1.0 - rho ** 2, 0.0, None)) ** 0.6


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([v[0] * math.cos(t) - v[1] * math.sin(t), v[0] * math.sin(t) + v[1] * math.cos(t)])


def hand_parts(rng: np.random.Generator, size: int) -> tuple[list[tuple], float, list[tuple]]:
    """Random hand geometry on a ``size`` canvas: (parts, palm width, finger tips).

    ``parts`` are ``("palm", centre, half_w, half_h, angle)`` and ``("capsule", a, b, r)``;
    finger tips are ``(tip, direction, radius)`` of the extended fingers (for nails).
    """
    knuckle = np.array([size / 2.0, size / 2.0])
    pw = size * rng.uniform(0.17, 0.21)                       # palm width (px)
    palm_h = pw * rng.uniform(0.95, 1.15)
    palm_c = knuckle + np.array([0.0, 0.5 * palm_h])
    parts: list[tuple] = [("palm", palm_c, 0.5 * pw, 0.5 * palm_h, 0.0)]
    tips = []
    spread = rng.uniform(0.0, 9.0)                           # fan angle between fingers (deg)
    n_extended = int(rng.choice([0, 1, 2, 3, 4], p=[0.1, 0.1, 0.15, 0.15, 0.5]))
    extended = set(rng.choice(4, size=n_extended, replace=False).tolist()) if n_extended else set()
    finger_r = pw * rng.uniform(0.115, 0.135)
    scale = rng.uniform(0.85, 1.15)
    for k in range(4):
        x = (k - 1.5) / 1.5 * (0.5 * pw - finger_r)          # index at image left, little finger right
        base = knuckle + np.array([x, pw * 0.04 * abs(k - 1.2)])
        d = _rot(np.array([0.0, -1.0]), (k - 1.5) * spread + rng.normal(0, 2.0))
        r = finger_r * (0.85 if k == 3 else 1.0)
        if k in extended:
            length = pw * FINGER_LENGTHS[k] * scale * rng.uniform(0.9, 1.05)
            bend = rng.uniform(-20, 20) if rng.random() < 0.4 else 0.0
            mid = base + d * 0.55 * length
            tip = mid + _rot(d, bend) * 0.45 * length
            parts += [("capsule", base, mid, r), ("capsule", mid, tip, 0.95 * r)]
            tips.append((tip, _rot(d, bend), 0.95 * r))
        else:                                                # curled: a knuckle bump folded over the palm
            length = pw * rng.uniform(0.12, 0.3)
            parts.append(("capsule", base + d * 0.1 * pw, base + d * (0.1 * pw - length) + np.array([0, 0.35 * pw]), r))
    if rng.random() < 0.8:                                   # thumb at the index side
        t_base = palm_c + np.array([-0.42 * pw, rng.uniform(0.0, 0.35) * palm_h])
        ang = rng.uniform(-70, 10) if n_extended else rng.uniform(-10, 60)
        d = _rot(np.array([-1.0, -0.4]) / math.hypot(1.0, 0.4), ang)
        length = pw * rng.uniform(0.5, 0.8)
        mid = t_base + d * 0.5 * length
        tip = mid + _rot(d, rng.uniform(-15, 25)) * 0.5 * length
        parts += [("capsule", t_base, mid, 1.35 * finger_r), ("capsule", mid, tip, 1.15 * finger_r)]
        tips.append((tip, _rot(d, 0.0), 1.05 * finger_r))
    wrist = palm_c + np.array([0.0, 0.45 * palm_h])
    arm_dir = _rot(np.array([0.0, 1.0]), rng.normal(0, 12))
    arm_len = pw * (rng.uniform(2.5, 4.0) if rng.random() < 0.55 else rng.uniform(0.15, 0.5))
    arm_r = pw * rng.uniform(0.3, 0.38)
    parts.append(("capsule", wrist, wrist + arm_dir * arm_len, arm_r))
    return parts, float(pw), tips


def render_hand(rng: np.random.Generator, size: int = 512) -> tuple[np.ndarray, float]:
    """A random hand on a ``size`` canvas -> (``size x size x 4`` uint8 tint map + alpha, palm width px).

    The RGB channels are multipliers of the skin colour (:data:`TINT_UNIT` = 1.0): Lambert
    shading of the height field under a random light, ambient occlusion between the parts,
    a slight redness in the creases, faint skin texture and, sometimes, lighter nails.
    """
    shape = (size, size)
    parts, pw, tips = hand_parts(rng, size)
    height = np.zeros(shape, np.float32)
    for p in parts:
        hp = _palm_height(shape, *p[1:]) if p[0] == "palm" else _capsule_height(shape, *p[1:])
        height = np.maximum(height, hp)
    inside = (height > 0).astype(np.float32)
    alpha = cv2.GaussianBlur(inside, (0, 0), 0.7)
    hs = cv2.GaussianBlur(height, (0, 0), 0.012 * size)
    gy, gx = np.gradient(hs)
    light = np.array([rng.normal(0, 0.5), rng.normal(-0.4, 0.4), 1.0])
    light /= np.linalg.norm(light)
    norm = np.sqrt(gx ** 2 + gy ** 2 + 1.0)
    lambert = np.clip((-gx * light[0] - gy * light[1] + light[2]) / norm, 0.0, 1.0)
    ambient = rng.uniform(0.45, 0.65)
    shade = ambient + (1.0 - ambient) * lambert / max(light[2], 0.3) * rng.uniform(0.8, 1.0)
    # ambient occlusion: darker where the surface lies below its surroundings (creases, finger gaps)
    ao = np.clip((cv2.GaussianBlur(height, (0, 0), 0.03 * size) - height) / (0.08 * pw), 0.0, 1.0)
    shade = shade * (1.0 - rng.uniform(0.25, 0.45) * ao)
    texture = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 0.004 * size + 0.5)
    shade = shade * (1.0 + rng.uniform(0.01, 0.04) * texture)
    half = np.clip((-gx * light[0] - gy * light[1] + light[2] + 1.0) / (norm * math.sqrt(2 * (1 + light[2]))), 0, 1)
    shade = shade + rng.uniform(0.0, 0.12) * half ** 24          # a soft specular sheen
    tint = np.stack([shade, shade * (1.0 - 0.08 * ao), shade * (1.0 - 0.1 * ao)], axis=2)
    if tips and rng.random() < 0.6:                          # nails: a lighter, pinker ellipse near each tip
        nails = np.zeros(shape, np.float32)
        for tip, d, r in tips:
            c = tip - d * 0.55 * r
            ang = math.degrees(math.atan2(d[1], d[0]))
            cv2.ellipse(nails, (int(round(c[0])), int(round(c[1]))), (max(1, int(0.5 * r)), max(1, int(0.42 * r))),
                        ang, 0, 360, 1.0, -1, cv2.LINE_AA)
        nails = cv2.GaussianBlur(nails, (0, 0), 0.12 * pw / 5) * inside
        tint = tint * (1.0 + nails[:, :, None] * np.array([0.12, 0.06, 0.08], np.float32))
    rgb = np.clip(tint * TINT_UNIT, 0, 255)
    rgba = np.dstack([rgb, np.clip(alpha * 255.0, 0, 255)]).round().astype(np.uint8)
    if rng.random() < 0.5:                                   # a hand seen obliquely: narrower, knuckle kept centred
        w = max(8, int(round(size * rng.uniform(0.65, 1.0))))
        narrow = cv2.resize(rgba, (w, size), interpolation=cv2.INTER_AREA)
        rgba = np.zeros_like(rgba)
        x0 = (size - w) // 2
        rgba[:, x0:x0 + w] = narrow
    return rgba, pw
