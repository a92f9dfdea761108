"""The shipped networks' files (``checkpoints/*.onnx``): open them for CPU inference with
onnxruntime (no torch import, which keeps the CLI's cold start short; see bench/pipeline.py), read
their header, and read their weights back for torch (CUDA inference, fine-tuning).

Each network is one ONNX file: graph, weights (fp16 initialisers, each read through a ``Cast`` to
float32) and, in ``metadata_props[HEADER_KEY]``, one JSON header. The parser's header holds
``format`` = ``"occgui.parsing_unet"``, ``format_version``, ``widths``, ``num_classes``, ``labels``
(class names, must equal ``occgui.labels.NAMES``), ``input_size``, the graph's ``input`` and
``output`` names and ``meta`` (the training record). The files are written by
:mod:`occgui.training.onnx_export`. Reading one runs no Python code (ONNX is a protobuf).
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import labels as L
from ..errors import CheckpointError

CHECKPOINT_NAME = "parsing_unet.onnx"
FORMAT = "occgui.parsing_unet"
#: 1 was a torch pickle (``parsing_unet.pt``), 2 a safetensors file; 3 is this ONNX layout.
FORMAT_VERSION = 3
#: The ``metadata_props`` key of the JSON header.
HEADER_KEY = "occgui.header"
#: Intra-op threads of onnxruntime's CPU sessions: one per core the process may use, at most 4
#: (the networks are small: more threads only add synchronisation).
MAX_THREADS = 4


@lru_cache(maxsize=8)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:10]


def checkpoint_digest(path) -> str:
    """Short content digest of a checkpoint file (the backend's ``version``, part of cache keys)."""
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def cpu_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:                            # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def open_session(path, what: str):
    """An onnxruntime CPU session of the ONNX file ``path`` -> ``(session, header dict)``.

    :class:`CheckpointError` (one line) when the file is missing, unreadable or has no occgui header.
    Threads: :func:`cpu_threads` intra-op, one inter-op; the pool does not spin between runs
    (the network is one stage among others that need the cores)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} checkpoint not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cpu_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        raw = session.get_modelmeta().custom_metadata_map.get(HEADER_KEY)
    except Exception as e:  # noqa: BLE001  (any parse failure is a bad checkpoint)
        raise CheckpointError(f"cannot read {what} checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    try:
        header = json.loads(raw) if raw else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not an occgui {what} checkpoint (no header)")
    return session, header


def read_header_file(path, what: str) -> dict:
    """The JSON header of an ONNX file, read with the ``onnx`` package (torch paths only)."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} checkpoint not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
        raw = {p.key: p.value for p in model.metadata_props}.get(HEADER_KEY)
        header = json.loads(raw) if raw else None
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot read {what} checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not an occgui {what} checkpoint (no header)")
    return header


def check_parser_header(header: dict, path) -> dict:
    """``header`` if it is a parser header of this format and label set, else :class:`CheckpointError`."""
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an occgui parsing checkpoint")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {header.get('format_version')}, expected {FORMAT_VERSION}")
    if list(header.get("labels", [])) != list(L.NAMES) or int(header.get("num_classes", -1)) != L.NUM_CLASSES:
        raise CheckpointError(f"{path} was trained for another label set")
    return header


def read_initialisers(path) -> dict[str, np.ndarray]:
    """Every initialiser of an ONNX file by name (fp16 upcast to float32), for torch's ``state_dict``.
    Imports the ``onnx`` package (about 0.6 s): torch paths only."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=False)
        arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot read {path}: {str(e).splitlines()[0][:200]}") from None
    return {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in arrays.items()}


def load_state_dict_checked(module, arrays: dict[str, np.ndarray], path) -> None:
    """Load ``arrays`` (by ``state_dict`` key) into the torch ``module``: every key present, every
    shape equal, else :class:`CheckpointError`. ``num_batches_tracked`` may be absent."""
    import torch

    own = module.state_dict()
    missing = [k for k in own if k not in arrays and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in arrays if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the network ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected tensors)")
    bad = [k for k in arrays if tuple(arrays[k].shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"{path} does not match the network (tensor shapes differ, e.g. {bad[0]})")
    module.load_state_dict({k: torch.from_numpy(np.array(v)).to(own[k].dtype) for k, v in arrays.items()},
                           strict=False)
