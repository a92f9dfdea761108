"""Derive which vertex of the embedded ICT face model each MediaPipe face-mesh point lies on.

    python tools/derive_ict_mediapipe_map.py            # writes resources/morphable/ict_face_reduced_mediapipe.json

The model's mean face, coloured by its region albedo and lit by one directional light, is rendered
(`occgui.eval.render.render_mesh`, 384 px) in nine views (yaw and pitch -10 / 0 / +10 degrees);
MediaPipe's face mesh runs on each render, and the pixel under each of its 468 surface points is
traced back to the mesh (the rasteriser's triangle and barycentric coordinates) and expressed on
the mean face. A point is kept when it hit the mesh in at least 7 views with a spread (largest
distance of a view's hit from the median) of at most ``--max-spread`` mm; its vertex is the one
nearest the median hit. MediaPipe's face-oval points are left out: on a photo they follow the
face's silhouette and hairline, on the cropped model the border of its face area. The fit's dense
term (`occgui.morphable.fit`, `FitSettings.dense_weight`) reads the map.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from occgui import labels as L  # noqa: E402
from occgui.eval.render import OrthoCamera, frontal_camera, render_mesh, rotation_yaw_pitch_roll  # noqa: E402
from occgui.landmarks.mediapipe_mesh import MediaPipeMeshLandmarks  # noqa: E402
from occgui.mediapipe_models import connection_sets  # noqa: E402
from occgui.morphable import load_default_model  # noqa: E402
from occgui.morphable.dense import MESH_POINTS, map_path  # noqa: E402

VIEWS = tuple((yaw, pitch) for yaw in (-10, 0, 10) for pitch in (-10, 0, 10))
SIZE = 384
MIN_VIEWS = 7


def region_colours(model) -> np.ndarray:
    """(N, 3) 0..255 vertex colours: the region albedo, or a skin tone with darker features."""
    if model.albedo_mean is not None:
        return np.clip(np.asarray(model.albedo_mean, np.float64) * 255.0, 0, 255)
    col = np.tile(np.array([[200.0, 160.0, 140.0]]), (model.num_vertices, 1))
    if model.vertex_labels is not None:
        lab = model.vertex_labels
        col[np.isin(lab, [L.L_BROW, L.R_BROW, L.L_EYE, L.R_EYE])] = (60, 50, 45)
        col[np.isin(lab, [L.U_LIP, L.L_LIP])] = (170, 90, 90)
    return col


def view_hits(model, yaw: float, pitch: float, detector) -> np.ndarray:
    """(468, 3) points on the mean face under MediaPipe's points in one view (NaN: off the mesh)."""
    v = np.asarray(model.mean_shape, np.float64)
    cam0 = frontal_camera(v[model.landmarks], SIZE)
    rot = rotation_yaw_pitch_roll(yaw, pitch) @ cam0.R
    origin = -np.linalg.inv(cam0.R) @ cam0.t
    cam = OrthoCamera(R=rot, t=-rot @ origin, k=cam0.k, centre=cam0.centre, size=cam0.size)
    img, raster = render_mesh(v, model.triangles, cam, vertex_colors=region_colours(model),
                              light_dir=np.array([0.3, 0.4, 1.0]), ambient=0.35, diffuse=0.75,
                              background=(90, 110, 130))
    pts = detector.detect(img).mesh[:MESH_POINTS, :2]
    out = np.full((MESH_POINTS, 3), np.nan)
    for i, (x, y) in enumerate(np.round(pts).astype(int)):
        if 0 <= x < SIZE and 0 <= y < SIZE and raster.triangle[y, x] >= 0:
            tri = model.triangles[raster.triangle[y, x]]
            out[i] = (v[tri] * raster.bary[y, x][:, None]).sum(axis=0)
    return out


def derive(model, max_spread: float) -> dict:
    detector = MediaPipeMeshLandmarks()
    hits = np.stack([view_hits(model, yaw, pitch, detector) for yaw, pitch in VIEWS])   # (V, 468, 3)
    v = np.asarray(model.mean_shape, np.float64)
    face_oval = set(connection_sets()["face_oval"].ravel().tolist())   # MediaPipe's FACEMESH_FACE_OVAL
    vertices = np.full(MESH_POINTS, -1, np.int64)
    spread = np.full(MESH_POINTS, np.nan)
    for i in range(MESH_POINTS):
        h = hits[:, i][np.isfinite(hits[:, i, 0])]
        if i in face_oval or len(h) < MIN_VIEWS:
            continue
        med = np.median(h, axis=0)
        spread[i] = float(np.linalg.norm(h - med, axis=1).max())
        if spread[i] <= max_spread:
            vertices[i] = int(np.argmin(np.linalg.norm(v - med, axis=1)))
    return {"model": model.name, "vertices": vertices.tolist(),
            "spread_mm": [None if not np.isfinite(s) else round(float(s), 2) for s in spread],
            "views": [list(x) for x in VIEWS], "size": SIZE, "min_views": MIN_VIEWS, "max_spread_mm": max_spread,
            "made_by": "tools/derive_ict_mediapipe_map.py"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-spread", type=float, default=4.0, help="largest spread of a point's hits (mm)")
    ap.add_argument("-o", "--output", help="default: the resource the default model reads")
    args = ap.parse_args(argv)
    model = load_default_model()
    rec = derive(model, args.max_spread)
    out = Path(args.output) if args.output else map_path()
    out.write_text(json.dumps(rec, separators=(",", ":")) + "\n")
    kept = sum(1 for x in rec["vertices"] if x >= 0)
    sp = [s for s, x in zip(rec["spread_mm"], rec["vertices"]) if x >= 0]
    print(f"wrote {out}: {kept} of {MESH_POINTS} points mapped, spread median {np.median(sp):.2f} mm, "
          f"max {max(sp):.2f} mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
