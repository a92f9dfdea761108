"""Texture stage: rasterisation, visibility, completion of occluded texels, no holes, no occluder colour."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from occgui import labels
from occgui.results import Camera, FaceCrop, FaceDetection, FaceMesh, LoadedImage, Synthesis
from occgui.texture.completion import push_pull
from occgui.texture.rasterize import rasterize
from occgui.texture.uv_sampler import FILLED, MIRRORED, OBSERVED, OUTSIDE, SYNTHESIZED, UVTextureBuilder, uv_raster

GREEN = (0, 255, 0)
CTX = SimpleNamespace(device="cpu", crop_size=256, texture_size=1024)


def _green(img: np.ndarray) -> np.ndarray:
    c = img.astype(np.int32)
    return (c[..., 1] - np.maximum(c[..., 0], c[..., 2])) > 80


@pytest.fixture(scope="module")
def scene():
    """The astronaut with two green discs painted on (cheek, nose tip), through the real stages.

    M_alpha: skin everywhere, occluder on the discs; I_out: the clean photo's crop (a perfect
    de-occlusion), ``filled`` = the discs.
    """
    from skimage.data import astronaut

    from occgui.detection.crop import warp_to_crop
    from occgui.detection.mediapipe_detector import MediaPipeFaceDetector
    from occgui.geometry.mesh_builder import MediaPipeMeshGeometry
    from occgui.imageio import load_image
    from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks
    from occgui.pipeline import stages as S

    clean = astronaut()
    det, lmk = MediaPipeFaceDetector(), MediaPipeMeshLandmarks()
    ref_img = load_image(clean)
    ref_crop = S.detect(det, ref_img, face_index=0, crop_size=256)
    ref_pts = ref_crop.crop_to_working(S.detect_landmarks(lmk, ref_crop).points)
    eye = np.linalg.norm(ref_pts[36] - ref_pts[45])
    cheek = 0.5 * (ref_pts[2] + ref_pts[31])                      # image-left cheek
    nose = ref_pts[33]                                             # below the nose tip, on the mid-line
    disc = np.zeros(clean.shape[:2], np.uint8)
    cv2.circle(disc, tuple(int(v) for v in np.rint(cheek)), int(0.28 * eye), 255, -1)
    cv2.circle(disc, tuple(int(v) for v in np.rint(nose)), int(0.12 * eye), 255, -1)
    occluded = clean.copy()
    occluded[disc > 0] = GREEN
    image = load_image(occluded)
    crop = S.detect(det, image, face_index=0, crop_size=256)
    lm = S.detect_landmarks(lmk, crop)
    disc_crop = warp_to_crop(disc, crop.to_crop, 256) > 0
    alpha = np.full((256, 256), labels.SKIN, np.uint8)
    alpha[disc_crop] = labels.OCCLUDER
    synthesis = Synthesis(image=warp_to_crop(clean, crop.to_crop, 256), filled=disc_crop, backend="test")
    mesh = MediaPipeMeshGeometry().build(image, crop, lm)
    texture = UVTextureBuilder(CTX).build(image, crop, alpha, synthesis, mesh)
    return SimpleNamespace(image=image, crop=crop, alpha=alpha, synthesis=synthesis, mesh=mesh, texture=texture,
                           disc_crop=disc_crop)


def test_texture_shape_and_classes(scene):
    tex, mesh = scene.texture, scene.mesh
    assert tex.image.shape == (1024, 1024, 3) and tex.image.dtype == np.uint8
    assert tex.source.shape == (1024, 1024) and tex.source.dtype == np.uint8
    inside = uv_raster(mesh.uv, mesh.faces, 1024).inside
    assert (tex.source[inside] >= OBSERVED).all() and (tex.source[inside] <= FILLED).all()
    assert (tex.source[~inside] == OUTSIDE).all()
    frac = np.bincount(tex.source[inside], minlength=5) / inside.sum()
    assert frac[OBSERVED] > 0.6
    assert frac[MIRRORED] > 0.01                                    # the cheek disc, from the other cheek
    assert frac[SYNTHESIZED] > 0.001                                # the mid-line disc: both sides hidden
    mirrored = tex.source == MIRRORED
    assert (tex.source[:, ::-1][mirrored] == OBSERVED).all()


def test_texture_has_no_holes(scene):
    tex, mesh = scene.texture, scene.mesh
    inside = uv_raster(mesh.uv, mesh.faces, 1024).inside
    assert (tex.image[inside].astype(int).sum(axis=1) > 0).all()
    band = (cv2.dilate(inside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0) & ~inside
    assert tex.image[band].astype(int).sum(axis=1).min() > 0        # colours extended beyond the chart


def test_texture_has_no_occluder_colour(scene):
    assert _green(scene.texture.image).sum() == 0


def test_the_occluder_would_show_without_the_parsing(scene):
    """Guards the previous test: the discs do reach the texture when nobody declares them."""
    s = scene
    naive = UVTextureBuilder(CTX).build(s.image, s.crop, np.full((256, 256), labels.SKIN, np.uint8),
                                        Synthesis(image=s.crop.image, filled=np.zeros((256, 256), bool), backend="t"),
                                        s.mesh)
    assert _green(naive.image).sum() > 2000


def test_texture_is_upright_and_not_mirrored(scene):
    """Pupils are dark, the cheeks are light; the image-left eye lies at u < 0.5 (layout convention)."""
    from occgui.geometry.uv_layout import load_uv_layout

    luv = load_uv_layout().landmark_uv
    tex = scene.texture.image.astype(float).mean(axis=2)

    def at(uv):
        col, row = int(uv[0] * 1024), int((1 - uv[1]) * 1024)
        return tex[row - 3:row + 4, col - 3:col + 4].mean()

    pupil = np.mean([at(luv[[37, 38, 40, 41]].mean(axis=0)), at(luv[[43, 44, 46, 47]].mean(axis=0))])
    cheek = at(0.5 * (luv[14] + luv[35]))                            # the unoccluded image-right cheek
    assert pupil < cheek - 40
    assert luv[36:42, 0].mean() < 0.5 < luv[42:48, 0].mean()


def test_uv_raster_barycentrics_reproduce_texel_centres(scene):
    mesh = scene.mesh
    r = uv_raster(mesh.uv, mesh.faces, 1024)
    uv = np.asarray(r.interp @ mesh.uv)
    centres = np.column_stack([(r.cols + 0.5) / 1024, 1 - (r.rows + 0.5) / 1024])
    assert np.abs(uv - centres).max() < 1e-4


# -- building blocks ------------------------------------------------------------------------------
def test_rasterize_keeps_the_nearest_triangle():
    xy = np.array([[2, 2], [30, 2], [2, 30], [10, 10], [40, 10], [10, 40]], float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    r = rasterize(xy, np.array([0, 0, 0, 5, 5, 5.0]), faces, 48, 48)
    assert r.triangle[15, 15] == 1 and r.depth[15, 15] == pytest.approx(5.0)
    assert r.triangle[4, 4] == 0 and r.triangle[45, 45] == -1
    far = rasterize(xy, np.array([9, 9, 9, 5, 5, 5.0]), faces, 48, 48)
    assert far.triangle[15, 15] == 0
    union = 0.5 * 28 * 28 + 0.5 * 30 * 30 - 0.5 * 12 * 12          # areas minus the overlap
    covered = int((r.triangle >= 0).sum())
    assert union <= covered < union + 110                           # pixel centres on the edges count too


def test_push_pull_keeps_known_values_and_fills_smoothly():
    rng = np.random.default_rng(0)
    values = rng.uniform(50, 200, (64, 64, 3)).astype(np.float32)
    known = np.ones((64, 64), np.float32)
    known[20:40, 10:50] = 0
    out = push_pull(values, known)
    assert np.array_equal(out[known > 0], values[known > 0])
    hole = out[known == 0]
    assert hole.min() >= 50 - 1e-3 and hole.max() <= 200 + 1e-3
    assert hole.std() < values.std()                                # smooth, not noise


def _two_layer_scene():
    """A back square (z = 0) half hidden by a front square (z = 20 mm), seen from the front."""
    size = 256
    img = np.zeros((size, size, 3), np.uint8)
    img[:, :] = (200, 50, 50)
    img[64:192, 128:192] = (50, 50, 200)                            # the front square's pixels
    image = LoadedImage(rgb=img, scale=1.0, photo_size=(size, size), source="<array>", digest="x")
    det = FaceDetection(box=(0, 0, size, size), keypoints=np.zeros((6, 2)), score=1.0)
    crop = FaceCrop(image=img, to_crop=np.array([[1.0, 0, 0], [0, 1.0, 0]]), detection=det, face_index=0, num_faces=1)
    cam = Camera(k=1.0, u0=128.0, v0=128.0)
    # back: X, Y in [-64, 64]; front: X in [0, 64], Y in [-64, 64]; photo u = 128 + X, v = 128 - Y
    v = np.array([[-64, -64, 0], [64, -64, 0], [64, 64, 0], [-64, 64, 0],
                  [0, -64, 20], [64, -64, 20], [64, 64, 20], [0, 64, 20]], float)
    uv = np.array([[0.05, 0.05], [0.45, 0.05], [0.45, 0.95], [0.05, 0.95],
                   [0.55, 0.25], [0.95, 0.25], [0.95, 0.75], [0.55, 0.75]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    return image, crop, FaceMesh(vertices=v, faces=faces, uv=uv, camera=cam)


def test_self_occluded_texels_are_not_observed():
    image, crop, mesh = _two_layer_scene()
    alpha = np.full((256, 256), labels.SKIN, np.uint8)
    syn = Synthesis(image=crop.image, filled=np.zeros((256, 256), bool), backend="t")
    tex = UVTextureBuilder(SimpleNamespace(texture_size=256)).build(image, crop, alpha, syn, mesh)
    src = tex.source
    # back square: u in [0.05, 0.45] covers X in [-64, 64]; its right half (X > 0) is hidden
    row = 128
    hidden = src[row, int(0.36 * 256):int(0.44 * 256)]
    seen = src[row, int(0.07 * 256):int(0.2 * 256)]
    assert (seen == OBSERVED).all()
    assert not (hidden == OBSERVED).any()
    # the front square is observed, and blue
    front = (slice(int(0.3 * 256), int(0.7 * 256)), slice(int(0.6 * 256), int(0.9 * 256)))
    assert (src[front] == OBSERVED).all()
    assert tex.image[front][..., 2].mean() > 150
