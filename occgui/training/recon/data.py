"""The R-Net's training samples: LFW identities A-P, targets distilled from per-photo fits.

For one clean photo (:func:`make_samples`):

1. the photo goes through the product's pipeline up to ``synthesize`` and the morphable model is
   fitted to it (:class:`occgui.morphable.fit.MorphableFitter`, default :class:`FitSettings`, the
   landmark initialisation): the fit's coefficients are the **target** of every sample of the photo;
2. sample ``clean``: the input is that run's I_out (the crop the fit saw), the target the fit with
   its pose in the crop's pixels;
3. ``variants`` occluded samples: occluders from every training family (the parser's weights and
   held-out kinds, as FISN's pairs, :func:`occgui.training.fisn.data.training_library`) are pasted
   onto the photo, the occluded photo goes through the pipeline up to ``synthesize`` (its own
   detection, landmarks, M_alpha, M_gamma, I_out, as the product would compute them) and the input
   is its I_out. The target is the *clean* fit, its pose carried into the occluded run's crop
   frame (:func:`transform_pose`: the two crops are similarities of the same working image).

So the R-Net learns to predict the clean face's coefficients from a de-occluded crop. The pose is
stored in unit-crop form (:func:`occgui.morphable.regressor.pose_to_unit`), inputs as
``STORE_SIZE``² uint8. Fits whose landmark reprojection error exceeds :data:`MAX_FIT_NME`
inter-ocular distances are dropped (a failed fit is no target).

Splits as FISN's (:func:`occgui.training.fisn.data.split_identities`): A-P identities sorted, every
25th is validation, Q-S are never read here. The cache folder holds fixed-capacity ``.npy``
memmaps and a ``meta.json`` written every few photos: an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...morphable.camera import Pose
from ...morphable.init import angles_from_rotation

#: Bump when a sample's definition changes: caches of another version are rebuilt.
SAMPLES_VERSION = 1
CROP_SIZE = 256
#: Side of the stored inputs (the network's input is resampled from them).
STORE_SIZE = 128
#: Fits worse than this landmark NME (inter-ocular) are no target.
MAX_FIT_NME = 0.08
#: Probability of two occluders on one occluded variant.
P_TWO = 0.2
SAVE_EVERY = 5


def transform_pose(pose: Pose, affine: np.ndarray) -> Pose:
    """The pose that projects the model as ``pose`` followed by the 2-D similarity ``affine``
    ((2, 3), image axes, y down): scale times the similarity's scale, the rotation composed with its
    in-plane rotation, the translation mapped."""
    a = np.asarray(affine, np.float64)
    s = float(np.sqrt(abs(np.linalg.det(a[:, :2]))))
    flip = np.diag([1.0, -1.0])
    rz = np.eye(3)
    rz[:2, :2] = flip @ (a[:, :2] / s) @ flip
    pitch, yaw, roll = angles_from_rotation(rz @ pose.rotation())
    tx, ty = a @ np.array([pose.tx, pose.ty, 1.0])
    return Pose(pitch, yaw, roll, s * pose.scale, float(tx), float(ty))


def compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """(2, 3) affine ``then ∘ first``."""
    a = np.vstack([np.asarray(first, np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(then, np.float64), [0.0, 0.0, 1.0]])
    return (b @ a)[:2]


def resize_input(crop: np.ndarray, size: int = STORE_SIZE) -> np.ndarray:
    import cv2

    return cv2.resize(np.asarray(crop)[:, :, :3], (size, size), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Sample:
    image: np.ndarray        # STORE_SIZE² x 3 uint8, I_out of the (clean or occluded) run
    target: np.ndarray       # (layout.size,) float32, the clean fit, unit-crop pose in this crop's frame
    landmarks: np.ndarray    # (68, 2) float32, this run's landmarks in unit-crop coordinates
    variant: str             # "clean" or the "+"-joined occluder families


def _unit_points(points: np.ndarray, size: float) -> np.ndarray:
    return ((np.asarray(points, np.float64) + 0.5) / size).astype(np.float32)


def make_samples(pipeline, fitter, library, rgb: np.ndarray, rng: np.random.Generator, variants: int
                 ) -> tuple[list[Sample], float] | None:
    """The samples of one clean photo (see the module docstring) and the fit's landmark NME;
    None when the clean run or its fit fails."""
    from ...errors import OccguiError
    from ...morphable.fit import FitTarget
    from ...morphable.regressor import pose_to_unit
    from ..occlusion.occluders import occlude
    from ..parsing.dataset import FAMILY_WEIGHTS, TRAIN_KIND_WEIGHTS

    try:
        r0 = pipeline.run(rgb, stop_after="synthesize")
    except OccguiError:
        return None
    target = FitTarget.from_pipeline(r0.synthesis, r0.landmarks, r0.gamma, r0.alpha)
    fit = fitter.fit(target)
    nme = fit.landmark_error(target.landmarks)
    if not np.isfinite(nme) or nme > MAX_FIT_NME:
        return None
    coeffs = fit.coefficients
    layout = fitter.layout
    s0 = r0.crop.size
    vec = coeffs.to_vector()
    out = [Sample(resize_input(r0.synthesis.image), pose_to_unit(vec, layout, s0).astype(np.float32),
                  _unit_points(r0.landmarks.points, s0), "clean")]
    pts = r0.crop.crop_to_working(r0.landmarks.points)
    p0 = layout.slices()["pose"].start
    for _ in range(variants):
        count = 2 if rng.random() < P_TWO else 1
        try:
            occluded, _paste, placements = occlude(rng, r0.image.rgb, pts, library, count=count,
                                                   family_weights=FAMILY_WEIGHTS, kind_weights=TRAIN_KIND_WEIGHTS)
            r1 = pipeline.run(occluded, stop_after="synthesize")
        except OccguiError:
            continue
        pose = transform_pose(coeffs.pose, compose(r0.crop.from_crop, r1.crop.to_crop))
        v = vec.copy()
        v[p0:p0 + 6] = pose.as_array()
        fams = "+".join(library.get(p.occluder).family for p in placements)
        out.append(Sample(resize_input(r1.synthesis.image), pose_to_unit(v, layout, r1.crop.size).astype(np.float32),
                          _unit_points(r1.landmarks.points, r1.crop.size), fams))
    return out, nme


@dataclass
class SampleSet:
    """Samples as arrays (memory-mapped when loaded from a cache folder)."""

    images: np.ndarray       # (N, STORE_SIZE, STORE_SIZE, 3) uint8
    targets: np.ndarray      # (N, layout.size) float32
    landmarks: np.ndarray    # (N, 68, 2) float32 unit-crop
    photo: np.ndarray        # (N,) int32: index of the source photo in ``names``
    names: list[str]         # source photos (identity/file)
    variants: list[str]      # per sample
    layout: tuple[int, int, int]
    model: str

    def __len__(self) -> int:
        return len(self.variants)

    def subset(self, idx) -> "SampleSet":
        idx = np.asarray(idx, np.int64)
        return SampleSet(np.asarray(self.images[idx]), np.asarray(self.targets[idx]),
                         np.asarray(self.landmarks[idx]), np.asarray(self.photo[idx]), list(self.names),
                         [self.variants[i] for i in idx], self.layout, self.model)


def cache_folder(cache_dir, split: str, photos: int, variants: int, seed: int) -> Path:
    return Path(cache_dir) / f"recon_samples_v{SAMPLES_VERSION}_{split}_{int(photos)}x{int(variants)}_seed{int(seed)}"


def _arrays_spec(n_out: int) -> dict:
    return {"images": (np.uint8, (STORE_SIZE, STORE_SIZE, 3)), "targets": (np.float32, (n_out,)),
            "landmarks": (np.float32, (68, 2)), "photo": (np.int32, ())}


def load_samples(folder) -> SampleSet:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    n = int(meta["count"])
    arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r")[:n] for k in ("images", "targets", "landmarks", "photo")}
    return SampleSet(**arrays, names=list(meta["names"]), variants=list(meta["variants"])[:n],
                     layout=tuple(meta["layout"]), model=str(meta["model"]))


def save_samples(folder, samples: SampleSet, **meta) -> Path:
    """Write ``samples`` in the cache layout (``load_samples`` / ``--samples-dir`` read it), e.g.
    to carry prepared samples to another machine."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_out = int(np.asarray(samples.targets).shape[1])
    for k, (dt, shape) in _arrays_spec(n_out).items():
        arr = np.asarray(getattr(samples, k), dtype=dt)
        if arr.shape[1:] != shape or len(arr) != len(samples):
            raise ValueError(f"samples.{k} has shape {arr.shape}, expected ({len(samples)}, {shape})")
        np.save(folder / f"{k}.npy", arr)
    info = {"version": SAMPLES_VERSION, "count": len(samples), "names": list(samples.names),
            "variants": list(samples.variants), "layout": list(samples.layout), "model": samples.model,
            "complete": True, **meta}
    (folder / "meta.json").write_text(json.dumps(info))
    return folder


def build_samples(lfw_dir, occluders_dir, cache_dir, split: str, photos: int, *, variants: int = 2, seed: int = 0,
                  progress: bool = True, pipeline=None, model=None, max_minutes: float | None = None) -> SampleSet:
    """Load the cached samples of ``split``, making (or resuming) them first: ``photos`` clean
    photos of the split (FISN's seeded order, one photo per identity first), each giving 1 +
    ``variants`` samples. Photo ``k`` draws its occluders from ``default_rng([seed, split, k])``.
    ``max_minutes`` stops early (the cache stays resumable); the samples made so far are returned."""
    from ...morphable import load_default_model
    from ...morphable.coefficients import CoefficientLayout
    from ...morphable.fit import MorphableFitter
    from ..fisn.data import photo_order, training_library

    model = model or load_default_model()
    layout = CoefficientLayout.of(model)
    folder = cache_folder(cache_dir, split, photos, variants, seed)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta is not None and (meta.get("version") != SAMPLES_VERSION or meta.get("model") != model.name):
        meta = None
    if meta is not None and meta.get("complete"):
        return load_samples(folder)
    capacity = int(photos) * (1 + int(variants))
    spec = _arrays_spec(layout.size)
    folder.mkdir(parents=True, exist_ok=True)
    mode = "r+" if meta is not None else "w+"
    arrays = {k: np.lib.format.open_memmap(folder / f"{k}.npy", mode, dt, (capacity, *shape))
              for k, (dt, shape) in spec.items()}
    if meta is None:
        meta = {"version": SAMPLES_VERSION, "split": split, "seed": seed, "photos_requested": photos,
                "variants_per_photo": variants, "model": model.name,
                "layout": [layout.num_identity, layout.num_expression, layout.num_albedo],
                "count": 0, "next_photo": 0, "names": [], "variants": [], "fit_nme": [], "failed": [],
                "seconds": 0.0, "complete": False}
    if pipeline is None:
        from ...pipeline.runner import Pipeline, PipelineConfig

        pipeline = Pipeline(PipelineConfig(device="cpu", crop_size=CROP_SIZE))
    fitter = MorphableFitter(model)
    library = training_library(occluders_dir)
    order = photo_order(lfw_dir, split, seed)
    split_id = 0 if split == "train" else 1
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=photos, initial=len(meta["names"]), desc=f"R-Net {split} photos", unit="photo")
    t0, seconds0 = time.monotonic(), float(meta["seconds"])

    def save() -> None:
        for a in arrays.values():
            a.flush()
        meta["seconds"] = round(seconds0 + time.monotonic() - t0, 1)
        tmp = meta_path.with_name("meta.json.tmp")
        tmp.write_text(json.dumps(meta))
        tmp.replace(meta_path)

    from ...imageio import load_image

    k = int(meta["next_photo"])
    stopped = False
    while len(meta["names"]) < photos and k < len(order):
        if max_minutes is not None and time.monotonic() - t0 > max_minutes * 60:
            stopped = True
            break
        photo = order[k]
        rel = f"{photo.parent.name}/{photo.name}"
        made = make_samples(pipeline, fitter, library, load_image(photo).rgb,
                            np.random.default_rng([seed, split_id, k]), variants)
        k += 1
        meta["next_photo"] = k
        if made is None:
            meta["failed"].append(rel)
            continue
        samples, nme = made
        pi = len(meta["names"])
        meta["names"].append(rel)
        meta["fit_nme"].append(round(float(nme), 5))
        for s in samples:
            i = meta["count"]
            arrays["images"][i] = s.image
            arrays["targets"][i] = s.target
            arrays["landmarks"][i] = s.landmarks
            arrays["photo"][i] = pi
            meta["variants"].append(s.variant)
            meta["count"] = i + 1
        if bar is not None:
            bar.update(1)
        if len(meta["names"]) % SAVE_EVERY == 0:
            save()
    if bar is not None:
        bar.close()
    if not stopped:
        meta["complete"] = True
    save()
    if not meta["count"]:
        raise RuntimeError(f"no R-Net sample could be made from the {split} photos")
    return load_samples(folder)
