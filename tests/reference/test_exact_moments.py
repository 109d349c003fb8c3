"""The exact reference (label enumeration / quadrature / truncated sums + autograd).

Held to (a) the engine, ``fisher_variances(per_sample=True)``, across families,
activations and depths, and (b) hand-derived closed forms for generalised linear models,
which share no code with either.
"""

from __future__ import annotations

import math

import pytest
import torch

import fishsym
from fishsym import kernels
from fishsym.errors import DomainError, FamilyDefinitionError, ShapeError, UnsupportedModelError
from fishsym.nets import mlp
from fishsym.reference import exact_moments, label_rule, sample_params
from fishsym.reference.rules import MOMENT_DEGREE, TAIL_TOL, countable_tail_bound

#: float64 agreement of two exact computations. Each side is accurate to a few ulps of
#: the magnitude of the per-label values it combines, about I + √V for the mean of an
#: estimator and (I + √V)² for its variance (the engine forms V₁ = μ₄ − I², which cancels
#: where V₁ ≪ I²; enumeration averages per-label Hessian entries (t−η)ᵀw − uᵀIu whose
#: first term can dwarf I). Entries are compared at this relative tolerance of
#: |value| + that scale.
RTOL = 1e-10

#: (family, sizes, last-layer bias shift that puts h inside the family's domain)
FAMILIES = [
    ("categorical", {"C": 3}, None),
    ("bernoulli", {}, None),
    ("independent_bernoulli", {"d": 2}, None),
    ("binomial", {"n": 3}, None),
    ("multinomial", {"n": 2, "C": 3}, None),
    ("gaussian", {"d": 1}, None),
    ("gaussian_meanvar", {}, [0.0, -2.0]),
    ("poisson", {}, None),
    ("geometric", {}, [-2.0]),
    ("negative_binomial", {"r": 2}, [-2.0]),
    ("exponential", {}, [-3.0]),
]


def small_net(d: int, widths=(3, 4), activation="tanh", shift=None, seed=1):
    net = mlp(
        [*widths, d], activation, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    if shift is not None:
        with torch.no_grad():
            net[-1].bias += torch.tensor(shift, dtype=torch.float64)
    return net


def inputs(n: int, width: int, seed=2) -> torch.Tensor:
    return torch.randn(n, width, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def assert_matches_engine(ref, fv):
    """ref (exact_moments, whole tensors) == fisher_variances(per_sample=True)."""
    for key, table, var_table, power in (
        ("mean1", fv.fisher, fv.var1, 1),
        ("mean2", fv.fisher, fv.var2, 1),
        ("var1", fv.var1, fv.var1, 2),
        ("var2", fv.var2, fv.var2, 2),
    ):
        for name, value in ref[key].items():
            expect = table[name]
            assert value.shape == expect.shape, (key, name)
            scale = (fv.fisher[name].abs() + var_table[name].clamp(min=0).sqrt()) ** power
            bad = (value - expect).abs() > RTOL * (expect.abs() + scale)
            assert not bool(bad.any()), (
                f"{key}[{name}]: reference {value[bad][:3].tolist()} vs engine "
                f"{expect[bad][:3].tolist()}"
            )


def kernel_for(name, sizes):
    return kernels.get(name, **sizes)


@pytest.mark.parametrize("family_name,sizes,shift", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_reference_matches_engine(family_name, sizes, shift):
    kernel = kernel_for(family_name, sizes)
    net = small_net(kernel.d, shift=shift)
    x = inputs(4, 3)
    ref = exact_moments(net, x, kernel)
    fv = fishsym.fisher_variances(
        net, x, kernel, per_sample=True, bounds=False, dtype=torch.float64
    )
    assert_matches_engine(ref, fv)


@pytest.mark.parametrize(
    "activation,widths",
    [
        ("sigmoid", (3, 5)),  # depth 2
        ("relu", (3, 4, 4)),  # depth 3, piecewise linear
        ("softplus", (3, 4, 3)),
        ("gelu", (3, 4)),
        ("tanh", (3,)),  # depth 1: a generalised linear model
    ],
)
def test_reference_matches_engine_across_architectures(activation, widths):
    net = small_net(3, widths=widths, activation=activation)
    x = inputs(3, 3)
    ref = exact_moments(net, x, "categorical")
    fv = fishsym.fisher_variances(
        net, x, "categorical", per_sample=True, bounds=False, dtype=torch.float64
    )
    assert_matches_engine(ref, fv)


def unchecked_gaussian(d: int):
    """The ``gaussian`` family in ``d`` dimensions declared directly, skipping the
    symbolic normalisation check (nested mpmath quadrature, tens of seconds for d ≥ 2);
    the label rule checks the normalisation of its own weights anyway."""
    import sympy as sp

    from fishsym.symbolic.family import ExponentialFamily
    from fishsym.symbolic.support import real_space

    h = [sp.Symbol(f"h{c}", real=True) for c in range(d)]
    y = [sp.Symbol(f"y{c}", real=True) for c in range(d)]
    return ExponentialFamily(
        f"gaussian_{d}d",
        h,
        y,
        y,
        sum(hc**2 for hc in h) / 2,
        -sum(yc**2 for yc in y) / 2 - sp.Rational(d, 2) * sp.log(2 * sp.pi),
        real_space(d),
        check=False,
    )


@pytest.mark.parametrize("d", [2, 3])
def test_gaussian_vector_outputs_use_a_product_grid(d):
    kernel = kernels.get(unchecked_gaussian(d))
    net = small_net(d, widths=(3, 3))
    x = inputs(2, 3)
    ref = exact_moments(net, x, kernel)
    assert f"{5**d} in all" in ref.rule  # 5 nodes per coordinate, exact to degree 9 in y
    fv = fishsym.fisher_variances(
        net, x, kernel, per_sample=True, bounds=False, dtype=torch.float64
    )
    assert_matches_engine(ref, fv)


# ---------------------------------------------------------------------------- closed forms
def test_glm_closed_forms_categorical():
    """Depth-1 classifier: W[a,b] has u = e_a x_b, so I = p_a(1−p_a)x_b²,
    V₁ = x_b⁴ p_a(1−p_a)(1−2p_a)² (docs/theory.md §4) and V₂ = 0."""
    net = small_net(4, widths=(3,))
    x = inputs(5, 3)
    ref = exact_moments(net, x, "categorical")
    p = torch.softmax(net(x), -1).detach()
    fisher = (p * (1 - p)).unsqueeze(-1) * (x**2).unsqueeze(1)
    var1 = (p * (1 - p) * (1 - 2 * p) ** 2).unsqueeze(-1) * (x**4).unsqueeze(1)
    torch.testing.assert_close(ref["mean1"]["0.weight"], fisher, rtol=RTOL, atol=0)
    torch.testing.assert_close(ref["mean2"]["0.weight"], fisher, rtol=RTOL, atol=0)
    torch.testing.assert_close(
        ref["var1"]["0.weight"], var1, rtol=RTOL, atol=RTOL * float(fisher.max()) ** 2
    )
    assert float(ref["var2"]["0.weight"].abs().max()) <= RTOL * float(fisher.max()) ** 2


def test_glm_closed_forms_gaussian_and_poisson():
    """t = y: Gaussian I = x², V₁ = 2x⁴; Poisson I = λx², V₁ = x⁴(λ + 2λ²) (μ₄ = λ + 3λ²)."""
    x = inputs(4, 3)
    net = small_net(1, widths=(3,))
    ref = exact_moments(net, x, "gaussian")
    torch.testing.assert_close(ref["mean1"]["0.weight"], x.unsqueeze(1) ** 2, rtol=RTOL, atol=0)
    torch.testing.assert_close(ref["var1"]["0.weight"], 2 * x.unsqueeze(1) ** 4, rtol=RTOL, atol=0)
    ref = exact_moments(net, x, "poisson")
    lam = net(x).detach().exp()  # [n, 1]
    torch.testing.assert_close(
        ref["mean1"]["0.weight"], lam.unsqueeze(-1) * x.unsqueeze(1) ** 2, rtol=RTOL, atol=0
    )
    torch.testing.assert_close(
        ref["var1"]["0.weight"],
        (lam + 2 * lam**2).unsqueeze(-1) * x.unsqueeze(1) ** 4,
        rtol=RTOL,
        atol=0,
    )


# ---------------------------------------------------------------------------- rules
def test_rule_node_counts_and_moments():
    """Nodes as documented, and each rule reproduces E[t] and Cov[t] of the kernel."""
    cases = [
        ("gaussian", {}, torch.tensor([[0.3], [-1.2]]), "gauss-hermite", 5),
        ("gaussian_meanvar", {}, torch.tensor([[0.5, -0.7], [-1.0, -2.0]]), "gauss-hermite", 9),
        ("exponential", {}, torch.tensor([[-0.4], [-3.0]]), "gauss-laguerre", 5),
        (
            "categorical",
            {"C": 4},
            torch.randn(2, 4, generator=torch.Generator().manual_seed(0)),
            "enumeration",
            4,
        ),
    ]
    for name, sizes, h, kind, n_labels in cases:
        kernel = kernels.get(name, **sizes)
        h = h.to(torch.float64)
        rule = label_rule(kernel, h)
        assert rule.kind == kind and rule.n_labels == n_labels
        t = kernel.suff_stat(rule.labels, dtype=torch.float64)  # [n, J, d]
        w = rule.weights.unsqueeze(-1)
        mean = (w * t).sum(1)
        cov = torch.einsum(
            "nj,nja,njb->nab", rule.weights, t - mean.unsqueeze(1), t - mean.unsqueeze(1)
        )
        torch.testing.assert_close(mean, kernel.mean(h), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cov, kernel.fisher(h), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "family_name,h", [("poisson", 2.0), ("geometric", -0.2), ("negative_binomial", -0.5)]
)
def test_truncation_tail_bound_is_an_upper_bound(family_name, h):
    """The certified bound against the tail summed far out, at several truncation points."""
    kernel = kernels.get(family_name)
    rule = label_rule(kernel, torch.tensor([[h]], dtype=torch.float64))
    assert rule.kind == "truncated-sum" and rule.tail_bound < TAIL_TOL
    from fishsym.reference.rules import _ratio_sup_function

    sup = _ratio_sup_function(kernel.family.log_base_measure, kernel.family.y)
    y = torch.arange(0, 20000, dtype=torch.float64)
    logp = kernel.log_prob(y.to(kernel.label_dtype), torch.tensor([h], dtype=torch.float64))
    terms = logp.exp() * (1 + y) ** MOMENT_DEGREE
    hh = torch.tensor([h], dtype=torch.float64)
    for K in (5, 20, 60, 150):
        actual = float(terms[K + 1 :].sum())
        bound = float(countable_tail_bound(logp[K : K + 1], hh, K, sup(K))[0])
        assert actual <= bound, (K, actual, bound)
    assert math.isclose(float(rule.weights.sum()), 1.0, abs_tol=1e-14)


def test_heavy_tail_is_refused():
    kernel = kernels.get("geometric")
    with pytest.raises(DomainError, match="too heavy-tailed"):
        label_rule(kernel, torch.tensor([[-1e-7]], dtype=torch.float64))


@pytest.mark.parametrize("family_name", ["gamma", "beta"])
def test_no_exact_rule_for_log_statistics(family_name):
    net = small_net(2, shift=[0.5, -2.0] if family_name == "gamma" else [0.5, 0.5])
    with pytest.raises(UnsupportedModelError, match="no exact label rule"):
        exact_moments(net, inputs(2, 3), family_name)


class _Shifted:
    """A kernel whose log_prob is off by a constant: not a normalised density."""

    def __init__(self, kernel, shift):
        self._k, self._shift = kernel, shift

    def __getattr__(self, attr):
        return getattr(self._k, attr)

    def log_prob(self, y, h):
        return self._k.log_prob(y, h) + self._shift


@pytest.mark.parametrize("family_name", ["categorical", "gaussian", "exponential", "poisson"])
def test_unnormalised_density_is_detected(family_name):
    kernel = _Shifted(kernels.get(family_name), 1e-6)
    h = torch.tensor([[-0.5] * kernel.d], dtype=torch.float64)
    with pytest.raises(FamilyDefinitionError, match="sum to"):
        label_rule(kernel, h)


# ---------------------------------------------------------------------------- params
def test_parameter_subsets():
    net = small_net(3, widths=(3, 4))
    x = inputs(3, 3)
    full = exact_moments(net, x, "categorical")
    idx = torch.tensor([0, 5, 11])
    sub = exact_moments(net, x, "categorical", params={"0.weight": idx, "2.bias": None})
    assert list(sub["var1"]) == ["0.weight", "2.bias"]
    assert sub["var1"]["0.weight"].shape == (3, 3) and sub["var1"]["2.bias"].shape == (3, 3)
    assert torch.equal(sub.indices["0.weight"], idx) and sub.indices["2.bias"] is None
    for key in ("mean1", "var1", "mean2", "var2"):
        torch.testing.assert_close(
            sub[key]["0.weight"], full[key]["0.weight"].reshape(3, -1)[:, idx], rtol=1e-13, atol=0
        )
    names = exact_moments(net, x, "categorical", params=["2.weight"])
    assert list(names["mean1"]) == ["2.weight"] and names["mean1"]["2.weight"].shape == (3, 3, 4)


def test_sample_params_per_layer():
    net = mlp([6, 5, 3], "tanh", dtype=torch.float64)
    picked = sample_params(net, 7, torch.Generator().manual_seed(0))
    per_layer = {}
    for name, idx in picked.items():
        per_layer[name.split(".")[0]] = per_layer.get(name.split(".")[0], 0) + len(idx)
        assert len(set(idx.tolist())) == len(idx)
    assert per_layer == {"0": 7, "2": 7}


@pytest.mark.parametrize(
    "params,match",
    [
        ({"0.wieght": None}, "valid names"),
        (["nope"], "valid names"),
        ({"0.weight": torch.tensor([12])}, "outside the valid range"),
        ({"0.weight": torch.tensor([-1])}, "outside the valid range"),
        ({"0.weight": torch.tensor([0.5])}, "integer flat indices"),
        ({"0.weight": torch.tensor([], dtype=torch.long)}, "non-empty"),
        ({"0.weight": torch.tensor([[0, 1]])}, "1-D"),
        ({}, "no parameter"),
    ],
)
def test_bad_params(params, match):
    net = small_net(3, widths=(3, 4))
    with pytest.raises(ShapeError, match=match):
        exact_moments(net, inputs(2, 3), "categorical", params=params)


def test_bad_inputs_and_family():
    net = small_net(3)
    with pytest.raises(ShapeError, match="natural parameters"):
        exact_moments(net, inputs(2, 3), "gaussian_meanvar")  # d = 2, net outputs 3
    with pytest.raises(ShapeError, match="n_inputs"):
        exact_moments(net, torch.zeros(0, 3, dtype=torch.float64), "categorical")
    bad = inputs(2, 3)
    bad[0, 0] = math.nan
    from fishsym.errors import NonFiniteError, UnknownFamilyError

    with pytest.raises(NonFiniteError):
        exact_moments(net, bad, "categorical")
    with pytest.raises(UnknownFamilyError):
        exact_moments(net, inputs(2, 3), "no_such_family")
