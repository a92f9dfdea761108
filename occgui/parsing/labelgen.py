"""Annotation-free parsing labels of a clean face crop, the training targets of N_alpha (paper §3.2).

The paper trains N_alpha on the hand-annotated CelebAMask-HQ; this project derives its labels
instead from the MediaPipe 478-point face mesh fitted to the aligned crop:

* face regions: polygons of the mesh's contour sets (``mediapipe_models.connection_sets``):
  the face oval gives the skin, the eye / eyebrow / lip contours the features, the convex hull
  of the nose set the nose. Drawing order: skin, nose, brows, eyes, lips, inner mouth.
* hair and background: MediaPipe selfie segmentation gives the person; person pixels outside
  the face oval whose colour is not skin-like (Mahalanobis distance to a skin colour model
  fitted on the cheeks) and that are connected to the top of the head are hair, if they lie
  above the chin. Inside the oval, above the eyebrows, pixels that match the hair colour better
  than the skin colour and touch the hair outside (a fringe) are hair too. Everything else
  (neck, ears, clothes, scenery) is background, as in ``occgui.labels``.

The occluder class is never produced here: occluders are pasted synthetically afterwards
(``occgui.training.occlusion.occluders``) and their paste masks become the occluder class.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .. import labels as L
from ..errors import NoFaceError

#: Mahalanobis distance (Lab) below which a colour counts as skin-like.
SKIN_DISTANCE = 3.5


# ----------------------------------------------------------------------------- mesh contours
def _components(edges: np.ndarray) -> list[list[int]]:
    """Order each connected component of an edge set as a vertex walk (cycle or open path)."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(int(a), []).append(int(b))
        adj.setdefault(int(b), []).append(int(a))
    seen: set[int] = set()
    walks = []
    # start open paths at their ends (degree 1), then the remaining cycles anywhere
    starts = sorted(adj, key=lambda v: (len(adj[v]) != 1, v))
    for s in starts:
        if s in seen:
            continue
        walk, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [n for n in adj[cur] if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            walk.append(cur)
            seen.add(cur)
        walks.append(walk)
    return walks


@lru_cache(maxsize=None)
def contour_walks() -> dict[str, tuple[tuple[int, ...], ...]]:
    """The mesh's contour sets as ordered vertex walks: ``{"lips": (outer?, inner?), "face_oval": (...,), ...}``."""
    from ..mediapipe_models import connection_sets

    return {name: tuple(tuple(w) for w in _components(e)) for name, e in connection_sets().items()}


def _poly_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _split_at_corners(cycle: list[int], xy: np.ndarray, axis: np.ndarray) -> tuple[list[int], list[int]]:
    """Split a closed lip contour at its two corners (extremes along the eye axis) into the
    (upper, lower) chains, each running from the image-left corner to the image-right one."""
    proj = xy[cycle] @ axis
    i0, i1 = int(np.argmin(proj)), int(np.argmax(proj))
    n = len(cycle)
    a = [cycle[(i0 + k) % n] for k in range((i1 - i0) % n + 1)]
    b = [cycle[(i0 - k) % n] for k in range((i0 - i1) % n + 1)]
    down = np.array([-axis[1], axis[0]])  # image "down" for an upright face
    return (a, b) if xy[a].mean(axis=0) @ down < xy[b].mean(axis=0) @ down else (b, a)


def feature_polygons(mesh: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Polygons (float ``(K,2)`` arrays, crop pixels) of the face regions of one mesh.

    Keys: ``face``, ``nose``, ``l_brow``, ``r_brow``, ``l_eye``, ``r_eye``, ``u_lip``, ``l_lip``,
    ``mouth``; left/right are the subject's (``occgui.labels``), decided from image positions.
    """
    xy = np.asarray(mesh, dtype=np.float64)[:, :2]
    walks = contour_walks()
    polys: dict[str, list[np.ndarray]] = {"face": [xy[list(walks["face_oval"][0])]]}
    nose_ids = sorted({v for w in walks["nose"] for v in w})
    hull = cv2.convexHull(xy[nose_ids].astype(np.float32)).reshape(-1, 2)
    polys["nose"] = [hull.astype(np.float64)]
    eyes = [xy[list(walks[k][0])] for k in ("left_eye", "right_eye")]
    eyes.sort(key=lambda p: p[:, 0].mean())           # image-left eye first = subject's right
    polys["r_eye"], polys["l_eye"] = [eyes[0]], [eyes[1]]
    axis = eyes[1].mean(axis=0) - eyes[0].mean(axis=0)
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    mid = (eyes[0].mean(axis=0) + eyes[1].mean(axis=0)) / 2
    brows = []
    for k in ("left_eyebrow", "right_eyebrow"):
        paths = [list(w) for w in walks[k]]
        # orient both chains from the outer end (far from the midline) to the inner end
        oriented = []
        for p in paths:
            d0, d1 = abs((xy[p[0]] - mid) @ axis), abs((xy[p[-1]] - mid) @ axis)
            oriented.append(p if d0 >= d1 else p[::-1])
        ring = oriented[0] + (oriented[1][::-1] if len(oriented) > 1 else [])
        brows.append(xy[ring])
    brows.sort(key=lambda p: p[:, 0].mean())
    polys["r_brow"], polys["l_brow"] = [brows[0]], [brows[1]]
    loops = [list(w) for w in walks["lips"]]
    loops.sort(key=lambda c: -_poly_area(xy[c]))
    outer, inner = loops[0], loops[1]
    ou, ol = _split_at_corners(outer, xy, axis)
    iu, il = _split_at_corners(inner, xy, axis)
    polys["u_lip"] = [xy[ou + iu[::-1]]]
    polys["l_lip"] = [xy[ol + il[::-1]]]
    polys["mouth"] = [xy[inner]]
    return polys


def _fill(shape: tuple[int, int], polys: list[np.ndarray]) -> np.ndarray:
    """Anti-alias-free polygon fill with 1/16-pixel vertex precision."""
    m = np.zeros(shape, np.uint8)
    pts = [np.round(p * 16).astype(np.int32).reshape(-1, 1, 2) for p in polys]
    cv2.fillPoly(m, pts, 1, lineType=cv2.LINE_8, shift=4)
    return m.astype(bool)


def face_region_labels(mesh: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Label map of the mesh's face regions only (background elsewhere, no hair estimate)."""
    shape = (size, size) if np.isscalar(size) else tuple(size)
    polys = feature_polygons(mesh)
    out = np.zeros(shape, np.uint8)
    order = [("face", L.SKIN), ("nose", L.NOSE), ("l_brow", L.L_BROW), ("r_brow", L.R_BROW),
             ("l_eye", L.L_EYE), ("r_eye", L.R_EYE), ("u_lip", L.U_LIP), ("l_lip", L.L_LIP),
             ("mouth", L.MOUTH)]
    for key, lab in order:
        out[_fill(shape, polys[key])] = lab
    return out


# ----------------------------------------------------------------------------- hair / background
def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)


def _colour_model(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if len(samples) < 20:
        return None
    mu = samples.mean(axis=0)
    cov = np.cov(samples.T) + np.diag([25.0, 4.0, 4.0])  # floor: lighting/JPEG noise
    return mu, np.linalg.inv(cov)


def _mahalanobis(lab: np.ndarray, model) -> np.ndarray:
    mu, icov = model
    d = lab.reshape(-1, 3) - mu
    return np.sqrt(np.einsum("ij,jk,ik->i", d, icov, d)).reshape(lab.shape[:2])


def person_probability(crop_rgb: np.ndarray) -> np.ndarray:
    """MediaPipe selfie segmentation of the crop: per-pixel person probability in [0, 1]."""
    from .. import mediapipe_models as mpm

    return np.asarray(mpm.run(mpm.selfie_segmenter(), crop_rgb).segmentation_mask, dtype=np.float32)


def add_hair(labels: np.ndarray, crop_rgb: np.ndarray, mesh: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Return ``labels`` with the hair estimate added (see the module docstring)."""
    out = labels.copy()
    h, w = out.shape
    xy = np.asarray(mesh, dtype=np.float64)[:, :2]
    face = out != L.BACKGROUND
    lab = cv2.GaussianBlur(_lab(crop_rgb), (0, 0), 1.5)   # JPEG noise and hair texture
    yy = np.arange(h)[:, None].repeat(w, axis=1)
    eye_y = xy[[33, 263], 1].mean()
    mouth_y = xy[[13, 14], 1].mean()
    # skin model from the cheeks/nose band (below the eyes, above the mouth): never hair there
    band = (out == L.SKIN) & (yy > eye_y) & (yy < mouth_y)
    skin_model = _colour_model(lab[band])
    if skin_model is None:
        return out
    skin_d = _mahalanobis(lab, skin_model)
    chin_y = xy[152, 1]
    brow_top = xy[[105, 334, 66, 296], 1].min()
    person_m = person > 0.5
    cand = person_m & ~face & (skin_d > SKIN_DISTANCE) & (yy < chin_y)
    cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    n, comp = cv2.connectedComponents(cand.astype(np.uint8), connectivity=8)
    if n <= 1:
        return out
    # keep components reaching above the eyebrows (the top of the head)
    tops = np.unique(comp[(yy < brow_top) & cand])
    hair = np.isin(comp, tops[tops > 0])
    hair = _close_and_fill(hair, person_m & ~face & (yy < chin_y))
    if hair.sum() >= 30:
        hair_model = _colour_model(lab[hair])
        if hair_model is not None:
            # fringe over the forehead: above the brows, closer to hair than to skin colour
            hair_d = _mahalanobis(lab, hair_model)
            fringe = (out == L.SKIN) & (yy < brow_top) & (hair_d < skin_d) & (skin_d > SKIN_DISTANCE)
            fringe = cv2.morphologyEx(fringe.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
            if fringe.any():
                grown = cv2.dilate(hair.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                nf, fc = cv2.connectedComponents(fringe.astype(np.uint8), connectivity=8)
                keep = np.unique(fc[grown & fringe])
                hair |= np.isin(fc, keep[keep > 0])
    out[hair] = L.HAIR
    return out


def _close_and_fill(mask: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Close small gaps (highlights, strands) and fill enclosed holes, staying inside ``allowed``."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    inv = (m == 0).astype(np.uint8)
    n, comp = cv2.connectedComponents(inv, connectivity=4)
    border = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
    holes = (inv > 0) & ~np.isin(comp, border)
    small = np.zeros_like(holes)
    if holes.any():  # only fill holes smaller than 2% of the crop (not the face itself)
        nh, hc, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
        keep = [i for i in range(1, nh) if stats[i, cv2.CC_STAT_AREA] < 0.02 * mask.size]
        small = np.isin(hc, keep)
    return ((m > 0) | small) & allowed


def crop_mesh(crop_rgb: np.ndarray) -> np.ndarray:
    """Face mesh (478x3, crop pixels) of the face nearest the crop's centre; NoFaceError if none."""
    from ..landmarks.mediapipe_mesh import face_mesh_points

    faces = face_mesh_points(crop_rgb, max_faces=2)
    if not faces:
        raise NoFaceError("no face mesh found on the crop")
    c = np.array(crop_rgb.shape[1::-1], dtype=np.float64) / 2
    return min(faces, key=lambda m: np.linalg.norm(m[:, :2].mean(axis=0) - c))


def generate_labels(crop_rgb: np.ndarray, mesh: np.ndarray | None = None, *,
                    person: np.ndarray | None = None, hair: bool = True) -> np.ndarray:
    """Parsing labels (``HxW`` uint8 ids of ``occgui.labels``) of a clean, aligned face crop.

    ``mesh`` is its 478-point MediaPipe mesh in crop pixels (computed when omitted; raises
    :class:`~occgui.errors.NoFaceError` when none is found); ``person`` an optional precomputed
    selfie-segmentation probability map (computed when omitted and ``hair`` is true).
    """
    rgb = np.ascontiguousarray(crop_rgb[:, :, :3], dtype=np.uint8)
    if mesh is None:
        mesh = crop_mesh(rgb)
    out = face_region_labels(mesh, rgb.shape[:2])
    if hair:
        if person is None:
            person = person_probability(rgb)
        out = add_hair(out, rgb, mesh, person)
    return out
