"""A learned Gaussian prior on the expression coefficients (not in the paper; issue 15).

Eq. 14 regularises the expression with ``ω_β ||β̃||²``: every blendshape independently around
zero. With ICT-FaceKit's 53 blendshapes that prior is wrong in two ways on real photos: the
clean fits of LFW photos sit far from zero on average (a slightly open mouth, a smile, the
blendshapes taking up what the strongly regularised identity cannot), and the blendshapes move
together (a smile raises the cheeks and widens the mouth). When an occluder hides the mouth, the
diagonal prior pulls the hidden blendshapes to a neutral face that LFW photos rarely show, and
nothing ties them to what is visible.

:class:`ExpressionPrior` holds the mean ``μ`` and covariance ``Σ`` of the expression coefficients
of clean per-photo fits (``tools/derive_expression_prior.py``: A-P photos outside the fit's
development set, Ledoit-Wolf shrinkage). The fit then uses

    ω_β (β̃ - μ)ᵀ P (β̃ - μ),   P = Σ⁻¹ · tr(Σ) / K

in place of ``ω_β ||β̃||²``: the covariance's shape with the diagonal prior's overall strength
(``P = I`` and ``μ = 0`` give Eq. 14 back), so ω_β keeps its scale; with a prior the backend fits
at ω_β = 10 (``occgui.morphable.fit.PRIOR_FIT_WEIGHTS``). :attr:`whiten` is the ``W`` with
``WᵀW = P``. An option (``geometry.expression_prior``, default off); docs/morphable.md has the
measurements and why it is not the default.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model import MorphableModel, MorphableModelError, read_npz

FORMAT = "occgui-expression-prior-1"


@dataclass(frozen=True)
class ExpressionPrior:
    """Mean (K,) and covariance (K, K) of the normalised expression coefficients of ``model``."""

    mean: np.ndarray
    covariance: np.ndarray
    model: str
    photos: int = 0
    source: str = ""

    def __post_init__(self):
        mean = np.asarray(self.mean, np.float64)
        cov = np.asarray(self.covariance, np.float64)
        k = mean.shape[0] if mean.ndim == 1 else -1
        if k < 1 or cov.shape != (k, k):
            raise MorphableModelError(f"expression prior: mean {mean.shape} and covariance {cov.shape} do not match")
        if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
            raise MorphableModelError("expression prior: non-finite mean or covariance")
        if not np.allclose(cov, cov.T, atol=1e-8 * max(1.0, float(np.abs(cov).max()))):
            raise MorphableModelError("expression prior: the covariance is not symmetric")
        if np.linalg.eigvalsh(cov).min() <= 0:
            raise MorphableModelError("expression prior: the covariance is not positive definite")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", cov)

    @property
    def size(self) -> int:
        return int(self.mean.shape[0])

    @property
    def precision(self) -> np.ndarray:
        """``P = Σ⁻¹ · tr(Σ) / K`` (see the module docstring)."""
        return np.linalg.inv(self.covariance) * (np.trace(self.covariance) / self.size)

    @property
    def whiten(self) -> np.ndarray:
        """``W`` (K, K) with ``WᵀW = P``: the penalty is ``||W (β̃ - μ)||²``."""
        return np.linalg.cholesky(self.precision).T

    def penalty(self, expression: np.ndarray) -> float:
        d = np.asarray(expression, np.float64) - self.mean
        return float(d @ self.precision @ d)

    def check(self, model: MorphableModel) -> "ExpressionPrior":
        """Raise a one-line error unless the prior was made for ``model``'s expression basis."""
        if self.model != model.name or self.size != model.num_expression:
            raise MorphableModelError(f"the expression prior was made for {self.model!r} ({self.size} expressions), "
                                      f"not {model.name!r} ({model.num_expression})")
        return self


def save_expression_prior(path, prior: ExpressionPrior) -> None:
    np.savez_compressed(path, format=np.array(FORMAT), mean=prior.mean.astype(np.float32),
                        covariance=prior.covariance.astype(np.float32), model=np.array(prior.model),
                        photos=np.array(prior.photos), source=np.array(prior.source))


def load_expression_prior(path) -> ExpressionPrior:
    """Read a file written by :func:`save_expression_prior` (one-line error on a bad file)."""
    path = Path(path)
    data = read_npz(path, "expression prior")
    if str(data.get("format", "")) != FORMAT:
        raise MorphableModelError(f"{path.name} is not an occgui expression prior (expected format {FORMAT!r})")
    missing = [k for k in ("mean", "covariance", "model") if k not in data]
    if missing:
        raise MorphableModelError(f"{path.name} lacks {', '.join(missing)}")
    return ExpressionPrior(mean=data["mean"], covariance=data["covariance"], model=str(data["model"]),
                           photos=int(data.get("photos", 0)), source=str(data.get("source", "")))
