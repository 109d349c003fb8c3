"""The paper's Theorem 4.1 as stated (docs/theory.md §3): eq. (7) brackets I(θ|x), eq. (8)
brackets V₁ with the certified λ̃(M) values, M = μ₄ − I⊗I — against label enumeration
(``reference.exact_moments``, independent of every closed form) for every parameter and
input, and the λ̃(M) values against M[v⁴] on many random unit vectors."""

import pytest
import torch
from torch import nn

import fishsym
from fishsym import kernels, reference
from fishsym.variance.compute import paper_spectrum

FAMILIES = [
    ("categorical", {}, 3),
    ("categorical_minimal", {}, 2),
    ("bernoulli", {}, 1),
    ("independent_bernoulli", {}, 2),
    ("poisson", {}, 1),
    ("gaussian", {}, 2),
    ("multinomial", {"n": 3}, 3),
]


#: relative accuracy of the reference's sums over a label support (rounding only)
REF_RTOL = 1e-13


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _model(d, conv=False):
    if conv:
        model = nn.Sequential(nn.Conv1d(1, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(4, d))
    else:
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, d))
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=_gen(p.numel()), dtype=torch.float64) * 0.8)
    return model


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "cnn"])
@pytest.mark.parametrize("name, sizes, d", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_theorem_4_1_brackets_the_exact_values(name, sizes, d, conv):
    model = _model(d, conv)
    x = (
        torch.randn(3, 1, 3, generator=_gen(1), dtype=torch.float64)
        if conv
        else torch.randn(3, 3, generator=_gen(1), dtype=torch.float64)
    )
    family = kernels.get(name, **sizes) if sizes else name
    res = fishsym.fisher_variances(model, x, family, per_sample=True)
    exact = reference.exact_moments(model, x, family)
    pb = res.paper_bounds
    eps = torch.finfo(torch.float64).eps
    for pname in res.fisher:
        fisher = exact["mean1"][pname]
        # the reference forms a variance as E[X²] − (EX)²: its rounding is ~eps·(EX)² (EX is
        # I for both estimators); the bounds themselves are certified, so nothing else
        floor = {
            "fisher": 0.0,
            "squared_score": 16 * eps * fisher**2,
            "neg_hessian": 16 * eps * fisher**2,
        }
        for key, truth in (
            ("fisher", fisher),
            ("squared_score", exact["var1"][pname]),
            ("neg_hessian", exact["var2"][pname]),
        ):
            lo, hi = pb[key]["lower"][pname], pb[key]["upper"][pname]
            slack = floor[key] + REF_RTOL * truth.abs()
            assert bool((lo <= truth + slack).all()), (key, pname, float((lo - truth).max()))
            assert bool((truth - slack <= hi).all()), (key, pname, float((truth - hi).max()))
    assert "Cor. 4.2" in res.paper_bounds_method["squared_score"]["upper"]
    if name == "categorical":
        assert "Thm. 5.2" in res.paper_bounds_method["squared_score"]["upper"]


def test_isotropic_gaussian_is_tight():
    """M[v⁴] = 2‖v‖⁴ and I = Id: every bound of Theorem 4.1 is an equality."""
    model = _model(2)
    x = torch.randn(3, 3, generator=_gen(2), dtype=torch.float64)
    res = fishsym.fisher_variances(model, x, "gaussian", per_sample=True)
    for pname in res.fisher:
        for key, value in (("fisher", res.fisher[pname]), ("squared_score", res.var1[pname])):
            lo, hi = res.paper_bounds[key]["lower"][pname], res.paper_bounds[key]["upper"][pname]
            torch.testing.assert_close(lo, value, rtol=1e-12, atol=0)
            torch.testing.assert_close(hi, value, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name, sizes, d", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_certified_lambda_tilde_of_m_contains_sampled_values(name, sizes, d):
    kernel = kernels.get(name, **sizes) if sizes else kernels.for_output(name, d)
    h = torch.randn(6, kernel.d, generator=_gen(3), dtype=torch.float64)
    if name == "gaussian_meanvar":
        h[:, 1] = -h[:, 1].abs() - 0.5
    spectrum = kernel.spectrum(h, local=False)
    paper_spectrum(kernel, h, spectrum)
    v = torch.randn(6, kernel.d, 4000, generator=_gen(4), dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    m = kernel.var_squared(h, v)  # M[v⁴] on the unit sphere
    assert bool((m <= spectrum.m_max_upper[:, None]).all())
    assert bool((m >= spectrum.m_min_lower[:, None]).all())
