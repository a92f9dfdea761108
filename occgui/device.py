"""Compute-device choice shared by every torch stage: ``auto`` -> CUDA when available, else CPU."""
from __future__ import annotations

from .errors import OccguiError

CHOICES = ("auto", "cpu", "cuda")


def cuda_driver_present() -> bool:
    """Whether the NVIDIA driver's CUDA library loads: necessary for ``torch.cuda.is_available()``,
    and checked without importing torch (about 2 s of a 6 s CLI cold start on the 2-core machine)."""
    import ctypes
    import sys

    for name in (("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib")):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch where no CUDA driver loads."""
    if not cuda_driver_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(preference: str = "auto") -> str:
    """Return ``"cuda"`` or ``"cpu"`` for a preference of ``auto``, ``cpu`` or ``cuda``.

    ``cuda`` when no CUDA device is present is an error (one line), not a silent fallback.
    """
    pref = (preference or "auto").lower()
    if pref not in CHOICES:
        raise OccguiError(f"unknown device {preference!r}; choose one of {', '.join(CHOICES)}")
    if pref == "cpu":
        return "cpu"
    available = cuda_available()
    if pref == "cuda" and not available:
        raise OccguiError("device 'cuda' was requested but no CUDA device is available")
    return "cuda" if available else "cpu"


def describe(device: str) -> str:
    """A short human label of a resolved device, e.g. ``CUDA (NVIDIA H100)`` or ``CPU``."""
    if device == "cuda":
        import torch

        return f"CUDA ({torch.cuda.get_device_name(0)})"
    return "CPU"
