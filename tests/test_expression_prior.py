"""The learned expression prior of the morphable fit (occgui.morphable.expression_prior)."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from occgui.morphable import MorphableModelError, Pose, default_expression_prior_path, load_default_model
from occgui.morphable.expression_prior import ExpressionPrior, load_expression_prior, save_expression_prior
from occgui.morphable.init import initialise_from_landmarks
from occgui.morphable.losses import LossWeights, regularisation_loss


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def _prior(k, rng, model_name="m"):
    a = rng.normal(size=(k, k))
    return ExpressionPrior(mean=rng.normal(size=k), covariance=a @ a.T / k + 0.1 * np.eye(k), model=model_name)


def test_precision_keeps_the_diagonal_priors_strength():
    rng = np.random.default_rng(0)
    iso = ExpressionPrior(mean=np.zeros(4), covariance=0.3 * np.eye(4), model="m")
    assert np.allclose(iso.precision, np.eye(4))          # an isotropic covariance gives Eq. 14 back
    p = _prior(5, rng)
    w = p.whiten
    assert np.allclose(w.T @ w, p.precision)
    assert np.trace(np.linalg.inv(p.precision)) == pytest.approx(5.0)
    b = rng.normal(size=5)
    assert p.penalty(b) == pytest.approx(float((b - p.mean) @ p.precision @ (b - p.mean)))


def test_malformed_priors_are_refused_in_one_line(tmp_path, model):
    rng = np.random.default_rng(1)
    with pytest.raises(MorphableModelError, match="do not match"):
        ExpressionPrior(mean=np.zeros(3), covariance=np.eye(4), model="m")
    with pytest.raises(MorphableModelError, match="positive definite"):
        ExpressionPrior(mean=np.zeros(2), covariance=np.array([[1.0, 2.0], [2.0, 1.0]]), model="m")
    with pytest.raises(MorphableModelError, match="symmetric"):
        ExpressionPrior(mean=np.zeros(2), covariance=np.array([[1.0, 0.5], [0.0, 1.0]]), model="m")
    with pytest.raises(MorphableModelError, match="non-finite"):
        ExpressionPrior(mean=np.array([np.nan, 0.0]), covariance=np.eye(2), model="m")
    p = _prior(model.num_expression, rng, model.name)
    path = tmp_path / "prior.npz"
    save_expression_prior(path, p)
    back = load_expression_prior(path)
    assert back.model == model.name and np.allclose(back.mean, p.mean, atol=1e-6)
    assert back.check(model) is back
    with pytest.raises(MorphableModelError, match="made for"):
        _prior(3, rng, model.name).check(model)
    with pytest.raises(MorphableModelError, match="made for"):
        replace(p, model="another").check(model)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    for f, msg in ((bad, "not a readable"), (tmp_path / "missing.npz", "not found")):
        with pytest.raises(MorphableModelError, match=msg) as e:
            load_expression_prior(f)
        assert "\n" not in str(e.value)
    other = tmp_path / "other.npz"
    np.savez(other, mean=np.zeros(2))
    with pytest.raises(MorphableModelError, match="not an occgui expression prior"):
        load_expression_prior(other)


def test_regularisation_with_the_prior_is_its_mahalanobis_term():
    rng = np.random.default_rng(2)
    p = _prior(6, rng)
    w = LossWeights()
    ident = torch.tensor([1.0, -2.0])
    expr = torch.tensor(rng.normal(size=6), dtype=torch.float64)
    t = (torch.as_tensor(p.mean), torch.as_tensor(p.whiten))
    r = regularisation_loss(ident, expr, None, w, t)
    assert float(r) == pytest.approx(5.0 + w.omega_beta * p.penalty(expr.numpy()), rel=1e-9)
    iso = (torch.zeros(6, dtype=torch.float64), torch.eye(6, dtype=torch.float64))
    assert float(regularisation_loss(ident, expr, None, w, iso)) == pytest.approx(
        float(regularisation_loss(ident, expr, None, w)), rel=1e-12)


def _mouth_landmarks(model, expr):
    pose = Pose(0.0, math.radians(10), 0.0, 1.6, 112.0, 120.0)
    return pose.project(model.shape(np.zeros(model.num_identity), expr)[model.landmarks])


def test_a_correlated_prior_infers_hidden_points_from_visible_ones(model):
    """A face whose expression moves along one direction of the prior: with the mouth and jaw
    hidden (weight ~0), the learned prior puts the hidden points nearer the truth than Eq. 14's
    independent prior, because the visible brows and eyes tell it how far along the direction."""
    k = model.num_expression
    rng = np.random.default_rng(4)
    d = np.zeros(k)
    d[rng.choice(k, 12, replace=False)] = rng.uniform(0.3, 0.8, 12)
    truth = 1.5 * d
    lm = _mouth_landmarks(model, truth)
    hidden = np.zeros(68, bool)
    hidden[list(range(0, 17)) + list(range(27, 36)) + list(range(48, 68))] = True
    wts = np.where(hidden, 1e-6, 1.0)
    cov = np.outer(d, d) + 0.01 * np.eye(k)
    prior = ExpressionPrior(mean=np.zeros(k), covariance=cov, model=model.name)
    lw = LossWeights(landmark=1.6e-2, regularisation=1.5e-2, omega_beta=1.0)
    errs = []
    for p in (None, prior):
        pose, ident, expr = initialise_from_landmarks(model, lm, lw, point_weights=wts, expression_prior=p)
        pred = pose.project(model.shape(ident, expr)[model.landmarks])
        errs.append(float(np.linalg.norm(pred - lm, axis=1)[hidden].mean()))
    assert errs[1] < 0.6 * errs[0], errs


def test_the_prior_mean_is_where_an_unconstrained_expression_goes(model):
    """With every landmark at the neutral face, Eq. 14 keeps the expression at zero; the learned
    prior's mean pulls it towards the mean the prior learned."""
    k = model.num_expression
    mean = np.zeros(k)
    mean[:5] = 0.4
    prior = ExpressionPrior(mean=mean, covariance=np.eye(k), model=model.name)
    lm = _mouth_landmarks(model, np.zeros(k))
    lw = LossWeights(landmark=1.6e-2, regularisation=1.5e-2, omega_beta=1.0)
    _, _, e0 = initialise_from_landmarks(model, lm, lw)
    _, _, e1 = initialise_from_landmarks(model, lm, lw, expression_prior=prior)
    assert np.linalg.norm(e0) < 0.05
    assert np.linalg.norm(e1 - mean) < np.linalg.norm(mean) - 0.1


def test_fitter_checks_the_prior_against_its_model(model):
    from occgui.morphable.fit import FitSettings, MorphableFitter

    rng = np.random.default_rng(5)
    with pytest.raises(MorphableModelError, match="made for"):
        MorphableFitter(model, FitSettings(iterations=1, image_iterations=0), _prior(3, rng, model.name))


def test_shipped_prior_matches_the_default_model(model):
    p = load_expression_prior(default_expression_prior_path()).check(model)
    assert p.photos >= 200
    assert np.isfinite(p.precision).all()


def test_backend_setting_loads_the_prior_and_changes_the_id(tmp_path, model):
    from occgui.errors import OccguiError
    from occgui.geometry.morphable_mesh import MorphableGeometry, fit_configuration
    from occgui.geometry.settings import MorphableSettings
    from occgui.morphable.fit import PRIOR_FIT_WEIGHTS, PRIOR_OCCLUDED_LANDMARK_WEIGHT

    class Ctx:
        def __init__(self, st):
            self.settings, self.device = st, "cpu"

    fast = MorphableSettings(iterations=3, image_iterations=0)
    off = MorphableGeometry(Ctx(replace(fast, expression_prior="off")))
    learned = MorphableGeometry(Ctx(replace(fast, expression_prior="learned")))
    assert off.expression_prior is None and "eprior" not in off.version
    assert learned.expression_prior is not None and "+eprior-" in learned.version
    assert learned.fit_settings.weights == PRIOR_FIT_WEIGHTS
    assert learned.fit_settings.occluded_landmark_weight == PRIOR_OCCLUDED_LANDMARK_WEIGHT
    fs, prior, path = fit_configuration(replace(fast, expression_prior="off"), model)
    assert prior is None and path is None and fs == off.fit_settings
    wrong = tmp_path / "wrong.npz"
    save_expression_prior(wrong, _prior(3, np.random.default_rng(6), model.name))
    for choice, msg in ((str(wrong), "made for"), (str(tmp_path / "none.npz"), "not found")):
        with pytest.raises(OccguiError, match=msg):
            MorphableGeometry(Ctx(replace(fast, expression_prior=choice)))


def test_hidden_points_are_left_to_the_prior_but_a_users_point_always_counts(model):
    """With the learned prior's settings the landmarks under M_alpha's occluder weigh 0 in Eq. 12,
    except the points the user moved (``FitTarget.trusted``)."""
    from occgui import labels as L
    from occgui.morphable.fit import (
        PRIOR_FIT_WEIGHTS,
        PRIOR_OCCLUDED_LANDMARK_WEIGHT,
        FitSettings,
        FitTarget,
        MorphableFitter,
    )

    size = 224
    prior = load_expression_prior(default_expression_prior_path())
    fitter = MorphableFitter(model, FitSettings(iterations=20, image_iterations=0, weights=PRIOR_FIT_WEIGHTS,
                                                occluded_landmark_weight=PRIOR_OCCLUDED_LANDMARK_WEIGHT), prior)
    lm = _mouth_landmarks(model, prior.mean)
    alpha = np.full((size, size), L.SKIN, np.uint8)
    alpha[int(lm[48:68, 1].min()) - 8:, :] = L.OCCLUDER                   # everything below the upper lip
    moved = lm.copy()
    moved[57, 1] += 15.0                                                    # the lower lip's middle, dragged down
    img = np.full((size, size, 3), 128, np.uint8)
    base = fitter.fit(FitTarget(img, lm, alpha_labels=alpha))
    hidden_drag = fitter.fit(FitTarget(img, moved, alpha_labels=alpha))
    user_drag = fitter.fit(FitTarget(img, moved, alpha_labels=alpha, trusted=np.arange(68) == 57))
    assert abs(hidden_drag.landmarks2d[57, 1] - base.landmarks2d[57, 1]) < 0.5   # a guess under the occluder: ignored
    assert user_drag.landmarks2d[57, 1] - base.landmarks2d[57, 1] > 3.0          # the user's point: followed
    with pytest.raises(Exception, match="trusted"):
        FitTarget(img, lm, trusted=np.ones(5, bool))
