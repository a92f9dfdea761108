"""The shipped N_alpha checkpoint (``checkpoints/parsing_unet.safetensors``): read and write it
without torch, so a CPU run of the pipeline never imports torch (cold start, see bench/pipeline.py).

Format: a safetensors file whose tensors are the U-Net's ``state_dict`` (BatchNorm statistics
included, so fine-tuning can start from it; fp16 for the floating-point tensors, upcast to float32
on read) and whose string metadata holds one JSON ``header``: ``format`` =
``"occgui.parsing_unet"``, ``format_version``, ``widths``, ``num_classes``, ``labels`` (class
names, must equal ``occgui.labels.NAMES``), ``input_size`` and ``meta`` (the training record).
safetensors stores raw arrays only: reading a checkpoint runs no code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import CheckpointError
from ..resources import checkpoint_digest  # noqa: F401  (re-export: the digest is the backends' version)

CHECKPOINT_NAME = "parsing_unet.safetensors"
FORMAT = "occgui.parsing_unet"
#: 1 was a torch pickle (``parsing_unet.pt``); 2 is this safetensors layout.
FORMAT_VERSION = 2


def write_checkpoint(path, arrays: dict[str, np.ndarray], *, widths, input_size: int, meta: dict,
                     half: bool = True) -> None:
    """Write ``arrays`` (a U-Net ``state_dict`` as numpy) and the header atomically (tmp + rename)."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v.astype(np.float16) if half and np.issubdtype(v.dtype, np.floating) else v)
               for k, v in arrays.items() if not k.endswith("num_batches_tracked")}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "widths": [int(w) for w in widths],
              "num_classes": L.NUM_CLASSES, "labels": list(L.NAMES), "input_size": int(input_size), "meta": meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"header": json.dumps(header)})
    os.chmod(tmp, 0o644)                               # safetensors creates the file owner-only
    os.replace(tmp, path)


def read_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """``(float32 arrays by state_dict key, header)``; :class:`CheckpointError` (one line) when the
    file is missing, unreadable, of another format or trained for another label set."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"parsing checkpoint not found: {path} (train one with `occgui train parsing`)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get("header")
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001  (any parse failure is a bad checkpoint)
        raise CheckpointError(f"cannot read parsing checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    try:
        header = json.loads(raw) if raw else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an occgui parsing checkpoint")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {header.get('format_version')}, expected {FORMAT_VERSION}")
    if list(header.get("labels", [])) != list(L.NAMES) or int(header.get("num_classes", -1)) != L.NUM_CLASSES:
        raise CheckpointError(f"{path} was trained for another label set")
    arrays = {k: (v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v) for k, v in arrays.items()}
    return arrays, header
