"""Synthetic occlusion: pasting RGBA occluders onto face photos with recorded placements.

The paper trains N_alpha (§3.2) on annotated occlusions; this project synthesises them instead:
an occluder image (``../shared/data/occluders``: Noto emoji hands and objects, MaskTheFace mask
templates) is scaled, rotated, colour-jittered and pasted at a position derived from the 68 iBUG
landmarks; its paste mask is the ground truth of the ``occluder`` class. The same module serves
the parser's training, the evaluation suite and the de-occlusion measurements, so every paste is
described by a JSON-serialisable :class:`Placement` and :func:`composite` is deterministic given
``(rgb, landmarks68, occluder, placement)``.

Public API::

    lib = load_library(folder)                       # OccluderLibrary
    occ = lib.choose(rng, family="hand", landmarks68=pts)
    pl = sample_placement(rng, occ, pts, kind="one_eye")
    out, mask = composite(rgb, pts, occ, pl)
    occ, pl = sample_eval_family(rng, lib, "hand_over_eye", pts)   # see EVAL_FAMILIES
    hands = procedural_hand_library(count=48, seed=0)  # photo-like hands tinted by the face's skin
    lib = lib.merged(hands)                            # (family "hand", kind "procedural_hand")

``load_library`` returns only the image occluders; the procedural hands are a separate source
(:func:`procedural_hand_library`, drawn by ``occgui.training.occlusion.procedural_hand``), so the evaluation
families keep their behaviour unless a caller merges the two.

Coordinates: pixels of ``rgb`` (x right, y down); ``landmarks68`` are iBUG-68 points in that
frame (``occgui.landmarks.ibug68``). Angles are degrees, positive = clockwise on screen.
"""
from __future__ import annotations

import configparser
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ...errors import OccguiError
from .procedural_hand import TINT_UNIT

#: Anchor kinds: where an occluder is put on the face.
ANCHORS = ("eyes", "one_eye", "mouth", "nose", "cheek", "hand_over_face", "mask", "forehead")

#: Occluder families and the anchor kinds (with weights) each is placed at by default.
FAMILY_ANCHORS: dict[str, dict[str, float]] = {
    "hand": {"one_eye": 0.25, "mouth": 0.2, "cheek": 0.2, "hand_over_face": 0.15, "nose": 0.1, "eyes": 0.1},
    "sunglasses": {"eyes": 1.0},
    "glasses": {"eyes": 1.0},
    "mask": {"mask": 1.0},
    "hat": {"forehead": 1.0},
    "scarf": {"mouth": 1.0},
    "cup": {"mouth": 1.0},
    "food": {"mouth": 0.8, "cheek": 0.2},
    "microphone": {"mouth": 0.7, "cheek": 0.3},
    "phone": {"cheek": 0.7, "mouth": 0.3},
    "object": {"mouth": 0.3, "cheek": 0.25, "one_eye": 0.15, "nose": 0.1, "hand_over_face": 0.2},
}
FAMILIES = tuple(FAMILY_ANCHORS)

#: Emoji kind (the name after ``__`` in the file name) -> family; unknown kinds are "object".
KIND_FAMILY: dict[str, str] = {
    **{k: "hand" for k in ("point_left", "point_right", "point_up", "oncoming_fist", "waving_hand", "ok_hand",
                           "hand_fingers_splayed", "folded_hands", "raised_back_of_hand", "crossed_fingers",
                           "palms_up", "raised_hand", "thumbs_up", "victory_hand")},
    "dark_sunglasses": "sunglasses", "goggles": "sunglasses", "glasses": "glasses",
    **{k: "hat" for k in ("billed_cap", "graduation_cap", "top_hat", "womans_hat", "military_helmet",
                          "rescue_helmet")},
    "scarf": "scarf",
    **{k: "cup" for k in ("hot_beverage_cup", "teacup", "cup_with_straw", "beer_mug", "wine_glass", "baby_bottle")},
    **{k: "microphone" for k in ("microphone", "studio_microphone")},
    **{k: "phone" for k in ("mobile_phone", "telephone_receiver")},
    **{k: "food" for k in ("hamburger", "pizza", "ice_cream", "lollipop")},
}

_SKIN_TONES = {"1f3fb": "tone1", "1f3fc": "tone2", "1f3fd": "tone3", "1f3fe": "tone4", "1f3ff": "tone5"}
#: iBUG-68 indices the six MaskTheFace anchors a..f are mapped to: a/c the face contour at the
#: nose-bridge level (image left/right), b the nose bridge, d/f the jaw at mouth level, e the chin.
MASK_ANCHOR_LANDMARKS = (1, 28, 15, 4, 8, 12)


@dataclass(frozen=True)
class Occluder:
    """One RGBA occluder image, cropped to its opaque content.

    ``kind`` groups the variants of one object (skin tones of a hand emoji, the front/left/right
    views of a mask template); ``anchors`` are the six MaskTheFace anchor points (pixels of
    ``rgba``) of a mask template, else ``None``. ``skin_tinted`` occluders (the procedural hands
    of :func:`procedural_hand_library`) have no colour of their own: their RGB is a tint map
    (``procedural_hand.TINT_UNIT`` = 1.0) that :func:`composite` multiplies with the skin colour
    of the photo's face; ``palm_width`` (pixels of ``rgba``) sizes them relative to the face.
    """

    name: str
    kind: str
    family: str
    variant: str
    rgba: np.ndarray = field(repr=False)     # HxWx4 uint8
    anchors: np.ndarray | None = field(default=None, repr=False)
    source: str = ""
    skin_tinted: bool = False
    palm_width: float = 0.0

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgba.shape[1]), int(self.rgba.shape[0])


@dataclass(frozen=True)
class Placement:
    """A recorded paste: everything :func:`composite` needs besides the photo and its landmarks.

    ``centre``/``size``/``rotation``/``flip`` define a similarity transform taking the occluder's
    content centre to ``centre`` with its longer side ``size`` pixels long; mask templates use
    ``anchors`` (6 destination points, a..f) and a homography instead. Appearance: colour jitter
    (``colour``: brightness, contrast, saturation, hue shift in degrees, gamma, light_match =
    how far the occluder's brightness is pulled toward the face's), ``opacity``, edge
    ``feather`` and defocus ``blur`` (pixel sigmas), sensor ``noise`` (sigma in 0..255 units,
    reproducible from ``noise_seed``), a linear ``shading`` gradient (strength, angle) and a drop
    ``shadow`` (strength, offset, blur).
    """

    occluder: str
    family: str
    anchor: str
    centre: tuple[float, float]
    size: float
    rotation: float = 0.0
    flip: bool = False
    anchors: tuple[tuple[float, float], ...] | None = None
    colour: dict = field(default_factory=dict)
    opacity: float = 1.0
    feather: float = 0.6
    blur: float = 0.0
    noise: float = 0.0
    noise_seed: int = 0
    shading: float = 0.0
    shading_angle: float = 0.0
    shadow: float = 0.0
    shadow_offset: tuple[float, float] = (0.0, 0.0)
    shadow_blur: float = 2.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["centre"] = list(self.centre)
        d["anchors"] = None if self.anchors is None else [list(p) for p in self.anchors]
        d["shadow_offset"] = list(self.shadow_offset)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Placement":
        d = dict(d)
        d["centre"] = tuple(float(v) for v in d["centre"])
        d["shadow_offset"] = tuple(float(v) for v in d.get("shadow_offset", (0.0, 0.0)))
        if d.get("anchors") is not None:
            d["anchors"] = tuple(tuple(float(v) for v in p) for p in d["anchors"])
        return cls(**d)

    def scaled(self, factor: float) -> "Placement":
        """The same paste for the photo resized by ``factor`` (all pixel quantities scaled)."""
        f = float(factor)
        return replace(
            self, centre=(self.centre[0] * f, self.centre[1] * f), size=self.size * f,
            anchors=None if self.anchors is None else tuple((x * f, y * f) for x, y in self.anchors),
            feather=self.feather * f, blur=self.blur * f, shadow_blur=self.shadow_blur * f,
            shadow_offset=(self.shadow_offset[0] * f, self.shadow_offset[1] * f))


# ----------------------------------------------------------------------------- library
class OccluderLibrary:
    """The loaded occluders, with filtering and seeded choice."""

    def __init__(self, occluders: list[Occluder]):
        self.occluders = sorted(occluders, key=lambda o: o.name)
        self._by_name = {o.name: o for o in self.occluders}

    def __len__(self) -> int:
        return len(self.occluders)

    def __iter__(self):
        return iter(self.occluders)

    def get(self, name: str) -> Occluder:
        try:
            return self._by_name[name]
        except KeyError:
            raise OccguiError(f"unknown occluder {name!r}") from None

    def kinds(self) -> list[str]:
        return sorted({o.kind for o in self.occluders})

    def families(self) -> list[str]:
        return sorted({o.family for o in self.occluders})

    def filter(self, *, kinds=None, exclude_kinds=None, families=None) -> "OccluderLibrary":
        """A sub-library: only ``kinds``/``families`` (when given), without ``exclude_kinds``."""
        occ = self.occluders
        if kinds is not None:
            occ = [o for o in occ if o.kind in set(kinds)]
        if families is not None:
            occ = [o for o in occ if o.family in set(families)]
        if exclude_kinds is not None:
            occ = [o for o in occ if o.kind not in set(exclude_kinds)]
        return OccluderLibrary(occ)

    def merged(self, other: "OccluderLibrary") -> "OccluderLibrary":
        """A library holding the occluders of both (names must not clash)."""
        clash = set(self._by_name) & set(other._by_name)
        if clash:
            raise OccguiError(f"occluder names in both libraries: {', '.join(sorted(clash)[:5])}")
        return OccluderLibrary(self.occluders + other.occluders)

    def choose(self, rng: np.random.Generator, *, family: str | None = None, kind: str | None = None,
               landmarks68: np.ndarray | None = None, family_weights: dict[str, float] | None = None,
               kind_weights: dict[str, float] | None = None) -> Occluder:
        """Pick an occluder: a family (uniform or ``family_weights``), then a kind (uniformly, or by
        ``kind_weights``, default 1 per kind), then a variant; for masks the view (front/left/right)
        matching the head's yaw when landmarks are given."""
        pool = self.occluders
        if kind is not None:
            pool = [o for o in pool if o.kind == kind]
        if family is not None:
            pool = [o for o in pool if o.family == family]
        if not pool:
            raise OccguiError(f"no occluder of family={family!r} kind={kind!r} in the library")
        fams = sorted({o.family for o in pool})
        if family is None and kind is None and len(fams) > 1:
            w = np.array([(family_weights or {}).get(f, 1.0) for f in fams], dtype=np.float64)
            fam = fams[int(rng.choice(len(fams), p=w / w.sum()))]
            pool = [o for o in pool if o.family == fam]
        kinds = sorted({o.kind for o in pool})
        if kind_weights and len(kinds) > 1 and any(k_ in kind_weights for k_ in kinds):
            kw = np.array([kind_weights.get(k_, 1.0) for k_ in kinds], dtype=np.float64)
            k = kinds[int(rng.choice(len(kinds), p=kw / kw.sum()))]
        else:
            k = kinds[int(rng.integers(len(kinds)))]
        variants = [o for o in pool if o.kind == k]
        if variants[0].family == "mask" and landmarks68 is not None:
            view = head_view(landmarks68)
            matching = [o for o in variants if o.variant == view] or [o for o in variants if o.variant == "front"]
            variants = matching or variants
        return variants[int(rng.integers(len(variants)))]


def head_view(landmarks68: np.ndarray) -> str:
    """``front``, ``left`` or ``right``: where the nose points in the image (image-left = "left")."""
    p = np.asarray(landmarks68, dtype=np.float64)
    r = (p[30, 0] - p[0, 0]) / max(p[16, 0] - p[0, 0], 1e-6)
    return "left" if r < 0.38 else "right" if r > 0.62 else "front"


def _crop_to_content(rgba: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Crop to the alpha bounding box (2 px margin) and downscale to ``max_side``; returns
    (rgba, offset of the crop in the original, scale)."""
    ys, xs = np.nonzero(rgba[:, :, 3] > 8)
    if len(xs) == 0:
        raise OccguiError("occluder image is fully transparent")
    x0, y0 = max(int(xs.min()) - 2, 0), max(int(ys.min()) - 2, 0)
    x1, y1 = min(int(xs.max()) + 3, rgba.shape[1]), min(int(ys.max()) + 3, rgba.shape[0])
    out = rgba[y0:y1, x0:x1]
    s = min(1.0, max_side / max(out.shape[:2]))
    if s < 1.0:
        out = cv2.resize(out, (max(1, round(out.shape[1] * s)), max(1, round(out.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out), np.array([x0, y0], dtype=np.float64), s


def _read_rgba(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA")).copy()


def _load_emoji(folder: Path, max_side: int) -> list[Occluder]:
    occ = []
    for p in sorted(folder.glob("*.png")):
        m = re.match(r"emoji_u([0-9a-f]+)(?:_([0-9a-f]+))?__(.+)\.png$", p.name)
        if not m:
            continue
        tone = _SKIN_TONES.get(m.group(2) or "", "default")
        kind = m.group(3)
        rgba, _, _ = _crop_to_content(_read_rgba(p), max_side)
        name = kind if tone == "default" else f"{kind}_{tone}"
        occ.append(Occluder(name=name, kind=kind, family=KIND_FAMILY.get(kind, "object"), variant=tone,
                            rgba=rgba, source=str(p)))
    return occ


def _load_masks(root: Path, max_side: int) -> list[Occluder]:
    cfg_path = root / "masks" / "masks.cfg"
    if not cfg_path.exists():
        return []
    cfg = configparser.ConfigParser()
    cfg.read(cfg_path, encoding="utf-8")
    occ = []
    for sec in cfg.sections():
        s = cfg[sec]
        if "template" not in s or not all(f"mask_{c}" in s for c in "abcdef"):
            continue
        path = root / s["template"].strip()
        if not path.exists():
            continue
        pts = np.array([[float(v) for v in s[f"mask_{c}"].split(",")] for c in "abcdef"], dtype=np.float64)
        rgba, off, scale = _crop_to_content(_read_rgba(path), max_side)
        view = "left" if sec.endswith("_left") else "right" if sec.endswith("_right") else "front"
        kind = re.sub(r"_(left|right)$", "", sec)
        occ.append(Occluder(name=sec, kind=kind, family="mask", variant=view, rgba=rgba,
                            anchors=(pts - off) * scale, source=str(path)))
    return occ


def load_library(folder, *, max_side: int = 320) -> OccluderLibrary:
    """Load every occluder under ``folder`` (``noto_emoji/png512/*.png`` and the MaskTheFace
    templates of ``maskthe_face/masks/masks.cfg``), each cropped to its content and downscaled
    so that its longer side is at most ``max_side`` pixels."""
    root = Path(folder)
    if not root.is_dir():
        raise OccguiError(f"occluder folder not found: {root}")
    occ = _load_emoji(root / "noto_emoji" / "png512", max_side) + _load_masks(root / "maskthe_face", max_side)
    if not occ:
        raise OccguiError(f"no occluder images found under {root}")
    return OccluderLibrary(occ)


#: Kind (and name prefix) of the procedural hands; their family is "hand".
PROCEDURAL_HAND_KIND = "procedural_hand"


def procedural_hand_library(count: int = 48, seed: int = 0, *, size: int = 512) -> OccluderLibrary:
    """``count`` random photo-like hands (``occgui.training.occlusion.procedural_hand.render_hand``) as skin-tinted
    occluders of family ``hand``, kind :data:`PROCEDURAL_HAND_KIND`, named
    ``procedural_hand_<seed>_<i>`` (hand ``i`` is drawn from ``default_rng([seed, i])``, so the
    same ``seed`` always gives the same hands, and a placement's ``occluder`` name resolves).
    The canvas is not cropped: its centre is the hand's knuckle point, which placements position."""
    from .procedural_hand import render_hand

    occ = []
    for i in range(int(count)):
        rgba, palm = render_hand(np.random.default_rng([int(seed), i]), size)   # knuckle at the canvas centre
        occ.append(Occluder(name=f"{PROCEDURAL_HAND_KIND}_{int(seed)}_{i}", kind=PROCEDURAL_HAND_KIND, family="hand",
                            variant=f"{int(seed)}_{i}", rgba=rgba, source=f"procedural:{int(seed)}/{i}",
                            skin_tinted=True, palm_width=float(palm)))
    return OccluderLibrary(occ)


# ----------------------------------------------------------------------------- placement
@dataclass(frozen=True)
class FaceFrame:
    """Face geometry derived from the 68 landmarks, used to place occluders."""

    eye_l: np.ndarray     # image-left eye centre (subject's right)
    eye_r: np.ndarray
    iod: float            # eye-centre distance (px)
    roll: float           # eye-axis angle, degrees clockwise
    axis: np.ndarray      # unit vector image-left eye -> image-right eye
    down: np.ndarray      # unit vector towards the chin
    face_width: float

    @classmethod
    def of(cls, landmarks68: np.ndarray) -> "FaceFrame":
        p = np.asarray(landmarks68, dtype=np.float64)
        el, er = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
        v = er - el
        iod = float(max(np.linalg.norm(v), 1e-6))
        axis = v / iod
        return cls(el, er, iod, math.degrees(math.atan2(v[1], v[0])), axis, np.array([-axis[1], axis[0]]),
                   float(np.linalg.norm(p[16] - p[0])))


def _sample_colour(rng: np.random.Generator, family: str) -> dict:
    hue = float(rng.uniform(-8, 8)) if family == "hand" else float(rng.uniform(-40, 40)) if rng.random() < 0.5 else 0.0
    return {"brightness": float(rng.uniform(0.7, 1.25)), "contrast": float(rng.uniform(0.75, 1.2)),
            "saturation": float(rng.uniform(0.6, 1.2)), "hue": hue, "gamma": float(rng.uniform(0.8, 1.25)),
            "light_match": float(rng.uniform(0.0, 0.7))}


def _anchor_pose(rng: np.random.Generator, occ: Occluder, p: np.ndarray, f: FaceFrame, anchor: str):
    """(centre, size, rotation) of a similarity paste at ``anchor``."""
    n = lambda s: rng.normal(0.0, s)  # noqa: E731
    w, h = occ.size
    aspect = h / max(w, 1)
    rot = f.roll
    if anchor == "eyes":
        centre = (f.eye_l + f.eye_r) / 2 + f.down * f.iod * rng.uniform(-0.05, 0.15) + f.axis * n(0.04 * f.iod)
        size = f.iod * (rng.uniform(2.0, 2.5) if occ.family in ("sunglasses", "glasses") else rng.uniform(1.4, 2.4))
        rot += n(3.0) if occ.family in ("sunglasses", "glasses") else rng.uniform(-30, 30)
    elif anchor == "one_eye":
        eye = f.eye_l if rng.random() < 0.5 else f.eye_r
        centre = eye + f.axis * n(0.12 * f.iod) + f.down * n(0.12 * f.iod)
        size = f.iod * rng.uniform(0.9, 1.6)
        rot += rng.uniform(-45, 45)
    elif anchor == "mouth":
        m = p[48:60].mean(axis=0)
        if occ.family == "scarf":
            centre = p[8] - f.down * f.iod * rng.uniform(0.0, 0.5) + f.axis * n(0.08 * f.iod)
            size = f.face_width * rng.uniform(1.0, 1.4)
        else:
            centre = m + f.down * f.iod * rng.uniform(-0.1, 0.45) + f.axis * n(0.2 * f.iod)
            size = f.iod * rng.uniform(1.0, 1.9)
        rot += rng.uniform(-25, 25)
    elif anchor == "nose":
        centre = p[30] + f.axis * n(0.1 * f.iod) + f.down * n(0.1 * f.iod)
        size = f.iod * rng.uniform(0.7, 1.2)
        rot += rng.uniform(-45, 45)
    elif anchor == "cheek":
        left = rng.random() < 0.5
        jaw, nos = (p[2], p[31]) if left else (p[14], p[35])
        centre = jaw + (nos - jaw) * rng.uniform(0.2, 0.6) + f.down * n(0.15 * f.iod)
        size = f.iod * rng.uniform(0.9, 1.7)
        rot += rng.uniform(-60, 60)
    elif anchor == "hand_over_face":
        centre = p[30] + (p[8] - p[30]) * rng.uniform(0.0, 0.6) + f.axis * n(0.25 * f.iod)
        size = f.face_width * rng.uniform(0.8, 1.25)
        rot += rng.uniform(-40, 40)
    elif anchor == "forehead":
        size = f.face_width * rng.uniform(1.1, 1.5)
        brow_top = p[17:27].mean(axis=0) - f.down * f.iod * rng.uniform(0.1, 0.55)
        content_h = size * aspect if w >= h else size
        centre = brow_top - f.down * content_h * 0.5   # the hat's lower edge on the forehead
        rot += n(6.0)
    else:
        raise OccguiError(f"unknown anchor kind {anchor!r}; choose one of {', '.join(ANCHORS)}")
    return np.asarray(centre, dtype=np.float64), float(size), float(rot)


def _anchor_target(rng: np.random.Generator, p: np.ndarray, f: FaceFrame, anchor: str) -> np.ndarray:
    """The face point a procedural hand covers at ``anchor`` (with a little jitter)."""
    if anchor == "one_eye":
        t = f.eye_l if rng.random() < 0.5 else f.eye_r
    elif anchor == "eyes":
        t = (f.eye_l + f.eye_r) / 2
    elif anchor == "mouth":
        t = p[48:60].mean(axis=0)
    elif anchor == "nose":
        t = p[30]
    elif anchor == "cheek":
        jaw, nos = (p[2], p[31]) if rng.random() < 0.5 else (p[14], p[35])
        t = jaw + (nos - jaw) * rng.uniform(0.2, 0.6)
    elif anchor == "hand_over_face":
        t = p[30] + (p[8] - p[30]) * rng.uniform(0.0, 0.6)
    elif anchor == "forehead":
        t = p[17:27].mean(axis=0) - f.down * f.iod * 0.5
    else:
        raise OccguiError(f"unknown anchor kind {anchor!r}; choose one of {', '.join(ANCHORS)}")
    return t + f.axis * rng.normal(0.0, 0.12 * f.iod) + f.down * rng.normal(0.0, 0.12 * f.iod)


def _skin_tinted_placement(rng: np.random.Generator, occluder: Occluder, p: np.ndarray, f: FaceFrame,
                           anchor: str) -> Placement:
    """Pose and appearance of a procedural hand (a skin-tinted occluder) covering ``anchor``.

    The palm is 1.0-1.45 eye distances wide; the forearm comes from below and from the side of the
    face the target lies on (the fingers point the other way), and the knuckles sit up to 0.6 palm
    widths before or behind the target. The colour is the face's own skin colour with a small gain
    jitter (``colour["skin_gain"]``); a soft shadow always falls on the face.
    """
    target = _anchor_target(rng, p, f, anchor)
    palm = f.iod * rng.uniform(1.0, 1.45)
    size = max(occluder.size) * palm / max(occluder.palm_width, 1e-6)
    centre_face = (f.eye_l + f.eye_r) / 2 + f.down * 0.6 * f.iod
    side = float((target - centre_face) @ f.axis) / f.iod
    side = side if abs(side) > 0.15 else float(rng.choice([-1.0, 1.0])) * 0.5
    arm = np.sign(side) * f.axis * rng.uniform(0.2, 1.3) + f.down * rng.uniform(0.3, 1.2)
    arm = arm / np.linalg.norm(arm)
    t = math.radians(rng.normal(0.0, 30.0))
    arm = np.array([arm[0] * math.cos(t) - arm[1] * math.sin(t), arm[0] * math.sin(t) + arm[1] * math.cos(t)])
    fingers = -arm
    knuckle = target - fingers * rng.uniform(-0.5, 0.6) * palm
    rotation = math.degrees(math.atan2(fingers[0], -fingers[1]))   # canvas up (0,-1) -> fingers
    gain = rng.uniform(0.85, 1.15) * rng.normal(1.0, 0.03, size=3)
    colour = {"skin_gain": [float(g) for g in gain], "brightness": 1.0, "contrast": float(rng.uniform(0.9, 1.12)),
              "saturation": float(rng.uniform(0.85, 1.2)), "hue": float(rng.uniform(-5, 5)),
              "gamma": float(rng.uniform(0.9, 1.1)), "light_match": 0.0}
    return Placement(
        occluder=occluder.name, family=occluder.family, anchor=anchor, centre=(float(knuckle[0]), float(knuckle[1])),
        size=float(size), rotation=float(rotation), flip=bool(rng.random() < 0.5), colour=colour, opacity=1.0,
        feather=float(rng.uniform(0.3, 0.9) * f.iod / 64.0),
        blur=float(rng.uniform(0.0, 1.0) * f.iod / 64.0) if rng.random() < 0.4 else 0.0,
        noise=float(rng.uniform(0.0, 5.0)), noise_seed=int(rng.integers(2**31 - 1)),
        shading=float(rng.uniform(0.0, 0.25)), shading_angle=float(rng.uniform(0, 360)),
        shadow=float(rng.uniform(0.2, 0.5)),
        shadow_offset=(float(rng.normal(0, 0.08 * f.iod)), float(abs(rng.normal(0.07 * f.iod, 0.04 * f.iod)))),
        shadow_blur=float(rng.uniform(0.08, 0.2) * f.iod))


def sample_placement(rng: np.random.Generator, occluder: Occluder, landmarks68: np.ndarray,
                     kind: str | None = None) -> Placement:
    """Sample a paste of ``occluder`` on the face given by ``landmarks68``.

    ``kind`` is the anchor (one of :data:`ANCHORS`); by default one of the occluder family's
    anchors (:data:`FAMILY_ANCHORS`). Mask templates always use their anchor points (``mask``).
    """
    p = np.asarray(landmarks68, dtype=np.float64)
    f = FaceFrame.of(p)
    if occluder.anchors is not None:
        kind = "mask"
    elif kind is None or kind == "mask":
        opts = FAMILY_ANCHORS.get(occluder.family, FAMILY_ANCHORS["object"])
        names = [k for k in opts if k != "mask"] or ["mouth"]
        w = np.array([opts.get(k, 1.0) for k in names])
        kind = names[int(rng.choice(len(names), p=w / w.sum()))]
    if occluder.skin_tinted:
        return _skin_tinted_placement(rng, occluder, p, f, kind)
    common = dict(
        colour=_sample_colour(rng, occluder.family),
        opacity=float(1.0 if rng.random() < 0.6 else rng.uniform(0.85, 1.0)),
        feather=float(rng.uniform(0.3, 1.2) * f.iod / 64.0),
        blur=float(rng.uniform(0.0, 1.2) * f.iod / 64.0) if rng.random() < 0.5 else 0.0,
        noise=float(rng.uniform(0.0, 6.0)), noise_seed=int(rng.integers(2**31 - 1)),
        shading=float(rng.uniform(0.0, 0.35)), shading_angle=float(rng.uniform(0, 360)),
        shadow=float(rng.uniform(0.1, 0.45)) if rng.random() < 0.6 else 0.0,
        shadow_offset=(float(rng.normal(0, 0.08 * f.iod)), float(abs(rng.normal(0.06 * f.iod, 0.05 * f.iod)))),
        shadow_blur=float(rng.uniform(0.05, 0.15) * f.iod),
    )
    if kind == "mask":
        dst = p[list(MASK_ANCHOR_LANDMARKS)] + rng.normal(0.0, 0.03 * f.iod, size=(6, 2))
        c = dst.mean(axis=0)
        return Placement(occluder=occluder.name, family=occluder.family, anchor="mask",
                         centre=(float(c[0]), float(c[1])), size=float(np.ptp(dst[:, 0])),
                         rotation=float(f.roll), anchors=tuple((float(x), float(y)) for x, y in dst), **common)
    centre, size, rot = _anchor_pose(rng, occluder, p, f, kind)
    flip = bool(rng.random() < 0.5) if occluder.family not in ("sunglasses", "glasses", "hat") else False
    return Placement(occluder=occluder.name, family=occluder.family, anchor=kind,
                     centre=(float(centre[0]), float(centre[1])), size=size, rotation=rot, flip=flip, **common)


# ----------------------------------------------------------------------------- compositing
def placement_transform(occluder: Occluder, placement: Placement) -> np.ndarray:
    """3x3 matrix mapping occluder pixels to photo pixels (a homography for mask templates)."""
    if placement.anchors is not None and occluder.anchors is not None:
        hmat, _ = cv2.findHomography(occluder.anchors.astype(np.float32),
                                     np.asarray(placement.anchors, dtype=np.float32), 0)
        if hmat is not None and np.all(np.isfinite(hmat)):
            return hmat
        a, _ = cv2.estimateAffine2D(occluder.anchors.astype(np.float32), np.asarray(placement.anchors, np.float32))
        return np.vstack([a, [0, 0, 1]])
    w, h = occluder.size
    s = placement.size / max(w, h)
    t = math.radians(placement.rotation)
    c, sn = math.cos(t), math.sin(t)
    flip = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1]], dtype=np.float64) if placement.flip else np.eye(3)
    to_origin = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], dtype=np.float64)
    rs = np.array([[s * c, -s * sn, placement.centre[0]], [s * sn, s * c, placement.centre[1]], [0, 0, 1]])
    return rs @ to_origin @ flip


def _warp_rgba(rgba: np.ndarray, m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Warp premultiplied RGBA (float32 0..1) into ``shape``, pre-shrinking to avoid aliasing."""
    scale = math.sqrt(abs(np.linalg.det(m[:2, :2])))
    src = rgba
    if scale < 0.5:
        f = max(scale * 1.5, 1e-3)
        src = cv2.resize(rgba, (max(1, round(rgba.shape[1] * f)), max(1, round(rgba.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
        m = m @ np.diag([rgba.shape[1] / src.shape[1], rgba.shape[0] / src.shape[0], 1.0])
    h, w = shape
    if abs(m[2, 0]) > 1e-12 or abs(m[2, 1]) > 1e-12:
        return cv2.warpPerspective(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=0)
    return cv2.warpAffine(src, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _face_luminance(rgb: np.ndarray, landmarks68: np.ndarray) -> float:
    hull = cv2.convexHull(np.asarray(landmarks68, dtype=np.float32)[:27]).astype(np.int32)
    m = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillConvexPoly(m, hull, 1)
    if m.sum() < 10:
        return float(rgb.mean() / 255.0)
    return float(rgb[m > 0].mean() / 255.0)


def face_skin_colour(rgb: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
    """Median RGB (float, 0..255) of the cheeks and the nose bridge: the face's skin colour."""
    p = np.asarray(landmarks68, dtype=np.float64)
    f = FaceFrame.of(p)
    h, w = rgb.shape[:2]
    m = np.zeros((h, w), np.uint8)
    r = max(2, int(round(0.18 * f.iod)))
    for c in ((p[2] + p[31]) / 2, (p[14] + p[35]) / 2, (p[28] + p[29]) / 2):
        cv2.circle(m, (int(round(c[0])), int(round(c[1]))), r, 1, -1)
    px = np.asarray(rgb)[m > 0][:, :3]
    if len(px) < 10:
        return np.array([200.0, 150.0, 125.0])
    return np.median(px, axis=0).astype(np.float64)


def _jitter_colour(rgb: np.ndarray, alpha: np.ndarray, colour: dict, face_lum: float) -> np.ndarray:
    """Colour jitter of the (un-premultiplied, 0..1) occluder colours."""
    out = rgb
    if colour.get("hue", 0.0) or colour.get("saturation", 1.0) != 1.0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0] + colour.get("hue", 0.0)) % 360.0
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * colour.get("saturation", 1.0), 0, 1)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    inside = alpha > 0.5
    mean = float(out[inside].mean()) if inside.any() else 0.5
    out = (out - mean) * colour.get("contrast", 1.0) + mean
    gain = colour.get("brightness", 1.0)
    lm = colour.get("light_match", 0.0)
    if lm:
        gain *= float(np.clip((face_lum / max(mean, 1e-3)) ** lm, 0.4, 2.5))
    out = np.clip(out * gain, 0, 1)
    return np.power(out, colour.get("gamma", 1.0)).astype(np.float32)


def composite(rgb: np.ndarray, landmarks68: np.ndarray, occluder: Occluder,
              placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``occluder`` onto ``rgb`` as recorded in ``placement``.

    Returns ``(occluded_rgb uint8 HxWx3, paste_mask bool HxW)``; the paste mask is where the
    warped occluder's own alpha is at least 0.5 (before feathering and opacity), i.e. the
    ground truth of the occluder class. Deterministic given its arguments.
    """
    img = np.asarray(rgb, dtype=np.uint8)[:, :, :3]
    h, w = img.shape[:2]
    mask = np.zeros((h, w), bool)
    m = placement_transform(occluder, placement)
    # work inside the region the occluder (plus its blur and shadow) can reach
    ow, oh = occluder.size
    corners = np.array([[0, 0, 1], [ow, 0, 1], [ow, oh, 1], [0, oh, 1]], dtype=np.float64) @ m.T
    if np.any(corners[:, 2] <= 1e-9):
        return img.copy(), mask
    corners = corners[:, :2] / corners[:, 2:3]
    margin = (3 * max(placement.feather, placement.blur, placement.shadow_blur) + 2
              + max(map(abs, placement.shadow_offset)))
    x0, y0 = np.floor(corners.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0) + margin).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return img.copy(), mask
    rh, rw = y1 - y0, x1 - x0
    m = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64) @ m
    src = occluder.rgba.astype(np.float32) / 255.0
    src[:, :, :3] *= src[:, :, 3:4]                                  # premultiply
    warped = _warp_rgba(src, m, (rh, rw))
    alpha = np.clip(warped[:, :, 3], 0.0, 1.0)
    roi_mask = alpha >= 0.5
    if not roi_mask.any():
        return img.copy(), mask
    colour = np.where(alpha[:, :, None] > 1e-4, warped[:, :, :3] / np.maximum(alpha[:, :, None], 1e-4), 0.0)
    if occluder.skin_tinted:
        gain = np.asarray(placement.colour.get("skin_gain", (1.0, 1.0, 1.0)), dtype=np.float32)
        skin = face_skin_colour(img, landmarks68).astype(np.float32) / 255.0
        colour = colour * (255.0 / TINT_UNIT) * (skin * gain)[None, None, :]
    colour = _jitter_colour(np.clip(colour, 0, 1).astype(np.float32), alpha, placement.colour,
                            _face_luminance(img, landmarks68))
    if placement.shading:
        ys, xs = np.nonzero(roi_mask)
        t = math.radians(placement.shading_angle)
        cx, cy = xs.mean(), ys.mean()
        ext = max(float(np.ptp(xs)), float(np.ptp(ys)), 1.0) / 2
        gx, gy = np.meshgrid(np.arange(rw, dtype=np.float32), np.arange(rh, dtype=np.float32))
        grad = ((gx - cx) * math.cos(t) + (gy - cy) * math.sin(t)) / ext
        colour = colour * (1.0 + placement.shading * np.clip(grad, -1, 1))[:, :, None]
    if placement.noise:
        noise = np.random.default_rng(placement.noise_seed).normal(0.0, placement.noise / 255.0, size=(rh, rw, 3))
        colour = colour + noise.astype(np.float32)
    colour = np.clip(colour, 0, 1).astype(np.float32)
    if placement.blur > 0.05:
        pre = cv2.GaussianBlur(colour * alpha[:, :, None], (0, 0), placement.blur)
        alpha_b = cv2.GaussianBlur(alpha, (0, 0), placement.blur)
        colour = np.where(alpha_b[:, :, None] > 1e-4, pre / np.maximum(alpha_b[:, :, None], 1e-4), colour)
    a = alpha
    if placement.feather > 0.05:
        a = cv2.GaussianBlur(alpha, (0, 0), placement.feather)
    a = np.clip(a * placement.opacity, 0, 1)[:, :, None]
    base = img[y0:y1, x0:x1].astype(np.float32) / 255.0
    if placement.shadow > 0:
        dx, dy = placement.shadow_offset
        sh = cv2.warpAffine(alpha, np.float32([[1, 0, dx], [0, 1, dy]]), (rw, rh), borderValue=0)
        sh = cv2.GaussianBlur(sh, (0, 0), max(placement.shadow_blur, 0.3))
        base = base * (1.0 - placement.shadow * sh)[:, :, None]
    out = img.copy()
    out[y0:y1, x0:x1] = np.clip((colour * a + base * (1.0 - a)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    mask[y0:y1, x0:x1] = roi_mask
    return out, mask


# ----------------------------------------------------------------------------- evaluation families
@dataclass(frozen=True)
class EvalFamily:
    """A named occlusion condition for evaluation: which occluders, placed at which anchor."""

    name: str
    anchor: str
    kinds: tuple[str, ...] = ()       # occluder kinds (empty: any kind of ``families``)
    families: tuple[str, ...] = ()
    description: str = ""


EVAL_FAMILIES: dict[str, EvalFamily] = {e.name: e for e in (
    EvalFamily("hand_over_eye", "one_eye", families=("hand",), description="a hand over one eye"),
    EvalFamily("hand_over_mouth", "mouth", families=("hand",), description="a hand over the mouth"),
    EvalFamily("hand_on_cheek", "cheek", families=("hand",), description="a hand on one cheek"),
    EvalFamily("hand_over_face", "hand_over_face", families=("hand",), description="a large hand over the lower face"),
    EvalFamily("sunglasses", "eyes", kinds=("dark_sunglasses",), description="dark sunglasses"),
    EvalFamily("goggles", "eyes", kinds=("goggles",), description="ski/safety goggles"),
    EvalFamily("glasses", "eyes", kinds=("glasses",), description="clear glasses"),
    EvalFamily("surgical_mask", "mask", kinds=("surgical", "surgical_blue", "surgical_green"),
               description="a surgical face mask"),
    EvalFamily("respirator_mask", "mask", kinds=("N95", "KN95"), description="an N95/KN95 respirator"),
    EvalFamily("cloth_mask", "mask", kinds=("cloth",), description="a cloth face mask"),
    EvalFamily("cup", "mouth", families=("cup",), description="drinking from a cup or bottle"),
    EvalFamily("food", "mouth", families=("food",), description="eating"),
    EvalFamily("phone", "cheek", families=("phone",), description="a phone held to the cheek"),
    EvalFamily("microphone", "mouth", families=("microphone",), description="a microphone before the mouth"),
    EvalFamily("hat", "forehead", families=("hat",), description="a hat or helmet over the forehead"),
    EvalFamily("scarf", "mouth", families=("scarf",), description="a scarf over chin and mouth"),
    EvalFamily("object", "mouth", families=("object",), description="another object before the face"),
)}


def available_eval_families(library: OccluderLibrary) -> list[str]:
    """The names of :data:`EVAL_FAMILIES` that ``library`` has at least one occluder for."""
    return [n for n, f in EVAL_FAMILIES.items()
            if len(library.filter(kinds=f.kinds or None, families=f.families or None))]


def sample_eval_family(rng: np.random.Generator, library: OccluderLibrary, name: str,
                       landmarks68: np.ndarray) -> tuple[Occluder, Placement]:
    """Choose an occluder of the evaluation family ``name`` (:data:`EVAL_FAMILIES`) and place it."""
    try:
        fam = EVAL_FAMILIES[name]
    except KeyError:
        raise OccguiError(f"unknown occlusion family {name!r}; choose one of {', '.join(EVAL_FAMILIES)}") from None
    sub = library.filter(kinds=fam.kinds or None, families=fam.families or None)
    if not len(sub):
        raise OccguiError(f"the occluder library has no occluder for family {name!r}")
    occ = sub.choose(rng, landmarks68=landmarks68)
    return occ, sample_placement(rng, occ, landmarks68, kind=fam.anchor)


def occlude(rng: np.random.Generator, rgb: np.ndarray, landmarks68: np.ndarray, library: OccluderLibrary,
            count: int = 1, family_weights: dict[str, float] | None = None,
            kind_weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, list[Placement]]:
    """Paste ``count`` randomly chosen occluders (see :meth:`OccluderLibrary.choose` for the
    weights); returns (rgb, union of paste masks, placements)."""
    out = np.asarray(rgb, dtype=np.uint8)[:, :, :3].copy()
    mask = np.zeros(out.shape[:2], bool)
    placements = []
    for _ in range(count):
        occ = library.choose(rng, landmarks68=landmarks68, family_weights=family_weights, kind_weights=kind_weights)
        pl = sample_placement(rng, occ, landmarks68)
        out, m = composite(out, landmarks68, occ, pl)
        mask |= m
        placements.append(pl)
    return out, mask, placements
