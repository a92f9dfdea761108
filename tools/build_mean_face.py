"""Build the mean-face template of the de-occlusion stage (``resources/templates/mean_face.*``).

The template is a *statistical mean* of many clean LFW training photos (identities A-P only;
the Q-S identities used by the de-occlusion measurements are never read), so it is derived data,
not a copy of any photo:

1. one photo per training identity, chosen by ``default_rng(seed)``; each goes through the
   product's own detection, aligned 256 px crop and MediaPipe face mesh; near-frontal faces
   only (``occgui.training.occlusion.occluders.head_view == "front"``);
2. the meshes are put in their own face frame (``synthesis.mirror.frontalise``), scaled to a
   common inter-ocular distance and averaged; the mesh's mirror vertex map is derived from that
   mean (``synthesis.mirror.derive_mirror_map``), and the mean shape is made exactly symmetric;
3. every crop is warped piecewise-affinely (Delaunay of the 468 surface vertices) onto the
   canonical, symmetric shape, and the warped crops are averaged; the average is symmetrised
   (mean of it and its mirror image), which also cancels the average lighting direction.

Output: ``mean_face.png`` (RGBA, alpha = inside the mesh) and ``mean_face.json`` (canonical
478 points in template pixels, the mirror map, provenance).

    python tools/build_mean_face.py --data ../shared/data --faces 400
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occgui.detection.crop import aligned_crop  # noqa: E402
from occgui.detection.mediapipe_detector import MediaPipeFaceDetector  # noqa: E402
from occgui.errors import OccguiError  # noqa: E402
from occgui.imageio import load_image  # noqa: E402
from occgui.landmarks.correspondence import mesh_to_ibug68  # noqa: E402
from occgui.parsing.labelgen import crop_mesh  # noqa: E402
from occgui.synthesis import mirror as MI  # noqa: E402
from occgui.synthesis.warp import PiecewiseAffine, warp_image  # noqa: E402
from occgui.training.occlusion.occluders import head_view  # noqa: E402
from occgui.training.parsing.dataset import SPLITS, resolve_data_dirs  # noqa: E402

CROP = 256
MARGIN = 6  # template pixels around the mesh's bounding box


def training_photos(lfw: Path, seed: int) -> list[Path]:
    """One photo per training identity (A-P), chosen and ordered by ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    people = sorted(p for p in lfw.iterdir() if p.is_dir() and p.name[:1] in SPLITS["train"])
    photos = []
    for person in people:
        files = sorted(person.glob("*.jpg"))
        if files:
            photos.append(files[int(rng.integers(len(files)))])
    return [photos[i] for i in rng.permutation(len(photos))]


def collect(photos: list[Path], count: int) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Aligned crops and meshes of the first ``count`` usable, near-frontal photos."""
    det = MediaPipeFaceDetector()
    crops, meshes, names = [], [], []
    for p in photos:
        if len(crops) >= count:
            break
        try:
            img = load_image(p)
            faces = sorted(det.detect(img.rgb), key=lambda d: -d.area)
            if not faces:
                continue
            crop = aligned_crop(img.rgb, faces[0], CROP).image
            mesh = crop_mesh(crop)
        except OccguiError:
            continue
        if head_view(mesh_to_ibug68(mesh)) != "front":
            continue
        crops.append(crop)
        meshes.append(mesh)
        names.append(f"{p.parent.name}/{p.name}")
    return crops, meshes, names


def canonical_shape(meshes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(exactly symmetric mean shape in face-frame units of one inter-ocular distance, mirror map,
    mirror-match residual, mean 2D inter-ocular distance in crop pixels)."""
    fr = []
    iods = []
    for m in meshes:
        f = MI.frontalise(m)
        iod = np.linalg.norm(f[MI.EYE_OUTER_IMAGE_RIGHT] - f[MI.EYE_OUTER_IMAGE_LEFT])
        fr.append(f / iod)
        iods.append(np.linalg.norm(m[MI.EYE_OUTER_IMAGE_RIGHT, :2] - m[MI.EYE_OUTER_IMAGE_LEFT, :2]))
    mean = np.mean(fr, axis=0)
    mirror, residual = MI.derive_mirror_map(mean)
    reflect = np.array([-1.0, 1.0, 1.0])
    # re-frontalise the symmetrised shape, then symmetrise exactly about x = 0
    r, t = MI._kabsch((mean * reflect)[mirror], mean)
    sym = MI.frontalise(0.5 * (mean + ((mean * reflect)[mirror] @ r.T + t)))
    sym = 0.5 * (sym + (sym * reflect)[mirror])
    return sym, mirror, residual, float(np.mean(iods))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder or LFW folder")
    ap.add_argument("--faces", type=int, default=400, help="number of training faces to average")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(REPO / "resources" / "templates"))
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    lfw, _ = resolve_data_dirs(args.data)
    t0 = time.time()
    crops, meshes, names = collect(training_photos(lfw, args.seed), args.faces)
    if len(crops) < 20:
        print(f"only {len(crops)} usable faces: not enough for a mean face", file=sys.stderr)
        return 1
    print(f"{len(crops)} faces collected in {time.time() - t0:.0f} s")
    sym, mirror, residual, iod = canonical_shape(meshes)
    assert np.all(mirror[mirror] == np.arange(len(mirror))), "mirror map is not an involution"
    # template pixels: x right, y down, crop-pixel scale, symmetric about the canvas centre
    pts = np.stack([sym[:, 0], -sym[:, 1]], axis=1) * iod
    half_w = np.abs(pts[:MI.SURFACE, 0]).max() + MARGIN
    width = int(np.ceil(2 * half_w)) | 1   # odd width: the axis is a pixel column
    top, bottom = pts[:MI.SURFACE, 1].min() - MARGIN, pts[:MI.SURFACE, 1].max() + MARGIN
    height = int(np.ceil(bottom - top))
    pts = pts + np.array([(width - 1) / 2.0, -top])
    acc = np.zeros((height, width, 3), np.float64)
    cnt = np.zeros((height, width), np.float64)
    for crop, mesh in zip(crops, meshes):
        warp = PiecewiseAffine(pts[:MI.SURFACE], mesh[:MI.SURFACE, :2])
        img, inside = warp_image(crop.astype(np.float32), warp, (height, width))
        acc[inside] += img[inside]
        cnt[inside] += 1
    cover = cnt >= 0.9 * len(crops)
    mean = acc / np.maximum(cnt, 1)[:, :, None]
    mean = 0.5 * (mean + mean[:, ::-1])
    cover &= cover[:, ::-1]
    rgba = np.dstack([np.clip(mean + 0.5, 0, 255), cover * 255.0]).astype(np.uint8)
    rgba[~cover, :3] = 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "mean_face.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    meta = {
        "description": "mean of near-frontal LFW training faces (identities A-P) warped to a symmetric "
                       "canonical MediaPipe-mesh shape; see README.md",
        "faces": len(crops), "seed": args.seed, "identities": SPLITS["train"], "crop_size": CROP,
        "size": [width, height], "interocular_px": iod, "mirror_residual": residual,
        "points": np.round(pts, 3).tolist(), "mirror": mirror.tolist(),
        "tool": "tools/build_mean_face.py",
    }
    (out / "mean_face.json").write_text(json.dumps(meta))
    print(f"wrote {out / 'mean_face.png'} ({width}x{height}) from {len(crops)} faces; "
          f"mirror residual {residual:.4f} iod; {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
