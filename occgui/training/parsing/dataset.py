"""N_alpha's training data (paper §3.2): clean LFW crops with generated labels, plus seeded occlusion.

* The clean set: every LFW photo of a split goes through the inference pipeline's own detection
  and crop (``MediaPipeFaceDetector``, largest face, ``aligned_crop`` at 256) and gets its label
  map from ``labelgen.generate_labels`` and its 68 landmarks from the same mesh. The result is
  cached as ``.npy`` arrays (memory-mapped) under a cache folder.
* Splits by the identity's first letter: train = A-P, test = Q-S (no identity in both).
* Occlusion is added on the fly (``OcclusionSampler``): for training step ``t`` the random
  stream is ``default_rng([seed, t])``, so a run is reproducible and resumable at any step.
  The kinds in :data:`HELDOUT_KINDS` never appear in training; they measure generalisation.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ... import labels as L
from ...parsing.preprocess import resize_input  # noqa: F401  (re-export: the trainer resizes as inference does)

#: Bump when the clean labels' definition changes: caches of another version are rebuilt.
LABELGEN_VERSION = 1
CROP_SIZE = 256
SPLITS = {"train": "ABCDEFGHIJKLMNOP", "test": "QRS"}
#: Occluder kinds held out of training (one or two per family), used only in evaluation.
HELDOUT_KINDS = ("crossed_fingers", "palms_up", "goggles", "KN95", "hot_beverage_cup", "hamburger", "camera")
#: Relative frequency of the occluder families in training.
FAMILY_WEIGHTS = {"hand": 3.0, "mask": 1.5, "sunglasses": 1.0, "glasses": 0.8, "hat": 0.6, "scarf": 0.4,
                  "cup": 0.8, "food": 0.8, "phone": 0.5, "microphone": 0.5, "object": 1.2}
#: Kind weights inside a family in training (default 1 per kind): the procedural, skin-coloured
#: hands (``occgui.training.occlusion.procedural_hand``) are about a third of the hands when they are in the library.
TRAIN_KIND_WEIGHTS = {"procedural_hand": 6.0}
#: Seeds of the procedural hand shapes: training draws from one set, evaluation from another.
TRAIN_HAND_SEED, EVAL_HAND_SEED = 0, 1


def resolve_data_dirs(data, occluders=None) -> tuple[Path, Path | None]:
    """``--data`` may be the shared data folder (with ``faces/lfw/lfw-deepfunneled`` and
    ``occluders``) or the LFW folder itself; returns (lfw_dir, occluders_dir or None)."""
    d = Path(data)
    lfw = d / "faces" / "lfw" / "lfw-deepfunneled" if (d / "faces" / "lfw" / "lfw-deepfunneled").is_dir() else d
    if occluders is not None:
        occ = Path(occluders)
    else:
        cands = [d / "occluders", lfw.parent.parent.parent / "occluders"]
        occ = next((c for c in cands if c.is_dir()), None)
    return lfw, occ


def list_photos(lfw_dir, split: str) -> list[Path]:
    """The photos of a split, sorted by identity then file name."""
    letters = SPLITS[split]
    root = Path(lfw_dir)
    return sorted(p for person in root.iterdir() if person.is_dir() and person.name[:1] in letters
                  for p in person.glob("*.jpg"))


# ----------------------------------------------------------------------------- clean crops
_DETECTOR = None


def prepare_photo(path) -> dict | None:
    """Crop + mesh + labels of one photo exactly as at inference; ``None`` when no face/mesh."""
    global _DETECTOR
    from ...detection.crop import aligned_crop
    from ...detection.mediapipe_detector import MediaPipeFaceDetector
    from ...errors import OccguiError
    from ...imageio import load_image
    from ...landmarks.correspondence import mesh_to_ibug68
    from ...parsing.labelgen import crop_mesh, generate_labels

    if _DETECTOR is None:
        _DETECTOR = MediaPipeFaceDetector()
    try:
        img = load_image(path)
        faces = sorted(_DETECTOR.detect(img.rgb), key=lambda d: -d.area)
        if not faces:
            return None
        crop = aligned_crop(img.rgb, faces[0], CROP_SIZE).image
        mesh = crop_mesh(crop)
        lab = generate_labels(crop, mesh)
    except OccguiError:
        return None
    return {"crop": crop, "labels": lab, "mesh": mesh.astype(np.float32),
            "lmk68": mesh_to_ibug68(mesh).astype(np.float32)}


def _init_worker():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cv2.setNumThreads(1)


@dataclass
class CleanSet:
    """Clean crops (N,256,256,3 uint8), labels (N,256,256 uint8), landmarks (N,68,2), mesh (N,478,3)."""

    crops: np.ndarray
    labels: np.ndarray
    lmk68: np.ndarray
    mesh: np.ndarray
    names: list[str]
    #: the cache folder the arrays are memory-mapped from (``load_clean_set``), else None
    source: str | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __reduce__(self):
        # a cached set travels to another process as its folder (re-mapped there), not as a copy
        if self.source is not None:
            return load_clean_set, (self.source,)
        return CleanSet, (self.crops, self.labels, self.lmk68, self.mesh, self.names)

    def subset(self, idx) -> "CleanSet":
        idx = np.asarray(idx, dtype=np.int64)
        return CleanSet(self.crops[idx], self.labels[idx], self.lmk68[idx], self.mesh[idx],
                        [self.names[i] for i in idx])


def clean_set_from_photos(paths, progress: bool = False) -> CleanSet:
    """Build a (small) clean set in memory, in this process."""
    items, names = [], []
    it = paths
    if progress:
        from tqdm import tqdm
        it = tqdm(paths, desc="labels", unit="photo")
    for p in it:
        r = prepare_photo(p)
        if r is not None:
            items.append(r)
            names.append(f"{Path(p).parent.name}/{Path(p).name}")
    if not items:
        raise RuntimeError("no usable face in the given photos")
    return CleanSet(np.stack([r["crop"] for r in items]), np.stack([r["labels"] for r in items]),
                    np.stack([r["lmk68"] for r in items]), np.stack([r["mesh"] for r in items]), names)


def cache_folder(cache_dir, split: str, limit: int | None = None, sample: int | None = None) -> Path:
    """Cache folder of a split's clean set (a ``limit``-ed or ``sample``-d set gets its own folder)."""
    tail = "" if limit is None else f"_first{int(limit)}"
    tail += "" if sample is None else f"_sample{int(sample)}"
    return Path(cache_dir) / f"parsing_lfw_{split}_v{LABELGEN_VERSION}_{CROP_SIZE}{tail}"


def listed_occluded(lfw_dir) -> set[str]:
    """``person/file.jpg`` of the photos in ``natural_occlusions.csv`` next to the LFW folder (empty
    when absent): real occlusions, whose generated labels would call the occluder face."""
    import csv

    path = Path(lfw_dir).parent / "natural_occlusions.csv"
    if not path.is_file():
        return set()
    with open(path, newline="", encoding="utf-8") as fh:
        return {"/".join(Path(row["path"]).parts[-2:]) for row in csv.DictReader(fh) if row.get("path")}


def build_clean_set(lfw_dir, cache_dir, split: str, *, workers: int = 2, progress: bool = True,
                    limit: int | None = None, sample: int | None = None) -> CleanSet:
    """Load the cached clean set of ``split``, building it first (in ``workers`` processes) when absent.

    ``limit``: the first N photos; ``sample``: a seeded spread of N photos (seed 12345) that leaves
    out the photos listed in ``natural_occlusions.csv`` (a short fine-tune's set)."""
    folder = cache_folder(cache_dir, split, limit, sample)
    meta_path = folder / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("complete") and meta.get("version") == LABELGEN_VERSION and meta.get("limit") == limit \
                and meta.get("sample") == sample:
            return load_clean_set(folder)
    paths = list_photos(lfw_dir, split)
    if limit is not None:
        paths = paths[:limit]
    if sample is not None:
        listed = listed_occluded(lfw_dir)
        paths = [p for p in paths if f"{p.parent.name}/{p.name}" not in listed]
        pick = np.random.default_rng(12345).choice(len(paths), size=min(int(sample), len(paths)), replace=False)
        paths = [paths[k] for k in np.sort(pick)]
    folder.mkdir(parents=True, exist_ok=True)
    n = len(paths)
    arrays = {
        "crops": np.lib.format.open_memmap(folder / "crops.npy", "w+", np.uint8, (n, CROP_SIZE, CROP_SIZE, 3)),
        "labels": np.lib.format.open_memmap(folder / "labels.npy", "w+", np.uint8, (n, CROP_SIZE, CROP_SIZE)),
        "lmk68": np.lib.format.open_memmap(folder / "lmk68.npy", "w+", np.float32, (n, 68, 2)),
        "mesh": np.lib.format.open_memmap(folder / "mesh.npy", "w+", np.float32, (n, 478, 3)),
    }
    names, failed = [], []

    def consume(it):
        if progress:
            from tqdm import tqdm
            it = tqdm(it, total=n, desc=f"clean {split} set", unit="photo")
        for p, r in zip(paths, it):
            rel = f"{p.parent.name}/{p.name}"
            if r is None:
                failed.append(rel)
                continue
            k = len(names)
            for key, arr in arrays.items():
                arr[k] = r["crop" if key == "crops" else key]
            names.append(rel)

    if workers <= 1:
        consume(map(prepare_photo, paths))
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            consume(pool.imap(prepare_photo, [str(p) for p in paths], chunksize=8))
    for arr in arrays.values():
        arr.flush()
    meta = {"version": LABELGEN_VERSION, "split": split, "identities": SPLITS[split], "count": len(names),
            "photos": names, "failed": failed, "limit": limit, "sample": sample, "complete": True}
    meta_path.write_text(json.dumps(meta))
    return load_clean_set(folder)


def load_clean_set(folder) -> CleanSet:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    n = meta["count"]
    ld = lambda k: np.load(folder / f"{k}.npy", mmap_mode="r")[:n]  # noqa: E731
    return CleanSet(ld("crops"), ld("labels"), ld("lmk68"), ld("mesh"), list(meta["photos"]), source=str(folder))


# ----------------------------------------------------------------------------- occluded samples
def occlude_sample(rng: np.random.Generator, crop: np.ndarray, labels: np.ndarray, lmk68: np.ndarray,
                   library, count: int, family_weights: dict | None = None, kind_weights: dict | None = None):
    """Paste ``count`` occluders; the paste masks become the occluder class. Returns (rgb, labels, placements)."""
    from ..occlusion.occluders import occlude

    if count <= 0 or not len(library):
        return np.asarray(crop).copy(), np.asarray(labels).copy(), []
    rgb, mask, placements = occlude(rng, crop, lmk68, library, count=count, family_weights=family_weights,
                                    kind_weights=kind_weights)
    lab = np.asarray(labels).copy()
    lab[mask] = L.OCCLUDER
    return rgb, lab, placements


def _augment(rng: np.random.Generator, rgb: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alignment jitter (similarity warp), mirror, photometric jitter, blur, noise, JPEG."""
    s = rgb.shape[0]
    if rng.random() < 0.8:
        ang, sc = rng.uniform(-10, 10), np.exp(rng.uniform(-0.1, 0.1))
        m = cv2.getRotationMatrix2D((s / 2, s / 2), ang, sc)
        m[:, 2] += rng.uniform(-0.04, 0.04, size=2) * s
        rgb = cv2.warpAffine(rgb, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lab = cv2.warpAffine(lab, m, (s, s), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        rgb, lab = rgb[:, ::-1], L.MIRROR[lab[:, ::-1]]
    x = rgb.astype(np.float32)
    if rng.random() < 0.8:
        x = (x - x.mean()) * rng.uniform(0.7, 1.3) + x.mean() * rng.uniform(0.7, 1.3)
        gray = x.mean(axis=2, keepdims=True)
        x = gray + (x - gray) * (0.0 if rng.random() < 0.05 else rng.uniform(0.6, 1.4))
        x = x * rng.uniform(0.92, 1.08, size=3)
    if rng.random() < 0.2:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(1, 6), size=x.shape).astype(np.float32)
    out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        out = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(out), np.ascontiguousarray(lab)


def soft_labels(labels: np.ndarray, size: int, num_classes: int = L.NUM_CLASSES) -> np.ndarray:
    """``HxW`` label ids -> ``(C, size, size)`` float16 class fractions (area-averaged one-hot).

    The targets of N_alpha's loss at its input resolution. They are aligned with the input image,
    which is area-resized the same way (``resize_input``). Nearest-neighbour label resizing would
    shift every label by half a 256 px pixel towards the top-left: a perfect predictor of such
    labels reaches only about 0.81 IoU on the brows and eyes at 128 px, against 0.96 with these.
    """
    lab = np.asarray(labels)
    onehot = (lab[:, :, None] == np.arange(num_classes, dtype=lab.dtype)).astype(np.float32)
    if lab.shape[0] == size:
        out = onehot
    elif lab.shape[0] % size == 0:
        k = lab.shape[0] // size
        out = onehot.reshape(size, k, size, k, num_classes).mean(axis=(1, 3))
    else:  # OpenCV's area resize takes at most 4 channels at a time
        out = np.concatenate([cv2.resize(np.ascontiguousarray(onehot[:, :, c:c + 4]), (size, size),
                                         interpolation=cv2.INTER_AREA).reshape(size, size, -1)
                              for c in range(0, num_classes, 4)], axis=2)
    return np.ascontiguousarray(out.transpose(2, 0, 1)).astype(np.float16)


class OcclusionSampler:
    """Seeded training batches: clean crop -> 0..2 occluders -> augmentation -> (input, labels).

    ``batch(step, n)`` depends only on ``(seed, step)``: the image indices, occluders,
    placements and augmentations all come from ``np.random.default_rng([seed, step])``.
    Inputs are resized to ``input_size``; labels to ``label_size`` (default: the same), either as
    ids (nearest resize) or, with ``soft=True``, as ``(C, s, s)`` class fractions (:func:`soft_labels`).
    """

    def __init__(self, clean: CleanSet, library, *, seed: int, input_size: int, label_size: int | None = None,
                 p_clean: float = 0.15, p_two: float = 0.25, augment: bool = True, soft: bool = False):
        self.clean, self.library, self.seed = clean, library, int(seed)
        self.input_size, self.p_clean, self.p_two, self.augment = int(input_size), p_clean, p_two, augment
        self.label_size = int(label_size or input_size)
        self.soft = bool(soft)

    def sample(self, rng: np.random.Generator, i: int) -> tuple[np.ndarray, np.ndarray]:
        u = rng.random()
        count = 0 if u < self.p_clean else 2 if u > 1 - self.p_two else 1
        rgb, lab, _ = occlude_sample(rng, self.clean.crops[i], self.clean.labels[i], self.clean.lmk68[i],
                                     self.library, count, FAMILY_WEIGHTS, TRAIN_KIND_WEIGHTS)
        return self._finish(rng, rgb, lab)

    def _finish(self, rng: np.random.Generator, rgb: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augment (when on) and bring an occluded crop and its labels to the network's sizes."""
        if self.augment:
            rgb, lab = _augment(rng, rgb, lab)
        if self.soft:
            return resize_input(rgb, self.input_size), soft_labels(lab, self.label_size)
        if lab.shape[0] != self.label_size:
            lab = cv2.resize(lab, (self.label_size, self.label_size), interpolation=cv2.INTER_NEAREST)
        return resize_input(rgb, self.input_size), lab

    def batch(self, step: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(step)])
        idx = rng.integers(len(self.clean), size=n)
        xs, ys = zip(*(self.sample(rng, int(i)) for i in idx))
        return np.stack(xs), np.stack(ys)
