"""FISN generator checkpoints: a safetensors file of the generator's ``state_dict`` (float32 or
fp16, SEAN's running statistics included) whose string metadata holds one JSON ``header``:
``format`` = ``"occgui.fisn_generator"``, ``format_version``, ``config`` (:class:`FISNConfig`),
``labels`` (must equal ``occgui.labels.NAMES``) and ``meta`` (the training record). Loading
builds the generator from ``config`` and checks that every tensor is there with its shape; any
difference is a one-line :class:`CheckpointError`. safetensors runs no code when read.
"""
from __future__ import annotations

from pathlib import Path

from ... import labels as L
from ...errors import CheckpointError
from ..settings import FISN_CHECKPOINT_NAME
from .generator import FISNConfig, FISNGenerator

CHECKPOINT_NAME = FISN_CHECKPOINT_NAME
FORMAT = "occgui.fisn_generator"
FORMAT_VERSION = 1


def save_generator(path, generator: FISNGenerator, meta: dict | None = None, *, half: bool = False) -> Path:
    """Write ``generator`` atomically (tmp + rename); ``half`` stores floats as fp16."""

    tensors = {}
    for k, v in generator.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() else v
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": generator.config.to_dict(),
              "labels": list(L.NAMES), "meta": meta or {}}
    from ...weights_header import write_with_json_header

    return write_with_json_header(path, tensors, header)


def read_header(path) -> dict:
    from ...weights_header import read_json_header

    path = Path(path)
    header, _ = read_json_header(path, what="FISN generator checkpoint", fmt=FORMAT, version=FORMAT_VERSION,
                                 train_cmd="occgui train fisn")
    if list(header.get("labels", [])) != list(L.NAMES):
        raise CheckpointError(f"{path} was trained for another label set")
    return header


def load_generator(path, device: str = "cpu") -> tuple[FISNGenerator, dict]:
    """The generator in eval mode (no gradients) and the checkpoint's header."""
    from safetensors.torch import load_file

    header = read_header(path)
    try:
        config = FISNConfig.from_dict(header["config"])
        generator = FISNGenerator(config)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid FISN configuration ({e})") from None
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot read FISN checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path} does not fit the FISN generator of its configuration: "
                              f"{len(missing)} tensors missing (e.g. {missing[:1]}), {len(extra)} unexpected "
                              f"(e.g. {extra[:1]})")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: tensor {k} has shape {tuple(tensors[k].shape)}, "
                                  f"the configuration needs {tuple(v.shape)}")
    generator.load_state_dict({k: t.to(expected[k].dtype) for k, t in tensors.items()})
    return generator.to(device).eval().requires_grad_(False), header
