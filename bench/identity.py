"""Speed of the face-identity network (:mod:`occgui.identity`) on a batch of face chips.

    python bench/identity.py [--batch 8] [--runs 10] [--threads N] [--device cpu|cuda|all] [--dlib]

Per device: the median and minimum wall time of the torch module's forward pass (no gradient) on
``--batch`` 150x150 chips, of forward+backward to the input (the identity loss's use: gradient to
the image, the network frozen), and of the differentiable chip extraction from 250x250 photos.
``--dlib`` adds dlib's own ``compute_face_descriptor`` on the same batch of chips (CPU) for
comparison. One warm-up run is not counted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_timing import timed  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "all"))
    ap.add_argument("--dlib", action="store_true", help="also time dlib's compute_face_descriptor")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from occgui.identity import extract_face_chips_torch, face_chip_affine, face_chip_details, load_face_resnet

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("no CUDA device: timing the CPU only")
        devices = ["cpu"]
    g = torch.Generator().manual_seed(0)
    chips_cpu = torch.rand(args.batch, 3, 150, 150, generator=g) * 255
    photos_cpu = torch.rand(args.batch, 3, 250, 250, generator=g) * 255
    pts = np.array([[150.0, 110.0], [130.0, 111.0], [90.0, 110.0], [110.0, 111.0], [120.0, 145.0]])
    aff_cpu = torch.from_numpy(face_chip_affine(face_chip_details(pts)))[None].float().repeat(args.batch, 1, 1)

    print(f"batch of {args.batch} chips (150x150), {args.runs} runs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'device':<28} {'measurement':<34} {'median ms':>10} {'min ms':>9} {'ms/chip':>8}")
    for dev in devices:
        net = load_face_resnet(dev)
        chips, photos, aff = chips_cpu.to(dev), photos_cpu.to(dev), aff_cpu.to(dev)
        sync = (lambda: torch.cuda.synchronize()) if dev == "cuda" else (lambda: None)
        label = f"cuda ({torch.cuda.get_device_name(0)})" if dev == "cuda" else "cpu"

        def forward(net=net, chips=chips):
            with torch.no_grad():
                net(chips)

        def forward_backward(net=net, chips=chips):
            x = chips.clone().requires_grad_(True)
            net(x).square().sum().backward()

        def chip_forward_backward(net=net, photos=photos, aff=aff):
            p = photos.clone().requires_grad_(True)
            net(extract_face_chips_torch(p, aff)).square().sum().backward()

        for name, fn in (("forward (no grad)", forward), ("forward + backward to input", forward_backward),
                         ("photo->chip->embedding, fwd+bwd", chip_forward_backward)):
            med, mn = timed(fn, args.runs, sync)
            print(f"{label:<28} {name:<34} {med * 1e3:>10.1f} {mn * 1e3:>9.1f} {med * 1e3 / args.batch:>8.1f}")

    if args.dlib:
        import dlib
        import face_recognition_models as frm

        enc = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        arr = [np.ascontiguousarray(c.permute(1, 2, 0).numpy().astype(np.uint8)) for c in chips_cpu]
        med, mn = timed(lambda: enc.compute_face_descriptor(arr), args.runs, lambda: None)
        print(f"{'cpu (dlib ' + dlib.__version__ + ')':<28} {'compute_face_descriptor':<34} {med * 1e3:>10.1f} "
              f"{mn * 1e3:>9.1f} {med * 1e3 / args.batch:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
