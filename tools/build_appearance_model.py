"""Build the face appearance model of the de-occlusion stage (``resources/templates/appearance_model.npz``).

A linear, shape-free appearance model (the 2D analogue of a morphable model's texture basis,
paper §3.4): clean LFW training faces (identities A-P only; the Q-S identities used by the
de-occlusion measurements are never read) are warped piecewise-affinely onto the mean face's
canonical, symmetric mesh shape (``resources/templates/mean_face.json``), each together with its
mirror image, and their principal components are kept. At run time
(``occgui.synthesis.appearance``) the components are fitted to the pixels the photo shows, and
the hidden features are drawn from that fit instead of the plain mean face.

Input is the parser's clean training set (``occgui train parsing`` builds it under ``--cache``;
crops and MediaPipe meshes of every A-P photo): near-frontal faces only
(``occgui.training.occlusion.occluders.head_view == "front"``).

    python tools/build_appearance_model.py --cache /work/cache --components 48
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occgui.landmarks.correspondence import mesh_to_ibug68  # noqa: E402
from occgui.synthesis.appearance import MODEL_NPZ, canonical_samples, mirror_index  # noqa: E402
from occgui.synthesis.template import load_mean_face  # noqa: E402
from occgui.training.occlusion.occluders import head_view  # noqa: E402
from occgui.training.parsing.dataset import SPLITS  # noqa: E402


def principal_components(x: np.ndarray, k: int, *, oversample: int = 16, iters: int = 4,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` principal directions (k, D) and variances (k,) of the centred rows of ``x`` by a
    randomised range finder with power iterations (Halko et al. 2011)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    q = x @ rng.standard_normal((x.shape[1], k + oversample)).astype(np.float32)
    for _ in range(iters):
        q, _ = np.linalg.qr(q)
        q, _ = np.linalg.qr(x @ (x.T @ q))
    q, _ = np.linalg.qr(q)
    b = q.T @ x                                                   # (k+p, D)
    _, s, vt = np.linalg.svd(b, full_matrices=False)
    return vt[:k], (s[:k] ** 2) / max(n - 1, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="folder holding parsing_lfw_train_v1_256 (the parser's clean set)")
    ap.add_argument("--identities", default=SPLITS["train"], help="first letters of the identities to use")
    ap.add_argument("--components", type=int, default=48)
    ap.add_argument("--out", default=str(REPO / "resources" / MODEL_NPZ))
    args = ap.parse_args(argv)
    folder = Path(args.cache) / "parsing_lfw_train_v1_256"
    meta = json.loads((folder / "meta.json").read_text())
    crops = np.load(folder / "crops.npy", mmap_mode="r")
    meshes = np.load(folder / "mesh.npy", mmap_mode="r")
    names = meta["photos"]
    t0 = time.time()
    face = load_mean_face()
    keep = [i for i, n in enumerate(names[:len(crops)]) if n[:1] in args.identities
            and head_view(mesh_to_ibug68(np.asarray(meshes[i]))) == "front"]
    print(f"{len(keep)} near-frontal faces of identities {args.identities}")
    flip = mirror_index(face)
    rows = []
    for j, i in enumerate(keep):
        v = canonical_samples(np.asarray(crops[i]), np.asarray(meshes[i])[:468, :2], face)
        rows.append(v.ravel())
        rows.append(v[flip].ravel())
        if j % 1000 == 0:
            print(f"  {j}/{len(keep)} warped, {time.time() - t0:.0f} s", flush=True)
    x = np.stack(rows).astype(np.float32)
    finite = np.isfinite(x)
    x[~finite] = 0.0
    count = finite.sum(axis=0)
    # a template value no face's mesh reaches keeps the mean face's colour
    mean = np.where(count > 0, x.sum(axis=0) / np.maximum(count, 1),
                    face.image[face.coverage].reshape(-1)).astype(np.float32)
    x = np.where(finite, x - mean, 0.0).astype(np.float32)
    total_var = float((x ** 2).sum() / (len(x) - 1))
    comps, var = principal_components(x, args.components)
    resid = (total_var - float(var.sum())) / x.shape[1]
    print(f"PCA of {x.shape}: {args.components} components keep {var.sum() / total_var:.3f} of the variance; "
          f"residual variance per value {resid:.1f}; {time.time() - t0:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"faces": len(keep), "samples": len(x), "identities": args.identities, "components": args.components,
            "explained": float(var.sum() / total_var), "tool": "tools/build_appearance_model.py",
            "source": "parsing clean set v1 (256 px aligned crops and MediaPipe meshes of LFW photos)"}
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, mean=mean.astype(np.float16), components=comps.astype(np.float16),
                        variances=var.astype(np.float32), residual=np.float32(resid),
                        info=np.array(json.dumps(info)))
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
