"""Speed of FISN (:mod:`occgui.synthesis.fisn`, :mod:`occgui.training.fisn`): one training step and
one face's inference, to size a training run and check the backend's budget (300 ms per face).

    python bench/fisn.py [--batch 8] [--size 128] [--channels 16] [--runs 5] [--threads 2]
                         [--device cpu|cuda] [--no-face] [--pairs DIR]

* ``train step``: ``Trainer.step`` on a batch (discriminator update, generator update with Eq. 9:
  dlib's face network for the perceptual and identity terms unless ``--no-face``), data
  preparation excluded; the batch comes from ``--pairs`` (a pair folder of ``occgui train fisn``)
  or random inputs of the same shapes;
* ``inference``: ``FISNInpainter.synthesize`` on one 256 px crop with a 64x64 hole (network input
  preparation, generator in eval mode, upsampling and compositing), the generator alone too.

Median and minimum over ``--runs`` after one warm-up run; the load average is printed, since on
a shared machine it moves every number.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_timing import timed  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--no-face", action="store_true", help="no dlib perceptual/identity terms")
    ap.add_argument("--pairs", help="a pair folder (default: random inputs)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from occgui import labels as L
    from occgui.synthesis.fisn import FISNConfig, FISNInpainter, parameter_count
    from occgui.training.fisn.data import Batch, PairSampler, load_pairs
    from occgui.training.fisn.losses import DlibFaceFeatures, LossWeights
    from occgui.training.fisn.train import Trainer

    torch.set_num_threads(args.threads)
    dev = args.device
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    cfg = FISNConfig(size=args.size, channels=args.channels)
    face = None if args.no_face else DlibFaceFeatures.load(dev)
    weights = LossWeights(id=0.0, per=0.0) if args.no_face else LossWeights()
    trainer = Trainer(cfg, weights, device=dev, face=face, total_steps=10 ** 6)
    print(f"generator {parameter_count(trainer.G):,} parameters, discriminators {parameter_count(trainer.D):,}; "
          f"{args.size} px, batch {args.batch}, {dev}, {args.threads} threads, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.pairs:
        batch = PairSampler(load_pairs(args.pairs), args.size, 0).batch(0, args.batch)
    else:
        g = torch.Generator().manual_seed(0)
        r, b = args.size, args.batch
        hole = torch.zeros(b, 1, r, r)
        hole[..., r // 4: r // 2, r // 4: 3 * r // 4] = 1
        maps = lambda: torch.softmax(8 * torch.randn(b, L.NUM_CLASSES, r, r, generator=g), 1)
        pts = np.array([[r * 0.35, r * 0.43], [r * 0.65, r * 0.43], [r * 0.5, r * 0.62]])
        lmk = np.tile(pts.mean(0), (68, 1))
        lmk[36:42], lmk[42:48], lmk[30:36] = pts
        from occgui.training.fisn.data import chip_affine
        chip = torch.from_numpy(chip_affine(lmk * 256 / r, r))[None].repeat(b, 1, 1)
        batch = Batch((torch.rand(b, 3, r, r, generator=g) * 2 - 1) * (1 - hole), hole, maps(), maps(),
                      torch.rand(b, 3, r, r, generator=g) * 2 - 1, chip)
    med, low = timed(lambda: trainer.step(batch), args.runs, sync)
    print(f"train step (batch {args.batch}): median {med:.2f} s, min {low:.2f} s "
          f"-> {3600 / med:.0f} steps per hour at the median")

    gen = trainer.G.eval()
    inp = FISNInpainter.from_generator(gen)
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    alpha = np.full((256, 256), L.SKIN, np.uint8)
    alpha[96:160, 64:128] = L.OCCLUDER
    med, low = timed(lambda: inp.synthesize(crop, alpha, alpha), max(args.runs, 10), sync)
    print(f"inference, one face (inputs + generator + composite): median {med * 1000:.0f} ms, min {low * 1000:.0f} ms")
    one = Batch(*(t[:1] for t in (batch.masked, batch.hole, batch.alpha, batch.gamma, batch.target, batch.chip))
                ).to(dev, trainer.memory_format)

    def net():
        with torch.inference_mode():
            gen(one.masked, one.hole, one.alpha, one.gamma)
    med, low = timed(net, max(args.runs, 10), sync)
    print(f"generator alone, one face: median {med * 1000:.0f} ms, min {low * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
