"""The product family of an output with factor axes (docs/theory.md §11), held to a brute
enumeration of every label tuple ``y = (y_1, …, y_T)`` in float64: ``p(y) = Π_t p(y_t|h_t)``
and ``t(y) = (t(y_1), …, t(y_T))`` built here from the one-factor kernel, nothing from
:class:`ProductKernel` itself."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import fishsym
from fishsym import kernels
from fishsym.errors import ShapeError
from fishsym.kernels.product import ProductKernel, exclusive_sums

#: float64 agreement of two exact routes (sums of a few hundred terms of size ≤ 10)
ATOL = 1e-12
#: Monte Carlo z-score beyond which a sampler is wrong (over ~30 checks)
Z_MAX = 5.0

CASES = {
    "categorical C=3 × 2": (lambda: kernels.get("categorical", C=3), (2,)),
    "categorical C=2 × 3": (lambda: kernels.get("categorical", C=2), (3,)),
    "categorical_minimal C=3 × 2": (lambda: kernels.get("categorical_minimal", C=3), (2,)),
    "bernoulli × (2, 2)": (lambda: kernels.get("bernoulli"), (2, 2)),
    "binomial n=2 × 3": (lambda: kernels.get("binomial", n=2), (3,)),
}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _enumerate(base, T, h):
    """``p [S, n]`` and ``t [S, T·d]`` over every label tuple, from the one-factor kernel."""
    support = base.support_labels()
    tuples = list(itertools.product(range(support.shape[0]), repeat=T))
    hf = h.reshape(h.shape[0], T, base.d)
    logp = torch.zeros(len(tuples), h.shape[0], dtype=h.dtype)
    stats = []
    for s, idx in enumerate(tuples):
        parts = []
        for t, j in enumerate(idx):
            logp[s] += base.log_prob(support[j], hf[:, t])
            parts.append(base.suff_stat(support[j], h.dtype).reshape(-1))
        stats.append(torch.cat(parts))
    return logp.exp(), torch.stack(stats), tuples


@pytest.mark.parametrize("case", list(CASES))
def test_product_moments_equal_enumeration_of_label_tuples(case):
    make, factors = CASES[case]
    base = make()
    T = math.prod(factors)
    kernel = ProductKernel(base, factors)
    h = 1.5 * torch.randn(4, T * base.d, generator=_gen(0), dtype=torch.float64)
    v = torch.randn(4, T * base.d, 5, generator=_gen(1), dtype=torch.float64)
    p, t, _ = _enumerate(base, T, h)
    assert torch.allclose(p.sum(0), torch.ones(4, dtype=torch.float64), atol=ATOL)
    eta = torch.einsum("sn,sc->nc", p, t)
    g = t[:, None, :] - eta[None]  # [S, n, c]
    s = torch.einsum("snc,nck->snk", g, v)
    moments = {k: torch.einsum("sn,snk->nk", p, s**k) for k in (2, 3, 4)}
    torch.testing.assert_close(kernel.mean(h), eta, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        kernel.fisher(h), torch.einsum("sn,snc,sne->nce", p, g, g), atol=ATOL, rtol=0
    )
    torch.testing.assert_close(
        kernel.fisher_diagonal(h), torch.einsum("sn,snc->nc", p, g * g), atol=ATOL, rtol=0
    )
    torch.testing.assert_close(kernel.quadratic(h, v), moments[2], atol=ATOL, rtol=0)
    torch.testing.assert_close(kernel.cubic(h, v), moments[3], atol=ATOL, rtol=0)
    torch.testing.assert_close(kernel.quartic(h, v), moments[4], atol=ATOL, rtol=0)
    joint = moments[4] - moments[2] ** 2
    torch.testing.assert_close(kernel.var_squared(h, v), joint, atol=ATOL, rtol=0)
    # the per-position squared score Σ_t s_t²: its own variance, from the same tuples
    per = torch.einsum("sntc,ntck->sntk", g.reshape(-1, 4, T, base.d), v.reshape(4, T, base.d, 5))
    per = (per**2).sum(2)
    per_var = torch.einsum("sn,snk->nk", p, per**2) - torch.einsum("sn,snk->nk", p, per) ** 2
    torch.testing.assert_close(kernel.var_squared_per_factor(h, v), per_var, atol=ATOL, rtol=0)
    # the cross terms count: the joint label's V₁ is not the sum of the positions' V₁
    assert float((joint - per_var).abs().max()) > 1e-3
    # Rᵀv with R Rᵀ = I: ‖Rᵀv‖² = vᵀIv
    torch.testing.assert_close(
        (kernel.root_t(h, v) ** 2).sum(-2), moments[2], atol=ATOL, rtol=0
    )
    logz = torch.logsumexp(torch.stack([kernel.log_partition(h)]), 0)
    torch.testing.assert_close(
        kernel.log_partition(h), sum(base.log_partition(hf) for hf in h.split(base.d, -1))
    )
    assert logz.shape == (4,)


@pytest.mark.parametrize("case", list(CASES))
def test_product_support_log_prob_and_sampler(case):
    make, factors = CASES[case]
    base = make()
    T = math.prod(factors)
    kernel = ProductKernel(base, factors)
    h = torch.randn(3, T * base.d, generator=_gen(2), dtype=torch.float64)
    p, t, tuples = _enumerate(base, T, h)
    labels = kernel.support_labels()
    assert labels.shape == (len(tuples), *factors, *base.obs_shape)
    support = base.support_labels()
    expected = torch.stack([support[list(idx)] for idx in tuples]).reshape(labels.shape)
    assert torch.equal(labels, expected)
    logp = kernel.log_prob(labels[:, None], h[None])  # [S, n]
    torch.testing.assert_close(logp.exp(), p, atol=ATOL, rtol=0)
    torch.testing.assert_close(kernel.suff_stat(labels, torch.float64), t, atol=0, rtol=0)
    draws = 20000
    y = kernel.sample(h, draws, _gen(3))
    assert y.shape == (draws, 3, *factors, *base.obs_shape)
    stats = kernel.suff_stat(y, torch.float64)  # [m, n, c]
    se = stats.std(0) / math.sqrt(draws)
    z = (stats.mean(0) - kernel.mean(h)).abs() / se.clamp_min(1e-12)
    assert float(z.max()) < Z_MAX


@pytest.mark.parametrize("case", list(CASES))
def test_product_spectrum_brackets_every_direction(case):
    """Certified: ``mu4_min_lower ≤ μ₄[v⁴] ≤ mu4_max_upper`` and ``λ(I)`` bracket ``vᵀIv``
    on random unit vectors and on vectors along one factor, where the form is largest
    for a Bernoulli-like factor; the local values are attained, inside the certified ones."""
    make, factors = CASES[case]
    base = make()
    T = math.prod(factors)
    kernel = ProductKernel(base, factors)
    h = 2 * torch.randn(3, T * base.d, generator=_gen(4), dtype=torch.float64)
    spec = kernel.spectrum(h)
    v = torch.randn(3, T * base.d, 400, generator=_gen(5), dtype=torch.float64)
    one = torch.zeros(3, T * base.d, base.d, dtype=torch.float64)
    one[:, : base.d, :] = torch.eye(base.d, dtype=torch.float64)
    v = torch.cat([v, one], -1)
    v = v / v.norm(dim=-2, keepdim=True)
    quartic, quadratic = kernel.quartic(h, v), kernel.quadratic(h, v)
    assert bool((spec.mu4_min_lower[:, None] <= quartic).all())
    assert bool((quartic <= spec.mu4_max_upper[:, None]).all())
    assert bool((spec.fisher_min[:, None] <= quadratic * (1 + 1e-12)).all())
    assert bool((quadratic <= spec.fisher_max[:, None] * (1 + 1e-12)).all())
    eig = torch.linalg.eigvalsh(kernel.fisher(h))
    torch.testing.assert_close(spec.fisher_min, eig[:, 0], atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(spec.fisher_max, eig[:, -1], atol=1e-12, rtol=1e-9)
    assert bool((spec.mu4_min_lower <= spec.mu4_min_local).all())
    assert bool((spec.mu4_max_local <= spec.mu4_max_upper).all())


def test_exclusive_sums_are_exact_when_one_term_dominates():
    a = torch.tensor([[1e20, 1.0, 2.0, 0.0]], dtype=torch.float64)
    got = exclusive_sums(a, -1)
    want = torch.tensor([[3.0, 1e20 + 2.0, 1e20 + 1.0, 1e20 + 3.0]], dtype=torch.float64)
    assert torch.equal(got, want)
    b = torch.rand(2, 7, 3, generator=_gen(6), dtype=torch.float64)
    brute = torch.stack([b.sum(1) - b[:, t] for t in range(7)], 1)
    torch.testing.assert_close(exclusive_sums(b, 1), brute)


def test_product_kernel_bad_arguments():
    base = kernels.get("categorical", C=3)
    with pytest.raises(ShapeError, match="factor_shape"):
        ProductKernel(base, ())
    with pytest.raises(TypeError, match="one factor"):
        ProductKernel(ProductKernel(base, (2,)), (2,))
    kernel = ProductKernel(base, (2,))
    h = torch.zeros(1, 6, dtype=torch.float64)
    with pytest.raises(ShapeError, match=r"\*factors"):
        kernel.log_prob(torch.zeros(1, 3, dtype=torch.int64), h)
    with pytest.raises(fishsym.errors.DomainError):
        kernel.log_prob(torch.tensor([[0, 3]]), h)
    with pytest.raises(ShapeError, match="label tuples"):
        ProductKernel(kernels.get("categorical", C=10), (7,)).support_labels()


def test_for_output_reads_the_last_axis_as_the_family():
    """§11: ``[n, T, d]`` is T factors of a d-family; a coordinate-wise family stays one
    kernel (the same model); a kernel over all outputs of a factored output is ambiguous."""
    k = kernels.for_output("categorical", 6, (2, 3))
    assert isinstance(k, ProductKernel) and k.factor_shape == (2,) and k.base.d == 3
    assert k.base is kernels.get("categorical", C=3)
    assert kernels.for_output("categorical", 3, (3,)) is kernels.get("categorical", C=3)
    flat = kernels.for_output("independent_bernoulli", 6, (2, 3))
    assert flat is kernels.get("independent_bernoulli", d=6)
    with pytest.raises(ShapeError, match="ambiguous factor axes"):
        kernels.for_output(kernels.get("categorical", C=6), 6, (2, 3))
    with pytest.raises(ShapeError, match="factors"):
        kernels.for_output(ProductKernel(kernels.get("categorical", C=3), (3,)), 6, (2, 3))
    assert kernels.for_output(k, 6, (2, 3)) is k


def test_factor_axes_of_a_large_vocabulary_stay_numeric():
    """A GPT-2 vocabulary: reading the factor axes must not build the 50,257-class
    symbolic family (it once did, through the kernel's lazy ``family``: gigabytes)."""
    from fishsym.kernels.categorical import CategoricalKernel

    big = CategoricalKernel(C=50257)  # a fresh kernel: its symbolic family unbuilt
    assert not kernels.is_coordinatewise(big)
    assert big._family is None
    k = kernels.for_output("categorical", 3 * 50257, (3, 50257))
    assert isinstance(k, ProductKernel) and k.base.d == 50257
