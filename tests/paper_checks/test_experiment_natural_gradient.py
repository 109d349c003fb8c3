"""The diagonal natural-gradient optimiser and its Î₁ / Î₂ preconditioners, against the
closed forms of GLMs written out here, and the toy runs."""

import pytest
import torch

from fishsym import kernels
from fishsym.experiments.natural_gradient import (
    DiagonalNaturalGradient,
    run_toy_natural_gradient,
    sampled_diag_fisher,
    sampled_diag_fisher_draws,
)
from fishsym.experiments.toy import toy_2d_data, toy_model
from fishsym.montecarlo.compare import z_scores, z_test

#: float64 autograd vs the closed form of a GLM (rounding only)
RTOL = 1e-12
#: family-wise false-alarm rate of the seeded Monte Carlo test
MC_ALPHA = 1e-3


def _glm_data(task, n=12):
    x, y = toy_2d_data(n, task, torch.Generator().manual_seed(0))
    model = toy_model()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.7, -0.4]], dtype=torch.float64))
        model[0].bias.fill_(0.3)
    return model, x, y


def _closed_form(task, model, x):
    """Per-input Fisher and V₁ of (w₁, w₂, b) for a GLM: u = (x₁, x₂, 1), w = 0."""
    h = model(x).detach().squeeze(1)
    feats = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # [n, 3]
    if task == "logistic_regression":
        p = torch.sigmoid(h)
        i_h = p * (1 - p)
        mu4 = p * (1 - p) * (1 - 3 * p + 3 * p**2)  # E[(y − p)⁴]
    else:
        i_h = torch.ones_like(h)
        mu4 = 3 * torch.ones_like(h)
    fisher = i_h[:, None] * feats**2
    var1 = (mu4 - i_h**2)[:, None] * feats**4
    return fisher, var1


@pytest.mark.parametrize(
    "task, family", [("logistic_regression", "bernoulli"), ("linear_regression", "gaussian")]
)
def test_neg_hessian_is_the_exact_fisher_for_any_labels(task, family):
    model, x, _ = _glm_data(task)
    kern = kernels.get(family, **({"d": 1} if family == "gaussian" else {}))
    fisher, _ = _closed_form(task, model, x)
    for seed in range(3):
        est = sampled_diag_fisher(
            model, x, kern, "neg_hessian", 2, torch.Generator().manual_seed(seed)
        )
        got = torch.cat([est["0.weight"].reshape(-1), est["0.bias"]])
        torch.testing.assert_close(got, fisher.mean(0), rtol=RTOL, atol=0)


@pytest.mark.parametrize(
    "task, family", [("logistic_regression", "bernoulli"), ("linear_regression", "gaussian")]
)
def test_squared_score_mean_and_variance(task, family):
    model, x, _ = _glm_data(task)
    kern = kernels.get(family, **({"d": 1} if family == "gaussian" else {}))
    fisher, var1 = _closed_form(task, model, x)
    draws = sampled_diag_fisher_draws(
        model, x, kern, "squared_score", 1, 3000, torch.Generator().manual_seed(9)
    )
    vals = torch.cat([draws["0.weight"].reshape(3000, -1), draws["0.bias"]], 1)  # [R, 3]
    R, n = vals.shape[0], len(x)
    mean, c = vals.mean(0), vals - vals.mean(0)
    var = c.pow(2).sum(0) / (R - 1)
    se_var = ((c.pow(4).mean(0) - var**2) / R).sqrt()
    z = torch.cat(
        [z_scores(mean, fisher.mean(0), (var / R).sqrt()), z_scores(var, var1.mean(0) / n, se_var)]
    )
    assert z_test(z, MC_ALPHA).passed


def test_step_is_the_preconditioned_gradient():
    model, x, y = _glm_data("logistic_regression")
    kern = kernels.get("bernoulli")
    lr, damping = 0.2, 1e-2
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    h = model(x)
    loss = -kern.log_prob(y.to(kern.label_dtype), h).mean()
    grads = dict(zip(before, torch.autograd.grad(loss, list(model.parameters())), strict=True))
    fhat = sampled_diag_fisher(model, x, kern, "squared_score", 3, torch.Generator().manual_seed(4))
    opt = DiagonalNaturalGradient(
        model, kern, "squared_score", lr, damping, 3, torch.Generator().manual_seed(4)
    )
    reported = opt.step(x, y)
    assert reported == pytest.approx(float(loss.detach()))
    for name, p in model.named_parameters():
        expected = before[name] - lr * grads[name] / (fhat[name] + damping)
        torch.testing.assert_close(p.detach(), expected, rtol=RTOL, atol=0)


def test_bad_optimiser_arguments():
    model, x, _ = _glm_data("logistic_regression")
    kern = kernels.get("bernoulli")
    gen = torch.Generator()
    with pytest.raises(ValueError, match="estimator"):
        DiagonalNaturalGradient(model, kern, "empirical", 0.1, 1e-3, 1, gen)
    with pytest.raises(ValueError, match="damping"):
        DiagonalNaturalGradient(model, kern, "neg_hessian", 0.1, 0.0, 1, gen)
    with pytest.raises(ValueError, match="lr"):
        DiagonalNaturalGradient(model, kern, "neg_hessian", -1.0, 1e-3, 1, gen)
    with pytest.raises(TypeError, match="Generator"):
        DiagonalNaturalGradient(model, kern, "neg_hessian", 0.1, 1e-3, 1, None)
    with pytest.raises(ValueError, match="n_labels"):
        sampled_diag_fisher(model, x, kern, "neg_hessian", 0, gen)
    with pytest.raises(ValueError, match="task"):
        toy_2d_data(5, "regression", gen)


def test_toy_runs():
    kern = kernels.get("bernoulli")
    common = dict(epochs=2, n_train=32, n_test=64, batch_size=8, kernel=kern)
    a = run_toy_natural_gradient("logistic_regression", "neg_hessian", label_seed=1, **common)
    b = run_toy_natural_gradient("logistic_regression", "neg_hessian", label_seed=2, **common)
    c = run_toy_natural_gradient("logistic_regression", "squared_score", label_seed=1, **common)
    d = run_toy_natural_gradient("logistic_regression", "squared_score", label_seed=2, **common)
    assert len(a.test_nll) == 3 and a.trajectory.shape == (1 + 2 * 4, 3)
    # Î₂ does not depend on the labels: identical runs; Î₁ does
    assert torch.equal(a.trajectory, b.trajectory)
    assert not torch.equal(c.trajectory, d.trajectory)
    # the same seeds reproduce a run exactly
    e = run_toy_natural_gradient("logistic_regression", "squared_score", label_seed=1, **common)
    assert torch.equal(c.trajectory, e.trajectory)
    assert torch.equal(a.trajectory[0], c.trajectory[0])
