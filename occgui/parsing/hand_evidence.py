"""Hands as occluder evidence for M_alpha (issue 13 point 3): MediaPipe's bundled hand-landmark model.

The parser learned hands from pasted ones and finds real hands only in part. MediaPipe Hands (palm
detection and 21 hand landmarks, bundled with the ``mediapipe`` package) knows real hands. Each hand
it finds in the crop becomes an occluder region: the convex hull of its 21 points, dilated by
:data:`DILATION` times the hand's size (wrist to the middle finger's knuckle) so that the fingers'
width and the hand's edge are covered. The region is written into the parser's map as occluder, over
whatever the parser said there (a hand in front of the face hides the face) -- unless the parser
already marks at least :data:`FOUND_SHARE` of the hand's hull as occluder: then the parser's own
outline, which follows the fingers, stands (the dilated hull would only widen it). Nothing is marked
where no hand is found.

A hand counts only when the model finds it in the mirror image of the crop too (hull IoU at least
:data:`MIRROR_AGREEMENT` with a hand found there, mirrored back): the model's false hands on a cheek
or a collar are seldom found both ways, real hands mostly are (dev photos: 4 of 6 false detections
dropped, 1 of 11 true ones lost). Cost (``bench/pipeline.py --option parse.hand_evidence=true`` on
the bundled sample, whose hand is found both ways, 2-core CPU): the parse stage's median goes from
21-26 ms to 66-72 ms, the peak RSS of a run from 0.43 to 0.51 GB.

With ``parse.hand_context`` (on by default since 2026-12-07) the hands found in a view of the photo twice as wide around
the crop (:func:`context_view`) count too: a hand at the face often has its palm outside the crop, and
the palm detector needs the palm. Such a hand counts only when one of its fingertips lies on the face
(:func:`face_area`: the hull of the parser's skin and features, and the occluder): the wider view
also shows hands at the chest and other people's hands, which cost pasted-occluder IoU when they
counted. With it and the forehead growth (:mod:`.forehead`), both on by default, the sample's parse
stage takes 117-123 ms against 66-68 ms with the crop's hands alone (``bench/pipeline.py``).

On by default (the parse setting ``hand_evidence``; off: ``--option parse.hand_evidence=false``, or the
checkbox in the window's Preferences); the measurements and the decision are in
``checkpoints/parsing_unet.md``.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import labels as L
from ..metrics import hull_mask

#: The hand-landmark model's detection confidence (MediaPipe's own default).
MIN_CONFIDENCE = 0.5
#: At most this many hands per crop.
MAX_HANDS = 2
#: Dilation of the 21 points' hull, in units of the hand's size (wrist to middle-finger knuckle).
DILATION = 0.35
#: A hand whose hull the parser already marks occluder at least this much is left to the parser.
FOUND_SHARE = 0.5
#: Hull IoU with a hand found in the mirror image for a detection to count.
MIRROR_AGREEMENT = 0.5
#: Bump when the evidence's output for a given crop changes (part of the parse backend's version).
VERSION = 3
#: Bump when the context view's hands change for a given photo (part of the version with hand_context).
CONTEXT_VERSION = 3


def _points(points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if p.shape[0] != 21 or not np.isfinite(p).all():
        raise ValueError(f"expected 21 finite hand landmarks, got shape {p.shape}")
    return p


def hand_hull(points: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` bool: the convex hull of one hand's 21 landmarks (crop pixels, ``(21, 2)``)."""
    return hull_mask(_points(points), size)


def hand_region(points: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` bool mask of one hand: its hull dilated by :data:`DILATION` times its size."""
    p = _points(points)
    k = max(3, int(np.linalg.norm(p[0] - p[9]) * DILATION)) | 1
    hull = hand_hull(p, size).astype(np.uint8)
    return cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)


def _detect_once(crop_rgb: np.ndarray) -> list[np.ndarray]:
    from ..mediapipe_models import hand_landmarker, run

    h, w = crop_rgb.shape[:2]
    out = run(hand_landmarker(MAX_HANDS, MIN_CONFIDENCE), crop_rgb[..., :3])
    return [np.array([[q.x * w, q.y * h] for q in hand.landmark]) for hand in (out.multi_hand_landmarks or [])]


def detect_hands(crop_rgb: np.ndarray) -> list[np.ndarray]:
    """The hands MediaPipe finds in a square uint8 RGB crop and in its mirror image (see the module
    docstring): a ``(21, 2)`` array of crop pixels each."""
    found = _detect_once(crop_rgb)
    if not found:
        return []
    size = crop_rgb.shape[1]
    mirrored = [hand_hull(np.c_[size - p[:, 0], p[:, 1]], size)
                for p in _detect_once(np.ascontiguousarray(crop_rgb[:, ::-1]))]
    keep = []
    for p in found:
        hull = hand_hull(p, size)
        if any((hull & m).sum() >= MIRROR_AGREEMENT * max((hull | m).sum(), 1) for m in mirrored):
            keep.append(p)
    return keep


#: Field of view of the context view (:func:`context_view`), in crop widths around the crop's centre.
CONTEXT_FIELD = 2.0


def context_view(image_rgb: np.ndarray, to_crop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``size``-pixel square view of the photo around the face crop, :data:`CONTEXT_FIELD` times as
    wide (border: black), and the ``(2, 3)`` affine from its pixels to crop pixels. A hand at the face
    often leaves the crop with its palm, which MediaPipe's palm detector needs; in the wider view the
    whole hand shows."""
    a = np.asarray(to_crop, np.float64)
    c = size / 2.0
    f = CONTEXT_FIELD
    to_view = np.c_[a[:, :2] / f, (a[:, 2] - c) / f + c]
    view = cv2.warpAffine(np.ascontiguousarray(image_rgb[..., :3]), to_view, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    view_to_crop = np.array([[f, 0.0, c - f * c], [0.0, f, c - f * c]])
    return view, view_to_crop


#: The fingertips among the 21 hand landmarks (thumb, index, middle, ring, little finger).
FINGERTIPS = (4, 8, 12, 16, 20)


def touches(points: np.ndarray, face: np.ndarray) -> bool:
    """Whether a fingertip of the hand (``(21, 2)`` crop pixels) lies on ``face`` (``(S, S)`` bool)."""
    tips = np.round(_points(points)[list(FINGERTIPS)]).astype(int)
    h, w = face.shape
    inside = (tips[:, 0] >= 0) & (tips[:, 0] < w) & (tips[:, 1] >= 0) & (tips[:, 1] < h)
    return bool(face[tips[inside, 1], tips[inside, 0]].any())


def hands_in_crop(crop_rgb: np.ndarray, context: tuple[np.ndarray, np.ndarray] | None = None,
                  face: np.ndarray | None = None) -> list[np.ndarray]:
    """The hands found in the crop (:func:`detect_hands`) and, with ``context`` (a view of the photo and
    its affine to crop pixels, :func:`context_view`), those found in that view, in crop pixels -- of
    these, with ``face`` (:func:`face_area`), only those that touch it with a fingertip (:func:`touches`):
    a hand *at the face*, not one at the chest or another person's."""
    found = detect_hands(crop_rgb)
    if context is not None:
        view, view_to_crop = context
        m = np.asarray(view_to_crop, np.float64)
        for p in detect_hands(view):
            q = p @ m[:, :2].T + m[:, 2]
            if face is None or touches(q, face):
                found.append(q)
    return found


def hands_mask(crop_rgb: np.ndarray, occluder: np.ndarray | None = None,
               context: tuple[np.ndarray, np.ndarray] | None = None, face: np.ndarray | None = None) -> np.ndarray:
    """``(S, S)`` bool: the union of the hand regions found (:func:`hands_in_crop`; all False without a
    hand), leaving out the hands whose hull ``occluder`` (the parser's, optional) already covers by
    :data:`FOUND_SHARE` or more."""
    size = crop_rgb.shape[0]
    m = np.zeros((size, size), bool)
    for pts in hands_in_crop(crop_rgb, context, face):
        if occluder is not None:
            hull = hand_hull(pts, size)
            if hull.any() and occluder[hull].mean() >= FOUND_SHARE:
                continue
        m |= hand_region(pts, size)
    return m


def face_area(labels: np.ndarray) -> np.ndarray:
    """``(S, S)`` bool: the face as far as a hand at it is concerned -- the convex hull of the parser's
    skin and facial features, and the occluder (a beard, often parsed as background or hair, lies
    inside the hull: a finger on it is at the face)."""
    lab = np.asarray(labels)
    skin = np.isin(lab, (L.SKIN, *L.FEATURE_IDS)).astype(np.uint8)
    face = np.zeros(lab.shape, np.uint8)
    pts = cv2.findNonZero(skin)
    if pts is not None:
        cv2.fillConvexPoly(face, cv2.convexHull(pts), 1)
    return face.astype(bool) | (lab == L.OCCLUDER)


def with_hands(labels: np.ndarray, crop_rgb: np.ndarray,
               context: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """M_alpha with the hands found (in the crop, and in ``context`` when given) that the parser missed
    marked occluder (a copy)."""
    out = np.array(labels, copy=True)
    lab = np.asarray(labels)
    out[hands_mask(crop_rgb, occluder=lab == L.OCCLUDER, context=context, face=face_area(lab))] = L.OCCLUDER
    return out
