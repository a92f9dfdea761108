"""``occgui train texture-gcn``: train the texture refinement GCN (paper §3.4, after Lin et al. 2020).

Data: :mod:`.data` (LFW identities A-P, occluders pasted, the product's stages up to
``synthesize``; every 25th A-P identity is validation), made once and cached under ``--cache``.
Network: :class:`occgui.texture.gcn_refiner.TextureGCN` (graph convolutions only) on the model's
mesh edges. Loss: L1 between the refined per-vertex albedo and the clean photo's de-lit colour over
the visible face-region vertices, vertices that the input saw occluded or that lie under the pasted
occluder weighted ``1 + --occluded-weight``. Adam (``occgui.morphable.fit.Adam``: torch's steps
without ``torch._dynamo``), cosine learning-rate decay over ``--steps``; ``--minutes`` stops early.

The run folder RUN holds ``last.pt`` (network, Adam moments, step, elapsed time; ``--resume``
continues from it, batch ``t`` being drawn from ``default_rng([seed, t])``), ``run.json`` (the
options), ``log.jsonl`` (training loss, validation L1 of the refined and the unrefined albedo) and
``texture_gcn.safetensors`` (fp16 weights, :func:`occgui.texture.gcn_refiner.save_refiner`), which
``--export`` also copies to the project's checkpoints folder.
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
from ..entry import add_data_arguments, add_schedule_arguments, checked_data_dirs

DEFAULT_CACHE = Path(os.environ.get("OCCGUI_CACHE", Path.home() / ".cache" / "occgui"))
HYPER = ("seed", "photos", "draws", "val_photos", "hidden", "blocks", "batch_size", "lr", "steps", "occluded_weight")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, cache_default=DEFAULT_CACHE, items="samples", run_holds="checkpoints, log")
    parser.add_argument("--photos", type=int, default=500, help="clean training photos (default %(default)s)")
    parser.add_argument("--draws", type=int, default=2, help="occluder draws per photo (default %(default)s)")
    parser.add_argument("--val-photos", type=int, default=40, help="validation photos (default %(default)s)")
    add_schedule_arguments(parser, steps=3000, val_every=250, checkpoint_every=3.0)
    parser.add_argument("--batch-size", type=int, default=4, help="meshes per step")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=32, help="channels of the hidden graph convolutions")
    parser.add_argument("--blocks", type=int, default=6, help="residual graph convolutions")
    parser.add_argument("--occluded-weight", type=float, default=4.0,
                        help="extra loss weight of occluded / re-synthesised vertices (default %(default)s)")
    parser.add_argument("--export", action="store_true",
                        help="also write the weights to the project's checkpoints/texture_gcn.safetensors")


class Trainer:
    """The network, its optimiser and the packed mesh graph; ``step(batch)`` is one update."""

    def __init__(self, num_vertices: int, edges: np.ndarray, *, hidden: int, blocks: int, lr: float,
                 total_steps: int, occluded_weight: float):

        from ...morphable.fit import Adam
        from ...texture.gcn_refiner import TextureGCN

        self.net = TextureGCN(hidden=hidden, blocks=blocks)
        self.opt = Adam([{"params": list(self.net.parameters()), "lr": lr}])
        self.lr, self.total_steps, self.occluded_weight = float(lr), int(total_steps), float(occluded_weight)
        self.n = int(num_vertices)
        self.edges = np.asarray(edges, np.int64)
        self._packed: dict[int, object] = {}
        self.step_count = 0

    def packed_edges(self, b: int):
        """The sparse adjacency of ``b`` meshes packed one after the other (cached per ``b``)."""
        from ...texture.gcn_refiner import adjacency

        if b not in self._packed:
            self._packed[b] = adjacency(self.edges, self.n, b)
        return self._packed[b]

    def tensors(self, samples, idx):
        import torch

        idx = list(idx)
        f = torch.from_numpy(np.asarray(samples.features[idx], np.float32).reshape(-1, samples.features.shape[-1]))
        base = torch.from_numpy(np.asarray(samples.base[idx], np.float32).reshape(-1, 3))
        target = torch.from_numpy(np.asarray(samples.target[idx], np.float32).reshape(-1, 3))
        valid = torch.from_numpy(np.asarray(samples.valid[idx]).reshape(-1))
        hard = torch.from_numpy((np.asarray(samples.pasted[idx]) | (samples.features[idx][..., 4] > 0.5)).reshape(-1))
        return f, base, target, valid, hard

    def loss(self, pred, target, valid, hard):
        import torch

        w = valid.float() * (1.0 + self.occluded_weight * hard.float())
        return (torch.abs(pred - target).mean(dim=1) * w).sum() / torch.clamp(w.sum(), min=1.0)

    def current_lr(self) -> float:
        t = min(1.0, self.step_count / max(1, self.total_steps))
        return self.lr * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * t)))

    def step(self, samples, idx) -> float:
        f, base, target, valid, hard = self.tensors(samples, idx)
        self.net.train()
        self.opt.groups = [(ps, self.current_lr()) for ps, _ in self.opt.groups]
        self.opt.zero_grad()
        loss = self.loss(self.net(f, self.packed_edges(len(idx)), base), target, valid, hard)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        return float(loss.detach())

    def evaluate(self, samples, batch: int = 4) -> dict:
        """Mean absolute error (albedo units x 255) over the valid vertices: all, under the pasted
        occluder, elsewhere -- refined and unrefined (``base``)."""
        import torch

        sums = {k: 0.0 for k in ("refined_all", "base_all", "refined_pasted", "base_pasted", "refined_outside",
                                 "base_outside", "loss")}
        counts = {"all": 0, "pasted": 0, "outside": 0}
        self.net.eval()
        with torch.no_grad():
            for s in range(0, len(samples), batch):
                idx = list(range(s, min(len(samples), s + batch)))
                f, base, target, valid, hard = self.tensors(samples, idx)
                pred = self.net(f, self.packed_edges(len(idx)), base)
                sums["loss"] += float(self.loss(pred, target, valid, hard)) * len(idx)
                pasted = torch.from_numpy(np.asarray(samples.pasted[idx]).reshape(-1))
                for name, m in (("all", valid), ("pasted", pasted & valid), ("outside", valid & ~pasted)):
                    counts[name] += int(m.sum())
                    sums[f"refined_{name}"] += float(torch.abs(pred - target)[m].mean(dim=1).sum()) * 255.0
                    sums[f"base_{name}"] += float(torch.abs(base - target)[m].mean(dim=1).sum()) * 255.0
        out = {k: v / max(1, counts[k.split("_")[1]]) for k, v in sums.items() if k != "loss"}
        out["loss"] = sums["loss"] / max(1, len(samples))
        return out

    def state_dict(self) -> dict:
        params = [p for ps, _ in self.opt.groups for p in ps]
        return {"net": self.net.state_dict(), "step": self.step_count, "adam_t": self.opt.t,
                "adam_m": [self.opt.state[id(p)][0] for p in params],
                "adam_v": [self.opt.state[id(p)][1] for p in params]}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.step_count = int(state["step"])
        self.opt.t = int(state["adam_t"])
        params = [p for ps, _ in self.opt.groups for p in ps]
        for p, m, v in zip(params, state["adam_m"], state["adam_v"]):
            self.opt.state[id(p)] = (m.clone(), v.clone())


def _load_data(args):
    from .data import build_samples

    if not args.data:
        raise OccguiError("give --data (the shared data folder with faces/lfw and occluders)")
    lfw, occ = checked_data_dirs(args.data, args.occluders)
    val = build_samples(lfw, occ, args.cache, "val", args.val_photos, args.draws, seed=args.seed,
                        progress=not args.quiet)
    train = build_samples(lfw, occ, args.cache, "train", args.photos, args.draws, seed=args.seed,
                          progress=not args.quiet)
    return train, val


def run(args) -> int:
    import torch

    from ...morphable import load_default_model
    from ...texture.gcn_checkpoint import CHECKPOINT_NAME
    from ...texture.gcn_refiner import parameter_count, save_refiner
    from ...texture.vertex_features import mesh_graph

    torch.set_num_threads(max(1, int(args.threads)))
    if not args.data:
        raise OccguiError("give --data (the shared data folder with faces/lfw and occluders)")
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

    t_data = time.perf_counter()
    train, val = _load_data(args)
    data_seconds = time.perf_counter() - t_data
    model = load_default_model()
    if train.features.shape[1] != model.num_vertices:
        raise OccguiError(f"the samples have {train.features.shape[1]} vertices, the model {model.num_vertices}")
    edges = mesh_graph(model.triangles, model.uv).edges
    trainer = Trainer(model.num_vertices, edges, hidden=args.hidden, blocks=args.blocks, lr=args.lr,
                      total_steps=args.steps, occluded_weight=args.occluded_weight)
    trainer.net.vertex_mask = np.asarray(model.face_mask, bool)      # the region the loss covers
    elapsed0 = 0.0
    if args.resume:
        state = torch.load(last, map_location="cpu", weights_only=True)
        trainer.load_state_dict(state)
        elapsed0 = float(state.get("elapsed", 0.0))
    log = (out / "log.jsonl").open("a")
    t0 = time.perf_counter()
    last_save = t0
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=trainer.step_count, desc="texture GCN", unit="step")

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - t0

    def save_last() -> None:
        torch.save({**trainer.state_dict(), "elapsed": elapsed()}, last)

    first_val = trainer.evaluate(val) if trainer.step_count == 0 else None
    if first_val is not None:
        log.write(json.dumps({"step": 0, "val": first_val}) + "\n")
    stopped = False
    while trainer.step_count < args.steps:
        rng = np.random.default_rng([args.seed, trainer.step_count])
        idx = rng.choice(len(train), size=min(args.batch_size, len(train)), replace=False)
        loss = trainer.step(train, idx)
        s = trainer.step_count
        rec = {"step": s, "loss": loss, "lr": trainer.current_lr(), "elapsed": elapsed()}
        if s % args.val_every == 0 or s == args.steps:
            rec["val"] = trainer.evaluate(val)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
        if time.perf_counter() - last_save > 60.0 * args.checkpoint_every:
            save_last()
            last_save = time.perf_counter()
        if args.stop_after is not None and s >= args.stop_after:
            stopped = True
            break
        if args.minutes is not None and elapsed() > 60.0 * args.minutes:
            break
    if bar is not None:
        bar.close()
    save_last()
    final = trainer.evaluate(val)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    facts = {"steps": trainer.step_count, "train_samples": len(train), "val_samples": len(val),
             "parameters": parameter_count(trainer.net), "train_seconds": round(elapsed(), 1),
             "data_seconds": round(data_seconds, 1), "load_average": round(load, 2),
             "machine": f"{platform.machine()} {platform.processor() or ''} torch threads {torch.get_num_threads()}",
             "val": {k: round(v, 3) for k, v in final.items()}}
    log.write(json.dumps({"final": facts}) + "\n")
    log.close()
    if stopped:
        return 0
    target = save_refiner(trainer.net, out / CHECKPOINT_NAME, training=facts)
    if args.export:
        from ...resources import checkpoint_path

        save_refiner(trainer.net, checkpoint_path(CHECKPOINT_NAME), training=facts)
    print(json.dumps(facts, indent=1))
    print(f"wrote {target}")
    return 0


def main(argv=None) -> int:
    from ..entry import standalone_main

    return standalone_main("occgui train texture-gcn", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
