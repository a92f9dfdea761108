"""FISN's training pairs: LFW identities A-P, occluders pasted, the product's stages up to M_gamma.

One pair (:func:`make_pair`), all in the 256 px crop frame of the *occluded* photo:

1. the clean photo goes through the pipeline (``Pipeline.run(stop_after="landmarks")``); its 68
   points place 1 (or, with probability :data:`P_TWO`, 2) occluders drawn from every training
   family -- the emoji hands and objects, MaskTheFace masks and the procedural skin-tinted hands,
   with the parser's training weights (``FAMILY_WEIGHTS``, ``TRAIN_KIND_WEIGHTS``; the kinds held
   out of the parser's training are left out here too) -- pasted onto the *photo*;
2. the occluded photo goes through the pipeline up to ``merge``: its crop is I_fac, M_alpha comes
   from the shipped parser, M_gamma from landmarks + Algorithm 1 exactly as the product computes them;
3. the clean photo is cut with the occluded photo's crop transform: the target.

Pairs whose M_alpha finds less than :data:`MIN_HOLE_PX` occluder pixels are skipped (nothing to
re-synthesize). Splits: the A-P identities are sorted and every 25th goes to ``val`` (validation
grids), the rest to ``train``; Q-S stay for the evaluation. The pairs are stored as memory-mapped
``.npy`` arrays in a cache folder keyed by split, count and seed; ``--resume`` and every later run
reuse them.

Batches (:class:`PairSampler`): step ``t`` draws from ``default_rng([seed, t])`` (the pair
indices and a horizontal flip, labels and landmarks mirrored), so a run is reproducible and
resumable. The crops are brought to the network's resolution as at inference
(``occgui.synthesis.fisn.composite.network_inputs``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import labels as L
from ...synthesis.fisn.composite import hole_mask, image_to_network, network_inputs
from ..occlusion.occluders import load_library, occlude, procedural_hand_library
from ..parsing.dataset import (
    FAMILY_WEIGHTS,
    HELDOUT_KINDS,
    SPLITS,
    TRAIN_HAND_SEED,
    TRAIN_KIND_WEIGHTS,
)

CROP_SIZE = 256
#: Bump when a pair's definition changes: caches of another version are rebuilt.
PAIRS_VERSION = 1
#: Probability of two occluders on one photo.
P_TWO = 0.2
#: Pairs whose hole (M_alpha's occluder, dilated) is smaller than this are skipped.
MIN_HOLE_PX = 150
#: Every VAL_EVERY-th A-P identity (sorted) is a validation identity.
VAL_EVERY = 25
#: Procedural hands added to the occluder library.
PROCEDURAL_HANDS = 48


def split_identities(lfw_dir, split: str) -> list[Path]:
    """The identity folders of ``train`` or ``val`` (both inside the parser's training letters A-P)."""
    root = Path(lfw_dir)
    people = sorted(p for p in root.iterdir() if p.is_dir() and p.name[:1] in SPLITS["train"])
    if split == "val":
        return people[::VAL_EVERY]
    if split == "train":
        return [p for i, p in enumerate(people) if i % VAL_EVERY]
    raise ValueError(f"unknown split {split!r} (train or val)")


def photo_order(lfw_dir, split: str, seed: int) -> list[Path]:
    """Every photo of the split in a seeded order: one photo per identity first (identities
    shuffled), then a second round, and so on -- the first pairs span as many people as possible."""
    rng = np.random.default_rng([seed, 7])
    rounds: list[list[Path]] = []
    for person in split_identities(lfw_dir, split):
        files = sorted(person.glob("*.jpg"))
        files = [files[i] for i in rng.permutation(len(files))]
        for r, f in enumerate(files):
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(f)
    out = []
    for r in rounds:
        out += [r[i] for i in rng.permutation(len(r))]
    return out


def training_library(occluders_dir):
    """Every training occluder: the image library minus the held-out kinds, plus procedural hands."""
    lib = load_library(occluders_dir).filter(exclude_kinds=HELDOUT_KINDS)
    return lib.merged(procedural_hand_library(PROCEDURAL_HANDS, seed=TRAIN_HAND_SEED))


@dataclass
class Pair:
    occluded: np.ndarray     # 256x256x3 uint8, I_fac
    clean: np.ndarray        # 256x256x3 uint8, the target in the same frame
    alpha: np.ndarray        # 256x256 uint8, M_alpha
    gamma: np.ndarray        # 256x256 uint8, M_gamma
    landmarks: np.ndarray    # (68, 2) float32, crop pixels (the landmark stage on I_fac)
    paste: np.ndarray        # 256x256 bool, the true occluder
    families: tuple[str, ...]


def make_pair(pipeline, library, rgb: np.ndarray, rng: np.random.Generator) -> Pair | None:
    """One training pair from a clean photo (see the module docstring); None when it fails."""
    from ...detection.crop import warp_to_crop
    from ...errors import OccguiError

    try:
        r0 = pipeline.run(rgb, stop_after="landmarks")
        pts = r0.crop.crop_to_working(r0.landmarks.points)
        count = 2 if rng.random() < P_TWO else 1
        occluded, paste, placements = occlude(rng, r0.image.rgb, pts, library, count=count,
                                              family_weights=FAMILY_WEIGHTS, kind_weights=TRAIN_KIND_WEIGHTS)
        r1 = pipeline.run(occluded, stop_after="merge")
    except OccguiError:
        return None
    if r1.crop.size != CROP_SIZE:
        raise ValueError(f"the pipeline's crop is {r1.crop.size} px, FISN's pairs are made at {CROP_SIZE}")
    alpha = np.asarray(r1.alpha.labels, np.uint8)
    if hole_mask(alpha).sum() < MIN_HOLE_PX:
        return None
    clean = warp_to_crop(r0.image.rgb, r1.crop.to_crop, CROP_SIZE)
    paste_c = warp_to_crop(paste.astype(np.float32), r1.crop.to_crop, CROP_SIZE) >= 0.5
    fams = tuple(library.get(p.occluder).family for p in placements)
    return Pair(r1.crop.image, clean, alpha, np.asarray(r1.gamma.labels, np.uint8),
                np.asarray(r1.landmarks.points, np.float32), paste_c, fams)


@dataclass
class PairSet:
    """Pairs as arrays (memory-mapped when loaded from a cache folder)."""

    occluded: np.ndarray     # (N, 256, 256, 3) uint8
    clean: np.ndarray        # (N, 256, 256, 3) uint8
    alpha: np.ndarray        # (N, 256, 256) uint8
    gamma: np.ndarray        # (N, 256, 256) uint8
    landmarks: np.ndarray    # (N, 68, 2) float32
    paste: np.ndarray        # (N, 256, 256) bool
    names: list[str]
    families: list[str]      # "+"-joined families per pair

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_pairs(cls, pairs: list[Pair], names: list[str]) -> PairSet:
        return cls(*(np.stack([getattr(p, k) for p in pairs]) for k in
                     ("occluded", "clean", "alpha", "gamma", "landmarks", "paste")),
                   names=list(names), families=["+".join(p.families) for p in pairs])


_ARRAYS = {"occluded": (np.uint8, (CROP_SIZE, CROP_SIZE, 3)), "clean": (np.uint8, (CROP_SIZE, CROP_SIZE, 3)),
           "alpha": (np.uint8, (CROP_SIZE, CROP_SIZE)), "gamma": (np.uint8, (CROP_SIZE, CROP_SIZE)),
           "landmarks": (np.float32, (68, 2)), "paste": (np.bool_, (CROP_SIZE, CROP_SIZE))}


def cache_folder(cache_dir, split: str, count: int, seed: int) -> Path:
    return Path(cache_dir) / f"fisn_pairs_v{PAIRS_VERSION}_{split}_{int(count)}_seed{int(seed)}"


def load_pairs(folder) -> PairSet:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    n = meta["count"]
    arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r")[:n] for k in _ARRAYS}
    return PairSet(**arrays, names=list(meta["names"]), families=list(meta["families"]))


def save_pairs(folder, pairs: PairSet, **meta) -> Path:
    """Write ``pairs`` in the cache layout (``load_pairs`` / ``--pairs-dir`` read it), e.g. to carry
    prepared pairs to a GPU machine that has no ``../shared``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, (dt, shape) in _ARRAYS.items():
        arr = np.asarray(getattr(pairs, k), dtype=dt)
        if arr.shape[1:] != shape:
            raise ValueError(f"pairs.{k} has shape {arr.shape}, expected (N, {', '.join(map(str, shape))})")
        np.save(folder / f"{k}.npy", arr)
    info = {"version": PAIRS_VERSION, "count": len(pairs), "names": list(pairs.names),
            "families": list(pairs.families), "complete": True, **meta}
    (folder / "meta.json").write_text(json.dumps(info))
    return folder


def build_pairs(lfw_dir, occluders_dir, cache_dir, split: str, count: int, *, seed: int = 0,
                progress: bool = True, pipeline=None) -> PairSet:
    """Load the cached pairs of ``split``, making them first when absent (``count`` pairs, or fewer
    when the split runs out of photos). Photo ``k`` draws its occluders from
    ``default_rng([seed, split, k])``."""
    folder = cache_folder(cache_dir, split, count, seed)
    meta_path = folder / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("complete") and meta.get("version") == PAIRS_VERSION:
            return load_pairs(folder)
    if pipeline is None:
        from ...pipeline.runner import Pipeline, PipelineConfig

        pipeline = Pipeline(PipelineConfig(device="cpu", crop_size=CROP_SIZE))
    from ...imageio import load_image

    library = training_library(occluders_dir)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.lib.format.open_memmap(folder / f"{k}.npy", "w+", dt, (count, *shape))
              for k, (dt, shape) in _ARRAYS.items()}
    names, families, failed = [], [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=count, desc=f"FISN {split} pairs", unit="pair")
    split_id = 0 if split == "train" else 1
    for k, photo in enumerate(photo_order(lfw_dir, split, seed)):
        if len(names) >= count:
            break
        rel = f"{photo.parent.name}/{photo.name}"
        pair = make_pair(pipeline, library, load_image(photo).rgb, np.random.default_rng([seed, split_id, k]))
        if pair is None:
            failed.append(rel)
            continue
        i = len(names)
        for key in _ARRAYS:
            arrays[key][i] = getattr(pair, key)
        names.append(rel)
        families.append("+".join(pair.families))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not names:
        raise RuntimeError(f"no FISN pair could be made from the {split} photos")
    for a in arrays.values():
        a.flush()
    meta = {"version": PAIRS_VERSION, "split": split, "seed": seed, "count": len(names), "requested": count,
            "names": names, "families": families, "failed": failed, "complete": True}
    meta_path.write_text(json.dumps(meta))
    return load_pairs(folder)


# ----------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """Generator inputs and targets at the network's resolution (torch tensors)."""

    masked: torch.Tensor      # (B, 3, R, R) I_fac in [-1, 1], 0 in the hole  # noqa: F821
    hole: torch.Tensor        # (B, 1, R, R) 0/1  # noqa: F821
    alpha: torch.Tensor       # (B, J, R, R) class fractions  # noqa: F821
    gamma: torch.Tensor       # (B, J, R, R)  # noqa: F821
    target: torch.Tensor      # (B, 3, R, R) the clean face in [-1, 1]  # noqa: F821
    chip: torch.Tensor        # (B, 2, 3) chip -> image affines (network pixels) for dlib's chips  # noqa: F821

    def to(self, device, memory_format=None) -> Batch:

        def mv(t):
            t = t.to(device)
            return t.contiguous(memory_format=memory_format) if memory_format is not None and t.ndim == 4 else t
        return Batch(**{k: mv(getattr(self, k)) for k in self.__dataclass_fields__})

    def real(self):
        """The clean face inside the hole, the occluded photo elsewhere (what D calls real)."""
        return self.hole * self.target + self.masked


def chip_affine(landmarks_crop: np.ndarray, size: int) -> np.ndarray:
    """dlib's chip -> image affine at the network's resolution from 68 crop-pixel landmarks."""
    from ...identity import face_chip_affine, face_chip_details, five_points_from_68

    pts = (np.asarray(landmarks_crop, np.float64) + 0.5) * (size / CROP_SIZE) - 0.5
    return face_chip_affine(face_chip_details(five_points_from_68(pts))).astype(np.float32)


def sample_arrays(pairs: PairSet, i: int, size: int, flip: bool) -> dict[str, np.ndarray]:
    """One pair at the network's resolution (numpy), optionally mirrored left-right."""
    from ...landmarks import ibug68

    occ, clean = np.asarray(pairs.occluded[i]), np.asarray(pairs.clean[i])
    alpha, gamma = np.asarray(pairs.alpha[i]), np.asarray(pairs.gamma[i])
    lmk = np.asarray(pairs.landmarks[i], np.float64)
    if flip:
        occ, clean = occ[:, ::-1], clean[:, ::-1]
        alpha, gamma = L.MIRROR[alpha[:, ::-1]], L.MIRROR[gamma[:, ::-1]]
        lmk = np.stack([CROP_SIZE - 1 - lmk[:, 0], lmk[:, 1]], axis=1)[ibug68.MIRROR]
    x = network_inputs(np.ascontiguousarray(occ), np.ascontiguousarray(alpha), np.ascontiguousarray(gamma), size)
    return {"masked": x.masked, "hole": x.hole, "alpha": x.alpha, "gamma": x.gamma,
            "target": image_to_network(np.ascontiguousarray(clean), size), "chip": chip_affine(lmk, size)}


class PairSampler:
    """Seeded batches: ``batch(step, n)`` depends only on ``(seed, step)``."""

    def __init__(self, pairs: PairSet, size: int, seed: int, flip: bool = True):
        self.pairs, self.size, self.seed, self.flip = pairs, int(size), int(seed), bool(flip)

    def collate(self, items: list[dict]) -> Batch:
        import torch

        return Batch(**{k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]})

    def batch(self, step: int, n: int) -> Batch:
        rng = np.random.default_rng([self.seed, int(step)])
        idx = rng.integers(len(self.pairs), size=n)
        flips = rng.random(n) < 0.5
        return self.collate([sample_arrays(self.pairs, int(i), self.size, self.flip and bool(f))
                             for i, f in zip(idx, flips)])

    def fixed(self, indices) -> Batch:
        """The given pairs, unflipped (validation)."""
        return self.collate([sample_arrays(self.pairs, int(i), self.size, False) for i in indices])
