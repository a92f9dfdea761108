"""Lighting of the paper's Eq. 11: ``C(r, n, γ) = r ⊙ Σ_b γ_b Φ_b(n)``, B = 3 bands (9 functions) per
colour channel, Lambertian, vertex normals.

* :func:`sh_basis` -- the real, orthonormal spherical harmonics ``Y_b`` of bands 0-2 on the unit
  sphere (∫ Y_a Y_b dω = δ_ab), in the model/camera frame (X right, Y up, Z towards the viewer);
* :func:`irradiance_basis` -- ``Φ_b = A_l Y_b``: the SH basis convolved with the clamped cosine
  (Ramamoorthi & Hanrahan 2001: ``A_0 = π``, ``A_1 = 2π/3``, ``A_2 = π/4``), so that ``Σ_b γ_b Φ_b(n)``
  is the irradiance at normal n of the distant light whose SH coefficients are γ -- the same
  functions as Deep3DFaceRecon's (which writes the products ``a_l c_l``);
* :func:`shade` -- Eq. 11 with γ of shape (..., 3, 9) (RGB x 9).

:data:`AMBIENT_GAMMA` is the γ of a uniform white light of unit irradiance (a grey ambient).
"""
from __future__ import annotations

import math

import torch

NUM_SH = 9
#: Band of each of the 9 functions.
SH_BANDS = (0, 1, 1, 1, 2, 2, 2, 2, 2)
#: Clamped-cosine convolution factors A_l per band.
LAMBERT_FACTORS = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
_C0 = 0.5 / math.sqrt(math.pi)           # Y_00
_C1 = math.sqrt(3.0 / (4.0 * math.pi))   # Y_1m
_C2 = 0.5 * math.sqrt(15.0 / math.pi)    # Y_2,-2 Y_2,-1 Y_2,1
_C20 = 0.25 * math.sqrt(5.0 / math.pi)   # Y_20
_C22 = 0.25 * math.sqrt(15.0 / math.pi)  # Y_22
#: γ_0 of a unit uniform irradiance: A_0 * Y_00 * γ_0 = 1.
AMBIENT_GAMMA = 1.0 / (LAMBERT_FACTORS[0] * _C0)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit vectors -> (..., 9): Y_00, Y_1-1 (y), Y_10 (z), Y_11 (x), Y_2-2 (xy), Y_2-1 (yz),
    Y_20 (3z²-1), Y_21 (xz), Y_22 (x²-y²), orthonormal on the sphere."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    return torch.stack([
        torch.full_like(x, _C0),
        _C1 * y, _C1 * z, _C1 * x,
        _C2 * x * y, _C2 * y * z, _C20 * (3.0 * z * z - 1.0), _C2 * x * z, _C22 * (x * x - y * y),
    ], dim=-1)


def irradiance_basis(normals: torch.Tensor) -> torch.Tensor:
    """Φ_b(n) = A_l(b) Y_b(n): (..., 3) -> (..., 9)."""
    factors = torch.tensor([LAMBERT_FACTORS[b] for b in SH_BANDS], dtype=normals.dtype, device=normals.device)
    return sh_basis(normals) * factors


def ambient_gamma(batch_shape=(), dtype=torch.float32, device=None) -> torch.Tensor:
    """γ (..., 3, 9) of a uniform white light with unit irradiance."""
    g = torch.zeros(*batch_shape, 3, NUM_SH, dtype=dtype, device=device)
    g[..., 0] = AMBIENT_GAMMA
    return g


def shade(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 11: (..., N, 3) reflectance, (..., N, 3) unit normals, (..., 3, 9) SH coefficients ->
    (..., N, 3) colours ``r ⊙ (Φ(n) γ^T)``."""
    irr = irradiance_basis(normals) @ gamma.transpose(-1, -2)   # (..., N, 3)
    return albedo * irr
