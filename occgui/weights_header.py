"""The header of the project's safetensors weights files (FISN's generator, the R-Net): a JSON
object in the file's metadata under ``"header"``, with ``format`` and ``format_version``. One
reader for all of them, so each loader only checks what is its own (config, layout, labels)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import CheckpointError


def json_header(raw) -> dict | None:
    """The JSON object stored as a weights file's header, or None when it is missing or not an object
    (the callers turn that into their own one-line error)."""
    try:
        header = json.loads(raw) if raw else None
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def read_json_header(path, *, what: str, fmt: str, version: int, train_cmd: str,
                     tensors: bool = False) -> tuple[dict, dict | None]:
    """``(header, tensors)`` of ``path`` (``tensors``: every tensor as torch, else None) after
    checking its format and version; every defect is a one-line :class:`CheckpointError` naming
    ``what`` (e.g. "R-Net weights") and, for a missing file, the ``train_cmd`` that makes one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path} (train them with `{train_cmd}`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("header")
            data = {k: f.get_tensor(k) for k in f.keys()} if tensors else None
    except Exception as e:  # noqa: BLE001  (any parse failure is a bad file)
        raise CheckpointError(f"cannot read {what} {path}: {str(e).splitlines()[0][:160]}") from None
    header = json_header(raw)
    if header is None or header.get("format") != fmt:
        raise CheckpointError(f"{path} is not an occgui {what}")
    if header.get("format_version") != version:
        raise CheckpointError(f"{path} has format version {header.get('format_version')}, expected {version}")
    return header, data


def write_with_json_header(path, tensors: dict, header: dict) -> Path:
    """Write ``tensors`` (torch) with ``header`` as the JSON ``"header"`` metadata, atomically
    (a temporary file renamed over ``path``); returns ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"header": json.dumps(header)})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
