"""CPU time of the trained R-Net (:class:`occgui.morphable.regressor.RNet`): one crop -> the fit's
initial coefficient vector. Target (issue 15 point 6): <= 0.3 s on the project's 2-core CPU.

    python bench/regressor.py [--weights FILE] [--runs 20] [--threads 1] [--crop 256]

Times ``RNet.predict`` on a ``--crop``-pixel square cut from the bundled sample photo (input
resampling, network, de-normalisation), the network alone on its input, and the loading of the
weights: wall-clock median and minimum over ``--runs`` after one warm-up call, and the process CPU
time per call. The load average is printed, since on a shared machine it moves every number.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_timing import timed  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="R-Net weights (default: the shipped checkpoint)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args(argv)

    import cv2
    import numpy as np
    import torch

    from occgui.imageio import load_image
    from occgui.morphable.regressor import RNet, to_input
    from occgui.resources import sample_photo

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rnet = RNet.load(args.weights)
    load_s = time.perf_counter() - t0
    rgb = load_image(sample_photo()).rgb
    h, w = rgb.shape[:2]
    side = min(h, w)
    crop = cv2.resize(rgb[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2], (args.crop, args.crop),
                      interpolation=cv2.INTER_AREA)
    x = to_input(crop, rnet.input_size)

    def network():
        with torch.no_grad():
            rnet.network.coefficients(x)

    c0 = time.process_time()
    med, best = timed(lambda: rnet.predict(crop), args.runs, lambda: None)
    cpu = (time.process_time() - c0) / (args.runs + 1)
    n_med, n_best = timed(network, args.runs, lambda: None)
    params = sum(p.numel() for p in rnet.network.parameters())
    print(f"R-Net {Path(rnet.source).name}: stages {rnet.network.stages}, input {rnet.input_size}², "
          f"{params / 1e6:.2f} M parameters, {os.path.getsize(rnet.source) / 1e6:.1f} MB; torch threads {args.threads}")
    print(f"load weights           {load_s * 1000:7.1f} ms")
    print(f"predict (crop {args.crop} px)  median {med * 1000:6.1f} ms, min {best * 1000:6.1f} ms, "
          f"CPU {cpu * 1000:6.1f} ms per call  (target <= 300 ms)")
    print(f"network alone          median {n_med * 1000:6.1f} ms, min {n_best * 1000:6.1f} ms")
    print(f"load average           {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"output finite          {bool(np.isfinite(rnet.predict(crop)).all())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
