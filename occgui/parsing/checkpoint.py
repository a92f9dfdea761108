"""The parser's file (``checkpoints/parsing_unet.onnx``): its header format. Opening it and reading
its weights back for torch are :mod:`occgui.onnx_runtime`'s, as for every shipped network.

Each network is one ONNX file: graph, weights (fp16 initialisers, each read through a ``Cast`` to
float32) and, in ``metadata_props[HEADER_KEY]``, one JSON header. The parser's header holds
``format`` = ``"occgui.parsing_unet"``, ``format_version``, ``widths``, ``num_classes``, ``labels``
(class names, must equal ``occgui.labels.NAMES``), ``input_size``, the graph's ``input`` and
``output`` names and ``meta`` (the training record). The files are written by
:mod:`occgui.training.onnx_export`. Reading one runs no Python code (ONNX is a protobuf).
"""
from __future__ import annotations

from .. import labels as L
from ..errors import CheckpointError
from ..onnx_runtime import (  # noqa: F401  (the parser's callers read its file through these)
    HEADER_KEY,
    load_state_dict_checked,
    open_session,
    read_header_file,
    read_initialisers,
)
from ..resources import checkpoint_digest  # noqa: F401  (re-export: the digest is the backends' version)

CHECKPOINT_NAME = "parsing_unet.onnx"
FORMAT = "occgui.parsing_unet"
#: 1 was a torch pickle (``parsing_unet.pt``), 2 a safetensors file; 3 is this ONNX layout.
FORMAT_VERSION = 3


def check_parser_header(header: dict, path) -> dict:
    """``header`` if it is a parser header of this format and label set, else :class:`CheckpointError`."""
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an occgui parsing checkpoint")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {header.get('format_version')}, expected {FORMAT_VERSION}")
    if list(header.get("labels", [])) != list(L.NAMES) or int(header.get("num_classes", -1)) != L.NUM_CLASSES:
        raise CheckpointError(f"{path} was trained for another label set")
    return header


