"""onnxruntime, the one CPU runtime of every shipped network (``checkpoints/*.onnx``).

Open a network's file for CPU inference (no torch import: the CLI's cold start stays short),
read its JSON header (``metadata_props[HEADER_KEY]``), and read its weights back into a torch
module (CUDA inference, fine-tuning). Reading an ONNX file runs no Python code (it is a protobuf).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .weights_header import json_header

#: The ``metadata_props`` key of the JSON header.
HEADER_KEY = "occgui.header"
#: Intra-op threads of onnxruntime's CPU sessions: one per core the process may use, at most 4
#: (the networks are small: more threads only add synchronisation).
MAX_THREADS = 4


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
    header = json_header(raw)
    if header is None:
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
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot read {what} checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    header = json_header(raw)
    if header is None:
        raise CheckpointError(f"{path} is not an occgui {what} checkpoint (no header)")
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
