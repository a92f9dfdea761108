"""Fast initialisation of the fit from the 68 landmarks (used when no regressor provides one):
alternating least squares of the scaled-orthographic pose (an affine camera fitted to the 2D-3D
landmark pairs, projected onto the nearest rotation) and of the identity and expression
coefficients given the pose (linear, with the Eq. 14 prior weighted as in Eq. 16).

The 68 model landmarks are fixed vertices; the jaw-line points of a turned face are silhouettes
and slide, so they get a lower weight (:data:`CONTOUR_WEIGHT`).
"""
from __future__ import annotations

import math

import numpy as np

from .camera import Pose
from .expression_prior import ExpressionPrior
from .losses import LossWeights
from .model import MorphableModel

CONTOUR_WEIGHT = 0.3
ALTERNATIONS = 4


def angles_from_rotation(r: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) of ``R = R_z(roll) R_y(yaw) R_x(pitch)``."""
    yaw = math.asin(float(np.clip(-r[2, 0], -1.0, 1.0)))
    pitch = math.atan2(r[2, 1], r[2, 2])
    roll = math.atan2(r[1, 0], r[0, 0])
    return pitch, yaw, roll


def pose_from_correspondences(points3d: np.ndarray, points2d: np.ndarray, weights: np.ndarray | None = None) -> Pose:
    """The scaled-orthographic pose mapping (N, 3) model points onto (N, 2) pixels, least squares."""
    w = np.ones(len(points3d)) if weights is None else np.asarray(weights, np.float64)
    x = np.column_stack([points3d, np.ones(len(points3d))]) * np.sqrt(w)[:, None]
    y = points2d * np.sqrt(w)[:, None]
    sol, *_ = np.linalg.lstsq(x, y, rcond=None)        # (4, 2): u = X a1 + t
    a = sol[:3].T.copy()                               # rows: f r1, -f r2
    a[1] *= -1
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    scale = float(s.mean())
    r12 = u @ vt                                       # nearest matrix with orthonormal rows
    r = np.vstack([r12, np.cross(r12[0], r12[1])])
    pitch, yaw, roll = angles_from_rotation(r)
    return Pose(pitch, yaw, roll, scale, float(sol[3, 0]), float(sol[3, 1]))


def shape_given_pose(model: MorphableModel, pose: Pose, points2d: np.ndarray, weights: np.ndarray,
                     loss_weights: LossWeights, pixel_scale: float,
                     expression_prior: ExpressionPrior | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Identity and expression coefficients minimising the weighted landmark term (pixels times
    ``pixel_scale`` = reference pixels) plus the Eq. 14 prior, as Eq. 16 weighs them (with
    ``expression_prior``, its learned expression term)."""
    lm = model.landmarks
    r = pose.rotation()
    p = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]) @ r * pose.scale       # (2, 3)
    base = model.mean_shape[lm].astype(np.float64) @ p.T + (pose.tx, pose.ty)
    cols = [model.id_basis[:, lm].astype(np.float64), model.exp_basis[:, lm].astype(np.float64)]
    jac = np.concatenate([c @ p.T for c in cols], axis=0)                    # (K, 68, 2)
    k_id = model.num_identity
    a = jac.reshape(len(jac), -1).T * pixel_scale                            # (136, K)
    b = (points2d - base).reshape(-1) * pixel_scale
    sw = np.sqrt(np.repeat(weights, 2) / weights.sum())
    lam = loss_weights.regularisation / loss_weights.landmark
    prior = np.diag(np.r_[np.full(k_id, loss_weights.omega_alpha),
                          np.full(model.num_expression, loss_weights.omega_beta)])
    centre = np.zeros(len(prior))
    if expression_prior is not None:
        prior[k_id:, k_id:] = loss_weights.omega_beta * expression_prior.precision
        centre[k_id:] = expression_prior.mean
    h = (a * sw[:, None]).T @ (a * sw[:, None]) + lam * prior
    g = (a * sw[:, None]).T @ (b * sw) + lam * prior @ centre
    c = np.linalg.solve(h, g)
    return c[:k_id], c[k_id:]


def landmark_weights() -> np.ndarray:
    w = np.ones(68)
    w[0:17] = CONTOUR_WEIGHT
    return w


# B008 is wrong here: LossWeights is a frozen dataclass, so the shared default cannot be mutated
# (ruff only sees that where the class is defined in the same file, as in losses.py).
def initialise_from_landmarks(model: MorphableModel, points2d, loss_weights: LossWeights = LossWeights(),  # noqa: B008
                              pixel_scale: float = 1.0, alternations: int = ALTERNATIONS,
                              point_weights: np.ndarray | None = None,
                              expression_prior: ExpressionPrior | None = None):
    """(pose, identity, expression) from (68, 2) landmarks in image pixels; ``point_weights``
    (68,) multiply the contour weights (e.g. low for landmarks under an occluder);
    ``expression_prior``: the learned expression term instead of Eq. 14's."""
    pts = np.asarray(points2d, np.float64)
    w = landmark_weights()
    if point_weights is not None:
        w = w * np.asarray(point_weights, np.float64)
    ident = np.zeros(model.num_identity)
    expr = np.zeros(model.num_expression)
    pose = None
    for _ in range(alternations):
        shape = model.shape(ident, expr)[model.landmarks]
        pose = pose_from_correspondences(shape, pts, w)
        ident, expr = shape_given_pose(model, pose, pts, w, loss_weights, pixel_scale, expression_prior)
    shape = model.shape(ident, expr)[model.landmarks]
    pose = pose_from_correspondences(shape, pts, w)
    return pose, ident, expr
