"""Does the texture GCN help? Held-out LFW photos (identities Q-S), one occluder pasted per photo.

``python -m occgui.eval.texture_gcn --data ../shared/data -o OUT [--limit 40]``

Per photo (one per identity, identities in name order, every ``len(photos) / limit``-th), an
occluder of the evaluation families :data:`FAMILIES` (cycled) is pasted onto the clean photo with
the evaluation's placement (``occluders.sample_eval_family``); the occluded photo goes through the
product's pipeline with ``--geometry morphable`` (the real per-photo fit). On that fitted mesh:

* the unrefined texture (``gcn_refine=off``) and the refined one (``gcn_refine=on``);
* the *reference*: the same builder on the clean photo with the same mesh and crop, nothing marked
  occluded, I_out = the clean crop; its observed texels are the ones compared;
* texel L1 (0-255, mean over RGB) of the de-lit albedo and of the lit texture against the
  reference, under the pasted occluder (texels whose surface point projects into the paste mask) and
  outside it; per-vertex L1 of the GCN's albedo and of its unrefined input (``base``) likewise;
* beside it, the ``mediapipe-mesh`` geometry's lit texture against its own clean reference (the
  same construction), under the occluder and outside: what the default geometry gives.

Writes ``OUT/texture_gcn_eval.json`` (per photo and means) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

FAMILIES = ("hand_over_mouth", "surgical_mask", "hand_over_eye", "hand_on_cheek", "sunglasses")


def heldout_photos(lfw_dir, limit: int) -> list[Path]:
    """One photo (the first) per Q-S identity, ``limit`` identities spread over the sorted list."""
    from ..training.parsing.dataset import SPLITS

    people = sorted(p for p in Path(lfw_dir).iterdir() if p.is_dir() and p.name[:1] in SPLITS["test"])
    step = max(1, len(people) // max(1, limit))
    out = []
    for person in people[::step]:
        files = sorted(person.glob("*.jpg"))
        if files:
            out.append(files[0])
    return out[:limit]


def _reference(builder, run, clean_rgb: np.ndarray, mesh):
    """The texture of the clean photo on ``mesh`` in ``run``'s crop, nothing occluded."""
    from .. import labels
    from ..detection.crop import warp_to_crop
    from ..results import Synthesis

    size = run.crop.size
    crop = replace(run.crop, image=warp_to_crop(clean_rgb, run.crop.to_crop, size))
    image = replace(run.image, rgb=clean_rgb)
    alpha = np.full((size, size), labels.SKIN, np.uint8)
    syn = Synthesis(image=crop.image, filled=np.zeros((size, size), bool), backend="clean")
    return builder.build(image, crop, alpha, syn, mesh)


def _texel_regions(run, mesh, paste_crop: np.ndarray, size: int):
    """(T, T) bool texels under the paste mask (their surface point's crop projection)."""
    from ..texture.uv_sampler import uv_raster, vertices_to_crop

    r = uv_raster(mesh.uv, mesh.faces, size)
    xy = np.asarray(r.interp @ vertices_to_crop(run.image, run.crop, mesh))
    n = paste_crop.shape[0]
    x = np.clip(np.rint(xy[:, 0]), 0, n - 1).astype(np.intp)
    y = np.clip(np.rint(xy[:, 1]), 0, n - 1).astype(np.intp)
    under = np.zeros((size, size), bool)
    under[r.rows, r.cols] = paste_crop[y, x]
    return under


def _l1(a, b, m) -> float:
    if a is None or b is None or not m.any():
        return float("nan")
    return float(np.abs(a[m].astype(np.float64) - b[m].astype(np.float64)).mean())


def measure_photo(photo: Path, k: int, pipes, builders, library, seed: int) -> dict:
    from ..detection.crop import warp_to_crop
    from ..imageio import load_image
    from ..texture.gcn_refiner import load_refiner, run_refiner
    from ..texture.uv_sampler import OBSERVED, occluder_mask, vertices_to_crop
    from ..texture.vertex_features import mesh_graph, sample_vertices, vertex_inputs
    from ..training.occlusion.occluders import composite, sample_eval_family

    morph, mp = pipes
    plain, refined_builder = builders
    rgb = load_image(photo).rgb
    r0 = mp.run(rgb, stop_after="landmarks")
    pts = r0.crop.crop_to_working(r0.landmarks.points)
    family = FAMILIES[k % len(FAMILIES)]
    rng = np.random.default_rng([seed, k])
    occ, placement = sample_eval_family(rng, library, family, pts)
    occluded, paste = composite(r0.image.rgb, pts, occ, placement)
    clean = r0.image.rgb
    rec: dict = {"photo": f"{photo.parent.name}/{photo.name}", "family": family}
    t0 = time.perf_counter()
    run = morph.run(occluded, stop_after="geometry")
    rec["fit_seconds"] = round(time.perf_counter() - t0, 2)
    mesh = run.mesh
    size = plain.size
    paste_crop = warp_to_crop(paste.astype(np.float32), run.crop.to_crop, run.crop.size) >= 0.5
    t0 = time.perf_counter()
    a = plain.build(run.image, run.crop, run.alpha.labels, run.synthesis, mesh)
    rec["texture_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    b = refined_builder.build(run.image, run.crop, run.alpha.labels, run.synthesis, mesh)
    rec["refined_texture_seconds"] = round(time.perf_counter() - t0, 2)
    ref = _reference(plain, run, clean, mesh)
    under = _texel_regions(run, mesh, paste_crop, size)
    seen = ref.source == OBSERVED
    for name, m in (("under", seen & under), ("outside", seen & ~under)):
        rec[f"texels_{name}"] = int(m.sum())
        rec[f"albedo_{name}_unrefined"] = _l1(a.albedo, ref.albedo, m)
        rec[f"albedo_{name}_refined"] = _l1(b.albedo, ref.albedo, m)
        rec[f"lit_{name}_unrefined"] = _l1(a.image, ref.image, m)
        rec[f"lit_{name}_refined"] = _l1(b.image, ref.image, m)
    # per vertex: the GCN's output and its input estimate against the clean crop, de-lit alike
    vxy = vertices_to_crop(run.image, run.crop, mesh)
    inp = vertex_inputs(mesh.vertices, mesh.faces, mesh.uv, vxy, np.asarray(run.synthesis.image),
                        occluder_mask(run.alpha.labels, run.synthesis), mesh.fit.shading)
    net, _digest = load_refiner(refined_builder.gcn_weights.path)
    out = run_refiner(net, inp, mesh_graph(mesh.faces, mesh.uv).edges)
    target = sample_vertices(warp_to_crop(clean, run.crop.to_crop, run.crop.size), vxy) / 255.0 / inp.shading
    n = run.crop.size
    col = np.clip(np.rint(vxy[:, 0]), 0, n - 1).astype(np.intp)
    row = np.clip(np.rint(vxy[:, 1]), 0, n - 1).astype(np.intp)
    pv = inp.visible & paste_crop[row, col]
    for name, m in (("under", pv), ("outside", inp.visible & ~pv)):
        rec[f"vertex_{name}_unrefined"] = _l1(inp.base * 255.0, target * 255.0, m)
        rec[f"vertex_{name}_refined"] = _l1(out * 255.0, target * 255.0, m)
    # the default geometry beside it: MediaPipe's mesh, lit texture vs. its own clean reference
    run_mp = mp.run(occluded)
    ref_mp = _reference(plain, run_mp, clean, run_mp.mesh)
    under_mp = _texel_regions(run_mp, run_mp.mesh, warp_to_crop(paste.astype(np.float32), run_mp.crop.to_crop,
                                                                 run_mp.crop.size) >= 0.5, size)
    seen_mp = ref_mp.source == OBSERVED
    for name, m in (("under", seen_mp & under_mp), ("outside", seen_mp & ~under_mp)):
        rec[f"mediapipe_lit_{name}"] = _l1(run_mp.texture.image, ref_mp.image, m)
    return rec


METRICS = ("albedo_under_unrefined", "albedo_under_refined", "albedo_outside_unrefined", "albedo_outside_refined",
           "lit_under_unrefined", "lit_under_refined", "lit_outside_unrefined", "lit_outside_refined",
           "vertex_under_unrefined", "vertex_under_refined", "vertex_outside_unrefined", "vertex_outside_refined",
           "mediapipe_lit_under", "mediapipe_lit_outside")


def summarize(records: list[dict]) -> dict:
    ok = [r for r in records if "error" not in r]
    out = {"photos": len(records), "measured": len(ok)}
    for k in METRICS:
        vals = np.array([r[k] for r in ok if np.isfinite(r.get(k, np.nan))])
        out[k] = {"mean": round(float(vals.mean()), 3) if len(vals) else None, "n": int(len(vals))}
    under = [(r["albedo_under_unrefined"], r["albedo_under_refined"]) for r in ok
             if np.isfinite(r["albedo_under_unrefined"]) and np.isfinite(r["albedo_under_refined"])]
    out["albedo_under_refined_better"] = f"{sum(b < a for a, b in under)}/{len(under)}"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m occgui.eval.texture_gcn", description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="shared data folder (faces/lfw, occluders)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--limit", type=int, default=40, help="held-out photos (default %(default)s)")
    ap.add_argument("--checkpoint", default="", help="texture GCN weights (default: the shipped ones)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    from ..errors import OccguiError
    from ..pipeline.backends import BackendContext
    from ..pipeline.runner import Pipeline, PipelineConfig
    from ..texture.settings import UVSamplerSettings
    from ..texture.uv_sampler import UVTextureBuilder
    from ..training.occlusion.occluders import load_library
    from ..training.parsing.dataset import resolve_data_dirs

    torch.set_num_threads(args.threads)
    lfw, occ_dir = resolve_data_dirs(args.data)
    library = load_library(occ_dir)
    morph = Pipeline(PipelineConfig(device="cpu", crop_size=256, backends={"geometry": "morphable"}))
    mp = Pipeline(PipelineConfig(device="cpu", crop_size=256))
    ctx = BackendContext(device="cpu", crop_size=256, texture_size=1024)
    plain = UVTextureBuilder(replace(ctx, settings=UVSamplerSettings(gcn_refine="off")))
    refined = UVTextureBuilder(replace(ctx, settings=UVSamplerSettings(gcn_refine="on",
                                                                        gcn_checkpoint=args.checkpoint)))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    t0 = time.perf_counter()
    for k, photo in enumerate(heldout_photos(lfw, args.limit)):
        try:
            rec = measure_photo(photo, k, (morph, mp), (plain, refined), library, args.seed)
        except OccguiError as e:
            rec = {"photo": f"{photo.parent.name}/{photo.name}", "error": str(e)}
        records.append(rec)
        print(json.dumps(rec), flush=True)
    summary = summarize(records)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    try:
        import os
        summary["load_average_end"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    (out / "texture_gcn_eval.json").write_text(json.dumps({"summary": summary, "records": records}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
