"""The ``fisn`` backend inside the pipeline: the ``synthesize`` stage's time per face (issue 16
point 4: at most 300 ms on the 2-core CPU), beside the classical ``symmetric`` backend.

    python bench/fisn_backend.py [--checkpoint PATH | --random] [--photos A.jpg B.jpg ...]
                                 [--runs 5] [--threads 0] [--device cpu|cuda]

Each photo (default: the bundled sample, a hand over an eye) runs through the real pipeline up to
``merge``; then the ``synthesize`` stage function is timed on its results with each backend exactly
as the runner calls it (``pipeline.stages.synthesize``), median and minimum over ``--runs`` after
one warm-up; the stage's own time in the pipeline's first (cold) run is printed too. ``--random``
times a randomly initialised generator of the shipped configuration (speed does not depend on the
weights) when no trained one exists. ``--threads 0`` is the backend's automatic choice (1 thread
on a loaded machine); the load average is printed, since on a shared machine it moves every number.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_timing import timed  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="FISN generator (default: the shipped checkpoints/fisn_generator.safetensors)")
    ap.add_argument("--random", action="store_true", help="a random generator of the default configuration")
    ap.add_argument("--photos", nargs="*", help="photos (default: the bundled sample)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the backend (0: automatic)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args(argv)

    from occgui.pipeline import stages as S
    from occgui.pipeline.runner import Pipeline, PipelineConfig
    from occgui.resources import sample_photo
    from occgui.synthesis.fisn_backend import cpu_threads
    from occgui.synthesis.settings import FISNSettings

    if args.device == "cuda":
        import torch

        sync = torch.cuda.synchronize
    else:
        sync = lambda: None  # noqa: E731
    tmp = None
    checkpoint = args.checkpoint or ""
    if args.random:
        import torch

        from occgui.synthesis.fisn import FISNConfig, FISNGenerator, save_generator

        torch.manual_seed(0)
        tmp = tempfile.TemporaryDirectory()
        checkpoint = str(save_generator(Path(tmp.name) / "random.safetensors", FISNGenerator(FISNConfig())))
    photos = [Path(p) for p in args.photos] if args.photos else [sample_photo()]
    settings = FISNSettings(checkpoint=checkpoint, threads=args.threads)
    fisn = Pipeline(PipelineConfig(device=args.device, backends={"synthesize": "fisn"},
                                   settings={"synthesize": settings}))
    classical = Pipeline(PipelineConfig(device=args.device))
    classical._cache = fisn._cache
    print(f"{fisn.backend_id('synthesize')} on {fisn.device}; torch threads {cpu_threads(args.threads)} "
          f"(setting {args.threads}); load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores")
    rows = []
    for photo in photos:
        res = fisn.run(photo, stop_after="synthesize")
        cold = res.seconds["synthesize"]
        hole = int(res.synthesis.filled.sum())
        for name, p in (("fisn", fisn), ("symmetric", classical)):
            backend = p.backend("synthesize")
            med, low = timed(lambda b=backend, r=res: S.synthesize(b, r.crop, r.landmarks, r.alpha, r.beta, r.gamma),
                             args.runs, sync)
            rows.append((photo.name, name, hole, med * 1000, low * 1000))
        print(f"{photo.name}: hole {hole} px; fisn stage in the pipeline's first run {cold * 1000:.0f} ms")
    print("\n| photo | backend | hole px | synthesize median ms | min ms |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.0f} | {r[4]:.0f} |")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    worst = max(r[3] for r in rows if r[1] == "fisn")
    print(f"fisn: worst median {worst:.0f} ms per face ({'within' if worst <= 300 else 'OVER'} the 300 ms budget)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
