"""Time per photo of the ``morphable`` geometry backend at default settings, on real photos.

Targets (issue 15, point 9): fit <= 5 s on the project's 2-core CPU, a GUI re-fit after a landmark
edit <= 2 s. For every photo the pipeline runs up to I_out (not timed), then:

* ``fit``   -- the geometry stage on a photo it has not seen (cold: landmark initialisation, 60 vertex
  + 2 image steps by default);
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
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the machine's cores)")
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
        r = pipe.run(photo)                       # geometry + texture, cold
        fit = r.mesh.fit
        pts = np.array(r.landmarks.points, np.float64)
        pts[48] -= [2.0, 0.0]
        pts[54] += [2.0, 0.0]
        edited = r.image.working_to_photo(r.crop.crop_to_working(pts))
        r2 = pipe.run(photo, landmarks=edited, stop_after="geometry")
        m = mp.run(photo, stop_after="geometry")
        row = (r.seconds["geometry"], r2.seconds["geometry"], r.seconds["texture"], m.seconds.get("geometry", 0.0))
        rows.append(row)
        print(f"{Path(photo).name[:34]:<34} fit {row[0]:6.2f} s  refit {row[1]:5.2f} s (warm {r2.mesh.fit.warm_start})"
              f"  texture {row[2]:5.2f} s  mediapipe-mesh {row[3]:5.2f} s  | yaw {fit.pose.yaw:6.1f} pitch "
              f"{fit.pose.pitch:6.1f} roll {fit.pose.roll:6.1f} deg, landmark error {fit.landmark_error:.3f} IOD, "
              f"load {load0:.1f}")
    a = np.array(rows)
    print(f"median over {len(a)} photos: fit {np.median(a[:, 0]):.2f} s (target <= 5 s), re-fit "
          f"{np.median(a[:, 1]):.2f} s (target <= 2 s), texture {np.median(a[:, 2]):.2f} s, mediapipe-mesh "
          f"{np.median(a[:, 3]):.2f} s; load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
