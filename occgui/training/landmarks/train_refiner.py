"""Training of the occlusion-aware landmark refiner (``refiner.py``; paper §3.1, Eq. 1).

    occgui train landmarks --data ../shared/data [--samples 24000 --rounds 2] [--epochs 40]
        [-o checkpoints/landmark_refiner.onnx]

Data: the parser's clean set (aligned 256 px crops of LFW identities A-P with MediaPipe's mesh,
``parsing.dataset.build_clean_set``). Each sample pastes one occluder (an evaluation family of
``occgui.occluders`` chosen at random, from the training occluder kinds; sometimes a second
occluder), applies a random similarity to crop, mask and clean mesh (the product's crop comes
from a detector run on the occluded photo), runs MediaPipe on the occluded crop, and perturbs the
paste mask by up to 2 px (the parser's mask is not exact). Target: the clean crop's mesh in the
canonical frame of the occluded one. Loss: mean Euclidean distance of the 478 points in
inter-ocular distances (Eq. 1's landmark loss, L2 per point), with mirrored copies of every sample.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ...errors import OccguiError
from ...landmarks import refiner as R

#: Evaluation families the refiner is trained on (weights); the three measured by the
#: de-occlusion protocol count double.
TRAIN_FAMILIES = {"hand_over_eye": 2.0, "sunglasses": 2.0, "surgical_mask": 2.0, "hand_over_mouth": 1.0,
                  "hand_on_cheek": 1.0, "hand_over_face": 1.0, "glasses": 1.0, "respirator_mask": 1.0,
                  "cloth_mask": 1.0, "cup": 0.7, "food": 0.7, "phone": 0.7, "microphone": 0.7, "hat": 0.7,
                  "scarf": 0.7, "object": 0.7}


def mean_shape(meshes: np.ndarray, mirror: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Symmetric mean face (478,2) of ``meshes`` (N,478,>=2): Procrustes-aligned on the surface
    points, eyes' midpoint at the origin, eye line horizontal, inter-ocular distance 1."""
    from ...landmarks.alignment import eye_centres
    from ...landmarks.correspondence import mesh_to_ibug68

    xy = np.asarray(meshes, dtype=np.float64)[:, :, :2]
    mean = xy[0].copy()
    for _ in range(iterations):
        aligned = np.stack([R.apply(R.similarity(m[:R.SURFACE], mean[:R.SURFACE]), m) for m in xy])
        mean = aligned.mean(axis=0)
        el, er = eye_centres(mesh_to_ibug68(mean))
        ang = np.arctan2(er[1] - el[1], er[0] - el[0])
        c, s = np.cos(-ang), np.sin(-ang)
        rot = np.array([[c, -s], [s, c]])
        mean = (mean - (el + er) / 2) @ rot.T / np.linalg.norm(er - el)
        mirrored = mean[mirror] * [-1.0, 1.0]
        mean = (mean + mirrored) / 2
    return mean


def _jitter(rng: np.random.Generator, size: int) -> np.ndarray:
    s = rng.uniform(0.92, 1.08)
    a = np.radians(rng.normal(0.0, 4.0))
    c = size / 2
    m = cv2.getRotationMatrix2D((c, c), float(np.degrees(a)), float(s))
    m[:, 2] += rng.normal(0.0, 0.02 * size, 2)
    return m


def _perturb_mask(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    k = int(rng.integers(-2, 3))
    if k == 0:
        return mask
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(k) + 1, 2 * abs(k) + 1))
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, ker) if k > 0 else cv2.erode(m, ker)).astype(bool)


def make_sample(rng: np.random.Generator, crop: np.ndarray, lmk68: np.ndarray, clean_mesh: np.ndarray, library,
                mean_xy: np.ndarray, family: str, *, jitter: bool = True, second: float = 0.2):
    """One training/evaluation sample, or None when MediaPipe finds no face on the occluded crop.
    Returns (x, target offsets (478,2), hidden (478,) bool at the clean positions, mesh_occ, mesh_clean)."""
    from ...landmarks.mediapipe_mesh import face_mesh_points
    from ..occlusion.occluders import composite, occlude, sample_eval_family

    occ, pl = sample_eval_family(rng, library, family, lmk68)
    rgb, mask = composite(crop, lmk68, occ, pl)
    if second and rng.random() < second:
        rgb, m2, _ = occlude(rng, rgb, lmk68, library, count=1)
        mask |= m2
    size = rgb.shape[0]
    clean_xy = np.asarray(clean_mesh, dtype=np.float64)[:, :2]
    if jitter:
        m = _jitter(rng, size)
        rgb = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = cv2.warpAffine(mask.astype(np.uint8), m, (size, size), flags=cv2.INTER_NEAREST) > 0
        clean_xy = R.apply(m, clean_xy)
    faces = face_mesh_points(rgb, max_faces=2)
    if not faces:
        return None
    c = np.array([size / 2, size / 2])
    mesh_occ = min(faces, key=lambda f: np.linalg.norm(f[:, :2].mean(axis=0) - c))[:, :2]
    seen_mask = _perturb_mask(rng, mask)
    x, to_can = R.network_input(mesh_occ, seen_mask, mean_xy)
    target = R.apply(to_can, clean_xy) - mean_xy - x[:2 * R.N_POINTS].reshape(R.N_POINTS, 2)
    ci = np.clip(np.rint(clean_xy).astype(int), 0, size - 1)
    hidden = mask[ci[:, 1], ci[:, 0]]
    return x, target.astype(np.float32), hidden, mesh_occ, clean_xy


def _generate_chunk(job):
    """Worker: samples for ``indices`` (one per index, family drawn from TRAIN_FAMILIES)."""
    from ..occlusion.occluders import load_library, procedural_hand_library
    from ..parsing.dataset import HELDOUT_KINDS, TRAIN_HAND_SEED, load_clean_set

    clean_dir, occ_dir, indices, seed, mean_xy, families = job
    clean = load_clean_set(clean_dir)
    lib = (load_library(occ_dir).filter(exclude_kinds=HELDOUT_KINDS)
           .merged(procedural_hand_library(48, seed=TRAIN_HAND_SEED)))
    names = sorted(families)
    w = np.array([families[n] for n in names])
    xs, ts, hs, fams = [], [], [], []
    for sid, i in indices:
        rng = np.random.default_rng([seed, int(sid)])
        fam = names[int(rng.choice(len(names), p=w / w.sum()))]
        try:
            s = make_sample(rng, np.asarray(clean.crops[i]), np.asarray(clean.lmk68[i], np.float64),
                            np.asarray(clean.mesh[i]), lib, mean_xy, fam)
        except OccguiError:
            s = None
        if s is None:
            continue
        xs.append(s[0].astype(np.float16))
        ts.append(s[1])
        hs.append(s[2])
        fams.append(fam)
    return xs, ts, hs, fams


def generate(clean_dir, occ_dir, indices, seed: int, mean_xy: np.ndarray, *, workers: int = 2,
             families: dict | None = None, progress: bool = True) -> dict:
    """Samples for ``indices`` of the clean set (a photo may repeat: sample k draws its occluder
    from ``default_rng([seed, k])``), in ``workers`` spawned processes."""
    import multiprocessing as mp

    families = families or TRAIN_FAMILIES
    pairs = [(k, int(i)) for k, i in enumerate(indices)]
    chunks = [pairs[k:k + 100] for k in range(0, len(pairs), 100)]
    jobs = [(str(clean_dir), str(occ_dir), c, seed, mean_xy, families) for c in chunks]
    out = {"x": [], "t": [], "hidden": [], "family": []}
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers) as pool:
        for k, (xs, ts, hs, fams) in enumerate(pool.imap(_generate_chunk, jobs)):
            out["x"] += xs
            out["t"] += ts
            out["hidden"] += hs
            out["family"] += fams
            if progress:
                print(f"\rsamples {len(out['x'])} ({k + 1}/{len(jobs)} chunks, {time.time() - t0:.0f} s)",
                      end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return {"x": np.stack(out["x"]), "t": np.stack(out["t"]), "hidden": np.stack(out["hidden"]),
            "family": np.array(out["family"])}


def train(data: dict, mirror: np.ndarray, *, hidden: int = 512, epochs: int = 40, batch: int = 256, lr: float = 1e-3,
          seed: int = 0, progress: bool = True):
    """Fit the MLP on ``data`` (plus mirrored copies); returns the list of (W, b) float32 layers."""
    import torch

    torch.manual_seed(seed)
    x = np.asarray(data["x"], dtype=np.float32)
    t = np.asarray(data["t"], dtype=np.float32)
    xf = np.stack([R.flip_input(v, mirror) for v in x])
    tf = R.flip_offsets(t, mirror)
    X = torch.from_numpy(np.concatenate([x, xf]))
    T = torch.from_numpy(np.concatenate([t, tf]))
    net = torch.nn.Sequential(torch.nn.Linear(R.INPUT_DIM, hidden), torch.nn.GELU(approximate="tanh"),
                              torch.nn.Dropout(0.1), torch.nn.Linear(hidden, hidden), torch.nn.GELU(approximate="tanh"),
                              torch.nn.Linear(hidden, 2 * R.N_POINTS))
    with torch.no_grad():
        net[-1].weight.mul_(0.1)
        net[-1].bias.zero_()
    steps = epochs * ((len(X) + batch - 1) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    step = 0
    t0 = time.time()
    for ep in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        tot = 0.0
        for k in range(0, len(X), batch):
            idx = perm[k:k + batch]
            d = net(X[idx]).view(-1, R.N_POINTS, 2)
            loss = torch.linalg.vector_norm(d - T[idx], dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            tot += loss.item() * len(idx)
        if progress:
            print(f"epoch {ep + 1}/{epochs} loss {tot / len(X):.4f} IOD ({time.time() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    net.eval()
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in lin]


def save(path, mean_xy: np.ndarray, mirror: np.ndarray, layers, meta: dict) -> None:
    from ..onnx_export import export_refiner

    export_refiner(path, mean_xy, mirror, layers, meta)


def predict(layers, mirror: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Offsets for a batch of inputs, as :func:`refiner.refine` computes them (with the mirrored pass)."""
    import torch

    from ..onnx_export import RefinerGraph

    net = RefinerGraph(layers, mirror).eval()
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(np.asarray(x[k:k + 512], np.float32))).numpy()
                               for k in range(0, len(x), 512)])


def errors(data: dict, offsets: np.ndarray) -> dict:
    """Mean point error in inter-ocular distances of the hidden points (clean position under the
    paste mask) and of all points, for the given predicted offsets (zeros = MediaPipe as is)."""
    e = np.linalg.norm(np.asarray(data["t"], np.float64) - offsets, axis=-1)
    h = np.asarray(data["hidden"], bool)
    out = {}
    for fam in sorted(set(data["family"])):
        sel = data["family"] == fam
        hh = h[sel]
        out[fam] = {"n": int(sel.sum()), "hidden": round(float(e[sel][hh].mean()), 4) if hh.any() else None,
                    "all": round(float(e[sel].mean()), 4)}
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data", help="shared data folder (faces/lfw, occluders)")
    p.add_argument("--occluders", default=None)
    p.add_argument("--cache", type=Path, default=None, help="clean-set cache folder (as for `train parsing`)")
    p.add_argument("--samples", type=int, default=24000,
                   help="training samples per round (photos are reused with new occluders)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of samples (round r draws with seed + r)")
    p.add_argument("--eval-per-family", type=int, default=300, help="held-out (Q-S) samples per measured family")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--samples-file", type=Path, default=None,
                   help="reuse/save the generated samples: round r is <stem>_r<r>.npz next to it")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="checkpoint path (default checkpoints/landmark_refiner.onnx)")
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    from ...resources import checkpoint_path
    from ...synthesis.mirror import mesh_mirror_map
    from ..parsing.dataset import build_clean_set, resolve_data_dirs
    from ..parsing.train import DEFAULT_CACHE

    lfw, occ_dir = resolve_data_dirs(args.data, args.occluders)
    if occ_dir is None:
        raise OccguiError("occluder folder not found; pass --occluders DIR")
    cache = args.cache or DEFAULT_CACHE
    progress = not args.quiet
    train_set = build_clean_set(lfw, cache, "train", progress=progress)
    test_set = build_clean_set(lfw, cache, "test", progress=progress)
    mirror = mesh_mirror_map()
    mean_xy = mean_shape(np.asarray(train_set.mesh[::5]), mirror)
    t0 = time.time()
    tr_parts, te = [], None
    for r in range(args.rounds):
        f = None if args.samples_file is None else \
            args.samples_file.with_name(f"{args.samples_file.stem}_r{r}{args.samples_file.suffix}")
        if f is not None and f.exists():
            z = np.load(f)
            if not np.allclose(z["mean_xy"], mean_xy, atol=1e-5):
                raise OccguiError(f"{f} was made with another mean face; delete it to regenerate")
            tr_parts.append({k[3:]: z[k] for k in z.files if k.startswith("tr_")})
            if r == 0:
                te = {k[3:]: z[k] for k in z.files if k.startswith("te_")}
            continue
        # round r: every photo once per pass, in the order of default_rng(seed + r), new occluders
        rng = np.random.default_rng(args.seed + r)
        n = len(train_set)
        idx = np.concatenate([rng.permutation(n) for _ in range((args.samples + n - 1) // n)])[:args.samples]
        tr_parts.append(generate(train_set.source, occ_dir, list(idx), args.seed + r, mean_xy,
                                 workers=args.workers, progress=progress))
        if r == 0:
            te_parts = []
            for j, fam in enumerate(("hand_over_eye", "sunglasses", "surgical_mask")):
                k = min(args.eval_per_family, len(test_set))
                te_idx = list(np.random.default_rng([args.seed, 99, j]).permutation(len(test_set))[:k])
                te_parts.append(generate(test_set.source, occ_dir, te_idx, 10_000 + j, mean_xy, workers=args.workers,
                                         families={fam: 1.0}, progress=progress))
            te = {key: np.concatenate([p[key] for p in te_parts]) for key in te_parts[0]}
        if f is not None:
            np.savez(f, mean_xy=mean_xy, **{f"tr_{k}": v for k, v in tr_parts[-1].items()},
                     **({f"te_{k}": v for k, v in te.items()} if r == 0 else {}))
    tr = {key: np.concatenate([p[key] for p in tr_parts]) for key in tr_parts[0]}
    gen_s = time.time() - t0
    layers = train(tr, mirror, hidden=args.hidden, epochs=args.epochs, seed=args.seed, progress=progress)
    result = {"mediapipe": errors(te, np.zeros_like(te["t"])), "refined": errors(te, predict(layers, mirror, te["x"]))}
    meta = {"samples": int(len(tr["x"])), "rounds": args.rounds, "epochs": args.epochs, "hidden": args.hidden,
            "seed": args.seed,
            "families": TRAIN_FAMILIES, "heldout_errors": result, "generate_s": round(gen_s, 1),
            "train_s": round(time.time() - t0 - gen_s, 1)}
    out = args.output or checkpoint_path(R.CHECKPOINT)
    save(out, mean_xy, mirror, layers, meta)
    print(json.dumps(meta, indent=2))
    return 0
