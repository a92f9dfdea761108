"""Time per photo of the ``morphable`` geometry backend at default settings, on real photos.

Targets (issue 15, point 9): fit <= 5 s on the project's 2-core CPU, a GUI re-fit after a landmark
edit <= 2 s. For every photo the pipeline runs up to I_out (not timed), then:

* ``fit``   -- the geometry stage on a photo it has not seen (cold: landmark initialisation, 60 vertex
  + 2 image steps by default), wall and process CPU time (on a shared machine the CPU time, with
  ``--threads 1``, is what an idle machine's wall time would be);
* ``refit`` -- the geometry stage again after a landmark edit (the mouth corners moved 2 px apart),
  warm-started from the previous solution (``refit_iterations`` + ``refit_image_iterations``);
* ``texture`` -- the texture stage on the fitted mesh (UV texture at 1024², lit + de-lit);
* ``mediapipe`` -- for comparison, the ``mediapipe-mesh`` geometry stage on the same photo.

    python bench/morphable_backend.py [PHOTO ...] [--threads 2] [--option geometry.FIELD=VALUE ...]

Without photos it uses the two sample photos and four held-out LFW photos (identities Q-S) when
``../shared/data`` is present. The load average is printed: the numbers mean little on a busy machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "lfw" / "lfw-deepfunneled"


def default_photos() -> list[Path]:
    from occgui.resources import resource_path

    photos = [resource_path("samples/astronaut_hand.png"), resource_path("samples/astronaut_mask.png")]
    if LFW.is_dir():
        from occgui.eval.lfw import HELD_OUT_GROUP, find_photos, identity_group, spread_selection

        held = [p for p in find_photos(LFW) if identity_group(p) == HELD_OUT_GROUP]
        photos += spread_selection(held, 4)
    return photos


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="*", type=Path)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine two "
                    "threads wait on each other -- 90 s per fit at load 14, against 17 s with one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--option", action="append", metavar="geometry.FIELD=VALUE")
    args = ap.parse_args(argv)
    import torch

    from occgui.pipeline.backends import parse_settings
    from occgui.pipeline.runner import Pipeline, PipelineConfig

    torch.set_num_threads(args.threads)
    settings = parse_settings(args.option, {"geometry": "morphable"})
    pipe = Pipeline(PipelineConfig(device=args.device, backends={"geometry": "morphable"}, settings=settings))
    mp = Pipeline(PipelineConfig(device=args.device))
    mp._cache = pipe._cache                       # the shared stages are computed once
    t0 = time.perf_counter()
    pipe.backend("geometry")
    print(f"torch threads {torch.get_num_threads()}, device {pipe.device}, backend {pipe.backend_id('geometry')}, "
          f"created in {time.perf_counter() - t0:.2f} s")
    rows = []
    for photo in args.photos or default_photos():
        load0 = os.getloadavg()[0]
        pipe.run(photo, stop_after="synthesize")
        c0 = time.process_time()
        r = pipe.run(photo, stop_after="geometry")            # the fit, cold
        c1 = time.process_time()
        fit = r.mesh.fit
        pts = np.array(r.landmarks.points, np.float64)
        pts[48] -= [2.0, 0.0]
        pts[54] += [2.0, 0.0]
        edited = r.image.working_to_photo(r.crop.crop_to_working(pts))
        pipe.run(photo, landmarks=edited, stop_after="synthesize")
        c2 = time.process_time()
        r2 = pipe.run(photo, landmarks=edited, stop_after="geometry")
        c3 = time.process_time()
        r3 = pipe.run(photo, landmarks=edited)                # texture on the re-fitted mesh
        m = mp.run(photo, landmarks=edited, stop_after="geometry")
        row = (r.seconds["geometry"], c1 - c0, r2.seconds["geometry"], c3 - c2, r3.seconds["texture"],
               m.seconds.get("geometry", 0.0))
        rows.append(row)
        print(f"{Path(photo).name[:30]:<30} fit {row[0]:6.2f} s (CPU {row[1]:5.2f} s)  refit {row[2]:5.2f} s (CPU "
              f"{row[3]:4.2f} s, warm {r2.mesh.fit.warm_start})  texture {row[4]:5.2f} s  mediapipe-mesh "
              f"{row[5]:5.2f} s | yaw {fit.pose.yaw:5.1f} pitch {fit.pose.pitch:5.1f} roll {fit.pose.roll:5.1f} deg, "
              f"landmark error {fit.landmark_error:.3f} IOD, load {load0:.1f}")
    a = np.array(rows)
    print(f"median over {len(a)} photos: fit {np.median(a[:, 0]):.2f} s wall / {np.median(a[:, 1]):.2f} s CPU "
          f"(target <= 5 s), re-fit {np.median(a[:, 2]):.2f} s wall / {np.median(a[:, 3]):.2f} s CPU (target <= 2 s), "
          f"texture {np.median(a[:, 4]):.2f} s, mediapipe-mesh {np.median(a[:, 5]):.2f} s; load average now "
          f"{os.getloadavg()[0]:.1f}. CPU time is the process's (all its threads): the wall time an idle machine "
          f"would give with --threads 1.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
