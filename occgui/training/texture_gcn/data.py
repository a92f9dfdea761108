"""Training samples of the texture GCN: LFW identities A-P, occluders pasted, the product's stages
up to ``synthesize``, the morphable model placed from the clean photo's landmarks.

One sample (:func:`make_samples`), per clean photo and occluder draw:

1. the clean photo goes through the pipeline up to ``landmarks``; its 68 points place 1 (or, with
   probability ``fisn.data.P_TWO``, 2) occluders from the parser's training families (the FISN
   pairs' helpers: :func:`occgui.training.fisn.data.training_library`, ``occlude`` with the same
   weights), pasted onto the photo;
2. the occluded photo goes through the pipeline up to ``synthesize``: I_fac, M_alpha, I_out and
   its re-synthesised mask exactly as the product makes them;
3. geometry without the per-photo fit (milliseconds instead of seconds): the model's pose, identity
   and expression from the *clean* photo's 68 points mapped into the occluded crop
   (:func:`occgui.morphable.init.initialise_from_landmarks`), the SH light by linear least squares
   (:func:`occgui.morphable.fit.solve_lighting`) on I_out's clean visible face vertices -- the same
   light the target is de-lit with;
4. inputs: :func:`occgui.texture.vertex_features.vertex_inputs` on I_out, as at inference;
   target: the clean photo cut with the occluded photo's crop transform, sampled at the same vertex
   projections and de-lit by the same irradiance; ``valid`` = visible face-region vertices;
   ``pasted`` = visible vertices under the true occluder.

Splits as for FISN (:func:`occgui.training.fisn.data.split_identities`): A-P identities, every
25th one validation; Q-S are never read here. Samples are written one file per (photo, draw) into
a cache folder keyed by split, size and seed, so an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Bump when a sample's definition changes: caches of another version are rebuilt.
SAMPLES_VERSION = 1
CROP_SIZE = 256
#: A placement whose I_out shows fewer clean face vertices than this cannot be lit: no sample.
MIN_LIT_VERTICES = 200
_FIELDS = ("features", "base", "target", "valid", "pasted")


@dataclass
class SampleSet:
    """Stacked samples (S samples of the same N-vertex mesh)."""

    features: np.ndarray    # (S, N, F) float16
    base: np.ndarray        # (S, N, 3) float16 unrefined per-vertex albedo
    target: np.ndarray      # (S, N, 3) float16 the clean photo's de-lit colour
    valid: np.ndarray       # (S, N) bool: the target is known (visible face-region vertex)
    pasted: np.ndarray      # (S, N) bool: visible and under the pasted occluder
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx) -> SampleSet:
        idx = list(idx)
        return SampleSet(*(getattr(self, k)[idx] for k in _FIELDS), names=[self.names[i] for i in idx])


def placed_mesh(model, image, crop, landmarks_crop: np.ndarray, iout: np.ndarray, occluder: np.ndarray):
    """(FaceMesh in the photo frame, per-vertex irradiance (N, 3)) of the model placed on 68 crop
    landmarks, lit by the least-squares SH light of I_out's clean visible face vertices; None when
    fewer than :data:`MIN_LIT_VERTICES` of them are visible."""
    import torch

    from ...geometry.morphable_mesh import crop_to_photo
    from ...morphable.coefficients import Coefficients
    from ...morphable.fit import FitResult, FitSettings, solve_lighting
    from ...morphable.init import initialise_from_landmarks
    from ...morphable.lighting import ambient_gamma
    from ...morphable.losses import REFERENCE_SIZE
    from ...texture.uv_sampler import vertices_to_crop
    from ...texture.vertex_features import sample_vertices, vertex_normals, vertex_visibility

    size = int(iout.shape[0])
    pose, ident, expr = initialise_from_landmarks(model, landmarks_crop, pixel_scale=REFERENCE_SIZE / size)
    shape = model.shape(ident, expr)

    def result(gamma):
        c = Coefficients(identity=ident, expression=expr, albedo=np.zeros(model.num_albedo), gamma=gamma, pose=pose)
        return FitResult(model.name, c, shape, pose.project(shape[model.landmarks]), (), 0.0)

    res = result(ambient_gamma(dtype=torch.float64).numpy()[0])
    mesh = res.face_mesh(model, crop_to_photo(image, crop))
    vxy = vertices_to_crop(image, crop, mesh)
    cam = res.camera_vertices
    normals = vertex_normals(cam, model.triangles)
    vis = vertex_visibility(vxy, mesh.vertices[:, 2], model.triangles, vertex_normals(mesh.vertices, model.triangles),
                            size)
    col = np.clip(np.rint(vxy[:, 0]), 0, size - 1).astype(np.intp)
    row = np.clip(np.rint(vxy[:, 1]), 0, size - 1).astype(np.intp)
    w = (vis & model.face_mask & ~occluder[row, col]).astype(np.float64)
    if w.sum() < MIN_LIT_VERTICES:
        return None
    albedo = model.albedo_mean if model.albedo_mean is not None else np.full((len(shape), 3), 0.6)
    gamma = solve_lighting(torch.as_tensor(sample_vertices(iout, vxy) / 255.0, dtype=torch.float64),
                           torch.as_tensor(albedo, dtype=torch.float64), torch.as_tensor(normals),
                           torch.as_tensor(w), band2_ridge=FitSettings().light_prior)
    res = result(gamma.numpy())
    return mesh, res.vertex_shading(model)


def sample_from_runs(model, clean_rgb: np.ndarray, paste: np.ndarray, landmarks_working: np.ndarray,
                     run) -> dict | None:
    """One sample's arrays from the occluded photo's pipeline result ``run`` (up to ``synthesize``),
    the clean working image, the paste mask (working pixels) and the clean photo's 68 points
    (working pixels); None when the placed model cannot be lit."""
    from ...detection.crop import warp_to_crop
    from ...texture.uv_sampler import occluder_mask, vertices_to_crop
    from ...texture.vertex_features import sample_vertices, vertex_inputs

    crop = run.crop
    size = crop.size
    iout = np.asarray(run.synthesis.image)
    occ = occluder_mask(run.alpha.labels, run.synthesis)
    placed = placed_mesh(model, run.image, crop, crop.working_to_crop(landmarks_working), iout, occ)
    if placed is None:
        return None
    mesh, shading = placed
    vxy = vertices_to_crop(run.image, crop, mesh)
    inp = vertex_inputs(mesh.vertices, mesh.faces, mesh.uv, vxy, iout, occ, shading, region=model.face_mask)
    clean = warp_to_crop(clean_rgb, crop.to_crop, size)
    pasted_crop = warp_to_crop(paste.astype(np.float32), crop.to_crop, size) >= 0.5
    col = np.clip(np.rint(vxy[:, 0]), 0, size - 1).astype(np.intp)
    row = np.clip(np.rint(vxy[:, 1]), 0, size - 1).astype(np.intp)
    target = sample_vertices(clean, vxy) / 255.0 / inp.shading
    valid = inp.visible & model.face_mask
    return {"features": inp.features.astype(np.float16), "base": inp.base.astype(np.float16),
            "target": target.astype(np.float16), "valid": valid, "pasted": valid & pasted_crop[row, col]}


def make_samples(pipeline, library, model, rgb: np.ndarray, rng: np.random.Generator, draws: int) -> list[dict | None]:
    """``draws`` samples of one clean photo (None for a draw whose pipeline run failed)."""
    from ...errors import OccguiError
    from ..fisn.data import P_TWO
    from ..occlusion.occluders import occlude
    from ..parsing.dataset import FAMILY_WEIGHTS, TRAIN_KIND_WEIGHTS

    try:
        r0 = pipeline.run(rgb, stop_after="landmarks")
    except OccguiError:
        return [None] * draws
    if r0.crop.size != CROP_SIZE:
        raise ValueError(f"the pipeline's crop is {r0.crop.size} px, the texture GCN's samples are made at {CROP_SIZE}")
    pts = r0.crop.crop_to_working(r0.landmarks.points)
    out: list[dict | None] = []
    for _ in range(draws):
        count = 2 if rng.random() < P_TWO else 1
        occluded, paste, _pl = occlude(rng, r0.image.rgb, pts, library, count=count,
                                       family_weights=FAMILY_WEIGHTS, kind_weights=TRAIN_KIND_WEIGHTS)
        try:
            r1 = pipeline.run(occluded, stop_after="synthesize")
        except OccguiError:
            out.append(None)
            continue
        out.append(sample_from_runs(model, r0.image.rgb, paste, pts, r1))
    return out


def cache_folder(cache_dir, split: str, photos: int, draws: int, seed: int) -> Path:
    return Path(cache_dir) / f"texture_gcn_v{SAMPLES_VERSION}_{split}_{int(photos)}x{int(draws)}_seed{int(seed)}"


def load_samples(folder) -> SampleSet:
    """Every sample file of a cache folder, in name order."""
    folder = Path(folder)
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise RuntimeError(f"no texture GCN samples in {folder}")
    arrays = {k: [] for k in _FIELDS}
    for f in files:
        with np.load(f) as z:
            for k in _FIELDS:
                arrays[k].append(z[k])
    return SampleSet(*(np.stack(arrays[k]) for k in _FIELDS), names=[f.stem for f in files])


def build_samples(lfw_dir, occluders_dir, cache_dir, split: str, photos: int, draws: int, *, seed: int = 0,
                  progress: bool = True) -> SampleSet:
    """Load the cached samples of ``split`` (``photos`` clean photos x ``draws`` occluder draws),
    making the missing ones first; photo ``k`` draws from ``default_rng([seed, split, k])``."""
    folder = cache_folder(cache_dir, split, photos, draws, seed)
    if not (folder / "meta.json").exists():
        from ...imageio import load_image
        from ...morphable import load_default_model
        from ...pipeline.runner import Pipeline, PipelineConfig
        from ..fisn.data import photo_order, training_library

        folder.mkdir(parents=True, exist_ok=True)
        pipeline = Pipeline(PipelineConfig(device="cpu", crop_size=CROP_SIZE))
        library = training_library(occluders_dir)
        model = load_default_model()
        order = photo_order(lfw_dir, split, seed)[:photos]
        split_id = 0 if split == "train" else 1
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(order), desc=f"texture GCN {split} samples", unit="photo")
        failed = []
        for k, photo in enumerate(order):
            done = folder / f"{k:05d}.done"
            if not done.exists():
                samples = make_samples(pipeline, library, model, load_image(photo).rgb,
                                       np.random.default_rng([seed, split_id, k]), draws)
                for j, s in enumerate(samples):
                    if s is not None:
                        np.savez(folder / f"{k:05d}_{j}.npz", **s)
                done.write_text(f"{photo.parent.name}/{photo.name} {sum(s is not None for s in samples)}\n")
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        failed = [p.read_text().split()[0] for p in sorted(folder.glob("*.done")) if p.read_text().split()[1] == "0"]
        meta = {"version": SAMPLES_VERSION, "split": split, "photos": len(order), "draws": draws, "seed": seed,
                "failed_photos": failed, "complete": True}
        (folder / "meta.json").write_text(json.dumps(meta))
    return load_samples(folder)
