"""docs/theory.md §3 bounds bracket the exact single-label variances, for every parameter of
random networks (property-based)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fishsym
from fishsym import nets

#: round-off allowance, relative to the size of the terms that cancel in the bounds
#: (``‖u‖⁴λ`` and ``I²``): float64 evaluation of the same sums in different orders
SLACK = 0.0  # certified bounds are rounded outward: no allowance (issue 9.3)

FAMILIES = {"categorical": 3, "gaussian": 2, "bernoulli": 1, "poisson": 1, "gaussian_meanvar": 2}


def _model(family_name, widths, activation, seed):
    d = FAMILIES[family_name]
    model = nets.mlp(
        [3, *widths, d], activation, torch.Generator().manual_seed(seed), torch.float64
    )
    if family_name == "gaussian_meanvar":
        with torch.no_grad():  # h₂ < 0 for all inputs: tiny last-layer weights, negative bias
            model[-1].weight.mul_(0.05)
            model[-1].bias[1] = -2.0
    return model


def assert_brackets(res):
    for name, f in res.fisher.items():
        for est, var in (("squared_score", res.var1), ("neg_hessian", res.var2)):
            lo, hi, v = res.bounds[est]["lower"][name], res.bounds[est]["upper"][name], var[name]
            tol = SLACK * (hi.abs() + 2 * f * f)
            assert (lo <= v + tol).all(), (name, est, (lo - v).max())
            assert (v <= hi + tol).all(), (name, est, (v - hi).max())


@settings(max_examples=30, deadline=None)
@given(
    family_name=st.sampled_from(sorted(FAMILIES)),
    activation=st.sampled_from(sorted(nets.ACTIVATIONS)),
    widths=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    seed=st.integers(0, 2**16),
    n_inputs=st.integers(1, 4),
    input_scale=st.sampled_from([0.1, 1.0, 3.0]),
)
def test_bounds_bracket_exact_values(
    oracle, family_name, activation, widths, seed, n_inputs, input_scale
):
    model = _model(family_name, widths, activation, seed)
    x = input_scale * torch.randn(
        n_inputs, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)
    )
    fam = family_name
    res = fishsym.fisher_variances(model, x, fam, per_sample=True)
    assert_brackets(res)
    for est in ("squared_score", "neg_hessian"):
        for side in ("lower", "upper"):
            assert isinstance(res.bounds_method[est][side], str) and res.bounds_method[est][side]


def test_bounds_bracket_on_the_generic_path(oracle):
    model = nn.Sequential(nn.Conv1d(1, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(4, 3)).double()
    x = torch.randn(3, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True, path="generic")
    assert_brackets(res)


def test_gaussian_bounds_are_tight(oracle):
    model = nets.mlp([3, 4, 2], "tanh", torch.Generator().manual_seed(0), torch.float64)
    x = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = fishsym.fisher_variances(model, x, "gaussian", per_sample=True)
    for name, v in res.var1.items():
        for side in ("lower", "upper"):
            torch.testing.assert_close(
                res.bounds["squared_score"][side][name],
                v,
                rtol=1e-12,
                atol=1e-12 * v.abs().max().item(),
            )


def _no_search(*args, **kwargs):
    raise AssertionError("fisher_variances ran the power iteration of the local μ_4 values")


@pytest.mark.parametrize("family_name", sorted(FAMILIES))
def test_bounds_use_only_the_certified_spectrum(family_name, monkeypatch):
    """The bounds need ``fisher_min/max``, ``mu4_max_upper`` and ``mu4_min_lower`` only, so
    ``fisher_variances`` asks for ``spectrum(h, local=False)``: no power iteration runs, the
    bounds still bracket the exact values, and no method label says "not computed"."""
    import fishsym.kernels.bernoulli as bernoulli_mod
    import fishsym.kernels.categorical as categorical_mod
    import fishsym.kernels.spectrum as spectrum_mod

    for module in (spectrum_mod, categorical_mod, bernoulli_mod):
        monkeypatch.setattr(module, "power_iteration", _no_search)
    model = _model(family_name, [4, 3], "tanh", 3)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    res = fishsym.fisher_variances(model, x, family_name, per_sample=True)
    assert_brackets(res)
    for est in ("squared_score", "neg_hessian"):
        for side in ("lower", "upper"):
            assert spectrum_mod.NOT_COMPUTED not in res.bounds_method[est][side]


@pytest.mark.parametrize("family, d", [("poisson", 1), ("gaussian", 3)])
def test_outward_rounding_is_what_keeps_tight_bounds_valid(family, d, monkeypatch):
    """Issue 23 E: removing the outward-rounding margin of the certified V₁ bound passed the
    suite. For these families the V₁ bounds are tight (μ₄ is a multiple of ‖v‖⁴ per input),
    so the bound and the value differ by rounding alone: with the margins every per-input
    and mean bound holds the value; with them removed (``BOUND_ULPS = −d``, ``SUM_ULPS =
    −n``: zero margin) some fall on the wrong side — the margins are what keep them."""
    import fishsym.variance.moments as moments
    import fishsym.variance.sums as sums

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, d)).double()
    x = torch.randn(64, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def violations():
        res = fishsym.fisher_variances(model, x, family, per_sample=True)
        count = 0
        for kind, value in (("bounds", res.var1), ("mean_bounds", res.means["var1"])):
            b = getattr(res, kind)["squared_score"]
            for n, v in value.items():
                count += int((v > b["upper"][n]).sum()) + int((v < b["lower"][n]).sum())
        return count

    assert violations() == 0
    # tight: both bounds within a few ulps of the value — a zero lower bound (the branch
    # for λ_min(μ₄) ≤ 0 taken where it does not hold) would fail here
    res = fishsym.fisher_variances(model, x, family)
    for name, v in res.var1.items():
        for side in ("lower", "upper"):
            b = res.bounds["squared_score"][side][name]
            assert bool(((b - v).abs() <= 1e-12 * v.abs()).all()), (name, side)
    monkeypatch.setattr(moments, "BOUND_ULPS", -d)
    monkeypatch.setattr(sums, "SUM_ULPS", -x.shape[0])
    assert violations() > 0
