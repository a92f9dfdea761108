"""``occgui train recon``: train the R-Net (paper §3.4), distilled from per-photo morphable fits.

Data (:mod:`.data`): LFW identities A-P, every clean photo fitted once by the product's
:class:`~occgui.morphable.fit.MorphableFitter` (the targets), inputs = the clean I_out and
``--variants`` occluded + de-occluded I_outs of the same photo; made once and cached under ``--cache``
(resumable: an interrupted build continues). Distillation, not the paper's self-supervised Eq. 16:
that needs a differentiable render per training step, which pytorch3d's naive CPU rasterizer makes
far too slow on this machine; distillation from fits on the *clean* photos also teaches the
network to see through occluders.

Network: :class:`~occgui.morphable.regressor.CoefficientRegressor` with ``--stages`` ResNet-50
stages (2: conv1, bn1, layer1, layer2, about 1.4 M parameters), global average pooling, a linear
head, input ``--size``². Targets are normalised per coefficient (mean / std of the training
targets, stored with the weights); the pose is in unit-crop form.

Loss (:class:`ReconLoss`): Huber (smooth L1) error of the normalised coefficients, weighted per
group (pose and identity most), plus the landmark term (clamped per sample): the mean distance
between the 68 model landmarks projected with the predicted and with the target coefficients, in
inter-ocular distances. Training samples whose pose is an outlier (:func:`robust_keep`: an occluded
run whose detector framed the face very differently) are dropped. Augmentation (``--augment``; off
by default and in the shipped run): a random in-plane similarity of the input (shift, scale,
rotation) with the target pose carried along exactly (:func:`.data.transform_pose`). The head
starts from torch's default initialisation. Optimiser: Adam (``occgui.morphable.fit.Adam``: torch's
steps without importing ``torch._dynamo``, which crashes a process that has loaded MediaPipe),
cosine learning-rate decay over ``--steps``.

The run folder RUN holds ``last.pt`` (network, optimiser state, step, elapsed time; ``--resume``
continues, batch ``t`` being drawn from ``default_rng([seed, t])``), ``run.json``, ``log.jsonl``
(losses, validation metrics) and ``recon_regressor.safetensors`` (fp16,
:func:`occgui.morphable.regressor.save_regressor`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import OccguiError
from ..entry import add_data_arguments, add_schedule_arguments, checked_data_dirs

DEFAULT_CACHE = Path(os.environ.get("OCCGUI_CACHE", Path.home() / ".cache" / "occgui"))
HYPER = ("seed", "size", "stages", "batch_size", "lr", "photos", "val_photos", "variants", "w_identity",
         "w_expression", "w_albedo", "w_gamma", "w_pose", "w_landmark", "augment")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``occgui train recon``."""
    add_data_arguments(parser, cache_default=DEFAULT_CACHE, items="samples", run_holds="checkpoints, logs")
    parser.add_argument("--samples-dir", help="a prepared training sample folder (instead of --data)")
    parser.add_argument("--val-samples-dir", help="a prepared validation sample folder")
    parser.add_argument("--photos", type=int, default=800, help="clean training photos to fit (default %(default)s)")
    parser.add_argument("--val-photos", type=int, default=48, help="validation photos (default %(default)s)")
    parser.add_argument("--variants", type=int, default=2, help="occluded variants per photo (default %(default)s)")
    add_schedule_arguments(parser, steps=400, val_every=200, checkpoint_every=5.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=128, help="network input side (default %(default)s)")
    parser.add_argument("--stages", type=int, default=2, choices=(1, 2, 3, 4), help="ResNet-50 stages kept")
    parser.add_argument("--w-identity", type=float, default=1.0)
    parser.add_argument("--w-expression", type=float, default=0.3)
    parser.add_argument("--w-albedo", type=float, default=0.3)
    parser.add_argument("--w-gamma", type=float, default=0.3)
    parser.add_argument("--w-pose", type=float, default=2.0)
    parser.add_argument("--w-landmark", type=float, default=20.0, help="landmark term (inter-ocular units)")
    parser.add_argument("--augment", action="store_true", help="random similarities of the inputs (the shipped run "
                        "had none: the occluded variants' own crops already vary the framing)")


# ----------------------------------------------------------------------------- batches
#: Random similarity of the augmentation: shift (fraction of the crop), log-scale, rotation (rad).
AUG_SHIFT, AUG_SCALE, AUG_ROTATE = 0.04, 0.06, math.radians(6.0)


def augment_sample(image: np.ndarray, target: np.ndarray, layout, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """A random similarity about the crop's centre applied to ``image`` (S², uint8) and to the
    unit-crop pose of ``target``."""
    import cv2

    from ...morphable.camera import Pose
    from .data import transform_pose

    s = image.shape[0]
    ang = rng.uniform(-AUG_ROTATE, AUG_ROTATE)
    k = math.exp(rng.uniform(-AUG_SCALE, AUG_SCALE))
    shift = rng.uniform(-AUG_SHIFT, AUG_SHIFT, 2)
    c, sn = k * math.cos(ang), k * math.sin(ang)
    lin = np.array([[c, -sn], [sn, c]])
    unit = np.column_stack([lin, np.array([0.5, 0.5]) - lin @ np.array([0.5, 0.5]) + shift])   # unit-crop affine
    # in pixels (centres at integers): x_px' = S * A((x_px + 0.5) / S) - 0.5
    pix = unit.copy()
    pix[:, 2] = s * unit[:, 2] + lin @ np.array([0.5, 0.5]) - 0.5
    out = cv2.warpAffine(image, pix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    t = np.array(target, np.float64, copy=True)
    p0 = layout.slices()["pose"].start
    t[p0:p0 + 6] = transform_pose(Pose.from_array(t[p0:p0 + 6]), unit).as_array()
    return out, t.astype(np.float32)


@dataclass
class Batch:
    images: "torch.Tensor"    # (B, 3, R, R) in [0, 1]  # noqa: F821
    targets: "torch.Tensor"   # (B, n) raw (unit-crop pose)  # noqa: F821


class SampleSampler:
    """Seeded batches: ``batch(step, n)`` depends only on ``(seed, step)``."""

    def __init__(self, samples, layout, size: int, seed: int, augment: bool = True):
        self.samples, self.layout, self.size, self.seed, self.augment = samples, layout, int(size), int(seed), augment

    def _item(self, i: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        img = np.asarray(self.samples.images[i])
        tgt = np.asarray(self.samples.targets[i], np.float32)
        if rng is not None:
            img, tgt = augment_sample(img, tgt, self.layout, rng)
        if img.shape[0] != self.size:
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return img, tgt

    def collate(self, items) -> Batch:
        import torch

        imgs = np.stack([im for im, _ in items]).astype(np.float32) / 255.0
        return Batch(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(),
                     torch.from_numpy(np.stack([t for _, t in items])))

    def batch(self, step: int, n: int) -> Batch:
        rng = np.random.default_rng([self.seed, int(step)])
        idx = rng.integers(len(self.samples), size=n)
        return self.collate([self._item(int(i), rng if self.augment else None) for i in idx])

    def fixed(self, indices) -> Batch:
        return self.collate([self._item(int(i), None) for i in indices])


# ----------------------------------------------------------------------------- loss
@dataclass(frozen=True)
class ReconWeights:
    identity: float = 1.0
    expression: float = 0.3
    albedo: float = 0.3
    gamma: float = 0.3
    pose: float = 2.0
    landmark: float = 20.0


class ReconLoss:
    """Weighted squared error of the normalised coefficients + the landmark term (see the module
    docstring); callables on (normalised prediction, raw target)."""

    def __init__(self, model, layout, mean, std, weights: ReconWeights):
        import torch

        self.layout, self.weights = layout, weights
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.as_tensor(std, dtype=torch.float32)
        w = torch.zeros(layout.size)
        for name, sl in layout.slices().items():
            w[sl] = getattr(weights, name) / max(sl.stop - sl.start, 1)
        self.group_w = w
        lm = model.landmarks
        self.lm_mean = torch.as_tensor(model.mean_shape[lm], dtype=torch.float32)              # (68, 3)
        self.lm_id = torch.as_tensor(model.id_basis[:, lm], dtype=torch.float32)               # (K_id, 68, 3)
        self.lm_exp = torch.as_tensor(model.exp_basis[:, lm], dtype=torch.float32)             # (K_exp, 68, 3)

    def landmarks(self, coeffs):
        """(B, n) raw coefficients -> (B, 68, 2) unit-crop landmark positions."""
        import torch

        from ...morphable.camera import project

        s = self.layout.slices()
        shape = (self.lm_mean + torch.einsum("bk,knc->bnc", coeffs[:, s["identity"]], self.lm_id)
                 + torch.einsum("bk,knc->bnc", coeffs[:, s["expression"]], self.lm_exp))
        return project(shape, coeffs[:, s["pose"]])

    def landmark_nme(self, pred_raw, target_raw):
        """(B,) mean landmark distance between two coefficient sets, in the target's inter-ocular distances."""
        a, b = self.landmarks(pred_raw), self.landmarks(target_raw)
        iod = (b[:, 36] - b[:, 45]).norm(dim=-1).clamp_min(1e-6)
        return (a - b).norm(dim=-1).mean(-1) / iod

    def __call__(self, pred_norm, target_raw) -> tuple["torch.Tensor", dict[str, float]]:  # noqa: F821
        import torch.nn.functional as F

        target_norm = (target_raw - self.mean) / self.std
        per = F.smooth_l1_loss(pred_norm, target_norm, reduction="none", beta=1.0)       # Huber
        coef = (per * self.group_w).sum(-1).mean()
        lmk = self.landmark_nme(pred_norm * self.std + self.mean, target_raw).clamp_max(MAX_LANDMARK_NME).mean()
        total = coef + self.weights.landmark * lmk
        logs = {"total": float(total.detach()), "coef": float(coef.detach()), "landmark_nme": float(lmk.detach())}
        return total, logs


#: The landmark term of one sample is clamped here (inter-ocular units), so a bad sample cannot dominate a batch.
MAX_LANDMARK_NME = 0.5
#: Training samples whose pose lies further than this many robust standard deviations (median, MAD)
#: from the median are dropped: an occluded run whose detector framed the face very differently.
MAX_POSE_Z = 6.0


def robust_keep(targets: np.ndarray, layout) -> np.ndarray:
    """Boolean mask of the samples whose pose coefficients are within :data:`MAX_POSE_Z` robust
    standard deviations of the median."""
    t = np.asarray(targets, np.float64)[:, layout.slices()["pose"]]
    med = np.median(t, 0)
    mad = np.median(np.abs(t - med), 0) * 1.4826
    z = np.abs(t - med) / np.where(mad > 1e-12, mad, 1.0)
    return (z <= MAX_POSE_Z).all(1)


def target_statistics(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and std of the training targets (std 1 where a coefficient is constant)."""
    t = np.asarray(targets, np.float64)
    mean, std = t.mean(0), t.std(0)
    std = np.where(std > 1e-9, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """The regressor, its loss and Adam; :meth:`step` is one training step."""

    def __init__(self, model, layout, mean, std, weights: ReconWeights, *, stages: int = 2, lr: float = 1e-3,
                 seed: int = 0, total_steps: int | None = None):
        import torch

        from ...morphable.fit import Adam
        from ...morphable.regressor import CoefficientRegressor

        torch.manual_seed(seed)
        self.net = CoefficientRegressor(layout, stages=stages)
        with torch.no_grad():
            self.net.target_mean.copy_(torch.as_tensor(mean))
            self.net.target_std.copy_(torch.as_tensor(std))
        # the head starts from torch's default (not zero, as the untrained module does): from scratch,
        # a zero or tiny head passes no gradient to the backbone and the run learned nothing (measured)
        self.net.head.reset_parameters()
        self.loss = ReconLoss(model, layout, mean, std, weights)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = Adam([{"params": self.params, "lr": lr}])
        self.lr, self.total_steps, self.step_count = float(lr), total_steps, 0

    def set_lr(self) -> float:
        """Cosine decay from ``lr`` to 2 % of it over ``total_steps``."""
        lr = self.lr
        if self.total_steps:
            f = min(self.step_count / self.total_steps, 1.0)
            lr = self.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * f)))
        self.opt.groups = [(ps, lr) for ps, _ in self.opt.groups]
        return lr

    def step(self, batch: Batch) -> dict[str, float]:
        lr = self.set_lr()
        self.net.train()
        pred = self.net(batch.images)
        total, logs = self.loss(pred, batch.targets)
        self.opt.zero_grad()
        total.backward()
        self.opt.step()
        self.step_count += 1
        logs["lr"] = lr
        return logs

    def state_dict(self) -> dict:
        m = [self.opt.state[id(p)][0] for p in self.params]
        v = [self.opt.state[id(p)][1] for p in self.params]
        return {"net": self.net.state_dict(), "adam_m": m, "adam_v": v, "adam_t": self.opt.t, "step": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        for p, m, v in zip(self.params, state["adam_m"], state["adam_v"]):
            self.opt.state[id(p)] = (m.clone(), v.clone())
        self.opt.t = int(state["adam_t"])
        self.step_count = int(state["step"])

    def evaluate(self, samples, sampler: SampleSampler, chunk: int = 64) -> dict[str, float]:
        """Validation metrics (eval mode, no augmentation), clean and occluded inputs apart."""
        return evaluate_regressor(self.net, self.loss, samples, sampler, chunk)


def evaluate_regressor(net, loss: ReconLoss, samples, sampler: SampleSampler, chunk: int = 64) -> dict[str, float]:
    """Per-sample metrics of ``net`` on ``samples`` against their distilled targets, averaged over
    the clean and the occluded inputs: identity coefficient RMSE, landmark NME against the target's
    landmarks (``nme_fit``) and against the input's own detected landmarks (``nme_detected``),
    angle errors in degrees."""
    import torch

    lay = loss.layout
    s = lay.slices()
    p0 = s["pose"].start
    rows = []
    net.eval()
    with torch.no_grad():
        for a in range(0, len(samples), chunk):
            idx = range(a, min(a + chunk, len(samples)))
            b = sampler.fixed(idx)
            pred = net(b.images) * loss.std + loss.mean
            tgt = b.targets
            nme_fit = loss.landmark_nme(pred, tgt)
            det = torch.from_numpy(np.array(samples.landmarks[a:a + len(idx)], np.float32))
            lm = loss.landmarks(pred)
            iod = (det[:, 36] - det[:, 45]).norm(dim=-1).clamp_min(1e-6)
            nme_det = (lm - det).norm(dim=-1).mean(-1) / iod
            id_rmse = ((pred[:, s["identity"]] - tgt[:, s["identity"]]) ** 2).mean(-1).sqrt()
            ang = (pred[:, p0:p0 + 3] - tgt[:, p0:p0 + 3]).abs().rad2deg()
            for j, i in enumerate(idx):
                rows.append((samples.variants[i] == "clean", float(nme_fit[j]), float(nme_det[j]), float(id_rmse[j]),
                             *[float(x) for x in ang[j]]))
    net.train()
    out: dict[str, float] = {}
    for tag, keep in (("clean", True), ("occluded", False)):
        r = np.array([x[1:] for x in rows if x[0] == keep])
        if not len(r):
            continue
        for k, name in enumerate(("nme_fit", "nme_detected", "identity_rmse", "pitch_deg", "yaw_deg", "roll_deg")):
            out[f"{tag}_{name}"] = round(float(r[:, k].mean()), 4)
    return out


# ----------------------------------------------------------------------------- run
def _hardware() -> str:
    import platform

    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _load_data(args, model):
    from .data import build_samples, load_samples

    if args.samples_dir:
        train = load_samples(args.samples_dir)
        val = load_samples(args.val_samples_dir or args.samples_dir)
        return train, val
    if not args.data:
        raise OccguiError("give --data (the shared data folder) or --samples-dir")
    lfw, occ = checked_data_dirs(args.data, args.occluders)
    val = build_samples(lfw, occ, args.cache, "val", args.val_photos, variants=args.variants, seed=args.seed,
                        progress=not args.quiet, model=model)
    train = build_samples(lfw, occ, args.cache, "train", args.photos, variants=args.variants, seed=args.seed,
                          progress=not args.quiet, model=model)
    return train, val


def _save_state(trainer, path: Path, elapsed: float, mean, std) -> None:
    import torch

    state = trainer.state_dict()
    state["elapsed"] = elapsed
    state["mean"], state["std"] = torch.as_tensor(mean), torch.as_tensor(std)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def run(args) -> int:
    import torch

    from ...morphable import load_default_model
    from ...morphable.coefficients import CoefficientLayout
    from ...morphable.regressor import RNET_CHECKPOINT, save_regressor

    torch.set_num_threads(max(1, int(args.threads)))
    out = Path(args.output)
    last = out / "last.pt"
    if args.resume and not last.exists():
        raise OccguiError(f"nothing to resume: {last} does not exist")
    if not args.resume and last.exists():
        raise OccguiError(f"{out} already holds a run: add --resume or choose another folder")
    if args.size < 32 or args.batch_size < 2 or args.steps < 1:
        raise OccguiError("--size must be >= 32, --batch-size >= 2 and --steps >= 1")
    out.mkdir(parents=True, exist_ok=True)
    hyper = {k: getattr(args, k) for k in HYPER}
    if args.resume:
        saved = json.loads((out / "run.json").read_text())
        changed = {k: (saved.get(k), v) for k, v in hyper.items() if saved.get(k) != v}
        if changed:
            raise OccguiError(f"--resume with other options than the run's: {changed}")
    (out / "run.json").write_text(json.dumps(hyper, indent=1))

    model = load_default_model()
    layout = CoefficientLayout.of(model)
    train, val = _load_data(args, model)
    if tuple(train.layout) != (layout.num_identity, layout.num_expression, layout.num_albedo):
        raise OccguiError(f"the samples were made for another coefficient layout {tuple(train.layout)}")
    weights = ReconWeights(identity=args.w_identity, expression=args.w_expression, albedo=args.w_albedo,
                           gamma=args.w_gamma, pose=args.w_pose, landmark=args.w_landmark)
    keep = robust_keep(train.targets, layout)
    dropped = int((~keep).sum())
    if dropped:
        train = train.subset(np.flatnonzero(keep))
    mean, std = target_statistics(train.targets)
    state = None
    elapsed0 = 0.0
    if args.resume:
        state = torch.load(last, map_location="cpu", weights_only=True)
        mean, std = state["mean"].numpy(), state["std"].numpy()
        elapsed0 = float(state.get("elapsed", 0.0))
    trainer = Trainer(model, layout, mean, std, weights, stages=args.stages, lr=args.lr, seed=args.seed,
                      total_steps=args.steps)
    if state is not None:
        trainer.load_state_dict(state)
    sampler = SampleSampler(train, layout, args.size, args.seed, augment=args.augment)
    val_sampler = SampleSampler(val, layout, args.size, args.seed, augment=False)
    log = open(out / "log.jsonl", "a")
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=trainer.step_count, desc="R-Net", unit="step")
    t_start, t_saved = time.monotonic(), time.monotonic()

    def elapsed() -> float:
        return elapsed0 + time.monotonic() - t_start

    def validate() -> dict:
        metrics = trainer.evaluate(val, val_sampler)
        log.write(json.dumps({"step": trainer.step_count, "val": metrics, "elapsed": round(elapsed(), 1)}) + "\n")
        log.flush()
        return metrics

    steps_this_session = 0
    last_metrics: dict = {}
    while trainer.step_count < args.steps:
        if args.minutes is not None and elapsed() >= args.minutes * 60:
            break
        if args.stop_after is not None and steps_this_session >= args.stop_after:
            break
        t0 = time.perf_counter()
        losses = trainer.step(sampler.batch(trainer.step_count, args.batch_size))
        steps_this_session += 1
        log.write(json.dumps({"step": trainer.step_count, **{k: round(v, 5) for k, v in losses.items()},
                              "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
        log.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k != "lr"})
        if trainer.step_count % args.val_every == 0:
            last_metrics = validate()
        if time.monotonic() - t_saved > args.checkpoint_every * 60:
            _save_state(trainer, last, elapsed(), mean, std)
            t_saved = time.monotonic()
    if bar is not None:
        bar.close()
    metrics = validate() if not steps_this_session or trainer.step_count % args.val_every else last_metrics
    _save_state(trainer, last, elapsed(), mean, std)
    meta = {"steps": trainer.step_count, "seconds": round(elapsed(), 1), "hardware": _hardware(),
            "torch": torch.__version__, "train_samples": len(train), "train_photos": len(train.names),
            "dropped_outliers": dropped, "val_samples": len(val), "val_photos": len(val.names),
            "targets": "distilled from MorphableFitter fits "
            "of the clean A-P photos", "loss_weights": weights.__dict__, "options": hyper, "val": metrics,
            "parameters": sum(p.numel() for p in trainer.net.parameters())}
    save_regressor(out / RNET_CHECKPOINT, trainer.net, input_size=args.size, model_name=model.name, meta=meta)
    log.close()
    print(f"R-Net: {trainer.step_count} steps, {elapsed() / 60:.1f} min -> {out / RNET_CHECKPOINT}; validation "
          f"(A-P development) {metrics}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry point (``python -m occgui.training.recon.train``), same options as the CLI."""
    from ..entry import standalone_main

    return standalone_main("occgui train recon", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
