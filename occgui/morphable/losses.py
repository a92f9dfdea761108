"""The reconstruction losses of the paper's §3.5, Eq. 12-16.

Units: images are RGB in [0, 1]; landmark distances are in pixels of the *reference frame* the
fit works in (the crop resampled to :data:`REFERENCE_SIZE`², the R-Net input size of
Deep3DFaceRecon, for which the paper's λ's were tuned) -- so the weights do not depend on the crop
size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import labels as L

#: Side of the reference frame of the landmark and photometric terms (pixels).
REFERENCE_SIZE = 224
#: Attention P_i of Eq. 13.
ATTENTION_FEATURE, ATTENTION_OTHER, ATTENTION_OCCLUDER = 1.0, 0.1, 0.0


@dataclass(frozen=True)
class LossWeights:
    """Eq. 14 and Eq. 16 weights (the paper's values). ``omega_albedo`` is not in the paper (its
    Eq. 14 regularises shape and expression only): the albedo prior of Deep3DFaceRecon (1.7e-2),
    needed when an albedo basis is fitted."""

    landmark: float = 1.6e-3        # λ3
    photometric: float = 1.4        # λ4
    regularisation: float = 3.7e-4  # λ5
    identity: float = 0.2           # λ6
    omega_alpha: float = 1.0        # ω_α
    omega_beta: float = 1.75e-3     # ω_β
    omega_albedo: float = 1.7e-2


@dataclass(frozen=True)
class LossTerms:
    """The terms of Eq. 16 (unweighted) and their weighted sum (floats, for histories/reports)."""

    total: float
    landmark: float
    photometric: float
    regularisation: float
    identity: float


def landmark_loss(predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 12: mean over the N landmarks of the squared distance ``||z - l_y||²`` ((..., N, 2)).
    Optional per-landmark ``weights`` give a weighted mean."""
    d2 = ((predicted - target) ** 2).sum(-1)
    if weights is None:
        return d2.mean(-1)
    return (d2 * weights).sum(-1) / weights.sum(-1).clamp_min(1e-12)


def attention_weights(gamma_labels: np.ndarray, alpha_labels: np.ndarray | None = None) -> np.ndarray:
    """P_i of Eq. 13 per pixel: 1 on the facial features (brows, eyes, nose, lips) of the merged
    map M_γ, 0.1 elsewhere, 0 (excluded) on the occluder pixels of M_α."""
    g = np.asarray(gamma_labels)
    p = np.where(L.mask_of(g, L.FEATURE_IDS), ATTENTION_FEATURE, ATTENTION_OTHER).astype(np.float32)
    if alpha_labels is not None:
        p[L.mask_of(np.asarray(alpha_labels), L.OCCLUDING)] = ATTENTION_OCCLUDER
    return p


def photometric_loss(target: torch.Tensor, rendered: torch.Tensor, attention: torch.Tensor,
                     region: torch.Tensor) -> torch.Tensor:
    """Eq. 13: ``Σ_{i∈M} P_i ||I_out(i) - I_y(i)||_2 / Σ_{i∈M} P_i``.

    ``target``/``rendered``: (..., K, 3) colours of K samples (pixels, or vertices for the
    per-vertex form); ``attention``: (..., K) P_i (each sample's area may be folded in);
    ``region``: (..., K) bool or float membership of M (the reprojected face region)."""
    w = attention * region.to(attention.dtype)
    err = torch.sqrt(((target - rendered) ** 2).sum(-1) + 1e-12)
    return (w * err).sum(-1) / w.sum(-1).clamp_min(1e-12)


def regularisation_loss(identity: torch.Tensor, expression: torch.Tensor, albedo: torch.Tensor | None = None,
                        weights: LossWeights = LossWeights(),
                        expression_prior: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Eq. 14: ``ω_α ||α̃||² + ω_β ||β̃||²`` (+ ``ω_δ ||δ̃||²`` for an albedo basis).

    ``expression_prior`` = ``(μ, W)`` replaces ``||β̃||²`` by ``||W (β̃ - μ)||²``, the learned
    expression prior of :mod:`occgui.morphable.expression_prior` (not in the paper)."""
    if expression_prior is None:
        e = (expression ** 2).sum(-1)
    else:
        mean, whiten = expression_prior
        e = (((expression - mean) @ whiten.T) ** 2).sum(-1)
    r = weights.omega_alpha * (identity ** 2).sum(-1) + weights.omega_beta * e
    if albedo is not None and albedo.shape[-1]:
        r = r + weights.omega_albedo * (albedo ** 2).sum(-1)
    return r


def identity_loss(embedding_a: torch.Tensor, embedding_b: torch.Tensor) -> torch.Tensor:
    """Eq. 15: ``1 - <G(a), G(b)> / (||G(a)|| ||G(b)||)`` of (..., D) embeddings."""
    return 1.0 - F.cosine_similarity(embedding_a, embedding_b, dim=-1, eps=1e-8)


def total_loss(landmark: torch.Tensor, photometric: torch.Tensor, regularisation: torch.Tensor,
               identity: torch.Tensor | float = 0.0, weights: LossWeights = LossWeights()) -> torch.Tensor:
    """Eq. 16: ``λ3 L_lmk + λ4 L_pix + λ5 L_reg + λ6 L_ff``."""
    return (weights.landmark * landmark + weights.photometric * photometric
            + weights.regularisation * regularisation + weights.identity * identity)


class FaceIdentityFeatures:
    """G of Eq. 15: dlib's face-recognition ResNet (:mod:`occgui.identity`, differentiable) on the
    150x150 face chip that dlib's 5-point alignment takes from the image, the chip's placement
    computed once from the photo's 68 landmarks and shared by I_out and the render (the paper uses
    FaceNet; dlib's network is the project's public-domain, torch-ported embedding)."""

    def __init__(self, device: str = "cpu"):
        from ..identity import load_face_resnet

        self.net = load_face_resnet(device=device, input_range=1.0)

    @staticmethod
    def chip_affine(landmarks68: np.ndarray) -> np.ndarray:
        """(2, 3) chip -> image map of dlib's chip for (68, 2) landmarks of that image."""
        from ..identity import face_chip_affine, face_chip_details, five_points_from_68

        return face_chip_affine(face_chip_details(five_points_from_68(np.asarray(landmarks68))))

    def embed(self, images: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> (B, 128) embeddings of their chips."""
        from ..identity import extract_face_chips_torch

        aff = np.array(np.broadcast_to(np.asarray(affine, np.float32), (images.shape[0], 2, 3)))
        chips = extract_face_chips_torch(images.float(), torch.from_numpy(np.ascontiguousarray(aff)))
        return self.net(chips)
