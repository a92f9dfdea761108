"""Build ``resources/geometry/face_uv_layout.npz``, the project's UV layout of the face mesh.

    python tools/build_uv_layout.py [--margin 0.03] [--out resources/geometry/face_uv_layout.npz]

Method (documented in :mod:`occgui.geometry.uv_layout`):

1. Reference geometry: MediaPipe's 478-point mesh of ``skimage.data.astronaut()`` (public domain)
   and of the same photo mirrored left/right, both through the project's own stages (load,
   detect + aligned crop, MediaPipe landmarks), expressed in working-image pixels in a
   right-handed frame (x right, y up, z towards the viewer).
2. Mirror permutation: the mirrored photo's mesh, mirrored back, puts vertex j where the subject's
   mirror vertex is; a Hungarian assignment (``scipy.optimize.linear_sum_assignment``) of its 468
   vertices to the original ones gives the permutation, which must be an involution mapping the
   package's edge graph onto itself, up to quads whose diagonal is chosen asymmetrically (checked).
3. Frontalisation and symmetry: both observations are averaged, the symmetry plane is fitted
   (normal = principal direction of the vectors joining mirror pairs), the mesh is rotated so that
   the plane is x = 0, and the mesh is averaged with its mirror image (exactly symmetric).
4. Parametrisation: least-squares conformal map (LSCM) of the derived tessellation (eye and
   mouth holes free) with the top-of-forehead and chin mid-line vertices pinned on a vertical
   line, then made exactly mirror-symmetric and scaled into ``[margin, 1 - margin]``.
5. Checks: the holes are filled by ear clipping in UV, the filled disk must have no flipped or
   degenerate UV triangles; the 68 iBUG landmarks are located on the reference surface (closest
   point, barycentric UV) and symmetrised.

The distortion statistics are printed and stored in the table's ``meta``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from occgui import mediapipe_models as mpm  # noqa: E402
from occgui.detection.mediapipe_detector import MediaPipeFaceDetector  # noqa: E402
from occgui.geometry import topology as T  # noqa: E402
from occgui.geometry.uv_layout import fit_to_unit_square, lscm, mirror_edge_defects, symmetrize_uv  # noqa: E402
from occgui.imageio import load_image  # noqa: E402
from occgui.landmarks import ibug68  # noqa: E402
from occgui.landmarks.correspondence import correspondence_matrix  # noqa: E402
from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks  # noqa: E402
from occgui.pipeline import stages as S  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def mesh_in_working_frame(rgb: np.ndarray) -> np.ndarray:
    """(478,3) MediaPipe mesh of the largest face, in working pixels, x right, y up, z to the viewer."""
    img = load_image(rgb)
    crop = S.detect(MediaPipeFaceDetector(), img, face_index=0, crop_size=256)
    lm = S.detect_landmarks(MediaPipeMeshLandmarks(), crop)
    xy = crop.crop_to_working(lm.mesh[:, :2])
    z = lm.mesh[:, 2] / crop.crop_scale
    return np.stack([xy[:, 0], -xy[:, 1], -z], axis=1)


def mirror_permutation(mesh: np.ndarray, mirrored_back: np.ndarray) -> np.ndarray:
    """``perm[j]`` = the vertex of ``mesh`` where ``mirrored_back[j]`` lies (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment

    a, b = mirrored_back[:T.NUM_MESH_VERTICES], mesh[:T.NUM_MESH_VERTICES]
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(a), dtype=np.int64)
    perm[rows] = cols
    return perm


def frontal_frame(x: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, 3x3 rotation rows) making the fitted symmetry plane x = 0, y up, z to the viewer."""
    d = x - x[perm]
    _, _, vt = np.linalg.svd(d, full_matrices=False)
    ex = vt[0] if vt[0][0] > 0 else -vt[0]
    ey = np.array([0.0, 1.0, 0.0]) - ex[1] * ex
    ey /= np.linalg.norm(ey)
    ez = np.cross(ex, ey)
    centre = 0.5 * (x + x[perm]).mean(axis=0)
    return centre, np.stack([ex, ey, ez])


def distortion_stats(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray) -> dict:
    """Per-triangle area scale (uv area / 3D area, normalised by its median) and angle error."""
    p = vertices[faces]
    a3 = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    a2 = T.signed_areas(faces, uv)
    ratio = a2 / np.maximum(a3, 1e-12)
    ratio /= np.median(ratio)

    def angles(q):
        out = []
        for i in range(3):
            u, v = q[:, (i + 1) % 3] - q[:, i], q[:, (i + 2) % 3] - q[:, i]
            c = (u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-18)
            out.append(np.degrees(np.arccos(np.clip(c, -1, 1))))
        return np.stack(out, 1)

    ang = np.abs(angles(p) - angles(uv[faces]))
    return {"area_scale_p05": round(float(np.percentile(ratio, 5)), 3),
            "area_scale_p95": round(float(np.percentile(ratio, 95)), 3),
            "angle_error_mean_deg": round(float(ang.mean()), 2),
            "angle_error_p95_deg": round(float(np.percentile(ang, 95)), 2),
            "chart_area_fraction": round(float(a2.sum()), 3)}


def landmark_uv(reference478: np.ndarray, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """UV of the 68 iBUG points: the closest point of the reference surface, barycentric UV."""
    import trimesh

    pts = correspondence_matrix() @ reference478
    tris = vertices[faces]
    nf, npt = len(faces), len(pts)
    cand = trimesh.triangles.closest_point(np.repeat(tris[None], npt, 0).reshape(-1, 3, 3),
                                           np.repeat(pts, nf, axis=0)).reshape(npt, nf, 3)
    tri = np.argmin(np.linalg.norm(cand - pts[:, None, :], axis=2), axis=1)
    closest = cand[np.arange(npt), tri]
    bary = trimesh.triangles.points_to_barycentric(tris[tri], closest)
    luv = (bary[:, :, None] * uv[faces[tri]]).sum(axis=1)
    m = ibug68.MIRROR
    return 0.5 * (luv + np.stack([1.0 - luv[m, 0], luv[m, 1]], axis=1))


def build(margin: float) -> tuple[dict, dict]:
    from skimage.data import astronaut

    rgb = astronaut()
    x = mesh_in_working_frame(rgb)
    w = rgb.shape[1]
    xm = mesh_in_working_frame(np.ascontiguousarray(rgb[:, ::-1]))
    xm[:, 0] = w - xm[:, 0]                       # mirrored back: same photo frame, mirror-image face
    perm = mirror_permutation(x, xm)
    edges = mpm.tessellation_edges()
    try:
        defects = mirror_edge_defects(edges, perm)
    except ValueError as e:
        raise SystemExit(f"the Hungarian mirror matching is wrong: {e}") from None
    xa = 0.5 * (x[:T.NUM_MESH_VERTICES] + xm[:T.NUM_MESH_VERTICES][perm])
    centre, rot = frontal_frame(xa, perm)
    xf = (xa - centre) @ rot.T
    ref = 0.5 * (xf + xf[perm] * np.array([-1.0, 1.0, 1.0]))
    ref478 = (x - centre) @ rot.T

    tess = T.tessellation_triangles()
    n = np.cross(ref[tess[:, 1]] - ref[tess[:, 0]], ref[tess[:, 2]] - ref[tess[:, 0]])
    if n[:, 2].sum() < 0:
        tess = tess[:, [0, 2, 1]]
    midline = np.flatnonzero(perm == np.arange(len(perm)))
    top, bottom = midline[np.argmax(ref[midline, 1])], midline[np.argmin(ref[midline, 1])]
    uv = lscm(ref, tess, np.array([top, bottom]), np.array([[0.0, 1.0], [0.0, -1.0]]))
    if T.signed_areas(tess, uv).sum() < 0:
        raise SystemExit("LSCM reversed the orientation")
    uv = fit_to_unit_square(symmetrize_uv(uv, perm), margin)
    uv = symmetrize_uv(uv, perm)
    faces, outer, holes = T.fill_holes(tess, uv)
    areas = T.signed_areas(faces, uv)
    if (areas <= 0).any():
        raise SystemExit(f"{int((areas <= 0).sum())} flipped/degenerate UV triangles")
    facts = T.check_manifold_disk(faces, T.NUM_MESH_VERTICES)
    luv = landmark_uv(ref478, ref, faces, uv)
    import mediapipe

    stats = distortion_stats(ref, faces[:len(tess)], uv)
    meta = {"method": "LSCM of the frontalised, symmetrised MediaPipe mesh of skimage.data.astronaut() "
                      "(and its mirror image); pins: forehead top and chin on the mid-line",
            "mediapipe_version": mediapipe.__version__, "margin": margin, "pins": [int(top), int(bottom)],
            "midline_vertices": int(len(midline)),
            "asymmetric_quad_diagonals": [list(map(int, d)) for d in defects], "topology": facts,
            "holes": [int(len(h)) for h in holes],
            "distortion": stats, "min_uv_triangle_area": float(areas.min())}
    return {"uv": uv, "mirror": perm, "landmark_uv": luv}, meta


def write_npz_atomic(path: Path, arrays: dict, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--margin", type=float, default=0.03, help="empty border of the chart (fraction of the side)")
    ap.add_argument("--out", type=Path, default=REPO / "resources" / "geometry" / "face_uv_layout.npz")
    args = ap.parse_args(argv)
    arrays, meta = build(args.margin)
    write_npz_atomic(args.out, arrays, meta)
    print(json.dumps(meta, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
