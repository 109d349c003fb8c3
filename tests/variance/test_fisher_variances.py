"""``fisher_variances``: fast path == generic path == brute-force autograd on the definitions.

The oracle (conftest.py) gets ``u_i`` by autograd of ``h``, ``w_i`` by double backward one
parameter entry at a time, and the moments of ``t`` from the label distribution itself
(enumeration / Gauss–Hermite / truncated sums), then applies docs/theory.md §2 literally.
"""

import pytest
import torch
from torch import nn

import fishsym
from fishsym import nets

#: float64 fast vs reference: different but equally exact operation orders (THEORY-style
#: 1e-10 relative, measured against the largest entry of the tensor compared)
RTOL = 1e-10
#: float32 run vs float64 run of the same network: float32 round-off accumulated over a
#: few layers and the quartic forms
FLOAT32_RTOL = 2e-4

FAMILY_DIMS = {"categorical": 3, "gaussian": 2, "bernoulli": 1, "poisson": 1, "gaussian_meanvar": 2}


def assert_close_scaled(actual, expected, rtol=RTOL, scale=None):
    """``|a − e| ≤ rtol·(|e| + s)`` elementwise, ``s = max|e|`` unless given."""
    scale = expected.abs().max().item() if scale is None else scale
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-300))


def mlp(widths, activation="sigmoid", seed=0):
    return nets.mlp(widths, activation, torch.Generator().manual_seed(seed), torch.float64)


def inputs(n, width, seed=1):
    return torch.randn(n, width, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


class MeanVarHead(nn.Module):
    """``h = (a₁, −softplus(a₂) − 0.05)``: a learned-variance Gaussian head (h₂ < 0)."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        a = self.body(x)
        return torch.stack([a[:, 0], -nn.functional.softplus(a[:, 1]) - 0.05], 1)


def family_model(family_name, depth=3, activation="sigmoid", seed=0):
    """A small network whose output suits ``family_name`` (and the path it exercises)."""
    d = FAMILY_DIMS[family_name]
    widths = [4, 5, 4, 3][:depth] + [d]
    model = mlp(widths, activation, seed)
    if family_name == "gaussian_meanvar":
        return MeanVarHead(model).double()
    return model


def check_against(res, ref):
    for q in ("fisher", "var1", "var2"):
        for name, expected in ref[q].items():
            assert_close_scaled(getattr(res, q)[name], expected)


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("family_name", sorted(FAMILY_DIMS))
def test_fast_generic_and_brute_force_agree(family_name, oracle):
    model = family_model(family_name)
    x = inputs(3, 4)
    fam = family_name
    ref = oracle.reference(model, x, family_name)
    paths = ["generic"] if family_name == "gaussian_meanvar" else ["structured", "generic"]
    for path in paths:
        res = fishsym.fisher_variances(model, x, fam, per_sample=True, path=path)
        assert res.path == path
        check_against(res, ref)


def test_learned_variance_gaussian_on_the_structured_path(oracle):
    model = mlp([4, 5, 2], "tanh")
    with torch.no_grad():
        model[2].weight.mul_(0.1)
        model[2].bias[1] = -3.0  # keeps h₂ < 0 for these inputs
    x = inputs(3, 4)
    res = fishsym.fisher_variances(model, x, "gaussian_meanvar", per_sample=True)
    assert res.path == "structured"
    check_against(res, oracle.reference(model, x, "gaussian_meanvar"))


@pytest.mark.parametrize("activation", sorted(nets.ACTIVATIONS) + ["gelu_tanh"])
def test_every_activation_against_brute_force(activation, oracle):
    if activation == "gelu_tanh":
        model = nn.Sequential(
            nn.Linear(4, 5), nn.GELU("tanh"), nn.Linear(5, 4), nn.GELU("tanh"), nn.Linear(4, 3)
        ).double()
    else:
        model = mlp([4, 5, 4, 3], activation, seed=2)
    x = inputs(3, 4, seed=3)
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    assert res.path == "structured"
    check_against(res, oracle.reference(model, x, "categorical"))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_every_depth_against_brute_force(depth, oracle):
    model = mlp([3, 4, 4, 3, 2][:depth] + [2], "softplus", seed=depth)
    x = inputs(2, 3, seed=depth)
    fam = "gaussian"
    ref = oracle.reference(model, x, "gaussian")
    for path in ("structured", "generic"):
        check_against(fishsym.fisher_variances(model, x, fam, per_sample=True, path=path), ref)


@pytest.mark.parametrize("activation", sorted(nets.ACTIVATIONS))
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("family_name", ["categorical", "bernoulli", "poisson"])
def test_fast_equals_generic(family_name, depth, activation, oracle):
    d = FAMILY_DIMS[family_name]
    model = mlp([3, 4, 3, 4][:depth] + [d], activation, seed=depth)
    x = inputs(3, 3, seed=depth)
    fam = family_name
    fast = fishsym.fisher_variances(model, x, fam, per_sample=True)
    slow = fishsym.fisher_variances(model, x, fam, per_sample=True, path="generic")
    for q in ("fisher", "var1", "var2"):
        for name in fast.fisher:
            assert_close_scaled(getattr(fast, q)[name], getattr(slow, q)[name])
    for est in ("squared_score", "neg_hessian"):
        for name in fast.fisher:
            # a bound's round-off is relative to the upper bound (λ_min(I) = 0 for
            # categorical heads, so its lower bound is round-off of zero)
            scale = slow.bounds[est]["upper"][name].abs().max().item()
            for side in ("lower", "upper"):
                assert_close_scaled(
                    fast.bounds[est][side][name], slow.bounds[est][side][name], scale=scale
                )


def test_small_cnn_on_the_generic_path(oracle):
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(
                torch.randn(
                    p.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(p.numel())
                )
                * 0.5
            )
    x = torch.randn(2, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    assert res.path == "graph"  # the default for models the structured path cannot take
    assert res.methods == {"0": "curvature sources", "3": "structural zero"}
    check_against(res, oracle.reference(model, x, "categorical"))
    assert res.fisher["0.weight"].shape == (2, 2, 1, 3, 3)
    generic = fishsym.fisher_variances(model, x, "categorical", per_sample=True, path="generic")
    assert generic.path == "generic"
    check_against(generic, oracle.reference(model, x, "categorical"))


# --------------------------------------------------------------------------- structure
@pytest.mark.parametrize("family_name", ["categorical", "gaussian", "poisson"])
def test_last_layer_has_zero_var2(family_name, oracle):
    d = FAMILY_DIMS[family_name]
    res = fishsym.fisher_variances(
        mlp([4, 5, d], "tanh"), inputs(4, 4), family_name, per_sample=True
    )
    for name in ("2.weight", "2.bias"):
        assert torch.equal(res.var2[name], torch.zeros_like(res.var2[name]))
        assert torch.equal(
            res.bounds["neg_hessian"]["upper"][name], torch.zeros_like(res.var2[name])
        )
    assert (res.var2["0.weight"] > 0).any()


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("path", ["structured", "generic"])
def test_piecewise_linear_nets_have_zero_var2(activation, path, oracle):
    res = fishsym.fisher_variances(
        mlp([4, 6, 5, 3], activation), inputs(5, 4), "categorical", path=path
    )
    for name, v in res.var2.items():
        assert torch.equal(v, torch.zeros_like(v)), name


def test_gaussian_var1_is_twice_fisher_squared(oracle):
    res = fishsym.fisher_variances(
        mlp([4, 5, 4, 2], "silu"), inputs(4, 4), "gaussian", per_sample=True
    )
    for name, f in res.fisher.items():
        assert_close_scaled(res.var1[name], 2 * f * f, rtol=1e-13)


# --------------------------------------------------------------------------- layout
def test_per_sample_and_aggregate_agree(oracle):
    model, x = mlp([4, 5, 4, 3], "tanh"), inputs(7, 4)
    fam = "categorical"
    agg = fishsym.fisher_variances(model, x, fam, chunk_size=3)
    per = fishsym.fisher_variances(model, x, fam, per_sample=True, chunk_size=2)
    assert per.per_sample and not agg.per_sample
    for name, p in model.named_parameters():
        assert agg.fisher[name].shape == p.shape and per.fisher[name].shape == (7, *p.shape)
        for q in ("fisher", "var1", "var2"):
            assert_close_scaled(getattr(agg, q)[name], getattr(per, q)[name].mean(0), rtol=1e-12)
        assert_close_scaled(
            agg.var_fisher_over_inputs[name], per.fisher[name].var(0, unbiased=False), rtol=1e-9
        )
        assert_close_scaled(
            per.var_fisher_over_inputs[name], per.fisher[name].var(0, unbiased=False)
        )
        for est in ("squared_score", "neg_hessian"):
            scale = agg.bounds[est]["upper"][name].abs().max().item()
            for side in ("lower", "upper"):
                assert_close_scaled(
                    agg.bounds[est][side][name],
                    per.bounds[est][side][name].mean(0),
                    rtol=1e-12,
                    scale=scale,
                )


def test_chunk_size_does_not_change_results(oracle):
    model, x = mlp([4, 5, 4, 3], "gelu"), inputs(5, 4)
    fam = "categorical"
    base = fishsym.fisher_variances(model, x, fam)
    for chunk in (1, 2, 5):
        res = fishsym.fisher_variances(model, x, fam, chunk_size=chunk, progress=chunk == 2)
        for name in base.fisher:
            assert_close_scaled(res.var1[name], base.var1[name], rtol=1e-12)
            assert_close_scaled(res.var2[name], base.var2[name], rtol=1e-12)


def test_float32_on_request(oracle):
    model, x = mlp([4, 5, 4, 3], "sigmoid"), inputs(4, 4)
    fam = "categorical"
    r64 = fishsym.fisher_variances(model, x, fam)
    r32 = fishsym.fisher_variances(model, x, fam, dtype=torch.float32)
    for name in r64.fisher:
        assert r32.fisher[name].dtype == torch.float32 and r64.fisher[name].dtype == torch.float64
        for q in ("fisher", "var1", "var2"):
            assert_close_scaled(
                getattr(r32, q)[name].double(), getattr(r64, q)[name], rtol=FLOAT32_RTOL
            )


def test_user_model_is_not_modified(oracle):
    model = nets.mlp([4, 5, 3], "tanh")  # float32
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fishsym.fisher_variances(model, inputs(2, 4).float(), "categorical")
    fishsym.fisher_variances(model, inputs(2, 4).float(), "categorical", path="generic")
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, state[k])


# --------------------------------------------------------------------------- docs/theory.md §5
def test_variance_is_the_joint_formula(oracle):
    model, x = mlp([4, 5, 3], "tanh"), inputs(6, 4)
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    for est, key in (("squared_score", "var1"), ("neg_hessian", "var2")):
        got = res.variance(est, n_labels=3, n_inputs=5)
        for name in res.fisher:
            v = getattr(res, key)[name].mean(0)
            var_x = res.fisher[name].var(0, unbiased=False)
            assert_close_scaled(got[name], (v / 3 + var_x) / 5)
    with pytest.raises(ValueError, match="estimator"):
        res.variance("empirical")
    with pytest.raises(ValueError, match="n_labels"):
        res.variance("squared_score", n_labels=0)


def test_samples_needed_is_chebyshev(oracle):
    model, x = mlp([4, 5, 3], "tanh"), inputs(3, 4)
    res = fishsym.fisher_variances(model, x, "categorical")
    need = res.samples_needed(0.1, 0.95)
    for name in res.fisher:
        expected = torch.ceil(res.var1[name] / (0.05 * 0.01 * res.fisher[name] ** 2)).clamp_min(1)
        assert torch.equal(need["squared_score"][name], expected)
    assert torch.equal(need["neg_hessian"]["2.weight"], torch.ones(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="prob"):
        res.samples_needed(0.1, 1.5)


def test_summary_records_and_table(oracle):
    model, x = mlp([4, 5, 4, 3], "sigmoid"), inputs(4, 4)
    res = fishsym.fisher_variances(model, x, "categorical")
    summary = res.summary()
    groups = [r["group"] for r in summary]
    assert groups == [
        "0",
        "0.weight",
        "0.bias",
        "2",
        "2.weight",
        "2.bias",
        "4",
        "4.weight",
        "4.bias",
    ]
    layer = summary[0]
    names = ["0.weight", "0.bias"]
    assert layer["n_params"] == 25
    assert layer["fisher"] == pytest.approx(
        sum(float(res.fisher[n].sum()) for n in names), rel=1e-12
    )
    v1 = sum(float(res.var1[n].sum()) for n in names)
    v2 = sum(float(res.var2[n].sum()) for n in names)
    assert layer["std_squared_score"] == pytest.approx(v1**0.5, rel=1e-12)
    assert layer["std_neg_hessian"] == pytest.approx(v2**0.5, rel=1e-12)
    lo, hi = layer["std_squared_score_bounds"]
    assert lo <= layer["std_squared_score"] <= hi
    assert layer["lower_variance"] == ("squared_score" if v1 < v2 else "neg_hessian")
    fisher_sq = sum(float(res.fisher[n].pow(2).sum()) for n in names)
    assert layer["labels_squared_score"] == pytest.approx(-(-v1 // (0.05 * 0.01 * fisher_sq)))
    last = summary[6]
    assert last["std_neg_hessian"] == 0 and last["lower_variance"] == "neg_hessian"
    assert last["labels_neg_hessian"] == 1
    text = str(summary)
    assert "0.weight" in text and "labels Î₁ 10%@95%" in text


# --------------------------------------------------------------------------- bad input
def test_output_dimension_must_match_the_family(oracle):
    with pytest.raises(fishsym.errors.ShapeError, match="gaussian_meanvar"):
        fishsym.fisher_variances(mlp([3, 3]), inputs(2, 3), "gaussian_meanvar")
    with pytest.raises(fishsym.errors.ShapeError, match="bernoulli"):
        fishsym.fisher_variances(mlp([3, 2]), inputs(2, 3), "bernoulli")
    with pytest.raises(fishsym.errors.ShapeError):
        fishsym.fisher_variances(mlp([3, 1]), inputs(2, 3), "categorical")


def test_output_dimension_mismatch_with_a_kernel_object(oracle):
    with pytest.raises(fishsym.errors.ShapeError, match="d = 2"):
        fishsym.fisher_variances(mlp([3, 3]), inputs(2, 3), fishsym.kernels.get("gaussian", d=2))


def test_non_finite_inputs_and_parameters(oracle):
    fam = "categorical"
    x = inputs(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(fishsym.errors.NonFiniteError, match="inputs"):
        fishsym.fisher_variances(mlp([4, 3]), x, fam)
    model = mlp([4, 5, 3])
    with torch.no_grad():
        model[2].bias[0] = float("inf")
    with pytest.raises(fishsym.errors.NonFiniteError, match="'2.bias'"):
        fishsym.fisher_variances(model, inputs(3, 4), fam)


def test_overflow_is_an_error_not_a_nan(oracle):
    model = nn.Linear(2, 2).double()
    with torch.no_grad():
        model.weight.fill_(1e12)
    x = torch.full((2, 2), 1e12, dtype=torch.float64)
    with pytest.raises(fishsym.errors.NonFiniteError, match="float32"):
        fishsym.fisher_variances(model, x, "gaussian", dtype=torch.float32)


def test_natural_parameters_outside_the_domain(oracle):
    model = mlp([3, 2])
    with torch.no_grad():
        model[0].bias[1] = 5.0  # h₂ > 0: no learned-variance Gaussian
        model[0].weight.mul_(0.01)
    with pytest.raises(fishsym.errors.DomainError, match="natural parameters"):
        fishsym.fisher_variances(model, inputs(2, 3), "gaussian_meanvar")
    model = mlp([3, 1])
    with torch.no_grad():
        model[0].bias.fill_(1e4)  # Poisson rate e^10000 overflows: F(h) is not finite
    with pytest.raises(
        (fishsym.errors.DomainError, fishsym.errors.NonFiniteError), match="natural parameters h"
    ):
        fishsym.fisher_variances(model, inputs(2, 3), "poisson")


def test_frozen_parameters_are_skipped_with_a_warning(oracle):
    model = mlp([4, 5, 3])
    model[0].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    with pytest.warns(fishsym.variance.DerivativeWarning, match="0.weight, 2.bias"):
        res = fishsym.fisher_variances(model, inputs(2, 4), "categorical")
    assert sorted(res.fisher) == ["0.bias", "2.weight"]


def test_training_mode_dropout_is_an_error(oracle):
    model = nn.Sequential(nn.Linear(4, 5), nn.Dropout(0.2), nn.Linear(5, 3)).double()
    with pytest.raises(fishsym.errors.UnsupportedModelError, match="model.eval()"):
        fishsym.fisher_variances(model, inputs(2, 4), "categorical")
    res = fishsym.fisher_variances(model.eval(), inputs(2, 4), "categorical")
    assert res.path == "structured"


def test_bad_arguments(oracle):
    fam = "categorical"
    with pytest.raises(TypeError, match="dtype"):
        fishsym.fisher_variances(mlp([4, 3]), inputs(2, 4), fam, dtype=torch.int64)
    with pytest.raises(ValueError, match="chunk_size"):
        fishsym.fisher_variances(mlp([4, 3]), inputs(2, 4), fam, chunk_size=0)
    with pytest.raises(fishsym.errors.ShapeError, match="inputs"):
        fishsym.fisher_variances(mlp([4, 3]), torch.zeros(0, 4), fam)
    with pytest.raises(ValueError, match="path"):
        fishsym.fisher_variances(mlp([4, 3]), inputs(2, 4), fam, path="fast")
    with pytest.raises(TypeError, match="family"):
        fishsym.fisher_variances(mlp([4, 3]), inputs(2, 4), 3)


def test_generic_path_warns_about_cost(oracle, monkeypatch):
    monkeypatch.setattr(fishsym.variance.compute, "GENERIC_WARN_SECONDS", 0.0)
    monkeypatch.setattr(fishsym.engine.generic, "GENERIC_BATCH", 1)  # one entry per block
    with pytest.warns(fishsym.variance.DerivativeWarning, match=r"about \d+ s"):
        fishsym.fisher_variances(mlp([3, 3]), inputs(1, 3), "categorical", path="generic")


def test_generic_cost_projection_ignores_the_warm_up_block(monkeypatch):
    """Regression (issue 9.13): the projection was made from the first block, which also
    pays for tracing the vectorised transforms, and came out 5–16× too high. Here the
    first block takes 10 s and every later one 1 s, for 100 equal blocks: the projection
    must be the true total, 10 + 99 = 109 s (the old rule gave 10 × 100 = 1000 s)."""
    now = [0.0]
    monkeypatch.setattr(fishsym.variance.sums.time, "perf_counter", lambda: now[0])
    clock = fishsym.variance.sums.CostClock(total_units=100)
    projections = []
    for block in range(100):
        now[0] += 10.0 if block == 0 else 1.0
        projections.append(clock.tick(1))
    made = [p for p in projections if p is not None]
    assert len(made) == 1
    assert made[0] == pytest.approx(109.0)


# --------------------------------------------------------------------------- family argument
def test_family_object_and_user_defined_family():
    import sympy as sp

    from fishsym.symbolic import ExponentialFamily, families, natural_symbol
    from fishsym.symbolic.support import FiniteSupport

    model, x = mlp([4, 5, 1], "tanh"), inputs(3, 4)
    by_name = fishsym.fisher_variances(model, x, "bernoulli", per_sample=True)
    by_object = fishsym.fisher_variances(model, x, families.get("bernoulli"), per_sample=True)
    # the same distribution declared by a user (not registered): a three-point support
    # {0, 1, 2} with base measure (1, 2, 1) is Binomial(2) — and equals two Bernoullis
    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    user = ExponentialFamily(
        "my_binomial2",
        (h,),
        y,
        (y,),
        2 * sp.log(1 + sp.exp(h)),
        sp.log(sp.binomial(2, y)),
        FiniteSupport.integer_range(0, 2),
    )
    by_user = fishsym.fisher_variances(model, x, user, per_sample=True)
    for name in by_name.fisher:
        for q in ("fisher", "var1", "var2"):
            assert_close_scaled(getattr(by_object, q)[name], getattr(by_name, q)[name])
        # a sum of two i.i.d. Bernoullis: μ₄ = 2(κ₄ + 3κ₂²) + 6κ₂², so per input
        # I = 2κ₂u², V₂ = 2κ₂w², V₁ = (2κ₄ + 8κ₂²)u⁴ = 2·V₁(Bernoulli) + 4·I(Bernoulli)²
        f = by_name.fisher[name]
        assert_close_scaled(by_user.fisher[name], 2 * f)
        assert_close_scaled(by_user.var2[name], 2 * by_name.var2[name])
        assert_close_scaled(by_user.var1[name], 2 * by_name.var1[name] + 4 * f * f)


@pytest.mark.parametrize("with_hessian", [True, False])
def test_unit_moments_against_label_enumeration(with_hessian):
    """The public per-unit factors: ``f = gᵀIg``, ``V₁ = E[((t−η)ᵀg)⁴] − f²``, ``f²``, and
    ``r = sᵀIs`` only when ``hess_diag`` is given (a categorical head, every label)."""
    from fishsym import kernels
    from fishsym.variance import unit_moments

    g = torch.Generator().manual_seed(7)
    kernel = kernels.for_output("categorical", 4)
    h = torch.randn(3, 4, generator=g, dtype=torch.float64)
    jac = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    hess = torch.randn(3, 4, 5, generator=g, dtype=torch.float64) if with_hessian else None
    out = unit_moments(kernel, h, jac, hess)
    p = torch.softmax(h, -1)
    centred = torch.eye(4, dtype=torch.float64)[None, :, :] - p[:, None, :]  # [n, y, c]
    score = torch.einsum("nyc,nca->nya", centred, jac)  # (t(y) − η)ᵀg per label
    fisher = torch.einsum("ny,nya->na", p, score**2)
    torch.testing.assert_close(out["fisher"], fisher)
    torch.testing.assert_close(out["fisher_sq"], fisher**2)
    torch.testing.assert_close(out["var1"], torch.einsum("ny,nya->na", p, score**4) - fisher**2)
    if with_hessian:
        curv = torch.einsum("nyc,nca->nya", centred, hess)
        torch.testing.assert_close(out["var2"], torch.einsum("ny,nya->na", p, curv**2))
    else:
        assert "var2" not in out


def test_the_cost_clock_projects_once_from_the_steady_rate(monkeypatch):
    """The run's time is projected once, after the warm-up block and BLOCKS more, from the
    rate of the blocks after the first: (elapsed) + (units left)/(rate); never once the
    work is done, and never for a run of unknown size."""
    from fishsym.variance import sums

    now = [0.0]
    monkeypatch.setattr(sums.time, "perf_counter", lambda: now[0])
    clock = sums.CostClock(100)
    got = []
    for t in (1.0, 2.0, 3.0, 4.0):
        now[0] = t
        got.append(clock.tick(10))
    # blocks 1 (warm-up, at t = 1), 2, 3: the projection at t = 3 from 20 units in 2 s
    assert got == [None, None, 3.0 + 70 / 10, None]
    done = sums.CostClock(30)
    now[0] = 0.0
    assert [done.tick(10) for _ in range(3)] == [None, None, None]  # all done: no projection
    unknown = sums.CostClock(None)
    assert [unknown.tick(10) for _ in range(4)] == [None] * 4
