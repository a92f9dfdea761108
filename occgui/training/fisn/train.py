"""``occgui train fisn``: train FISN (paper §3.3) on LFW pairs with pasted occluders.

Data: :mod:`.data` (identities A-P, every training occluder family and the procedural hands,
M_alpha from the shipped parser, M_gamma from the pipeline), made once and cached under
``--cache``. Networks: :class:`occgui.synthesis.fisn.FISNGenerator` at ``--size`` (128 by default)
and the two-scale discriminators of :mod:`.discriminator`; losses :mod:`.losses` (Eq. 6-9 with
lambda1 = lambda2 = 10, plus the identity and hole-L1 terms; every weight is an option). Adam
(lr 2e-4, betas 0.5/0.999, Pix2PixHD's), constant learning rate for the first half of ``--steps``,
then linear decay to 0.

The run folder RUN holds ``last.pt`` (generator, discriminators, optimisers, step, elapsed time;
written every ``--checkpoint-every`` minutes and at the end: ``--resume`` continues from it with
the same data stream, batch ``t`` being drawn from ``default_rng([seed, t])``), ``run.json`` (the
options), ``log.jsonl`` (losses, validation L1), ``val/step_NNNNNN.png`` (validation grids: masked
I_fac | M_alpha | M_gamma | raw output | composite | clean target, one validation pair per row) and
``fisn_generator.safetensors`` (the generator, :mod:`occgui.synthesis.fisn.checkpoint`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ...errors import OccguiError
from ..entry import add_data_arguments, checked_data_dirs

DEFAULT_CACHE = Path(os.environ.get("OCCGUI_CACHE", Path.home() / ".cache" / "occgui"))
HYPER = ("seed", "size", "channels", "blocks", "style_dim", "ndf", "batch_size", "lr", "steps", "pairs", "val_pairs",
         "lambda_gan", "lambda_fea", "lambda_per", "lambda_id", "lambda_rec", "vgg19", "flip")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``occgui train fisn``."""
    add_data_arguments(parser, cache_default=DEFAULT_CACHE, items="pairs", run_holds="checkpoints, logs, grids")
    parser.add_argument("--pairs-dir", help="a folder of prepared training pairs (instead of --data)")
    parser.add_argument("--val-pairs-dir", help="a folder of prepared validation pairs (default: --pairs-dir)")
    parser.add_argument("--pairs", type=int, default=2000, help="training pairs to make (default %(default)s)")
    parser.add_argument("--val-pairs", type=int, default=8, help="validation pairs (grids, L1; default %(default)s)")
    parser.add_argument("--steps", type=int, default=4000, help="optimisation steps (default %(default)s)")
    parser.add_argument("--minutes", type=float, help="stop after this much training wall time (the schedule "
                        "still follows --steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN from its last.pt")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--size", type=int, default=128, help="network resolution (default %(default)s)")
    parser.add_argument("--channels", type=int, default=16, help="generator width after the stem")
    parser.add_argument("--blocks", type=int, default=4, help="SEAN residual blocks")
    parser.add_argument("--style-dim", type=int, default=32, help="SEAN style code length")
    parser.add_argument("--ndf", type=int, default=32, help="discriminator width")
    parser.add_argument("--lambda-gan", type=float, default=1.0, help="Eq. 6 weight")
    parser.add_argument("--lambda-fea", type=float, default=10.0, help="Eq. 7 weight (lambda1, paper: 10)")
    parser.add_argument("--lambda-per", type=float, default=10.0, help="Eq. 8 weight (lambda2, paper: 10)")
    parser.add_argument("--lambda-id", type=float, default=1.0, help="identity term weight (0: off)")
    parser.add_argument("--lambda-rec", type=float, default=10.0, help="hole L1 weight (0: off)")
    parser.add_argument("--vgg19", metavar="STATE_DICT",
                        help="a torchvision VGG-19 state dict (.pth): Eq. 8 on its features instead of dlib's")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips")
    parser.add_argument("--val-every", type=int, default=250, help="steps between validation grids")
    parser.add_argument("--checkpoint-every", type=float, default=5.0, help="minutes between last.pt saves")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: on a shared 2-core machine two threads ran a step "
                             "4x slower than one; try 2 on an idle machine with bench/fisn.py)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)   # interrupt after N steps (tests)


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """Generator, discriminators, losses and optimisers; :meth:`step` is one training step."""

    def __init__(self, config, weights, *, device: str = "cpu", lr: float = 2e-4, ndf: int = 32, seed: int = 0,
                 face=None, vgg=None, total_steps: int | None = None):
        import torch

        from ...synthesis.fisn.generator import FISNGenerator
        from .discriminator import MultiScaleDiscriminator
        from .losses import FISNLoss

        torch.manual_seed(seed)
        self.device = device
        self.memory_format = torch.channels_last if device == "cpu" else torch.contiguous_format
        self.G = FISNGenerator(config).to(device, memory_format=self.memory_format)
        self.D = MultiScaleDiscriminator(config.num_classes, ndf).to(device, memory_format=self.memory_format)
        self.loss = FISNLoss(weights, face, vgg).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))
        self.lr, self.total_steps, self.step_count = float(lr), total_steps, 0

    def set_lr(self) -> float:
        """Constant for the first half of the run, then linear decay to 0 (Pix2PixHD)."""
        lr = self.lr
        if self.total_steps:
            half = self.total_steps / 2
            if self.step_count > half:
                lr = self.lr * max(0.0, (self.total_steps - self.step_count) / half)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def step(self, batch) -> dict[str, float]:
        b = batch.to(self.device, self.memory_format)
        self.set_lr()
        self.G.train()
        raw = self.G(b.masked, b.hole, b.alpha, b.gamma)
        fake = b.hole * raw + b.masked
        real = b.real()
        w = self.loss.weights
        adversarial = bool(w.gan or w.fea)
        loss_d = raw.new_zeros(())
        d_real = None
        if adversarial:                                  # Eq. 6, discriminators
            self.D.requires_grad_(True)
            d_real = self.D(real, b.gamma, b.hole)
            d_fake = self.D(fake.detach(), b.gamma, b.hole)
            loss_d = self.loss.discriminator(d_real, d_fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            self.D.requires_grad_(False)
            d_real = [[t.detach() for t in outs] for outs in d_real]
            d_fake = self.D(fake, b.gamma, b.hole)
        else:
            d_fake = None
        gl = self.loss.generator(d_real, d_fake, real, fake, raw, b.target, b.hole, b.chip)
        self.opt_g.zero_grad(set_to_none=True)
        gl.total.backward()
        self.opt_g.step()
        self.step_count += 1
        out = gl.as_floats()
        out["d"] = float(loss_d.detach())
        return out

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "step": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step_count = int(state["step"])

    def validate(self, batch) -> tuple[float, np.ndarray]:
        """Hole L1 (0-255 scale) of the eval-mode generator on ``batch``, and its image grid."""
        import torch

        from .losses import hole_l1

        b = batch.to(self.device, self.memory_format)
        self.G.eval()
        with torch.no_grad():
            raw = self.G(b.masked, b.hole, b.alpha, b.gamma)
        self.G.train()
        l1 = float(hole_l1(raw, b.target, b.hole)) * 127.5
        return l1, validation_grid(b, raw)


def _to_uint8(t) -> np.ndarray:
    """(3, R, R) in [-1, 1] -> RxRx3 uint8."""
    return np.clip((t.detach().float().cpu().numpy().transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def validation_grid(batch, raw) -> np.ndarray:
    """Rows of: masked I_fac | M_alpha | M_gamma | raw output | composite | clean target (RGB uint8)."""
    from ... import labels as L

    rows = []
    for i in range(raw.shape[0]):
        hole = batch.hole[i].detach().float().cpu().numpy()[0][:, :, None]
        masked = _to_uint8(batch.masked[i])
        masked = (masked * (1 - hole) + 128 * hole).astype(np.uint8)
        maps = [L.colorize(m.detach().float().cpu().numpy().argmax(axis=0).astype(np.uint8))
                for m in (batch.alpha[i], batch.gamma[i])]
        comp = _to_uint8(batch.hole[i] * raw[i] + batch.masked[i])
        rows.append(np.concatenate([masked, *maps, _to_uint8(raw[i]), comp, _to_uint8(batch.target[i])], axis=1))
    return np.concatenate(rows, axis=0)


# ----------------------------------------------------------------------------- run
def _hardware(device: str) -> str:
    if device == "cuda":
        import torch
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _load_data(args):
    from .data import build_pairs, load_pairs

    if args.pairs_dir:
        train = load_pairs(args.pairs_dir)
        val = load_pairs(args.val_pairs_dir or args.pairs_dir)
        return train, val
    if not args.data:
        raise OccguiError("give --data (the shared data folder) or --pairs-dir")
    lfw, occ = checked_data_dirs(args.data, args.occluders)
    train = build_pairs(lfw, occ, args.cache, "train", args.pairs, seed=args.seed, progress=not args.quiet)
    val = build_pairs(lfw, occ, args.cache, "val", args.val_pairs, seed=args.seed, progress=not args.quiet)
    return train, val


def _feature_nets(args, device):
    from .losses import DlibFaceFeatures, VGG19Features

    vgg = VGG19Features(args.vgg19).to(device) if args.vgg19 else None
    face = None
    if args.lambda_id or (args.lambda_per and vgg is None):
        face = DlibFaceFeatures.load(device)
    return face, vgg


def _save_state(trainer, path: Path, elapsed: float) -> None:
    import torch

    state = trainer.state_dict()
    state["elapsed"] = elapsed
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def run(args) -> int:
    import torch

    from ...device import resolve_device
    from ...synthesis.fisn.checkpoint import CHECKPOINT_NAME, save_generator
    from ...synthesis.fisn.generator import FISNConfig, parameter_count
    from .data import PairSampler
    from .losses import LossWeights

    device = resolve_device(args.device)
    torch.set_num_threads(max(1, int(args.threads)))
    out = Path(args.output)
    last = out / "last.pt"
    if args.resume and not last.exists():
        raise OccguiError(f"nothing to resume: {last} does not exist")
    if not args.resume and last.exists():
        raise OccguiError(f"{out} already holds a run: add --resume or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    hyper = {k: getattr(args, k) for k in HYPER}
    if args.resume:
        saved = json.loads((out / "run.json").read_text())
        changed = {k: (saved.get(k), v) for k, v in hyper.items() if k != "steps" and saved.get(k) != v}
        if changed:
            raise OccguiError(f"--resume with other options than the run's: {changed}")
    (out / "run.json").write_text(json.dumps(hyper, indent=1))

    train_pairs, val_pairs = _load_data(args)
    config = FISNConfig(size=args.size, channels=args.channels, blocks=args.blocks, style_dim=args.style_dim)
    weights = LossWeights(gan=args.lambda_gan, fea=args.lambda_fea, per=args.lambda_per, id=args.lambda_id,
                          rec=args.lambda_rec)
    face, vgg = _feature_nets(args, device)
    trainer = Trainer(config, weights, device=device, lr=args.lr, ndf=args.ndf, seed=args.seed, face=face, vgg=vgg,
                      total_steps=args.steps)
    elapsed0 = 0.0
    if args.resume:
        state = torch.load(last, map_location=device, weights_only=True)
        trainer.load_state_dict(state)
        elapsed0 = float(state.get("elapsed", 0.0))
    sampler = PairSampler(train_pairs, args.size, args.seed, flip=args.flip)
    val_batch = PairSampler(val_pairs, args.size, args.seed, flip=False).fixed(
        range(min(len(val_pairs), args.val_pairs)))
    (out / "val").mkdir(exist_ok=True)
    log = open(out / "log.jsonl", "a")
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=trainer.step_count, desc="FISN", unit="step")
    t_start, t_saved = time.monotonic(), time.monotonic()

    def elapsed() -> float:
        return elapsed0 + time.monotonic() - t_start

    def validate() -> None:
        import cv2

        l1, grid = trainer.validate(val_batch)
        cv2.imwrite(str(out / "val" / f"step_{trainer.step_count:06d}.png"), grid[:, :, ::-1])
        log.write(json.dumps({"step": trainer.step_count, "val_hole_l1": round(l1, 3),
                              "elapsed": round(elapsed(), 1)}) + "\n")
        log.flush()

    steps_this_session = 0
    while trainer.step_count < args.steps:
        if args.minutes is not None and elapsed() >= args.minutes * 60:
            break
        if args.stop_after is not None and steps_this_session >= args.stop_after:
            break
        t0 = time.perf_counter()
        losses = trainer.step(sampler.batch(trainer.step_count, args.batch_size))
        steps_this_session += 1
        rec = {"step": trainer.step_count, **{k: round(v, 4) for k, v in losses.items()},
               "seconds": round(time.perf_counter() - t0, 3)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k != "total"})
        if trainer.step_count % args.val_every == 0:
            validate()
        if time.monotonic() - t_saved > args.checkpoint_every * 60:
            _save_state(trainer, last, elapsed())
            t_saved = time.monotonic()
    if bar is not None:
        bar.close()
    if trainer.step_count % args.val_every:
        validate()
    _save_state(trainer, last, elapsed())
    meta = {"steps": trainer.step_count, "seconds": round(elapsed(), 1), "device": device,
            "hardware": _hardware(device), "torch": torch.__version__, "train_pairs": len(train_pairs),
            "val_pairs": len(val_pairs), "loss_weights": weights.to_dict(), "options": hyper,
            "perceptual": "vgg19" if vgg is not None else ("dlib" if face is not None else "off"),
            "parameters": parameter_count(trainer.G)}
    save_generator(out / CHECKPOINT_NAME, trainer.G, meta)
    log.close()
    print(f"FISN: {trainer.step_count} steps, {elapsed() / 60:.1f} min -> {out / CHECKPOINT_NAME}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry point (``python -m occgui.training.fisn.train``), same options as the CLI."""
    from ..entry import standalone_main

    return standalone_main("occgui train fisn", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
