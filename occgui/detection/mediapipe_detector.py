"""Default face detector: MediaPipe BlazeFace (short- and full-range models, merged by NMS),
with dlib's HOG detector as a fallback for faces BlazeFace misses."""
from __future__ import annotations

import numpy as np

from .. import mediapipe_models as mpm
from ..pipeline.results import FaceDetection


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


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

    name = "mediapipe-blazeface"
    version = "0.10.21"

    def detect(self, rgb: np.ndarray) -> list[FaceDetection]:
        dets = _blazeface(rgb, 0) + _blazeface(rgb, 1)
        if not dets:
            dets = _dlib_hog(rgb)
        dets.sort(key=lambda d: -d.score)
        kept: list[FaceDetection] = []
        for d in dets:
            if all(_iou(d.box, k.box) < 0.4 for k in kept):
                kept.append(d)
        return kept
