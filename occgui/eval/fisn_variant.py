"""The ``--fisn`` option of ``occgui eval deocclusion`` and ``occgui eval verify``: whether the
FISN synthesis (the ``fisn`` backend of the ``synthesize`` stage, issue 16) is measured as one
more variant beside the classical backend, ``raw`` and Telea.

* ``auto`` (default): when the shipped ``checkpoints/fisn_generator.safetensors`` exists;
* ``off``: never;
* a path: that generator checkpoint (e.g. a training run's ``RUN/fisn_generator.safetensors``).

Torch-free (the CLI's argument modules must be); the variant's pipeline imports torch when it runs.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import OccguiError

HELP = ("measure the FISN synthesis as one more variant: auto (default: when the shipped "
        "checkpoints/fisn_generator.safetensors exists), off, or the path of a generator checkpoint")


def fisn_settings(option: str | None):
    """The typed settings (``FISNSettings``) of the ``fisn`` variant for ``--fisn OPTION``, or
    None when it is not measured; a path that is not a file is a one-line error."""
    from ..synthesis.fisn_backend import shipped_checkpoint_exists
    from ..synthesis.settings import FISNSettings

    value = (option or "auto").strip()
    if value == "off":
        return None
    if value == "auto":
        return FISNSettings() if shipped_checkpoint_exists() else None
    path = Path(value).expanduser()
    if not path.is_file():
        raise OccguiError(f"--fisn: no FISN generator checkpoint at {path} (give auto, off or a .safetensors file)")
    return FISNSettings(checkpoint=str(path.resolve()))
