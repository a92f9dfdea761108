"""A compact copy of a clean training set, to carry it to another machine (e.g. a GPU box).

The cache that ``dataset.build_clean_set`` writes is raw ``.npy`` (about 270 KB per photo: 2.6 GB
for identities A-P). Building it needs MediaPipe and the LFW photos. ``pack`` stores a seeded
subset compactly: crops as WebP (lossy, quality 90 by default, about 7 KB), label maps as PNG
(lossless, about 1.7 KB) and the 68 landmarks as float32; the 478-point meshes are left out
(training does not read them). ``unpack`` turns such a folder back into a cache folder that
``build_clean_set`` loads as it is (``meta.json`` records ``"packed_from"`` and the quality).

    python -m occgui.training.parsing.pack pack CACHE_DIR OUT --count 4800 [--split train] [--quality 90]
    python -m occgui.training.parsing.pack unpack PACKED CACHE_DIR
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from .dataset import CROP_SIZE, LABELGEN_VERSION, cache_folder, load_clean_set

FORMAT = "occgui-packed-clean-set-1"


def _write_blobs(path: Path, blobs: list[bytes]) -> np.ndarray:
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    with open(path, "wb") as f:
        for b in blobs:
            f.write(b)
    return offsets


def pack(cache_dir, out, *, split: str = "train", count: int | None = None, seed: int = 0, quality: int = 90) -> dict:
    """Write ``count`` photos (a seeded choice; all when ``None``) of the cached clean set of
    ``split`` to the folder ``out``. Returns the packed folder's meta."""
    clean = load_clean_set(cache_folder(cache_dir, split))
    n = len(clean)
    idx = (np.arange(n) if count is None or count >= n
           else np.sort(np.random.default_rng(seed).choice(n, count, replace=False)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    crops, labels = [], []
    for i in idx:
        ok, enc = cv2.imencode(".webp", np.ascontiguousarray(clean.crops[i][:, :, ::-1]),
                               [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
        ok2, lab = cv2.imencode(".png", np.ascontiguousarray(clean.labels[i]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not (ok and ok2):
            raise RuntimeError(f"could not encode photo {clean.names[i]}")
        crops.append(enc.tobytes())
        labels.append(lab.tobytes())
    np.save(out / "crops_offsets.npy", _write_blobs(out / "crops.webp.bin", crops))
    np.save(out / "labels_offsets.npy", _write_blobs(out / "labels.png.bin", labels))
    np.save(out / "lmk68.npy", np.ascontiguousarray(clean.lmk68[idx], dtype=np.float32))
    meta = {"format": FORMAT, "version": LABELGEN_VERSION, "split": split, "crop_size": CROP_SIZE,
            "count": int(len(idx)), "of": n, "seed": seed, "quality": int(quality),
            "photos": [clean.names[i] for i in idx]}
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def _read_blobs(path: Path, offsets: np.ndarray):
    data = path.read_bytes()
    for a, b in zip(offsets[:-1], offsets[1:]):
        yield np.frombuffer(data, np.uint8, count=int(b - a), offset=int(a))


def unpack(packed, cache_dir) -> Path:
    """Rebuild the cache folder of the packed split under ``cache_dir``; returns that folder."""
    packed = Path(packed)
    meta = json.loads((packed / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{packed} is not a packed clean set")
    if meta["version"] != LABELGEN_VERSION or meta["crop_size"] != CROP_SIZE:
        raise ValueError(f"{packed} holds labels of another version or crop size")
    n = int(meta["count"])
    folder = cache_folder(cache_dir, meta["split"])
    folder.mkdir(parents=True, exist_ok=True)
    crops = np.lib.format.open_memmap(folder / "crops.npy", "w+", np.uint8, (n, CROP_SIZE, CROP_SIZE, 3))
    labels = np.lib.format.open_memmap(folder / "labels.npy", "w+", np.uint8, (n, CROP_SIZE, CROP_SIZE))
    for k, buf in enumerate(_read_blobs(packed / "crops.webp.bin", np.load(packed / "crops_offsets.npy"))):
        crops[k] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    for k, buf in enumerate(_read_blobs(packed / "labels.png.bin", np.load(packed / "labels_offsets.npy"))):
        labels[k] = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    crops.flush()
    labels.flush()
    np.save(folder / "lmk68.npy", np.load(packed / "lmk68.npy"))
    # no meshes in a packed set: NaN marks them absent (training never reads them)
    np.save(folder / "mesh.npy", np.full((n, 478, 3), np.nan, dtype=np.float16))
    (folder / "meta.json").write_text(json.dumps({
        "version": LABELGEN_VERSION, "split": meta["split"], "count": n, "photos": meta["photos"], "failed": [],
        "limit": None, "complete": True,
        "packed_from": {"of": meta["of"], "seed": meta["seed"], "quality": meta["quality"]}}))
    return folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m occgui.training.parsing.pack", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="cache folder -> packed folder")
    a.add_argument("cache_dir")
    a.add_argument("out")
    a.add_argument("--split", default="train", choices=("train", "test"))
    a.add_argument("--count", type=int, help="photos to keep (a seeded choice; default all)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--quality", type=int, default=90, help="WebP quality of the crops")
    b = sub.add_parser("unpack", help="packed folder -> cache folder")
    b.add_argument("packed")
    b.add_argument("cache_dir")
    args = p.parse_args(argv)
    try:
        if args.cmd == "pack":
            m = pack(args.cache_dir, args.out, split=args.split, count=args.count, seed=args.seed, quality=args.quality)
            size = sum(f.stat().st_size for f in Path(args.out).iterdir())
            print(f"packed {m['count']} of {m['of']} {m['split']} photos into {args.out} ({size / 2**20:.1f} MiB)")
        else:
            print(f"unpacked into {unpack(args.packed, args.cache_dir)}")
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
