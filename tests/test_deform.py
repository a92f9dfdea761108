"""The landmark deformation of the face mesh is bounded (issue 17: "a 15 px mouth-corner drag
leaves a sliver of mesh sticking out past the cheek"): after a 15 px drag of a mouth corner on
the bundled sample no front-facing triangle folds, no vertex leaves the face's silhouette, nothing
moves 60 mm away from the drag, and a moderate drag is still followed exactly."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from occgui.geometry.deform import (
    FAR_OUTER_MM,
    CotanBiharmonicDeformer,
    bounded_landmark_displacement,
    checked_triangles,
    fold_free_fraction,
    jacobians,
)


@pytest.fixture(scope="module")
def sample_face(sample_photo):
    """The bundled sample (512 px, a hand over the face) through load, detect, parse and landmarks."""
    from occgui.geometry.mesh_builder import MediaPipeMeshGeometry
    from occgui.pipeline.runner import Pipeline

    r = Pipeline().run(str(sample_photo), stop_after="landmarks")
    return r, MediaPipeMeshGeometry().build(r.image, r.crop, r.landmarks)


def _drag(sample_face, index: int, photo_px):
    from occgui.geometry.mesh_builder import MediaPipeMeshGeometry, crop_to_mm
    from occgui.pipeline.stages import apply_landmark_edit

    r, rest = sample_face
    pts = r.landmarks_in_photo()
    pts[index] += photo_px
    lm = apply_landmark_edit(r.landmarks, r.image, r.crop, pts)
    mesh = MediaPipeMeshGeometry().build(r.image, r.crop, lm)
    target = crop_to_mm(r.image, r.crop, mesh.camera, lm.points)
    return rest, mesh, target


def _silhouette(xy: np.ndarray, faces: np.ndarray, res: float = 0.2, grow_mm: float = 0.5):
    """A raster of the projected mesh (mm), grown by ``grow_mm``; returns a point-inside test."""
    lo = xy.min(0) - 5.0
    size = np.ceil((xy.max(0) + 5.0 - lo) / res).astype(int) + 1
    mask = np.zeros((size[1], size[0]), np.uint8)
    pix = np.round((xy - lo) / res).astype(np.int32)
    for f in faces:
        cv2.fillConvexPoly(mask, pix[f], 1)
    k = int(round(grow_mm / res))
    mask = cv2.dilate(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))

    def inside(p):
        q = np.round((p - lo) / res).astype(int)
        ok = (q[:, 0] >= 0) & (q[:, 1] >= 0) & (q[:, 0] < size[0]) & (q[:, 1] < size[1])
        out = np.zeros(len(p), bool)
        out[ok] = mask[q[ok, 1], q[ok, 0]] > 0
        return out
    return inside


@pytest.mark.parametrize("drag", [(-15.0, 0.0), (15.0, 0.0), (0.0, 15.0), (-10.0, -10.0)])
def test_a_15_px_mouth_corner_drag_folds_nothing_and_stays_in_the_face(sample_face, drag):
    rest, mesh, target = _drag(sample_face, 48, np.array(drag))
    faces = rest.faces
    xy0, xy1 = rest.vertices[:, :2], mesh.vertices[:, :2]
    checked = checked_triangles(rest.vertices, faces)
    jac = jacobians(xy0, faces, xy1 - xy0)[checked]
    assert jac.min() > 0.0, f"{int((jac <= 0).sum())} front-facing triangles folded"
    # 1 mm of slack past the projected silhouette: with MediaPipe's own points on this sample (the
    # default since parser v4) one vertex of 7,257 ends 0.5-1.0 mm out at the 15 px outward drag
    # (0.5 mm held with the refiner's points). A sliver past the cheek (issue 17) is far larger.
    inside = _silhouette(xy0, faces, grow_mm=1.0)
    assert inside(xy1).all(), f"{int((~inside(xy1)).sum())} vertices left the face's silhouette"
    assert np.array_equal(mesh.vertices[:, 2], rest.vertices[:, 2])
    ids = rest.landmark_vertices
    others = np.setdiff1d(np.arange(68), [48])
    assert np.abs(xy1[ids[others]] - xy0[ids[others]]).max() < 1e-9, "an unmoved landmark moved"
    start, goal = xy0[ids[48]], target[48]
    reached = xy1[ids[48]] - start
    along = float(reached @ (goal - start)) / float(np.sum((goal - start) ** 2))
    assert 0.0 < along <= 1.0 + 1e-9 and np.linalg.norm(reached - along * (goal - start)) < 1e-6, \
        "the corner moves towards the corrected point, never past it or sideways"
    dist = np.minimum(np.linalg.norm(xy0 - start, axis=1), np.linalg.norm(xy0 - goal, axis=1))
    disp = np.linalg.norm(xy1 - xy0, axis=1)
    assert disp[dist > FAR_OUTER_MM].max() == 0.0, "a vertex far from the drag moved"
    assert disp[dist > 40.0].max() < 0.05 * np.linalg.norm(goal - start)
    assert disp.max() <= 1.1 * np.linalg.norm(goal - start)
    print(f"\n15 px drag {drag}: the mesh follows {along:.0%} of it, min area ratio {jac.min():.2f}")


def test_a_moderate_drag_is_followed_exactly(sample_face):
    rest, mesh, target = _drag(sample_face, 48, np.array([-6.0, 1.0]))
    ids = rest.landmark_vertices
    assert np.linalg.norm(mesh.vertices[ids[48], :2] - target[48]) < 1e-6
    checked = checked_triangles(rest.vertices, rest.faces)
    assert jacobians(rest.vertices[:, :2], rest.faces, mesh.vertices[:, :2] - rest.vertices[:, :2])[checked].min() > 0


def test_the_uniform_laplacian_field_folded_the_mouth_corner(sample_face):
    """Why the cotangent field: the old graph-Laplacian field folds triangles at a 7 px drag already."""
    from occgui.geometry.deform import ScreenedBiharmonicDeformer
    from occgui.geometry.topology import subdivided_topology

    rest, mesh, target = _drag(sample_face, 48, np.array([-7.0, 0.0]))
    ids = rest.landmark_vertices
    dense = subdivided_topology(2)
    handle_d = np.zeros((68, 2))
    handle_d[48] = target[48] - rest.vertices[ids[48], :2]
    old = ScreenedBiharmonicDeformer(dense.faces, dense.num_vertices, ids, decay_hops=8.0).displacement(handle_d)
    checked = checked_triangles(rest.vertices, rest.faces)
    assert (jacobians(rest.vertices[:, :2], rest.faces, old)[checked] <= 0).sum() > 10
    assert fold_free_fraction(rest.vertices[:, :2], rest.faces, old, checked) < 0.5


def test_fold_free_fraction_and_the_bound_on_a_grid():
    n = 21
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    gx, gy = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    xy = np.column_stack([gx.ravel(), gy.ravel()]) * 2.0              # 2 mm spacing
    # a shift of one column by 3 mm towards its fixed neighbour 2 mm away folds the cells between
    disp = np.zeros_like(xy)
    disp[idx[:, 10], 0] = 3.0
    t = fold_free_fraction(xy, faces, disp)
    assert 0.5 < t < 2.0 / 3.0                    # the cells collapse at t = 2/3
    assert jacobians(xy, faces, t * disp).min() > 0
    assert fold_free_fraction(xy, faces, 0.1 * disp) == 1.0
    handles = np.array([idx[10, 10], idx[10, 12], idx[0, 0], idx[20, 20]])
    dfm = CotanBiharmonicDeformer(np.column_stack([xy, np.zeros(len(xy))]), faces, handles, decay_mm=6.0)
    hd = np.array([[-6.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])   # towards the free side
    res = bounded_landmark_displacement(dfm, xy, faces, hd)
    assert res.fraction == 1.0 and np.allclose(res.displacement[handles], hd)
    hd = np.array([[5.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])    # past the fixed handle 4 mm away
    res = bounded_landmark_displacement(dfm, xy, faces, hd)
    assert res.fraction < 0.8 and jacobians(xy, faces, res.displacement).min() > 0
