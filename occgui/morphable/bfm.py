"""The Basel Face Model in the layout of Deep3DFaceRecon's ``BFM_model_front.mat`` (the BFM 2009
front face, 35,709 vertices, with the expression basis of Guo et al.; the file users build from
their own BFM licence with Deep3DFaceRecon's ``transferBFM09``).

Fields read (MATLAB v5 ``.mat``, read by ``scipy.io.loadmat``; no code is executed):

=================  ============  ===================================================================
 key                shape         meaning
=================  ============  ===================================================================
 ``meanshape``      (1, 3N)       mean shape, x y z interleaved per vertex
 ``idBase``         (3N, K_id)    identity basis, principal directions x standard deviations
 ``exBase``         (3N, K_exp)   expression basis, likewise
 ``meantex``        (1, 3N)       mean albedo, r g b per vertex, 0-255
 ``texBase``        (3N, K_tex)   albedo basis, 0-255 units
 ``tri``            (F, 3)        triangles, 1-based vertex ids
 ``keypoints``      (68,)         the 68 landmark vertices, 1-based
 ``point_buf``      (N, 8)        triangles around each vertex (1-based; optional, checked only)
 ``frontmask2_idx`` (M,)          the small face region of the photometric loss (optional, 1-based)
=================  ============  ===================================================================

The shape unit of that file is 0.1 m (BFM's micrometres / 1e5; Deep3DFaceRecon places its camera at
10 units = 1 m): ``scale_to_mm`` = 100 converts it. The mean shape is re-centred as Deep3DFaceRecon
does. Without ``frontmask2_idx`` the face region comes from the landmarks
(:mod:`occgui.morphable.regions`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import NUM_LANDMARKS, MorphableModel, MorphableModelError, orient_front
from .regions import vertex_regions

#: Vertices of Deep3DFaceRecon's BFM front model.
BFM_FRONT_VERTICES = 35709
#: Millimetres per unit of ``BFM_model_front.mat``.
BFM_FRONT_MM = 100.0
#: Plausible width of a face (mm), to catch a wrong unit.
FACE_WIDTH_MM = (60.0, 400.0)


def _array(data: dict, key: str, path: Path, required: bool = True) -> np.ndarray | None:
    if key not in data:
        if required:
            raise MorphableModelError(f"{path.name}: not a BFM_model_front.mat (no '{key}')")
        return None
    a = np.asarray(data[key])
    if not np.issubdtype(a.dtype, np.number):
        raise MorphableModelError(f"{path.name}: '{key}' is not numeric ({a.dtype})")
    if not np.isfinite(a).all():
        raise MorphableModelError(f"{path.name}: '{key}' has non-finite values")
    return a


def _basis(a: np.ndarray, n: int, key: str, path: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    if a.ndim != 2 or a.shape[0] != 3 * n:
        raise MorphableModelError(f"{path.name}: '{key}' must be ({3 * n}, K), got {a.shape}")
    basis = (a.T.reshape(a.shape[1], n, 3) * scale).astype(np.float32)
    return basis, np.linalg.norm(basis.reshape(len(basis), -1), axis=1).astype(np.float32)


def _ids(a: np.ndarray, n: int, key: str, path: Path) -> np.ndarray:
    if not np.allclose(a, np.round(a)):
        raise MorphableModelError(f"{path.name}: '{key}' must hold integer vertex ids")
    ids = np.round(a).astype(np.int64) - 1
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise MorphableModelError(f"{path.name}: '{key}' has vertex ids outside 1..{n}")
    return ids


def load_bfm_mat(path, scale_to_mm: float = BFM_FRONT_MM, expected_vertices: int | None = None) -> MorphableModel:
    """A :class:`MorphableModel` from a ``BFM_model_front.mat`` (see the module docstring).
    ``expected_vertices``: require this vertex count (35,709 for the real file)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise MorphableModelError(f"BFM file not found: {path}")
    try:
        data = loadmat(str(path))
    except (MatReadError, ValueError, OSError, TypeError, NotImplementedError, IndexError, KeyError,
            EOFError, OverflowError, MemoryError) as e:
        # scipy's parser lets several plain exceptions out of a corrupt header (found by fuzzing:
        # an IndexError on a 20-byte file); none of them is a reason to show a traceback
        why = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        raise MorphableModelError(f"{path.name}: not a readable MATLAB v5 .mat ({why})") from None
    mean = _array(data, "meanshape", path).reshape(-1)
    if mean.size % 3 or mean.size < 9:
        raise MorphableModelError(f"{path.name}: 'meanshape' has {mean.size} values, not 3 per vertex")
    n = mean.size // 3
    if expected_vertices is not None and n != expected_vertices:
        raise MorphableModelError(f"{path.name}: {n} vertices, BFM front has {expected_vertices}")
    mean = mean.reshape(n, 3) * scale_to_mm
    mean = mean - mean.mean(0)
    width = float(np.ptp(mean[:, 0]))
    if not FACE_WIDTH_MM[0] <= width <= FACE_WIDTH_MM[1]:
        raise MorphableModelError(f"{path.name}: the face is {width:.1f} mm wide with scale_to_mm={scale_to_mm}; "
                                  f"wrong unit?")
    id_basis, id_std = _basis(_array(data, "idBase", path), n, "idBase", path, scale_to_mm)
    exp_basis, exp_std = _basis(_array(data, "exBase", path), n, "exBase", path, scale_to_mm)
    tri = _array(data, "tri", path)
    if tri.ndim != 2 or tri.shape[1] != 3 or len(tri) == 0:
        raise MorphableModelError(f"{path.name}: 'tri' must be (F, 3), got {tri.shape}")
    tri = _ids(tri, n, "tri", path)
    keypoints = _ids(_array(data, "keypoints", path).reshape(-1), n, "keypoints", path)
    if keypoints.shape != (NUM_LANDMARKS,):
        raise MorphableModelError(f"{path.name}: 'keypoints' must list {NUM_LANDMARKS} vertices, got {keypoints.size}")
    pbuf = _array(data, "point_buf", path, required=False)
    if pbuf is not None and (pbuf.ndim != 2 or pbuf.shape[0] != n or pbuf.min() < 0 or pbuf.max() > len(tri) + 1):
        raise MorphableModelError(f"{path.name}: 'point_buf' must be ({n}, k) with triangle ids in 1..{len(tri) + 1}")
    albedo_mean = albedo_basis = albedo_std = None
    meantex = _array(data, "meantex", path, required=False)
    if meantex is not None:
        if meantex.size != 3 * n:
            raise MorphableModelError(f"{path.name}: 'meantex' must have {3 * n} values, got {meantex.size}")
        albedo_mean = (meantex.reshape(n, 3) / 255.0).astype(np.float32)
        tex = _array(data, "texBase", path, required=False)
        if tex is not None:
            albedo_basis, albedo_std = _basis(tex, n, "texBase", path, 1.0 / 255.0)
    tri = orient_front(mean, tri, keypoints)
    labels, face = vertex_regions(mean, keypoints)
    front = _array(data, "frontmask2_idx", path, required=False)
    if front is not None:
        face = np.zeros(n, bool)
        face[_ids(front.reshape(-1), n, "frontmask2_idx", path)] = True
    model = MorphableModel(
        name="bfm-front", mean_shape=mean.astype(np.float32), id_basis=id_basis, id_std=id_std,
        exp_basis=exp_basis, exp_std=exp_std, triangles=tri, landmarks=keypoints, face_mask=face,
        uv=None, vertex_labels=labels, albedo_mean=albedo_mean, albedo_basis=albedo_basis, albedo_std=albedo_std,
        source=f"BFM (Deep3DFaceRecon BFM_model_front.mat layout): {path}",
        licence="Basel Face Model: the user's own licence (University of Basel); not redistributable")
    return model.validate()
