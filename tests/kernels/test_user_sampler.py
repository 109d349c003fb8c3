"""The public sampler hook: a user family on an infinite support, checked by Monte Carlo
once it has a sampler (and refused, by name, before)."""

import pytest
import sympy as sp
import torch
from torch import nn

import fishsym
from fishsym.common.adapters import rate
from fishsym.errors import InvalidArgumentError, NoSamplerError, ShapeError
from fishsym.kernels import register_sampler
from fishsym.montecarlo import compare, estimate
from fishsym.symbolic import from_log_density
from fishsym.symbolic.support import PositiveReals


def _family():
    lam = sp.Symbol("lam", positive=True)
    y = sp.Symbol("y", positive=True)
    return from_log_density(
        sp.log(lam) - lam * y, y, [lam], PositiveReals(), name="my_waiting_time",
        param_domain={lam: sp.Interval.open(0, sp.oo)},
    )


def _exponential_draws(h, n, generator):
    u = torch.rand(n, *h.shape[:-1], generator=generator, dtype=h.dtype, device=h.device)
    return -torch.log1p(-u) / (-h[..., 0])  # λ = −h


@pytest.fixture
def family():
    fam = _family()
    yield fam
    register_sampler(fam, None)


def _case():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return model, x


def test_monte_carlo_checks_a_user_family_once_it_has_a_sampler(family):
    model, x = _case()
    adapter = rate("exponential", "softplus")  # h = −softplus(z) < 0
    gen = torch.Generator().manual_seed(2)
    with pytest.raises(NoSamplerError, match="register_sampler"):
        estimate(model, x, family, 1, 10, gen, output=adapter)
    register_sampler(family, _exponential_draws)
    res = fishsym.fisher_variances(model, x, family, output=adapter, per_sample=True)
    mc = estimate(model, x, family, 4, 4000, gen, output=adapter)
    report = compare(mc, res, false_alarm=1e-3)
    assert report.passed, report.format()
    assert sum(g.n_tested for g in report.groups) > 0
    # the same numbers as the built-in exponential family (same density)
    builtin = fishsym.fisher_variances(model, x, "exponential", output=adapter, per_sample=True)
    for name in res.var1:
        torch.testing.assert_close(res.var1[name], builtin.var1[name], rtol=1e-10, atol=0)
        torch.testing.assert_close(res.var2[name], builtin.var2[name], rtol=1e-10, atol=0)


def test_bad_samplers_are_refused(family):
    register_sampler(family, lambda h, n, g: torch.zeros(n, 7, dtype=h.dtype))
    model, x = _case()
    with pytest.raises(ShapeError, match="returned"):
        estimate(model, x, family, 1, 4, torch.Generator(), output=rate("exponential"))
    with pytest.raises(InvalidArgumentError, match="registered already"):
        register_sampler(family, _exponential_draws)
    with pytest.raises(InvalidArgumentError, match="dedicated sampler"):
        register_sampler("poisson", _exponential_draws)
