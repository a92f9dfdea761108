"""Default face detector: MediaPipe BlazeFace (short- and full-range models, merged by NMS),
with dlib's HOG detector as a fallback for faces BlazeFace misses."""
from __future__ import annotations

import numpy as np

from .. import mediapipe_models as mpm
from ..results import FaceDetection


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area (a face found twice, or inside a tile's half-face)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter / small if small > 0 else 0.0


def _tiles(h: int, w: int, frac: float = 0.6) -> list[tuple[int, int, int, int]]:
    """2x2 overlapping tiles covering the image (x0, y0, x1, y1), each ``frac`` of each side."""
    th, tw = int(round(h * frac)), int(round(w * frac))
    return [(x, y, x + tw, y + th) for y in (0, h - th) for x in (0, w - tw)]


def _blazeface(rgb: np.ndarray, model_selection: int) -> list[FaceDetection]:
    h, w = rgb.shape[:2]
    out = mpm.run(mpm.face_detector(model_selection), rgb)
    dets = []
    for d in out.detections or []:
        bb = d.location_data.relative_bounding_box
        box = (bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h)
        kps = np.array([[k.x * w, k.y * h] for k in d.location_data.relative_keypoints], dtype=np.float64)
        dets.append(FaceDetection(box=tuple(float(v) for v in box), keypoints=kps, score=float(d.score[0])))
    return dets


def _dlib_hog(rgb: np.ndarray) -> list[FaceDetection]:
    """dlib HOG fallback; keypoints estimated from the box (eyes, nose, mouth, ears)."""
    import dlib

    det = _hog()
    small = rgb
    s = 1.0
    if max(rgb.shape[:2]) > 800:
        import cv2

        s = 800.0 / max(rgb.shape[:2])
        small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    rects, scores, _ = det.run(np.ascontiguousarray(small), 1, 0.0)
    dets = []
    for r, sc in zip(rects, scores):
        x0, y0, x1, y1 = r.left() / s, r.top() / s, r.right() / s, r.bottom() / s
        w, h = x1 - x0, y1 - y0
        rel = np.array([[0.30, 0.35], [0.70, 0.35], [0.5, 0.58], [0.5, 0.78], [0.0, 0.45], [1.0, 0.45]])
        kps = np.stack([x0 + rel[:, 0] * w, y0 + rel[:, 1] * h], axis=1)
        dets.append(FaceDetection(box=(x0, y0, x1, y1), keypoints=kps, score=float(min(1.0, 0.5 + sc / 4))))
    del dlib
    return dets


_HOG = None


def _hog():
    global _HOG
    if _HOG is None:
        import dlib

        _HOG = dlib.get_frontal_face_detector()
    return _HOG


class MediaPipeFaceDetector:
    """Stage ``detect`` backend. Returns every face found, in working-image pixels."""

    name = "mediapipe"
    version = "0.10.21"

    def detect(self, rgb: np.ndarray) -> list[FaceDetection]:
        """Whole image (short and full range), then 2x2 overlapping tiles so that faces much
        smaller than the photo are seen at a usable resolution.

        A detection scoring below ``SURE`` is kept only when BlazeFace finds it again, centred,
        on its own aligned crop (this rejects arms, hands and background patterns); if that
        leaves nothing, the best whole-image candidate is kept, so a heavily occluded single face
        is still reconstructed. On the 182 real-occlusion LFW photos, 177 score above ``SURE``.
        """
        whole = _nms(_blazeface(rgb, 0) + _blazeface(rgb, 1))
        kept = [d for d in whole if d.score >= self.SURE or _confirm_score(rgb, d) >= 0.6]
        h, w = rgb.shape[:2]
        for x0, y0, x1, y1 in _tiles(h, w):
            for d in _blazeface(np.ascontiguousarray(rgb[y0:y1, x0:x1]), 1):
                bx = d.box
                d = FaceDetection(box=(bx[0] + x0, bx[1] + y0, bx[2] + x0, bx[3] + y0),
                                  keypoints=d.keypoints + [x0, y0], score=d.score)
                if all(_overlap(d.box, k.box) < 0.5 for k in whole + kept) and _confirm_score(rgb, d) >= 0.75:
                    kept.append(d)
        if not kept and whole:
            kept = whole[:1]
        if not kept:
            kept = _dlib_hog(rgb)
        return _nms(kept)

    SURE = 0.85


def _nms(dets: list[FaceDetection]) -> list[FaceDetection]:
    kept: list[FaceDetection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(_overlap(d.box, k.box) < 0.5 for k in kept):
            kept.append(d)
    return kept


def _confirm_score(rgb: np.ndarray, d: FaceDetection) -> float:
    """BlazeFace's score for the candidate re-detected, centred, on its own aligned 192 px crop."""
    from .crop import aligned_crop

    crop = aligned_crop(rgb, d, 192).image
    again = [a.score for a in _blazeface(crop, 0) if abs((a.box[0] + a.box[2]) / 2 - 96) < 30]
    return max(again, default=0.0)
