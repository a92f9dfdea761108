"""Where the texture GCN's weights are and what they are, without torch: the texture backend
decides at creation whether it refines (``UVSamplerSettings.gcn_refine``) and puts the weights'
digest into its version (the cache key), while only a morphable mesh's texture loads the network
(:func:`occgui.texture.gcn_refiner.load_refiner`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import OccguiError

CHECKPOINT_NAME = "texture_gcn.safetensors"
FORMAT = "occgui-texture-gcn-1"
REFINE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class GCNWeights:
    path: Path
    digest: str            # sha1 of the file, 8 hex digits


def default_checkpoint() -> Path:
    from ..resources import checkpoint_path

    return checkpoint_path(CHECKPOINT_NAME)


def checkpoint_exists() -> bool:
    return default_checkpoint().exists()


def check_header(path: Path) -> dict:
    """The safetensors metadata of a texture GCN weights file; one-line errors for anything else."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as e:   # safetensors raises its own error types for a corrupt header / file
        first = str(e).splitlines()[0] if str(e) else "unreadable"
        raise OccguiError(f"{path} is not a texture GCN weights file ({type(e).__name__}: {first})") from None
    if meta.get("format") != FORMAT:
        raise OccguiError(f"{path} is not a texture GCN weights file (format {meta.get('format')!r}, "
                          f"expected {FORMAT!r})")
    return meta


def weights_for(mode: str, checkpoint: str = "") -> GCNWeights | None:
    """The weights a texture backend with ``gcn_refine = mode`` uses: None for ``off``, and for
    ``auto`` when no ``checkpoint`` is named and the shipped file is absent; otherwise the checked
    file (a missing or malformed one is a one-line error)."""
    m = str(mode).strip().lower()
    if m not in REFINE_MODES:
        raise OccguiError(f"texture.gcn_refine must be one of {', '.join(REFINE_MODES)}, got {mode!r}")
    if m == "off":
        return None
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    if not path.is_file():
        if m == "auto" and not checkpoint:
            return None
        raise OccguiError(f"texture GCN weights not found: {path} (train them with `occgui train texture-gcn`)")
    check_header(path)
    return GCNWeights(path, hashlib.sha1(path.read_bytes()).hexdigest()[:8])
