"""log_prob against torch.distributions, normalisation, batch shapes, dtypes, autograd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as D

import fishsym.kernels as kernels
from fishsym.symbolic import families

#: float64 kernels vs torch.distributions (independent code, same maths): rounding only
RTOL = 1e-12
#: float32 outputs vs the float64 ones: a few float32 roundings (eps₃₂ ≈ 1.2e-7) of O(1)
#: terms, with log-partitions of size ≈ 10 → 1e-5 relative is a safe bound
RTOL_FLOAT32 = 1e-5
#: continuous normalisation by scipy.integrate.quad (adaptive Gauss–Kronrod, requested
#: to 1e-12): its achieved error at these smooth densities is far below this bound
QUAD_RTOL = 1e-9
#: torch.distributions.VonMises evaluates log I₀ by the Numerical Recipes polynomial fits
#: (relative error ~1e−8, their stated accuracy); ours is held to mpmath at RTOL in
#: test_kernels_symbolic and tests/kernels/test_von_mises.py
TORCH_RTOL = {"von_mises": 1e-7}
#: truncation of infinite discrete supports for the normalisation check; the tail mass
#: beyond 200 at the test parameters (rates ≤ e^1.5, success probabilities ≥ 1 − e^{−0.3})
#: is below 1e-20
TRUNCATE = 200


def _torch_dist(name, h, sizes):
    """The torch.distributions object of a family at natural parameters ``h`` ``[..., d]``."""
    h0 = h[..., 0]
    if name == "poisson":
        return D.Poisson(h0.exp())
    if name == "bernoulli":
        return D.Bernoulli(logits=h0)
    if name == "binomial":
        return D.Binomial(sizes["n"], logits=h0)
    if name == "categorical":
        return D.Categorical(logits=h)
    if name == "categorical_minimal":
        return D.Categorical(logits=torch.cat([h, torch.zeros_like(h[..., :1])], -1))
    if name == "multinomial":
        return D.Multinomial(sizes["n"], logits=h)
    if name == "independent_bernoulli":
        return D.Independent(D.Bernoulli(logits=h), 1)
    if name == "gaussian":
        s2 = float(sizes["sigma2"])
        normal = D.Normal(s2 * h, math.sqrt(s2))
        return D.Independent(normal, 1) if sizes["d"] > 1 else D.Normal(s2 * h0, math.sqrt(s2))
    if name == "gaussian_meanvar":
        var = -1 / (2 * h[..., 1])
        return D.Normal(h0 * var, var.sqrt())
    if name == "exponential":
        return D.Exponential(-h0)
    if name == "gamma":
        return D.Gamma(h0 + 1, -h[..., 1])
    if name == "beta":
        return D.Beta(h0 + 1, h[..., 1] + 1)
    if name == "von_mises":
        return D.VonMises(torch.atan2(h[..., 1], h0), torch.linalg.vector_norm(h, dim=-1))
    if name == "geometric":
        return D.Geometric(probs=-torch.expm1(h0))  # failures before the first success
    if name == "negative_binomial":
        # torch counts successes (prob. probs) before total_count failures; ours counts
        # failures (prob. e^h) before r successes
        return D.NegativeBinomial(float(sizes["r"]), probs=h0.exp())
    raise KeyError(name)


CASES = [(n, {}) for n in families.names()] + [
    ("gaussian", {"d": 3, "sigma2": 2}),
    ("multinomial", {"n": 4, "C": 3}),
    ("categorical", {"C": 6}),
]


@pytest.mark.parametrize("family_name,sizes", CASES, ids=[f"{n}{s or ''}" for n, s in CASES])
def test_log_prob_matches_torch_distributions(family_name, sizes, kt):
    k = kernels.get(family_name, **sizes)
    fam = families.get(family_name, **sizes)
    h = kt.random_h(fam, kt.rng(3), 4)
    gen = torch.Generator().manual_seed(11)
    y = k.sample(h, 5, gen)  # [5, 4, *obs]
    dist = _torch_dist(family_name, h, k.sizes)
    ref = dist.log_prob(y if family_name.startswith("categorical") else y.to(h.dtype))
    assert kt.rel_err(k.log_prob(y, h), ref) <= TORCH_RTOL.get(family_name, RTOL)


@pytest.mark.parametrize("family_name", families.names())
def test_log_prob_normalises(family_name, kt):
    k = kernels.get(family_name)
    fam = families.get(family_name)
    h = kt.random_h(fam, kt.rng(4), 3)
    if fam.support.finite:
        labels = k.support_labels()
    elif fam.support.discrete:
        labels = torch.arange(TRUNCATE + 1)
    else:
        _check_continuous_normalisation(k, fam, h)
        return
    lab = labels.reshape(labels.shape[0], *([1] * 1), *k.obs_shape)
    total = torch.logsumexp(k.log_prob(lab, h[None]), 0).exp()
    assert kt.rel_err(total, torch.ones(3, dtype=torch.float64)) <= RTOL


def _check_continuous_normalisation(k, fam, h):
    """∫ exp(log_prob(y, h)) dy = 1 by adaptive quadrature over the support."""
    integrate = pytest.importorskip("scipy.integrate")
    from fishsym.symbolic.support import Circle, PositiveReals, RealLine, UnitInterval

    bounds = {
        RealLine: (-math.inf, math.inf),
        PositiveReals: (0, math.inf),
        UnitInterval: (0, 1),
        Circle: (-math.pi, math.pi),
    }
    lo, hi = bounds[type(fam.support)]
    for row in h:

        def density(y, row=row):
            return k.log_prob(torch.tensor(y, dtype=torch.float64), row).exp().item()

        mass, _ = integrate.quad(density, lo, hi, epsabs=0, epsrel=1e-12, limit=200)
        assert abs(mass - 1) <= QUAD_RTOL, f"{fam.name} at {row.tolist()}: mass {mass!r}"


@pytest.mark.parametrize("family_name", families.names())
@pytest.mark.parametrize("batch", [(), (3,), (2, 4)], ids=["scalar", "b3", "b2x4"])
def test_shapes_and_dtypes(family_name, batch, kt):
    k = kernels.get(family_name)
    fam = families.get(family_name)
    d, K = k.d, 5
    n_h = max(1, math.prod(batch))
    h64 = kt.random_h(fam, kt.rng(6), n_h).reshape(*batch, d)
    gen = torch.Generator().manual_seed(0)
    v64 = torch.randn(*batch, d, K, generator=gen, dtype=torch.float64)
    y = k.sample(h64, 2, gen)
    assert y.shape == (2, *batch, *k.obs_shape)
    assert y.dtype == (torch.int64 if k.discrete else torch.float64)
    outs64 = {
        "log_prob": k.log_prob(y, h64),
        "log_partition": k.log_partition(h64),
        "mean": k.mean(h64),
        "fisher": k.fisher(h64),
        "quadratic": k.quadratic(h64, v64),
        "quartic": k.quartic(h64, v64),
        "cubic": k.cubic(h64, v64),
        "suff_stat": k.suff_stat(y),  # default: float64 for integer labels, else y's dtype
    }
    shapes = {
        "log_prob": (2, *batch),
        "log_partition": batch,
        "mean": (*batch, d),
        "fisher": (*batch, d, d),
        "quadratic": (*batch, K),
        "quartic": (*batch, K),
        "cubic": (*batch, K),
        "suff_stat": (2, *batch, d),
    }
    h32, v32 = h64.float(), v64.float()
    outs32 = {
        "log_prob": k.log_prob(y, h32),
        "log_partition": k.log_partition(h32),
        "mean": k.mean(h32),
        "fisher": k.fisher(h32),
        "quadratic": k.quadratic(h32, v32),
        "quartic": k.quartic(h32, v32),
        "cubic": k.cubic(h32, v32),
        "suff_stat": k.suff_stat(y, torch.float32),
    }
    for what, out in outs64.items():
        assert out.shape == shapes[what], what
        assert out.dtype == torch.float64, what
        assert outs32[what].dtype == torch.float32, what
        assert kt.rel_err(outs32[what], out) <= RTOL_FLOAT32, what
    spec = k.spectrum(h64)
    assert spec.fisher_max.shape == batch and spec.mu4_max_upper.dtype == torch.float64
    y32 = k.sample(h32, 2, gen)
    assert y32.dtype == (torch.int64 if k.discrete else torch.float32)


def test_log_prob_broadcasts_labels_against_h(kt):
    k = kernels.get("categorical", C=4)
    h = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.arange(4).reshape(4, 1)  # [4, 1] against batch [3] → [4, 3]
    out = k.log_prob(y, h)
    assert out.shape == (4, 3)
    assert kt.rel_err(out, torch.log_softmax(h, -1).T) <= RTOL


@pytest.mark.parametrize("family_name", families.names())
def test_score_is_t_minus_eta(family_name, kt):
    """∂ log p(y|h)/∂h = t(y) − η(h) (docs/theory.md §1), by autograd and by torch.func."""
    k = kernels.get(family_name)
    fam = families.get(family_name)
    h = kt.random_h(fam, kt.rng(8), 3).requires_grad_(True)
    y = k.sample(h.detach(), 1, torch.Generator().manual_seed(2))[0]
    (grad,) = torch.autograd.grad(k.log_prob(y, h).sum(), h)
    expected = k.suff_stat(y, torch.float64) - k.mean(h.detach())
    assert kt.rel_err(grad, expected) <= RTOL
    func_grad = torch.func.vmap(torch.func.grad(lambda hh, yy: k.log_prob(yy, hh)))(h.detach(), y)
    assert kt.rel_err(func_grad, expected) <= RTOL
