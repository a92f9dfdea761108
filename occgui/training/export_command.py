"""``occgui train export-onnx``: its options and its run, without importing torch until it runs (the
CLI builds every subcommand's parser, and a CPU ``occgui run`` must not pay for torch)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``occgui train export-onnx``."""
    p.add_argument("network", choices=("parser", "refiner"))
    p.add_argument("source", type=Path, help=".onnx or pre-ONNX .safetensors checkpoint")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="where to write (default: the shipped file in checkpoints/)")


def run(args) -> int:
    """(Re-)export a network as the ONNX file inference runs (:func:`.onnx_export.export`)."""
    from ..resources import checkpoint_digest
    from .onnx_export import export

    out = export(args.network, args.source, args.output)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, version {checkpoint_digest(out)})")
    return 0
