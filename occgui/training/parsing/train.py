"""``occgui train parsing``: train N_alpha, the parsing U-Net of paper §3.2, on generated labels.

Data: clean LFW crops of identities A-P with labels from ``labelgen`` (cached, see
``dataset.build_clean_set``) and seeded synthetic occluders (``occgui.training.occlusion.occluders``; the kinds in
``dataset.HELDOUT_KINDS`` are never used), including ``--procedural-hands`` photo-like hands
tinted with the face's own skin colour (``occgui.training.occlusion.procedural_hand``). ``--init``
fine-tunes a shipped checkpoint, possibly at another ``--input-size`` (the U-Net is fully
convolutional). Loss: class-weighted cross-entropy + soft Dice at the network's input resolution
(labels nearest-resized from the 256 px crop). AdamW, linear warm-up
then cosine decay; an exponential moving average (EMA) of the weights is what gets exported.

The run folder holds ``last.pt`` (full training state, written every few minutes: ``--resume``
continues from it with the same data stream, since batch ``t`` is drawn from
``default_rng([seed, t])``), ``log.jsonl``, ``parsing_unet.onnx`` (the shipping network, fp16 weights)
and ``metrics.json`` (``evaluate.evaluate_parser`` on held-out identities Q-S).

``--real-labels`` mixes the labelled real occlusions (``resources/real_occlusions``, dev split only) into
the stream: the dev photos themselves and occluders cut out of them and pasted on training faces
(``occgui.training.parsing.real_mix``, ``occgui.training.occlusion.real_cutouts``). ``--teacher`` writes the
occluders a teacher parser finds in the "clean" training photos (caps, hands, sunglasses the label generator
calls hair, skin or background) into their labels (``occgui.training.parsing.teacher``).

With ``--steps`` the learning-rate schedule follows the step count and a run is reproducible;
with ``--minutes`` it follows the training wall time (the data stream stays seeded).

On a GPU machine (``--device cuda``: bf16 autocast, float32 loss) the batches come from
``--loader-workers`` processes; ``tools/gpu_train_parsing.sh`` runs such a fine-tune on a machine
without ``../shared``, from a clean set packed by ``occgui.training.parsing.pack`` (how v3 was made).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ... import labels as L
from ...errors import OccguiError
from ...parsing.checkpoint import CHECKPOINT_NAME

DEFAULT_CACHE = Path(os.environ.get("OCCGUI_CACHE", Path.home() / ".cache" / "occgui"))


def _fold_argument(value: str) -> str:
    """``--real-fold``'s value, checked when the command line is read (not after the data are loaded)."""
    from ..occlusion.real_cutouts import parse_fold

    try:
        parse_fold(value)
    except OccguiError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``occgui train parsing``."""
    parser.add_argument("--data", required=True,
                        help="shared data folder (with faces/lfw and occluders) or an LFW folder")
    parser.add_argument("-o", "--output", required=True, metavar="RUN", help="run folder (checkpoints, logs, metrics)")
    parser.add_argument("--occluders", help="occluder folder (default: DATA/occluders)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE),
                        help="cache folder of the clean crops+labels (default %(default)s)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float,
                        help="training wall-time budget (default 20 when --steps is not given)")
    budget.add_argument("--steps", type=int, help="number of optimisation steps (reproducible schedule)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN from its last.pt")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=float, default=0.03,
                        help="fraction of the run with a linear learning-rate warm-up")
    parser.add_argument("--init", metavar="CHECKPOINT",
                        help="fine-tune: start from the weights of a shipped parsing checkpoint (its widths are used; "
                             "the input size may differ, the U-Net is fully convolutional)")
    parser.add_argument("--input-size", type=int, default=128, help="network input resolution (multiple of 16)")
    parser.add_argument("--widths", default="16,32,64,128,256", help="U-Net channel widths per level")
    parser.add_argument("--procedural-hands", type=int, default=64, metavar="N",
                        help="add N procedural skin-coloured hands (occgui.training.occlusion.procedural_hand) "
                             "to the training occluders (0: none; default %(default)s)")
    parser.add_argument("--limit", type=int, help="use only the first N training photos (tiny runs, tests)")
    parser.add_argument("--photos", type=int, metavar="N",
                        help="use a seeded spread of N training photos, without those listed in natural_occlusions.csv "
                             "(a short fine-tune's set, cached apart)")
    parser.add_argument("--real-labels", metavar="DIR",
                        help="mix in the labelled real occlusions of this folder (e.g. resources/real_occlusions; "
                             "'bundled': the project's), dev split only: the photos themselves with the label as "
                             "occluder over the --init parser's pseudo-labels, and their occluders cut out and pasted "
                             "on training faces (occgui.training.parsing.real_mix); needs --init")
    parser.add_argument("--real-faces", metavar="DIR",
                        help="LFW folder of the labelled photos (default: the --data LFW folder)")
    parser.add_argument("--real-photo-weight", type=float, default=0.2,
                        help="share of training samples that are labelled dev photos (default %(default)s)")
    parser.add_argument("--real-cutout-weight", type=float, default=0.35,
                        help="share of training samples with a real cut-out pasted on a clean face "
                             "(default %(default)s)")
    parser.add_argument("--real-val", type=int, default=0, metavar="N",
                        help="hold N dev photos (seeded, stratified by type: real_cutouts.dev_val_stems) out of "
                             "training as dev-val: every --real-val-every steps the EMA network is scored on them and "
                             "saved to RUN/snapshots/, the best pooled IoU also as RUN/best_devval.onnx (default 0)")
    parser.add_argument("--real-fold", metavar="I/K", type=_fold_argument,
                        help="cross-validation: hold fold I of K (0-based; seeded, stratified by type: "
                             "real_cutouts.dev_folds) out of training as dev-val, instead of --real-val's N photos; "
                             "the K runs' dev-val curves are averaged by occgui.training.parsing.crossval")
    parser.add_argument("--real-val-seed", type=int, default=0, help="seed of the dev-val choice (and of the folds)")
    parser.add_argument("--real-val-every", type=int, default=100, metavar="STEPS",
                        help="steps between dev-val scores and snapshots (default %(default)s)")
    parser.add_argument("--real-photo-warp", type=float, default=0.0,
                        help="extra geometric jitter of the dev photos themselves (0..1: scale up to +-0.2, "
                             "rotation up to +-15 degrees, shift up to 0.08 of the crop, times this) against "
                             "memorising them (default 0: none)")
    parser.add_argument("--teacher", metavar="CHECKPOINT",
                        help="pseudo-label the real occluders in the clean training photos: where the parse stage of "
                             "this parsing checkpoint (network, hands, forehead growth) marks more than "
                             "--teacher-min-fraction of a crop, its occluder replaces the generated labels "
                             "(occgui.training.parsing.teacher; cached beside the clean set)")
    parser.add_argument("--teacher-network-only", action="store_true",
                        help="the teacher is the network alone: no hands from MediaPipe, no forehead growth")
    parser.add_argument("--teacher-min-fraction", type=float, default=0.01, metavar="F",
                        help="share of the crop the teacher must mark for a photo to be pseudo-labelled "
                             "(default %(default)s)")
    parser.add_argument("--eval-photos", type=int, default=300, help="held-out photos evaluated at the end (0: skip)")
    parser.add_argument("--eval-every", type=float, default=15.0,
                        help="minutes between quick held-out checks (0: never)")
    parser.add_argument("--checkpoint-every", type=float, default=5.0, help="minutes between last.pt saves")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--workers", type=int, default=2, help="processes for building the label cache")
    parser.add_argument("--loader-workers", type=int, default=0, metavar="N",
                        help="processes that prepare training batches (0: one thread in this process; a GPU run "
                             "wants most of the cores). Batch t is the same whatever N is")
    parser.add_argument("--hard-labels", dest="soft_labels", action="store_false",
                        help="nearest-resized label ids as targets instead of area-averaged class fractions "
                             "(the v1 training; biased by half a crop pixel)")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="no photometric/geometric augmentation (overfitting checks)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)  # interrupt after N steps (tests of --resume)


#: Procedural hands (another seed than training's) in the held-out evaluation.
EVAL_HANDS = 32

HYPER = ("seed", "batch_size", "lr", "warmup", "input_size", "widths", "limit", "steps", "minutes", "augment", "init",
         "procedural_hands", "soft_labels", "photos", "real_labels", "real_faces", "real_photo_weight",
         "real_cutout_weight", "real_val", "real_fold", "real_val_seed", "real_val_every", "real_photo_warp",
         "teacher", "teacher_min_fraction", "teacher_network_only")


def _class_weights(sampler, n: int = 192) -> np.ndarray:
    """Inverse-square-root class frequencies over ``n`` seeded training samples, mean 1, clipped."""
    n = min(n, 16 * len(sampler.clean))
    rng = np.random.default_rng([sampler.seed, 10 ** 9])
    counts = np.zeros(L.NUM_CLASSES)
    for i in rng.integers(len(sampler.clean), size=n):
        _, lab = sampler.sample(rng, int(i))
        if lab.ndim == 3:                                   # soft targets: class fractions per pixel
            counts += lab.astype(np.float64).sum(axis=(1, 2))
        else:
            counts += np.bincount(lab.ravel(), minlength=L.NUM_CLASSES)
    freq = counts / counts.sum()
    w = 1.0 / np.sqrt(np.maximum(freq, 1e-4))
    w = w / w.mean()
    return np.clip(w, 0.2, 5.0)


def _loss(logits, target, weight):
    """Weighted cross-entropy + soft Dice (mean over the classes present in the batch).

    ``target`` is ``(B,H,W)`` label ids or ``(B,C,H,W)`` class fractions (soft targets); for soft
    targets the cross-entropy is normalised like the hard one (by the summed target weights)."""
    import torch
    from torch.nn import functional as F

    prob = logits.softmax(dim=1)
    if target.is_floating_point():
        onehot = target.to(prob.dtype)
        wt = weight.view(1, -1, 1, 1)
        ce = -(wt * onehot * F.log_softmax(logits, dim=1)).sum() / (wt * onehot).sum().clamp_min(1e-6)
    else:
        ce = F.cross_entropy(logits, target, weight=weight)
        onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0.5
    dice = 1.0 - (2 * inter + 1.0) / (denom + 1.0)
    return ce + (dice[present].mean() if bool(present.any()) else torch.zeros((), device=logits.device)), ce


def _lr_factor(progress: float, warmup: float = 0.03) -> float:
    if progress < warmup:
        return max(progress / warmup, 0.02)
    t = min(1.0, (progress - warmup) / (1 - warmup))
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))


def _save_state(path: Path, state: dict) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _ema_update(ema, model, decay: float) -> None:
    import torch

    with torch.no_grad():
        for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
            if e.is_floating_point():
                e.mul_(decay).add_(m.detach(), alpha=1 - decay)
            else:
                e.copy_(m)


class BatchStream:
    """Training batches ``start, start+1, ...`` as torch tensors, prepared ahead of the training step.

    ``workers=0``: one background thread (OpenCV/NumPy release the GIL), enough on a 2-core CPU.
    ``workers>0``: a ``torch.utils.data.DataLoader`` over step numbers with that many spawned
    processes (tensors come back through shared memory; pinned for CUDA). Spawned, not forked:
    forked workers hung in a process that had Qt and torch's thread pools loaded (pytest-qt); a
    cached clean set reaches them as its folder (``CleanSet.__reduce__``), not as a copy.
    Either way batch ``t`` is ``sampler.batch(t, n)``, which depends only on the sampler's seed
    and ``t``."""

    def __init__(self, sampler, batch_size: int, start: int, *, workers: int = 0, pin: bool = False):
        self.sampler, self.n, self.step = sampler, int(batch_size), int(start)
        self._pool = self._it = None
        if workers > 0:
            import torch.utils.data as tud

            self._it = iter(tud.DataLoader(_StepBatches(sampler, self.n), batch_size=None,
                                           sampler=range(self.step, self.step + 10 ** 12), num_workers=int(workers),
                                           pin_memory=pin, prefetch_factor=4, persistent_workers=False,
                                           multiprocessing_context="spawn", worker_init_fn=_quiet_worker))
        else:
            self._pool = ThreadPoolExecutor(max_workers=1)
            self._pending = self._pool.submit(sampler.batch, self.step, self.n)

    def next(self):
        import torch

        if self._it is not None:
            x, y = next(self._it)
        else:
            x, y = self._pending.result()
            self._pending = self._pool.submit(self.sampler.batch, self.step + 1, self.n)
            x, y = torch.from_numpy(x), torch.from_numpy(y)
        self.step += 1
        return x, y

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._it is not None:
            try:  # what dropping the iterator does, but here, where a worker's exit status can be ignored
                self._it._shutdown_workers()
            except RuntimeError:  # a worker aborted while exiting (seen on the GPU machine): the run is done
                pass
            self._it = None


class _StepBatches:
    """Map-style dataset: item ``t`` is training batch ``t`` (numpy arrays -> tensors)."""

    def __init__(self, sampler, n: int):
        self.sampler, self.n = sampler, n

    def __getitem__(self, t):
        import torch

        x, y = self.sampler.batch(int(t), self.n)
        return torch.from_numpy(x), torch.from_numpy(y)


def _quiet_worker(_):
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def run(args) -> int:
    """Train (or resume) a parsing run; returns the process exit code."""
    import cv2
    import torch
    from torch.nn import functional as F

    from ...device import resolve_device
    from ...parsing.unet import UNet, count_parameters, to_input
    from ...parsing.unet_parser import predict_logits
    from ..occlusion.occluders import load_library, procedural_hand_library
    from ..onnx_export import export_parser
    from .dataset import (
        CROP_SIZE,
        EVAL_HAND_SEED,
        HELDOUT_KINDS,
        TRAIN_HAND_SEED,
        OcclusionSampler,
        build_clean_set,
        list_photos,
        resolve_data_dirs,
    )
    from .evaluate import evaluate_parser

    torch.set_num_threads(max(1, int(args.threads)))
    cv2.setNumThreads(1)
    device = resolve_device(args.device)
    run_dir = Path(args.output)
    last = run_dir / "last.pt"
    state = None
    if last.exists():
        if not args.resume:
            raise OccguiError(f"{run_dir} already holds a run; pass --resume to continue it or choose another folder")
        state = torch.load(last, map_location="cpu", weights_only=True)
        for k in HYPER:  # the run's own settings win over the command line
            if k in state["config"]:
                setattr(args, k, state["config"][k])
    elif args.resume:
        print(f"no {last} to resume from; starting a new run", file=sys.stderr)
    if args.steps is None and args.minutes is None:
        args.minutes = 20.0
    if args.input_size % 16:
        raise OccguiError("--input-size must be a multiple of 16")
    widths = tuple(int(w) for w in str(args.widths).split(",")) if isinstance(args.widths, str) else tuple(args.widths)
    init_model, init_meta = None, None
    if args.init and state is None:
        from ...parsing.unet_parser import load_checkpoint

        init_model, init_meta = load_checkpoint(args.init, "cpu")
        widths = tuple(init_model.widths)
    run_dir.mkdir(parents=True, exist_ok=True)
    lfw, occ_dir = resolve_data_dirs(args.data, args.occluders)
    if not lfw.is_dir():
        raise OccguiError(f"LFW folder not found: {lfw}")
    if occ_dir is None or not occ_dir.is_dir():
        raise OccguiError("occluder folder not found; pass --occluders DIR")
    progress = not args.quiet

    clean = build_clean_set(lfw, args.cache, "train", workers=args.workers, progress=progress, limit=args.limit,
                            sample=getattr(args, "photos", None))
    teacher_info = None
    if getattr(args, "teacher", None):
        from .teacher import teacher_parse_batch, teacher_record, with_teacher_occluders

        parse_batch, digest = teacher_parse_batch(args.teacher, rules=not getattr(args, "teacher_network_only", False))
        clean = with_teacher_occluders(clean, parse_batch, digest, args.teacher_min_fraction, progress=progress)
        record = teacher_record(clean)
        teacher_info = {"checkpoint": str(args.teacher), "parse": digest, "min_fraction": record["min_fraction"],
                        "photos": record["photos"], "pixel_share": record["pixel_share"]}
    library = load_library(occ_dir)
    train_lib = library.filter(exclude_kinds=HELDOUT_KINDS)
    if args.procedural_hands:
        train_lib = train_lib.merged(procedural_hand_library(args.procedural_hands, seed=TRAIN_HAND_SEED))
    # at the crop's own size the class fractions are one-hot: label ids are the same targets, 16x smaller
    soft = args.soft_labels and args.input_size != CROP_SIZE
    real_info, val_crops = None, []
    if getattr(args, "real_labels", None):
        if init_model is None and state is None:
            raise OccguiError("--real-labels needs --init: the face classes of the real photos are the initial "
                              "parser's pseudo-labels")
        sampler, real_info, val_crops = _real_sampler(args, clean, train_lib, lfw, init_model, device, soft, progress)
    else:
        sampler = OcclusionSampler(clean, train_lib, seed=args.seed, input_size=args.input_size, augment=args.augment,
                                   soft=soft)

    torch.manual_seed(args.seed)
    model = UNet(L.NUM_CLASSES, widths).to(device)
    if init_model is not None:
        model.load_state_dict(init_model.state_dict())
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, elapsed = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        weights = np.asarray(state["class_weights"].numpy(), dtype=np.float64)
    else:
        weights = _class_weights(sampler)
    weight_t = torch.tensor(weights, dtype=torch.float32, device=device)
    config = {k: getattr(args, k) for k in HYPER}
    config["widths"] = list(widths)
    log = open(run_dir / "log.jsonl", "a", encoding="utf-8")
    info = {"event": "start", "step": step, "device": device, "params": count_parameters(model),
            "train_photos": len(clean), "train_occluders": len(train_lib), "heldout_kinds": list(HELDOUT_KINDS),
            "class_weights": [round(float(w), 3) for w in weights], **config}
    log.write(json.dumps(info) + "\n")
    log.flush()

    def progress_of(step_, elapsed_):
        return step_ / args.steps if args.steps else elapsed_ / (args.minutes * 60.0)

    def save(final=False):
        _save_state(last, {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                           "step": step, "elapsed": elapsed, "config": config,
                           "class_weights": torch.tensor(weights), "final": final})

    test_clean, eval_hands = None, None

    def quick_eval(n):
        nonlocal test_clean, eval_hands
        if test_clean is None:
            test_clean = build_clean_set(lfw, args.cache, "test", workers=args.workers, progress=progress)
            eval_hands = procedural_hand_library(EVAL_HANDS, seed=EVAL_HAND_SEED)
        def parse(crops):
            return predict_logits(ema, crops, args.input_size, device).argmax(1).cpu().numpy().astype(np.uint8)
        return evaluate_parser(parse, test_clean, library, n=n, progress=progress and n > 64, hand_library=eval_hands)

    best_val = None

    def dev_val():
        """Score the EMA network on the dev-val photos, save it as a snapshot (and as the best so far)."""
        nonlocal best_val
        from ..occlusion.real_cutouts import occluder_scores

        ema.eval()
        with torch.no_grad():
            pred = np.concatenate([predict_logits(ema, np.stack([c.crop for c in val_crops[k:k + 8]]),
                                                  args.input_size, device).argmax(1).cpu().numpy()
                                   for k in range(0, len(val_crops), 8)])
        sc = occluder_scores([p == L.OCCLUDER for p in pred], [c.mask for c in val_crops])
        snap = run_dir / "snapshots" / f"step_{step:05d}.onnx"
        snap.parent.mkdir(exist_ok=True)
        export_parser(ema, snap, input_size=args.input_size,
                      meta={"steps": step, "snapshot": True, "dev_val": {k: round(v, 4) for k, v in sc.items()}})
        rec = {"event": "dev_val", "step": step, "elapsed": round(elapsed, 1),
               **{k: round(float(v), 4) for k, v in sc.items()}, "snapshot": snap.name}
        if best_val is None or sc["pooled_iou"] > best_val["pooled_iou"]:
            best_val = rec
            import shutil

            shutil.copyfile(snap, run_dir / "best_devval.onnx")
        log.write(json.dumps(rec) + "\n")
        log.flush()

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=1000, desc="train parsing", unit="‰",
                   bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}‰ [{elapsed}<{remaining}{postfix}]")
        bar.update(int(1000 * min(1.0, progress_of(step, elapsed))))
    t_ckpt = t_eval = time.time()
    losses = []
    model.train()
    batches = BatchStream(sampler, args.batch_size, step, workers=args.loader_workers, pin=device == "cuda")
    start_step = step
    while progress_of(step, elapsed) < 1.0:
        if args.stop_after is not None and step - start_step >= args.stop_after:
            save()
            batches.close()
            log.close()
            print(f"stopped after {step - start_step} steps at step {step} (resume with --resume)")
            return 0
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = args.lr * _lr_factor(progress_of(step, elapsed), args.warmup)
        x, y = batches.next()
        xt = to_input(x.to(device, non_blocking=True))
        yt = y.to(device, non_blocking=True)
        yt = yt.float() if yt.ndim == 4 else yt.long()
        # bf16 autocast on CUDA (the loss itself in float32); plain float32 on CPU
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(xt)
        logits = logits.float()
        if logits.shape[-2:] != yt.shape[-2:]:
            logits = F.interpolate(logits, size=yt.shape[-2:], mode="bilinear", align_corners=False)
        loss, ce = _loss(logits, yt, weight_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        _ema_update(ema, model, min(0.998, (1 + step) / (10 + step)))
        elapsed += time.time() - t0
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.set_postfix(step=step, loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
            bar.n = int(1000 * min(1.0, progress_of(step, elapsed)))
            bar.refresh()
        if step % 20 == 0:
            log.write(json.dumps({"step": step, "elapsed": round(elapsed, 1),
                                  "loss": round(float(np.mean(losses[-20:])), 4),
                                  "ce": round(float(ce.detach()), 4), "lr": opt.param_groups[0]["lr"]}) + "\n")
            log.flush()
        if val_crops and step % max(1, int(args.real_val_every)) == 0:
            dev_val()
        if time.time() - t_ckpt > args.checkpoint_every * 60:
            save()
            t_ckpt = time.time()
        if args.eval_every and time.time() - t_eval > args.eval_every * 60:
            ema.eval()
            m = quick_eval(48)
            log.write(json.dumps({"event": "quick_eval", "step": step, "elapsed": round(elapsed, 1),
                                  **{k: m.get(k) for k in ("occluder_iou_trained", "occluder_iou_heldout",
                                                           "occluder_iou_procedural_hand", "clean_face_parts_miou",
                                                           "clean_face_miou")}}) + "\n")
            log.flush()
            t_eval = time.time()
    batches.close()
    if bar is not None:
        bar.close()
    save(final=True)
    if val_crops and step % max(1, int(args.real_val_every)):
        dev_val()
    ema.eval()
    meta = {"steps": step, "train_seconds": round(elapsed, 1), "seed": args.seed, "batch_size": args.batch_size,
            "lr": args.lr, "warmup": args.warmup, "soft_labels": bool(sampler.soft), "input_size": args.input_size,
            "widths": list(widths), "params": count_parameters(ema),
            "train_photos": len(clean), "train_identities": "A-P", "heldout_identities": "Q-S",
            "heldout_kinds": list(HELDOUT_KINDS), "label_generator_version": _labelgen_version(),
            "procedural_hands": {"count": args.procedural_hands, "seed": TRAIN_HAND_SEED},
            "machine": f"{platform.machine()} {device} threads={args.threads}",
            "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.init:
        meta["fine_tuned_from"] = _init_record(args.init)
    if real_info is not None:
        meta["real_occlusions"] = real_info
        if best_val is not None:
            real_info["best_dev_val"] = best_val
    if teacher_info is not None:
        meta["teacher"] = teacher_info
    if getattr(args, "photos", None):
        meta["train_photo_sample"] = args.photos
    export_parser(ema, run_dir / CHECKPOINT_NAME, input_size=args.input_size, meta=meta)
    result = {"meta": meta}
    if args.eval_photos:
        result["heldout"] = quick_eval(args.eval_photos)
        result["heldout"]["test_photos_available"] = len(test_clean)
        result["heldout"]["test_photos_listed"] = len(list_photos(lfw, "test"))
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    log.write(json.dumps({"event": "done", "step": step, "elapsed": round(elapsed, 1)}) + "\n")
    log.close()
    if "heldout" in result:
        h = result["heldout"]
        print(f"held-out identities ({h['photos']} photos): occluder IoU trained kinds {h['occluder_iou_trained']}, "
              f"held-out kinds {h['occluder_iou_heldout']}, procedural hands {h.get('occluder_iou_procedural_hand')}; "
              f"clean face mIoU, five parts {h['clean_face_parts_miou']}, 9 classes {h['clean_face_miou']}")
    print(f"wrote {run_dir / CHECKPOINT_NAME} ({step} steps, {elapsed / 60:.1f} min)")
    return 0


def held_out_stems(args, crops) -> set[str]:
    """The dev photos held out of training as dev-val: fold I of K with ``--real-fold I/K``, else
    ``--real-val`` N photos (none by default); both seeded by ``--real-val-seed``."""
    from ..occlusion.real_cutouts import dev_folds, dev_val_stems, parse_fold

    seed = getattr(args, "real_val_seed", 0)
    fold = getattr(args, "real_fold", None)
    if fold:
        if getattr(args, "real_val", 0):
            raise OccguiError("give --real-fold or --real-val, not both")
        i, k = parse_fold(fold)
        return set(dev_folds(crops, k, seed)[i])
    return set(dev_val_stems(crops, getattr(args, "real_val", 0) or 0, seed))


def _real_sampler(args, clean, train_lib, lfw, init_model, device, soft, progress):
    """The :class:`real_mix.RealMixSampler` of ``--real-labels`` (dev split only) and its record."""
    import torch

    from ...parsing.unet_parser import predict_logits
    from ..occlusion.real_cutouts import make_cutouts, real_crops_for_training
    from .real_mix import RealMixSampler, pseudo_labels

    folder = None if args.real_labels in ("bundled", "default") else args.real_labels
    faces = Path(args.real_faces) if args.real_faces else lfw
    crops = real_crops_for_training(folder, faces, cache_dir=args.cache, progress=progress)
    val_stems = held_out_stems(args, crops)
    val_crops = [c for c in crops if c.stem in val_stems]
    crops = [c for c in crops if c.stem not in val_stems]
    if init_model is None:  # resumed run: the initial parser is the one recorded in the state's config
        from ...parsing.unet_parser import load_checkpoint

        init_model, _ = load_checkpoint(args.init, "cpu")
    init_model = init_model.to(device).eval()
    with torch.no_grad():
        pred = np.concatenate([predict_logits(init_model, np.stack([c.crop for c in crops[k:k + 16]]),
                                              args.input_size, device).argmax(1).cpu().numpy().astype(np.uint8)
                               for k in range(0, len(crops), 16)])
    targets = np.stack([pseudo_labels(p, c.mask) for p, c in zip(pred, crops)])
    cutouts = make_cutouts(crops)
    sampler = RealMixSampler(clean, train_lib, seed=args.seed, input_size=args.input_size, augment=args.augment,
                             soft=soft, real_photos=crops, real_targets=targets, cutouts=cutouts,
                             p_photo=args.real_photo_weight, p_cutout=args.real_cutout_weight,
                             photo_warp=getattr(args, "real_photo_warp", 0.0) or 0.0)
    info = {"labels": str(args.real_labels), "split": "dev", "photos": sorted(c.stem for c in crops),
            "cutouts": len(cutouts), "photo_weight": args.real_photo_weight, "cutout_weight": args.real_cutout_weight,
            "photo_warp": getattr(args, "real_photo_warp", 0.0) or 0.0,
            "dev_val": {"photos": sorted(val_stems), "seed": getattr(args, "real_val_seed", 0),
                        "fold": getattr(args, "real_fold", None)}}
    return sampler, info, val_crops


def _init_record(path) -> dict:
    """What a fine-tuned run started from: the initial checkpoint's digest and training record."""
    from ...parsing.unet_parser import checkpoint_digest, load_checkpoint

    try:
        _, meta = load_checkpoint(path, "cpu")
    except OccguiError:
        return {"checkpoint": str(path)}
    prior = meta.get("meta", {})
    return {"checkpoint": str(path), "version": checkpoint_digest(path), "input_size": meta.get("input_size"),
            **{k: prior[k] for k in ("steps", "train_seconds", "batch_size", "lr") if k in prior}}


def _labelgen_version() -> int:
    from .dataset import LABELGEN_VERSION

    return LABELGEN_VERSION


def main(argv=None) -> int:
    """Stand-alone entry point (``python -m occgui.training.parsing.train``), same options as the CLI."""
    from ..entry import standalone_main

    return standalone_main("occgui train parsing", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
