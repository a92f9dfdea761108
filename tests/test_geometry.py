"""Geometry stage: derived topology, UV layout, subdivision, camera frame and landmark deformation."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from occgui.errors import OccguiError
from occgui.geometry import topology as T
from occgui.geometry.deform import ScreenedBiharmonicDeformer
from occgui.geometry.mesh_builder import (
    EYE_DISTANCE_MM,
    MediaPipeMeshGeometry,
    camera_from_mesh,
    mesh_to_photo,
    phong_subdivide,
    photo_to_mm,
)
from occgui.geometry.uv_layout import load_uv_layout, mirror_edge_defects


@pytest.fixture(scope="module")
def astronaut():
    """The clean astronaut photo through the real load, detect and landmark stages."""
    from skimage.data import astronaut as photo

    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
    from occgui.imageio import load_image
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks
    from occgui.pipeline import stages as S

    image = load_image(photo())
    crop = S.detect(MediaPipeFaceDetector(), image, face_index=0, crop_size=256)
    landmarks = S.detect_landmarks(MediaPipeMeshLandmarks(), crop)
    return image, crop, landmarks


@pytest.fixture(scope="module")
def mesh(astronaut):
    return MediaPipeMeshGeometry().build(*astronaut)


def to_crop(image, crop, mesh, vertices):
    return crop.working_to_crop(image.photo_to_working(mesh.camera.project(vertices)))


# -- topology ---------------------------------------------------------------------------------
def test_separating_triangle_is_not_a_face():
    # triangle 0-1-2 split at an inner vertex 3, with one more triangle outside each of its edges:
    # 0-1-2 is a 3-clique of the edge graph but not a face (each of its edges has 3 cliques)
    edges = np.array([[0, 1], [1, 2], [2, 0], [0, 3], [1, 3], [2, 3], [0, 4], [1, 4], [1, 5], [2, 5], [2, 6], [0, 6]])
    faces = T.triangles_from_edges(edges, 7)
    assert sorted(map(tuple, faces.tolist())) == [(0, 1, 3), (0, 1, 4), (0, 2, 3), (0, 2, 6), (1, 2, 3), (1, 2, 5)]


def test_orientation_is_made_consistent():
    grid = np.array([[0, 1, 4], [1, 5, 4], [1, 2, 5], [2, 6, 5], [2, 3, 6], [3, 7, 6]])
    scrambled = grid.copy()
    scrambled[[1, 4]] = scrambled[[1, 4]][:, [0, 2, 1]]
    fixed = T.orient_consistently(scrambled)
    directed = [e for t in fixed for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))]
    assert len(directed) == len(set(directed))


def test_face_topology_is_an_oriented_disk():
    top = T.face_topology()
    assert top.num_vertices == 468 and top.faces.shape == (898, 3)
    assert top.num_tessellation_faces == 852
    assert sorted(len(h) for h in top.holes) == [16, 16, 20]      # eyes and mouth, filled
    facts = T.check_manifold_disk(top.faces, 468)
    assert facts == {"vertices": 468, "edges": 1365, "faces": 898, "boundary_loops": [36], "euler": 1,
                     "components": 1}
    # the tessellation part really comes from the package's edges
    from occgui import mediapipe_models as mpm

    edges = {tuple(sorted(e)) for e in mpm.tessellation_edges().tolist()}
    tess = top.faces[:top.num_tessellation_faces]
    assert all(tuple(sorted(e)) in edges for t in tess for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])))


def test_uv_layout_in_unit_square_unflipped_and_mirror_symmetric():
    layout = load_uv_layout()
    uv, mirror = layout.uv, layout.mirror
    assert uv.shape == (468, 2) and (uv >= 0).all() and (uv <= 1).all()
    assert (T.signed_areas(T.face_topology().faces, uv) > 0).all()
    assert np.array_equal(mirror[mirror], np.arange(468))
    assert np.allclose(uv[mirror], np.column_stack([1 - uv[:, 0], uv[:, 1]]), atol=1e-12)
    assert (mirror != np.arange(468)).sum() > 400                  # most vertices have a distinct mirror
    from occgui import mediapipe_models as mpm

    assert len(mirror_edge_defects(mpm.tessellation_edges(), mirror)) <= 6
    from occgui.landmarks import ibug68

    luv = layout.landmark_uv
    assert np.allclose(luv[ibug68.MIRROR], np.column_stack([1 - luv[:, 0], luv[:, 1]]), atol=1e-9)


def test_subdivided_topology_counts_and_uv():
    dense = T.subdivided_topology(2)
    assert dense.num_vertices == 7257 and dense.faces.shape == (14368, 3)
    assert (T.signed_areas(dense.faces, dense.uv) > 0).all()
    T.check_manifold_disk(dense.faces, dense.num_vertices)


# -- the mesh in the camera frame ---------------------------------------------------------------
def test_mesh_reprojects_onto_the_mediapipe_points(astronaut, mesh):
    image, crop, lm = astronaut
    assert mesh.vertices.shape == (7257, 3) and mesh.faces.shape == (14368, 3) and mesh.uv.shape == (7257, 2)
    err = np.linalg.norm(to_crop(image, crop, mesh, mesh.vertices[:468]) - lm.mesh[:468, :2], axis=1)
    assert err.max() < 1e-6
    # the 68 landmark vertices are distinct and project next to the landmarks (a dense edge away at most)
    ids = mesh.landmark_vertices
    assert ids.shape == (68,) and len(np.unique(ids)) == 68
    lerr = np.linalg.norm(to_crop(image, crop, mesh, mesh.vertices[ids]) - lm.points, axis=1)
    assert np.median(lerr) < 1.0 and lerr.max() < 3.0


def test_mesh_scale_frame_and_orientation(astronaut, mesh):
    image, crop, lm = astronaut
    eyes = [mesh.vertices[loop].mean(axis=0) for loop in T.face_topology().eye_loops]
    assert np.linalg.norm(eyes[0] - eyes[1]) == pytest.approx(EYE_DISTANCE_MM, rel=1e-9)
    assert np.abs(mesh.vertices.mean(axis=0)).max() < 20.0           # near the origin
    p = mesh.vertices[mesh.faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert (n[:, 2] > 0).mean() > 0.95                              # outward = towards the viewer
    nose_tip = mesh.vertices[1]                                     # MediaPipe vertex 1: the nose tip
    assert nose_tip[2] > np.percentile(mesh.vertices[:468, 2], 95)  # Z towards the viewer
    forehead, chin = mesh.vertices[10], mesh.vertices[152]
    assert forehead[1] > chin[1]                                    # Y up


def test_phong_subdivision_is_smoother_than_flat_midpoints(astronaut):
    image, crop, lm = astronaut
    photo = mesh_to_photo(image, crop, lm.mesh[:468])
    cam, z0 = camera_from_mesh(photo)
    coarse = photo_to_mm(photo, cam, z0)
    dense = T.subdivided_topology(2)

    def angles(v):
        import trimesh

        return trimesh.Trimesh(v, dense.faces, process=False).face_adjacency_angles

    smooth_v = phong_subdivide(coarse, dense)
    assert np.allclose(smooth_v[:468], coarse)                      # interpolating: original points kept
    flat, smooth = angles(phong_subdivide(coarse, dense, alpha=0.0)), angles(smooth_v)
    # the coarse mesh's creases are spread out: less bending, far fewer sharp edges
    assert np.sqrt(np.mean(smooth ** 2)) < 0.85 * np.sqrt(np.mean(flat ** 2))
    assert np.percentile(smooth, 99) < 0.7 * np.percentile(flat, 99)


def test_landmark_edit_moves_the_mesh_locally(astronaut, mesh):
    image, crop, lm = astronaut
    points = lm.points.copy()
    moved = [8, 48]                                                 # chin, mouth corner
    points[8] += [0.0, 7.0]
    points[48] += [-4.0, 1.0]
    edited = MediaPipeMeshGeometry().build(image, crop, replace(lm, points=points, edited=True))
    ids = edited.landmark_vertices
    assert np.array_equal(ids, mesh.landmark_vertices)
    proj = to_crop(image, crop, edited, edited.vertices[ids])
    assert np.linalg.norm(proj[moved] - points[moved], axis=1).max() < 0.5
    photo_err = np.linalg.norm(image.working_to_photo(crop.crop_to_working(proj[moved]))
                               - image.working_to_photo(crop.crop_to_working(points[moved])), axis=1)
    assert photo_err.max() < 0.5
    still = np.setdiff1d(np.arange(68), moved)
    assert np.abs(edited.vertices[ids[still]] - mesh.vertices[ids[still]]).max() < 1e-6
    assert np.array_equal(edited.vertices[:, 2], mesh.vertices[:, 2])  # depth unchanged
    disp = np.linalg.norm(edited.vertices - mesh.vertices, axis=1)
    src = mesh.vertices[ids[moved], :2]
    dist = np.linalg.norm(mesh.vertices[:, None, :2] - src[None], axis=2).min(axis=1)
    assert disp[dist < 3].max() > 3.0                               # the neighbourhood follows
    assert disp[dist > 40].max() < 0.1 * 7.0                        # far away barely moves
    assert disp[dist > 60].max() < 0.03 * 7.0


def test_geometry_needs_the_dense_mesh(astronaut):
    image, crop, lm = astronaut
    with pytest.raises(OccguiError, match="dense MediaPipe mesh"):
        MediaPipeMeshGeometry().build(image, crop, replace(lm, mesh=None, backend="dlib"))


def test_screened_biharmonic_deformer_on_a_grid():
    n = 21
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    handles = np.array([idx[10, 10], idx[0, 0], idx[20, 20]])
    dfm = ScreenedBiharmonicDeformer(faces, n * n, handles, decay_hops=3.0)
    out = dfm.displacement(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(out[handles], [[1, 0], [0, 0], [0, 0]])
    assert 0.2 < out[idx[10, 11], 0] < 1.0 and abs(out[idx[10, 18], 0]) < 0.05
