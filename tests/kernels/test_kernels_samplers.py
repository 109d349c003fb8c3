"""Samplers against the symbolic mean and covariance of t (z-scores on seeded draws)."""

from __future__ import annotations

import pytest
import sympy as sp
import torch

import fishsym.kernels as kernels
from fishsym.errors import InfiniteSupportError, NoSamplerError
from fishsym.symbolic import ExponentialFamily, families, natural_symbol
from fishsym.symbolic.domain import NEGATIVE
from fishsym.symbolic.support import FiniteSupport, PositiveReals

#: draws per parameter point
M = 100_000
#: |z| threshold. Under the null each z is ≈ N(0, 1) (CLT, M = 100 000 draws), so a
#: statistic fails with probability P(|Z| > 5) ≈ 5.7e-7; over the ≈ 300 statistics of
#: this file the family-wise false-failure rate is below 2e-4 (union bound). The seeds
#: are fixed, so the outcome is deterministic.
Z_MAX = 5.0

CASES = [(n, {}) for n in families.names()] + [
    ("gaussian", {"d": 3, "sigma2": 2}),  # d = 2 would trigger a slow 2-D normalisation check
    ("multinomial", {"n": 5, "C": 3}),
    ("categorical", {"C": 5}),
]


def _moment_z_scores(fam, vals, t: torch.Tensor):
    """z-scores of the sample mean and the sample covariance (about the true mean) of
    ``t`` ``[M, d]`` against the symbolic ``η``, ``I`` and ``μ_4``."""
    num = lambda e: float(sp.N(e.subs(vals), 30))  # noqa: E731
    d = fam.dim
    eta = torch.tensor([num(e) for e in fam.mean], dtype=torch.float64)
    fisher = torch.tensor(
        [[num(fam.fisher[c, e]) for e in range(d)] for c in range(d)], dtype=torch.float64
    )
    mu4 = fam.central_moment_entries(4)
    z = {}
    centred = t - eta
    for c in range(d):
        z[f"mean[{c}]"] = (t[:, c].mean() - eta[c]) / (fisher[c, c] / M).sqrt()
        for e in range(c, d):
            # Var[(t_c − η_c)(t_e − η_e)] = μ_4[c,c,e,e] − I_ce²
            var = num(mu4[tuple(sorted((c, c, e, e)))]) - fisher[c, e] ** 2
            cov = (centred[:, c] * centred[:, e]).mean()
            z[f"cov[{c},{e}]"] = (cov - fisher[c, e]) / (var / M) ** 0.5
    return z


@pytest.mark.parametrize("family_name,sizes", CASES, ids=[f"{n}{s or ''}" for n, s in CASES])
def test_sampler_moments(family_name, sizes, kt):
    fam = families.get(family_name, **sizes)
    k = kernels.get(family_name, **sizes)
    rng = kt.rng(23)
    points = [fam.random_natural_params(rng) for _ in range(2)]
    h = torch.stack([kt.h_tensor(fam, v) for v in points])  # [2, d]
    y = k.sample(h, M, torch.Generator().manual_seed(29))  # [M, 2, *obs]
    # the draws are valid labels: log_prob accepts them and is finite
    assert torch.isfinite(k.log_prob(y, h)).all()
    t = k.suff_stat(y, torch.float64)
    for b, vals in enumerate(points):
        for stat, z in _moment_z_scores(fam, vals, t[:, b]).items():
            assert abs(z) < Z_MAX, f"{family_name}{sizes} at {vals}: {stat} z = {float(z):.2f}"


@pytest.mark.parametrize("family_name", families.names())
def test_sampler_reproducible_and_private(family_name, kt):
    k = kernels.get(family_name)
    h = kt.random_h(families.get(family_name), kt.rng(1), 2)
    state = torch.get_rng_state()
    a = k.sample(h, 50, torch.Generator().manual_seed(5))
    b = k.sample(h, 50, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state()), "global random state was touched"


def _truncated_poisson(top=4):
    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    F = sp.log(sum(sp.exp(h * j) / sp.factorial(j) for j in range(top + 1)))
    return ExponentialFamily(
        "truncated_poisson",
        (h,),
        y,
        (y,),
        F,
        -sp.log(sp.factorial(y)),
        FiniteSupport.integer_range(0, top),
    )


def test_user_defined_finite_family_sampled_by_enumeration(kt):
    fam = _truncated_poisson()
    k = kernels.get(fam)
    assert isinstance(k, kernels.GenericKernel) and kernels.get(fam) is k
    assert torch.equal(k.support_labels(), torch.arange(5))
    vals = {fam.natural_params[0]: sp.Rational(3, 4)}
    h = kt.h_tensor(fam, vals)[None]
    y = k.sample(h, M, torch.Generator().manual_seed(7))
    assert y.dtype == torch.int64 and y.shape == (M, 1)
    for stat, z in _moment_z_scores(fam, vals, k.suff_stat(y, torch.float64)[:, 0]).items():
        assert abs(z) < Z_MAX, f"{stat} z = {float(z):.2f}"


def test_user_defined_infinite_family_has_no_sampler():
    h, y = natural_symbol("h", NEGATIVE), sp.Symbol("y", positive=True)
    fam = ExponentialFamily(
        "my_exponential",
        (h,),
        y,
        (y,),
        -sp.log(-h),
        sp.Integer(0),
        PositiveReals(),
        domain={h: NEGATIVE},
    )
    k = kernels.get(fam)
    hh = torch.tensor([[-1.5]], dtype=torch.float64)
    with pytest.raises(NoSamplerError, match="no sampler"):
        k.sample(hh, 3, torch.Generator())
    with pytest.raises(InfiniteSupportError, match="infinite"):
        k.support_labels()
    # everything else works from the lambdified expressions
    assert torch.allclose(k.mean(hh), torch.tensor([[1 / 1.5]], dtype=torch.float64))
