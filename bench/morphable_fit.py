"""CPU time of the morphable-model fit (occgui.morphable.fit) at default settings.

Target (issue 15): <= 5 s per fit on the project's 2-core CPU. The target is a synthetic render of
the default model with known coefficients (8 identity components ~ N(0, 1), a 15° yaw, coloured SH
light), so the run also reports the recovery errors:

    python bench/morphable_fit.py [--size 256] [--repeats 3] [--iterations N] [--image-iterations N]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from occgui.morphable import Pose, load_default_model  # noqa: E402
from occgui.morphable.fit import FitSettings, FitTarget, MorphableFitter  # noqa: E402
from occgui.morphable.lighting import AMBIENT_GAMMA  # noqa: E402
from occgui.morphable.torch_model import TorchMorphableModel  # noqa: E402


def synthetic_target(model, size: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    ident = np.zeros(model.num_identity)
    ident[:8] = rng.normal(0, 1, 8)
    expr = np.zeros(model.num_expression)
    gamma = np.zeros((3, 9))
    gamma[:, 0] = 0.9 * AMBIENT_GAMMA
    gamma[:, 1], gamma[:, 2], gamma[:, 3] = 0.25, 0.2, -0.3
    pose = Pose(math.radians(-5), math.radians(15), math.radians(4), 0.58 * size / 128, size * 0.5, size * 0.54)
    tm = TorchMorphableModel(model)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        img, mask = tm.render(t(ident), t(expr), None, t(gamma), t(pose.as_array()), size)
    im = np.where(mask[0, ..., None].numpy(), img[0].numpy(), 0.25)
    lm = pose.project(model.shape(ident, expr)[model.landmarks])
    return FitTarget((np.clip(im, 0, 1) * 255).round().astype(np.uint8), lm), ident, expr, gamma, pose


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="crop size (pixels)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--image-iterations", type=int)
    args = ap.parse_args(argv)
    settings = FitSettings()
    if args.iterations is not None:
        settings = replace(settings, iterations=args.iterations)
    if args.image_iterations is not None:
        settings = replace(settings, image_iterations=args.image_iterations)
    model = load_default_model()
    target, ident, expr, gamma, pose = synthetic_target(model, args.size)
    t0 = time.perf_counter()
    fitter = MorphableFitter(model, settings)
    setup = time.perf_counter() - t0
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, crop {args.size}px, "
          f"{settings.iterations} vertex + {settings.image_iterations} image iterations; fitter setup {setup:.2f} s")
    times = []
    for i in range(args.repeats):
        res = fitter.fit(target)
        times.append(res.seconds)
        st = res.stages
        print(f"  fit {i}: {res.seconds:.2f} s (init {st['init_s']:.2f}, vertex stage {st['vertex_stage_s']:.2f}, "
              f"image stage {st['image_stage_s']:.2f}; {st['working_vertices']} working vertices, "
              f"{st['working_triangles']} triangles)")
    truth = model.shape(ident, expr)
    face = model.face_mask
    err = np.linalg.norm(res.vertices - truth, axis=1)[face].mean()
    base = np.linalg.norm(model.mean_shape - truth, axis=1)[face].mean()
    c = res.coefficients
    ang = np.degrees(np.abs(c.pose.as_array()[:3] - pose.as_array()[:3]))
    light = np.linalg.norm(c.gamma - gamma) / np.linalg.norm(gamma)
    lm = np.linalg.norm(res.landmarks2d - target.landmarks, axis=1).mean()
    print(f"median fit time {np.median(times):.2f} s (target <= 5 s)")
    print(f"recovery: shape {err:.2f} mm mean over the face region (mean face: {base:.2f} mm), "
          f"angles {ang[0]:.2f}/{ang[1]:.2f}/{ang[2]:.2f} deg (pitch/yaw/roll), SH relative error {light:.3f}, "
          f"landmarks {lm:.2f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
