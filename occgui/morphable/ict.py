"""ICT-FaceKit (light ICT Face Model, MIT licence) as a :class:`MorphableModel`.

The folder ``FaceXModel/`` of https://github.com/ICT-VGL/ICT-FaceKit holds
``generic_neutral_mesh.obj``, ``identity000..099.obj`` (the neutral plus one principal component
each, scaled by its standard deviation: their displacements are mutually orthogonal), the 53
expression blendshapes named in ``vertex_indices.json`` and the quad topology with UVs, in
centimetres. The 68 Multi-PIE landmark vertex ids are listed in its README ("Facial Landmarks").

:func:`load_ict_folder` keeps one of the README's face areas (``narrow``: vertices 0-6705, the
face proper; ``full``: 0-9408, with ears and neck), converts to millimetres, splits the quads into
triangles, re-derives the identity components on the kept vertices by an (uncentred) PCA of the
identity displacements (so their standard deviations are those of the cropped face under
N(0, 1) ICT identity weights), keeps the expressions as blendshape displacements, and adds the
region albedo model of :mod:`occgui.morphable.regions` (ICT has no albedo).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .model import MorphableModel, MorphableModelError, orient_front
from .regions import region_albedo_model, vertex_regions

#: ICT's Multi-PIE 68 landmark vertex ids (README, "Facial Landmarks", 0-indexed).
ICT_LANDMARKS_68 = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443, 268,
    493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360,
    1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200,
    6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966)
#: Face areas of the README ("Face Area Details"): number of leading vertices kept.
FACE_AREAS = {"narrow": 6706, "full": 9409}
ICT_NUM_VERTICES = 26719
NUM_IDENTITY_FILES = 100
CM_TO_MM = 10.0
LICENCE = "MIT (Copyright (c) 2020 USC Institute for Creative Technologies): ICT-FaceKit"


def _read_obj_vertices(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MorphableModelError(f"cannot read {path} ({e.strerror or e})") from None
    lines = [line[2:] for line in data.split(b"\n") if line.startswith(b"v ")]
    try:
        v = np.array(b" ".join(lines).split(), dtype=np.float64)
    except ValueError:
        raise MorphableModelError(f"{path.name}: malformed vertex lines") from None
    if v.size % 3 or v.size == 0:
        raise MorphableModelError(f"{path.name}: vertex lines must have 3 coordinates")
    v = v.reshape(-1, 3)
    if len(v) != ICT_NUM_VERTICES:
        raise MorphableModelError(f"{path.name}: {len(v)} vertices, the ICT model has {ICT_NUM_VERTICES}")
    if not np.isfinite(v).all():
        raise MorphableModelError(f"{path.name}: non-finite vertex coordinates")
    return v


def _read_obj_topology(path: Path) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
    """Polygons (vertex ids), their UV ids, and the UV table of an OBJ."""
    polys, uv_ids, uvs = [], [], []
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise MorphableModelError(f"cannot read {path} ({e.strerror or e})") from None
    for line in text.splitlines():
        if line.startswith("vt "):
            uvs.append(line.split()[1:3])
        elif line.startswith("f "):
            corners = [c.split("/") for c in line.split()[1:]]
            try:
                polys.append([int(c[0]) - 1 for c in corners])
                uv_ids.append([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners])
            except ValueError:
                raise MorphableModelError(f"{path.name}: malformed face line {line[:40]!r}") from None
    try:
        uv = np.array(uvs, dtype=np.float64).reshape(-1, 2)
    except ValueError:
        raise MorphableModelError(f"{path.name}: malformed texture coordinates") from None
    return polys, uv_ids, uv


def _triangulate(polys, uv_ids, keep: int, uv_table: np.ndarray):
    """Triangles of the polygons whose vertices are all < ``keep`` (fan split) and per-vertex UVs
    (the first UV a vertex is seen with; ``seams``: vertices seen with several)."""
    tris = []
    uv = np.full((keep, 2), np.nan)
    seen: dict[int, int] = {}
    seams = 0
    for poly, uvi in zip(polys, uv_ids):
        if max(poly) >= keep:
            continue
        if min(poly) < 0 or len(poly) < 3:
            raise MorphableModelError("the ICT topology has an invalid polygon")
        for k in range(1, len(poly) - 1):
            tris.append((poly[0], poly[k], poly[k + 1]))
        for v, t in zip(poly, uvi):
            if t < 0 or t >= len(uv_table):
                continue
            if v not in seen:
                seen[v] = t
                uv[v] = uv_table[t]
            elif seen[v] != t and not np.allclose(uv_table[seen[v]], uv_table[t]):
                seams += 1
    return np.array(tris, np.int64), uv, seams


def load_ict_folder(folder, area: str = "narrow", num_identity: int | None = None,
                    expressions: tuple[str, ...] | None = None) -> MorphableModel:
    """The ICT face model of a ``FaceXModel`` folder (or its parent) cropped to ``area``.

    ``num_identity``: leading identity components kept (default all 100); ``expressions``: the
    blendshapes kept (default: the 53 of ``vertex_indices.json``)."""
    folder = Path(folder)
    if (folder / "FaceXModel").is_dir():
        folder = folder / "FaceXModel"
    if area not in FACE_AREAS:
        raise MorphableModelError(f"unknown ICT face area {area!r}; choose from {sorted(FACE_AREAS)}")
    neutral_path = folder / "generic_neutral_mesh.obj"
    if not neutral_path.is_file():
        raise MorphableModelError(f"not an ICT-FaceKit folder (no generic_neutral_mesh.obj): {folder}")
    keep = FACE_AREAS[area]
    neutral = _read_obj_vertices(neutral_path)
    polys, uv_ids, uv_table = _read_obj_topology(neutral_path)
    tris, uv, seams = _triangulate(polys, uv_ids, keep, uv_table)
    if len(tris) == 0:
        raise MorphableModelError(f"{neutral_path.name}: no polygon inside the {area} face area")

    names = expressions
    if names is None:
        try:
            names = tuple(json.loads((folder / "vertex_indices.json").read_text())["expressions"])
        except (OSError, ValueError, KeyError, TypeError):
            raise MorphableModelError(f"{folder}: vertex_indices.json is missing or lacks 'expressions'") from None

    ids = []
    for i in range(NUM_IDENTITY_FILES):
        p = folder / f"identity{i:03d}.obj"
        if not p.is_file():
            break
        ids.append(_read_obj_vertices(p)[:keep] - neutral[:keep])
    if not ids:
        raise MorphableModelError(f"{folder}: no identity000.obj")
    d = np.stack(ids).reshape(len(ids), -1) * CM_TO_MM
    # uncentred PCA: ICT's identity weights are N(0, 1), so the shape covariance is D^T D
    _u, s, vt = np.linalg.svd(d, full_matrices=False)
    k = len(s) if num_identity is None else min(int(num_identity), len(s))
    id_basis = (vt[:k] * s[:k, None]).reshape(k, keep, 3)

    exp = []
    for name in names:
        p = folder / f"{name}.obj"
        if not p.is_file():
            raise MorphableModelError(f"{folder}: expression {name}.obj is missing")
        exp.append((_read_obj_vertices(p)[:keep] - neutral[:keep]) * CM_TO_MM)
    exp_basis = np.stack(exp) if exp else np.zeros((0, keep, 3))

    mean = neutral[:keep] * CM_TO_MM
    landmarks = np.array(ICT_LANDMARKS_68, np.int64)
    if landmarks.max() >= keep:
        raise MorphableModelError(f"the {area} face area does not contain the 68 landmark vertices")
    tris = orient_front(mean, tris, landmarks)
    used = np.zeros(keep, bool)
    used[tris.ravel()] = True
    if np.isnan(uv[used]).any():
        raise MorphableModelError(f"{neutral_path.name}: vertices without texture coordinates")
    uv = np.nan_to_num(uv, nan=0.0)
    labels, face = vertex_regions(mean, landmarks)
    alb_mean, alb_basis, alb_std = region_albedo_model(labels)
    model = MorphableModel(
        name=f"ict-facekit-{area}", mean_shape=mean.astype(np.float32), id_basis=id_basis.astype(np.float32),
        id_std=s[:k].astype(np.float32), exp_basis=exp_basis.astype(np.float32),
        exp_std=np.linalg.norm(exp_basis.reshape(len(exp_basis), -1), axis=1).astype(np.float32),
        triangles=tris, landmarks=landmarks, face_mask=face, uv=uv.astype(np.float32), vertex_labels=labels,
        albedo_mean=alb_mean, albedo_basis=alb_basis, albedo_std=alb_std, expression_names=tuple(names),
        source=f"ICT-FaceKit FaceXModel ({folder})", licence=LICENCE,
        notes={"area": area, "uv_seam_corners": seams, "identity_files": len(ids),
               "identity_variance_kept": float((s[:k] ** 2).sum() / (s ** 2).sum()),
               "albedo": "region albedo model (hand-set means, occgui.morphable.regions)"})
    return model.validate()
