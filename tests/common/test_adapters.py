"""Output adapters: the Fisher and both estimator variances are those of the network's
real output — closed forms on the last layer's bias, the label-enumeration / quadrature
oracle with the same adapter, Monte Carlo — and the stable forms stay finite."""

import math

import mpmath
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import fishsym
from fishsym import reference
from fishsym.common.adapters import log_softplus, mean_logvar, mean_softplus_std, rate
from fishsym.errors import InvalidArgumentError, ShapeError
from fishsym.montecarlo import compare, estimate

#: fast path against closed forms / the oracle (float64, a few hundred roundings)
RTOL = 1e-10


def _net(d, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, d)).double()


def _x(n=6):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _bias_fisher_closed_form(adapter, z):
    """``I`` w.r.t. the raw output ``z`` of the last layer, per coordinate (its bias)."""
    name = adapter.name
    if name == "mean_logvar":
        return torch.stack((torch.exp(-z[:, 1]), torch.full_like(z[:, 1], 0.5)), 1)
    if name == "mean_softplus_std":
        sigma = F.softplus(z[:, 1])
        # I_σσ = 2/σ², dσ/dρ = sigmoid(ρ)
        return torch.stack((sigma**-2, 2 * torch.sigmoid(z[:, 1]) ** 2 / sigma**2), 1)
    if name == "poisson_softplus_rate":  # I_z = (λ')²/λ
        return torch.sigmoid(z) ** 2 / F.softplus(z)
    if name == "exponential_softplus_rate":  # I_z = (λ'/λ)²
        return (torch.sigmoid(z) / F.softplus(z)) ** 2
    if name == "exponential_exp_rate":
        return torch.ones_like(z)
    raise AssertionError(name)


CASES = [
    ("gaussian_meanvar", mean_logvar(), 2),
    ("gaussian_meanvar", mean_softplus_std(), 2),
    ("poisson", rate("poisson", "softplus"), 1),
    ("exponential", rate("exponential", "softplus"), 1),
    ("exponential", rate("exponential", "exp"), 1),
]


@pytest.mark.parametrize("family,adapter,d", CASES, ids=[c[1].name for c in CASES])
def test_fisher_of_the_real_output(family, adapter, d):
    model, x = _net(d), _x()
    res = fishsym.fisher_variances(model, x, family, output=adapter)
    z = model(x).detach()
    want = _bias_fisher_closed_form(adapter, z).mean(0)
    torch.testing.assert_close(res.fisher["2.bias"], want, rtol=RTOL, atol=0)


@pytest.mark.parametrize(
    "family,adapter,d", [CASES[0], CASES[2]], ids=["mean_logvar", "poisson_softplus"]
)
def test_variances_against_the_oracle(family, adapter, d):
    model, x = _net(d, seed=3), _x(3)
    res = fishsym.fisher_variances(model, x, family, output=adapter, per_sample=True)
    oracle = reference.exact_moments(model, x, family, output=adapter)
    for name in res.var1:
        for ours, ref in ((res.var1, oracle["var1"]), (res.var2, oracle["var2"])):
            scale = float(ref[name].abs().max())
            assert float((ours[name] - ref[name].reshape(ours[name].shape)).abs().max()) <= (
                RTOL * scale + 1e-300
            )
    # the adapter's curvature reaches V₂ of the last layer: not zero any more
    assert float(res.var2["2.weight"].abs().max()) > 0


def test_monte_carlo_agrees_with_the_adapted_variances():
    model, x = _net(2, seed=4), _x(4)
    adapter = mean_logvar()
    res = fishsym.fisher_variances(model, x, "gaussian_meanvar", output=adapter, per_sample=True)
    mc = estimate(
        model, x, "gaussian_meanvar", 4, 20_000, torch.Generator().manual_seed(5), output=adapter
    )
    report = compare(mc, res, false_alarm=1e-3)
    assert report.passed, report.format()
    tested = {e: sum(g.n_tested for g in report.groups if g.estimator == e) for e in mc.estimators}
    assert all(n > 0 for n in tested.values()), report.format()


def test_log_softplus_is_stable():
    z = torch.tensor([-800.0, -60.0, -30.5, -29.5, 0.0, 40.0], dtype=torch.float64)
    z.requires_grad_(True)
    y = log_softplus(z)
    (g,) = torch.autograd.grad(y.sum(), z)
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(g).all())
    for zi, yi in zip(z.tolist(), y.tolist(), strict=True):
        want = float(mpmath.log(mpmath.log1p(mpmath.exp(zi))))
        assert math.isclose(yi, want, rel_tol=1e-15)


def test_bad_adapters_are_refused():
    model, x = _net(3), _x()
    with pytest.raises(ShapeError, match="mean_logvar"):
        fishsym.fisher_variances(model, x, "gaussian_meanvar", output=mean_logvar())
    with pytest.raises(InvalidArgumentError, match="rate adapters exist"):
        rate("gamma")
    with pytest.raises(InvalidArgumentError, match="link must be"):
        rate("poisson", "sigmoid")
