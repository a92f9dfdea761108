"""Stage ``geometry`` default backend: the MediaPipe face mesh in the photo's camera frame.

Steps (issue point 9):

1. The landmark stage's dense mesh (478 points in crop pixels, z in x's pixel units, larger z =
   farther) is mapped crop -> working -> photo pixels (a similarity, so z scales alike); the 10
   iris points are dropped.
2. Camera (:class:`~occgui.results.Camera`): scaled orthographic, ``k`` photo pixels per
   millimetre chosen so that the 3D distance between the two eye centres (centroids of the eye
   loops) is 63 mm; ``(u0, v0)`` is the projected mesh's centroid, so the mesh sits near the
   origin; Z is centred on the mesh's mean depth. Mesh frame: X right, Y up, Z towards the viewer.
3. Topology (:mod:`occgui.geometry.topology`): the package's tessellation with the eyes and mouth
   filled (898 triangles), refined by :data:`SUBDIVISION_LEVELS` midpoint subdivisions whose new
   vertices are placed by *Phong tessellation* (Boubekeur & Alexa 2008: the edge midpoint is
   blended with its projections onto the tangent planes of the edge's end points), an
   interpolating scheme: the original 468 vertices stay exactly on MediaPipe's points while the
   surface between them becomes smooth. UVs are interpolated linearly (the project's layout,
   :mod:`occgui.geometry.uv_layout`).
4. Landmark vertices (``FaceMesh.landmark_vertices``): for every iBUG landmark, the distinct
   dense vertex that projects nearest to the detected landmark (a landmark is a convex combination
   of mesh points, so this is within about a dense edge of it). After a correction
   (``Landmarks.edited``) the mesh is deformed in the image plane
   (:func:`~occgui.geometry.deform.bounded_landmark_displacement`, a cotangent biharmonic field of
   the rest mesh): the vertices of the corrected landmarks move so that they reproject exactly onto
   the corrected points, those of the unchanged landmarks stay, and the motion spreads smoothly,
   decays over about 10 mm and stops 60 mm away; a correction too large to follow without folding
   the surface is followed as far as it can be. Depth is unchanged.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import OccguiError
from ..results import Camera, FaceCrop, FaceMesh, Landmarks, LoadedImage
from .deform import bounded_landmark_displacement, cached_cotan_deformer
from .topology import NUM_MESH_VERTICES, DenseTopology, face_topology, subdivided_topology
from .uv_layout import load_uv_layout

SUBDIVISION_LEVELS = 2        # 898 -> 14368 triangles, 468 -> 7257 vertices
PHONG_ALPHA = 0.5             # Phong tessellation shape factor (0 = flat midpoints; 0.5 bends least here)
EYE_DISTANCE_MM = 63.0        # 3D distance between the eye centres, sets the scale
LANDMARK_CANDIDATES = 48      # dense vertices (nearest in UV) a landmark may be attached to
MOVED_PX = 0.01               # a corrected landmark differs from the detected one by more (crop px)


def mesh_to_photo(image: LoadedImage, crop: FaceCrop, mesh_crop: np.ndarray) -> np.ndarray:
    """(N,3) crop-pixel mesh points -> photo pixels (x right, y down, z farther, in x's units)."""
    m = np.asarray(mesh_crop, dtype=np.float64)
    xy = image.working_to_photo(crop.crop_to_working(m[:, :2]))
    z = m[:, 2] / (crop.crop_scale * image.scale)
    return np.column_stack([xy, z])


def crop_to_mm(image: LoadedImage, crop: FaceCrop, camera: Camera, points_crop: np.ndarray) -> np.ndarray:
    """(N,2) crop pixels -> (N,2) mesh-frame X, Y millimetres (the inverse of the projection)."""
    p = image.working_to_photo(crop.crop_to_working(points_crop))
    return np.column_stack([(p[:, 0] - camera.u0) / camera.k, -(p[:, 1] - camera.v0) / camera.k])


def camera_from_mesh(points_photo: np.ndarray) -> tuple[Camera, float]:
    """The camera and the depth offset (photo px) that put the 468 photo-pixel points in millimetres."""
    eyes = [points_photo[loop].mean(axis=0) for loop in face_topology().eye_loops]
    dist_px = float(np.linalg.norm(eyes[0] - eyes[1]))
    if not np.isfinite(dist_px) or dist_px <= 1e-6:
        raise OccguiError("the face mesh is degenerate (the eyes coincide)")
    u0, v0 = points_photo[:, :2].mean(axis=0)
    return Camera(k=dist_px / EYE_DISTANCE_MM, u0=float(u0), v0=float(v0)), float(points_photo[:, 2].mean())


def photo_to_mm(points_photo: np.ndarray, camera: Camera, z0: float) -> np.ndarray:
    """(N,3) photo-pixel points (y down, z farther) -> the mesh frame in mm (Y up, Z to the viewer)."""
    p = np.asarray(points_photo, dtype=np.float64)
    return np.column_stack([(p[:, 0] - camera.u0) / camera.k, -(p[:, 1] - camera.v0) / camera.k,
                            -(p[:, 2] - z0) / camera.k])


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence) -> np.ndarray:
    """Area-weighted unit vertex normals (``incidence``: V x F sparse sum matrix)."""
    p = vertices[faces]
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    n = incidence @ fn
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def phong_subdivide(vertices: np.ndarray, dense: DenseTopology, alpha: float = PHONG_ALPHA) -> np.ndarray:
    """Positions of the dense mesh's vertices from the coarse ones (see the module docstring)."""
    v = np.asarray(vertices, dtype=np.float64)
    for step in dense.steps:
        n = vertex_normals(v, step.faces, step.incidence)
        a, b = step.edges[:, 0], step.edges[:, 1]
        pa, pb, na, nb = v[a], v[b], n[a], n[b]
        m = 0.5 * (pa + pb)
        proj_a = m - ((m - pa) * na).sum(1, keepdims=True) * na
        proj_b = m - ((m - pb) * nb).sum(1, keepdims=True) * nb
        v = np.vstack([v, (1.0 - alpha) * m + alpha * 0.5 * (proj_a + proj_b)])
    return v


@lru_cache(maxsize=None)
def _landmark_candidates(levels: int) -> np.ndarray:
    """(68, K) dense vertex ids nearest, in the UV chart, to each landmark's reference UV position."""
    from scipy.spatial import cKDTree

    dense = subdivided_topology(levels)
    _, idx = cKDTree(dense.uv).query(load_uv_layout().landmark_uv, k=LANDMARK_CANDIDATES)
    idx.setflags(write=False)
    return idx


def landmark_vertex_ids(vertices_xy: np.ndarray, landmarks_xy: np.ndarray,
                        levels: int = SUBDIVISION_LEVELS) -> np.ndarray:
    """68 distinct dense vertices whose image-plane positions are nearest to the 68 landmarks.

    Each landmark may only take one of the :data:`LANDMARK_CANDIDATES` vertices nearest to its
    position in the UV chart, so that a vertex of another surface part that happens to project
    nearby (across a silhouette) is never chosen; a joint minimum-cost assignment (LAPJVsp, scipy's
    sparse bipartite matching) keeps them distinct.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    cand = _landmark_candidates(levels)
    pool, inverse = np.unique(cand, return_inverse=True)
    inverse = inverse.reshape(cand.shape)
    rows = np.repeat(np.arange(len(cand)), cand.shape[1])
    d = np.linalg.norm(vertices_xy[cand] - landmarks_xy[:, None, :], axis=2)
    # every landmark is matched exactly once, so adding 1 to all costs changes no choice; it keeps
    # a zero distance from reading as a missing edge of the sparse bipartite graph
    cost = csr_matrix((d.ravel() + 1.0, (rows, inverse.ravel())), shape=(len(cand), len(pool)))
    try:
        r, c = min_weight_full_bipartite_matching(cost)
    except ValueError:           # no matching within the candidates: allow any pool vertex, at a high cost
        dense = np.full(cost.shape, 1e9)
        dense[rows, inverse.ravel()] = d.ravel() + 1.0
        r, c = min_weight_full_bipartite_matching(csr_matrix(dense))
    ids = np.empty(len(cand), dtype=np.int64)
    ids[r] = pool[c]
    return ids


class MediaPipeMeshGeometry:
    """Stage ``geometry`` backend (see the module docstring)."""

    name = "mediapipe-mesh"
    version = f"2+sub{SUBDIVISION_LEVELS}"        # 2: bounded cotangent deformation of corrected landmarks

    def __init__(self, ctx=None):
        self._ctx = ctx

    def build(self, image: LoadedImage, crop: FaceCrop, landmarks: Landmarks, **_unread) -> FaceMesh:
        """The mesh of the landmark stage's dense points; I_out and the parsing maps (registered as
        not read, so passed as None) are ignored."""
        if landmarks.mesh is None:
            raise OccguiError(f"the geometry backend {self.name!r} needs the dense MediaPipe mesh, but the "
                              f"landmark backend {landmarks.backend!r} gives none")
        mesh = np.asarray(landmarks.mesh, dtype=np.float64)
        if mesh.ndim != 2 or mesh.shape[0] < NUM_MESH_VERTICES or mesh.shape[1] != 3 or not np.isfinite(mesh).all():
            raise OccguiError(f"unexpected dense face mesh of shape {mesh.shape}")
        photo = mesh_to_photo(image, crop, mesh[:NUM_MESH_VERTICES])
        camera, z0 = camera_from_mesh(photo)
        coarse = photo_to_mm(photo, camera, z0)
        dense = subdivided_topology(SUBDIVISION_LEVELS)
        vertices = phong_subdivide(coarse, dense)
        detected = landmarks.detected_points if landmarks.detected_points is not None else landmarks.points
        detected_mm = crop_to_mm(image, crop, camera, np.asarray(detected, dtype=np.float64))
        ids = landmark_vertex_ids(vertices[:, :2], detected_mm)
        if landmarks.edited:
            points = np.asarray(landmarks.points, dtype=np.float64)
            moved = np.linalg.norm(points - np.asarray(detected, dtype=np.float64), axis=1) > MOVED_PX
            if moved.any():
                target = crop_to_mm(image, crop, camera, points)
                handle_d = np.where(moved[:, None], target - vertices[ids, :2], 0.0)
                deformer = cached_cotan_deformer(vertices, dense.faces, ids)
                vertices[:, :2] += bounded_landmark_displacement(deformer, vertices[:, :2], dense.faces, handle_d,
                                                                 rest=vertices).displacement
        return FaceMesh(vertices=vertices, faces=np.array(dense.faces), uv=np.array(dense.uv), camera=camera,
                        landmark_vertices=np.array(ids), backend=self.name)
