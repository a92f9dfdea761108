"""Similarity alignment of point sets and the eye centres of the 68 iBUG points.

Inference helpers (the landmark refiner aligns its mean shape with them); the evaluation
(:mod:`occgui.eval.metrics`) and the trainers re-use them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """``x -> s * R @ x + t`` in 2D or 3D."""

    s: float
    R: np.ndarray
    t: np.ndarray

    @classmethod
    def identity(cls, dim: int = 3) -> "Similarity":
        return cls(1.0, np.eye(dim), np.zeros(dim))

    def apply(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return self.s * p @ self.R.T + self.t

    def then(self, other: "Similarity") -> "Similarity":
        """The transform that applies ``self`` first, then ``other``."""
        return Similarity(other.s * self.s, other.R @ self.R, other.s * other.R @ self.t + other.t)

    def matrix(self) -> np.ndarray:
        d = len(self.t)
        m = np.eye(d + 1)
        m[:d, :d] = self.s * self.R
        m[:d, d] = self.t
        return m


def fit_similarity(src: np.ndarray, dst: np.ndarray, *, weights: np.ndarray | None = None,
                   scale: bool = True) -> Similarity:
    """Least-squares similarity (Umeyama 1991) taking ``src`` onto ``dst`` (both (N, d)), no reflection.

    ``weights`` (N,) non-negative per-point weights; ``scale=False`` gives a rigid transform.
    """
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) < a.shape[1]:
        raise ValueError(f"need matching (N, d) point sets with N >= d, got {a.shape} and {b.shape}")
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / max(w.sum(), 1e-12)
    ma, mb = w @ a, w @ b
    ac, bc = a - ma, b - mb
    cov = (bc * w[:, None]).T @ ac
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(a.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    r = u @ np.diag(d) @ vt
    var_a = float(w @ (ac ** 2).sum(axis=1))
    s = float((sig * d).sum() / max(var_a, 1e-18)) if scale else 1.0
    return Similarity(s, r, mb - s * r @ ma)


def eye_centres(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left (36-41) and image-right (42-47) eyes of 68 iBUG points (2D or 3D)."""
    p = np.asarray(landmarks68, dtype=np.float64)
    return p[36:42].mean(axis=0), p[42:48].mean(axis=0)
