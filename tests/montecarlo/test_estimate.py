"""Monte Carlo on small networks, held to the engine and to the exact reference.

Every statistical assertion goes through ``compare`` at false-alarm rate
:data:`FALSE_ALARM`: a correct implementation fails one such assertion with probability
at most that (Bonferroni over all z-scores; measured below nominal in
test_compare_synthetic). Seeds are fixed, so the outcome is reproducible.
"""

from __future__ import annotations

import math

import pytest
import torch

import fishsym
from fishsym import kernels
from fishsym.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    NonFiniteError,
    NoSamplerError,
    ShapeError,
)
from fishsym.montecarlo import ZERO_ULPS, compare, estimate, plot_convergence
from fishsym.nets import mlp
from fishsym.reference import exact_moments

#: probability that a correct implementation fails one compare() assertion
FALSE_ALARM = 1e-3

#: (family, sizes, last-layer bias shift into the domain, labels per estimate). The label
#: counts keep the kurtosis of the N-label estimate low enough that the replicates
#: resolve every entry (ESS ≥ MIN_ESS) with REPLICATES replicates.
CASES = [
    ("categorical", {"C": 3}, None, 16),
    ("bernoulli", {}, None, 16),
    ("independent_bernoulli", {"d": 2}, None, 16),
    ("binomial", {"n": 3}, None, 32),
    ("multinomial", {"n": 2, "C": 3}, None, 32),
    ("gaussian", {"d": 1}, None, 32),
    ("poisson", {}, None, 32),
    # heavy-tailed squared scores (t = y on a half-line, or t = (y, y²)): single-label
    # kurtosis in the hundreds, so more labels per estimate
    ("gaussian_meanvar", {}, [0.0, -2.0], 256),
    ("geometric", {}, [-2.0], 256),
    ("negative_binomial", {"r": 2}, [-2.0], 256),
    ("exponential", {}, [-3.0], 256),
]
REPLICATES = 600


def net_and_inputs(d, activation="tanh", widths=(3, 4), shift=None, dtype=torch.float64, n=3):
    net = mlp([*widths, d], activation, generator=torch.Generator().manual_seed(1), dtype=dtype)
    if shift is not None:
        with torch.no_grad():
            net[-1].bias += torch.tensor(shift, dtype=dtype)
    x = torch.randn(n, widths[0], dtype=dtype, generator=torch.Generator().manual_seed(2))
    return net, x


@pytest.mark.parametrize("family_name,sizes,shift,n_labels", CASES, ids=[c[0] for c in CASES])
def test_monte_carlo_agrees_with_exact(family_name, sizes, shift, n_labels):
    kernel = kernels.get(family_name, **sizes)
    net, x = net_and_inputs(kernel.d, shift=shift)
    mc = estimate(net, x, kernel, n_labels, REPLICATES, torch.Generator().manual_seed(10))
    engine = fishsym.fisher_variances(
        net, x, kernel, per_sample=True, bounds=False, dtype=torch.float64
    )
    reference = exact_moments(net, x, kernel)
    for exact in (engine, reference):
        report = compare(mc, exact, false_alarm=FALSE_ALARM)
        assert report.passed, report.format()
        tested = {(g.group, g.estimator): g.n_tested for g in report.groups}
        # both estimators are tested in the hidden layer; Î₂ of the last layer is an exact zero
        assert tested[("0", "squared_score")] > 0 and tested[("0", "neg_hessian")] > 0
        assert tested[("2", "squared_score")] > 0
        last = next(g for g in report.groups if g.group == "2" and g.estimator == "neg_hessian")
        assert last.n_zero == last.n_values and last.zero_violations == 0


def test_float32_monte_carlo_against_float64_exact():
    net, x = net_and_inputs(3, activation="sigmoid", widths=(4, 5, 4), dtype=torch.float32)
    mc = estimate(net, x, "categorical", 16, REPLICATES, torch.Generator().manual_seed(3))
    assert mc.dtype == torch.float32
    report = compare(mc, exact_moments(net, x, "categorical"), false_alarm=FALSE_ALARM)
    assert report.passed, report.format()


def test_input_averaged_engine_result():
    """per_sample=False: input-averaged Monte Carlo quantities against fisher/var."""
    net, x = net_and_inputs(3, n=4)
    mc = estimate(net, x, "categorical", 16, REPLICATES, torch.Generator().manual_seed(4))
    averaged = fishsym.fisher_variances(
        net, x, "categorical", per_sample=False, bounds=False, dtype=torch.float64
    )
    report = compare(mc, averaged, false_alarm=FALSE_ALARM)
    assert not report.per_sample and report.passed, report.format()
    assert report.entries[("squared_score", "0.weight")].z_mean.shape == (4, 3)
    planted = _Planted(
        averaged, var1={n: v + averaged.fisher[n] ** 2 for n, v in averaged.var1.items()}
    )
    assert not compare(mc, planted, false_alarm=FALSE_ALARM).passed


# ---------------------------------------------------------------------------- planted errors
class _Planted:
    """A FisherVariances with some fields replaced."""

    def __init__(self, base, **fields):
        self._base, self._fields = base, fields

    def __getattr__(self, attr):
        return self._fields[attr] if attr in self._fields else getattr(self._base, attr)


@pytest.fixture(scope="module")
def tanh_case():
    net, x = net_and_inputs(3)
    mc = estimate(net, x, "categorical", 16, 1000, torch.Generator().manual_seed(5))
    engine = fishsym.fisher_variances(
        net, x, "categorical", per_sample=True, bounds=False, dtype=torch.float64
    )
    return net, x, mc, engine


def test_planted_wrong_variances_are_flagged(tanh_case):
    _, _, mc, engine = tanh_case
    assert compare(mc, engine, false_alarm=FALSE_ALARM).passed
    # V₁ without the −I² term (μ₄ alone)
    no_square = _Planted(
        engine, var1={n: v + engine.fisher[n] ** 2 for n, v in engine.var1.items()}
    )
    report = compare(mc, no_square, false_alarm=FALSE_ALARM)
    assert not report.passed
    assert {g.estimator for g in report.groups if g.status == "FAIL"} == {"squared_score"}
    # V₂ scaled by 1.5
    scaled = _Planted(engine, var2={n: 1.5 * v for n, v in engine.var2.items()})
    report = compare(mc, scaled, false_alarm=FALSE_ALARM)
    assert [(g.group, g.estimator) for g in report.groups if g.status == "FAIL"] == [
        ("0", "neg_hessian")
    ]
    # a Fisher information 10% too large
    shifted = _Planted(engine, fisher={n: 1.1 * v for n, v in engine.fisher.items()})
    assert not compare(mc, shifted, false_alarm=FALSE_ALARM).passed


def test_exact_zero_claims_are_checked(tanh_case):
    """Claiming V₂ = 0 in the hidden layer of a tanh net contradicts the sampled labels."""
    _, _, mc, engine = tanh_case
    zeroed = _Planted(engine, var2={n: torch.zeros_like(v) for n, v in engine.var2.items()})
    report = compare(mc, zeroed, false_alarm=FALSE_ALARM)
    hidden = next(g for g in report.groups if g.group == "0" and g.estimator == "neg_hessian")
    assert hidden.status == "FAIL" and hidden.zero_violations == hidden.n_values


@pytest.mark.parametrize(
    "activation,widths", [("relu", (3, 5, 4)), ("leaky_relu", (3, 4)), ("tanh", (3,))]
)
def test_exact_zeros_of_piecewise_linear_nets_and_glms(activation, widths):
    """ReLU-type nets and GLMs: every Î₂ is exact from one label (docs/theory.md §2), in float32."""
    net, x = net_and_inputs(3, activation=activation, widths=widths, dtype=torch.float32)
    mc = estimate(
        net, x, "categorical", 8, 50, torch.Generator().manual_seed(6), estimators=("neg_hessian",)
    )
    report = compare(mc, exact_moments(net, x, "categorical"))
    assert report.passed, report.format()
    for g in report.groups:
        assert g.n_zero == g.n_values and g.zero_violations == 0
    eps = torch.finfo(torch.float32).eps
    for name, v in mc.var["neg_hessian"].items():
        # the per-label values agree up to float32 rounding of ∇²_hℓ(y) per label
        assert bool((v.sqrt() <= ZERO_ULPS * eps * mc.mean["neg_hessian"][name].abs()).all())


# ---------------------------------------------------------------------------- mechanics
def test_parameter_subsets_and_reproducibility():
    net, x = net_and_inputs(3)
    idx = torch.tensor([1, 4, 7])
    args = (net, x, "categorical", 4, 20)
    a = estimate(
        *args, torch.Generator().manual_seed(0), params={"0.weight": idx}, hessian_params=["2.bias"]
    )
    b = estimate(
        *args, torch.Generator().manual_seed(0), params={"0.weight": idx}, hessian_params=["2.bias"]
    )
    c = estimate(
        *args, torch.Generator().manual_seed(1), params={"0.weight": idx}, hessian_params=["2.bias"]
    )
    assert a.mean1["0.weight"].shape == (3, 3) and list(a.mean1) == ["0.weight"]
    assert a.mean2["2.bias"].shape == (3, 3) and list(a.mean2) == ["2.bias"]
    assert torch.equal(a.var1["0.weight"], b.var1["0.weight"])
    assert not torch.equal(a.var1["0.weight"], c.var1["0.weight"])
    whole = estimate(*args, torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        whole.mean1["0.weight"].reshape(3, -1)[:, idx], a.mean1["0.weight"], rtol=1e-12, atol=0
    )
    # compare against a reference computed on a superset of the entries
    ref = exact_moments(
        net, x, "categorical", params={"0.weight": torch.tensor([0, 1, 4, 7]), "2.bias": None}
    )
    compare(a, ref)
    missing = exact_moments(net, x, "categorical", params={"0.weight": torch.tensor([1, 4])})
    with pytest.raises(ShapeError, match="lacks flat indices"):
        compare(a, missing)


def test_statistics_match_a_direct_computation():
    """Replicate means/variances equal a slow loop over replicates with torch.autograd."""
    net, x = net_and_inputs(2, widths=(2, 3), n=1)
    gen = torch.Generator().manual_seed(9)
    mc = estimate(net, x, "categorical", 3, 4, gen)
    labels = fishsym.kernels.get("categorical", C=2).sample(
        net(x).detach(), 12, torch.Generator().manual_seed(9)
    )[:, 0]
    w = net[0].weight
    per_rep1, per_rep2 = [], []
    for r in range(4):
        s1 = torch.zeros_like(w)
        s2 = torch.zeros_like(w)
        for m in range(3 * r, 3 * r + 3):
            ell = torch.log_softmax(net(x)[0], -1)[labels[m]]
            (g,) = torch.autograd.grad(ell, w, create_graph=True)
            s1 += g.detach() ** 2
            for i in range(w.numel()):
                (hrow,) = torch.autograd.grad(g.flatten()[i], w, retain_graph=True)
                s2.view(-1)[i] -= hrow.flatten()[i]
        per_rep1.append(s1 / 3)
        per_rep2.append(s2 / 3)
    for key, reps in (("squared_score", per_rep1), ("neg_hessian", per_rep2)):
        X = torch.stack(reps)
        torch.testing.assert_close(mc.mean[key]["0.weight"][0], X.mean(0), rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(mc.var[key]["0.weight"][0], X.var(0), rtol=1e-8, atol=1e-16)


class _NoSampler:
    def __init__(self, kernel):
        self._k = kernel

    def __getattr__(self, attr):
        return getattr(self._k, attr)

    def sample(self, h, n, generator):
        raise NotImplementedError("this test kernel cannot sample")


def test_bad_input():
    net, x = net_and_inputs(3)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(InvalidArgumentError, match="n_labels"):
        estimate(net, x, "categorical", 0, 10, gen)
    with pytest.raises(ArgumentTypeError, match="n_labels"):
        estimate(net, x, "categorical", None, 10, gen)
    with pytest.raises(InvalidArgumentError, match="replicates"):
        estimate(net, x, "categorical", 10, 1, gen)
    with pytest.raises(ArgumentTypeError, match="dtype"):
        estimate(net, x, "categorical", 2, 2, gen, dtype=torch.int64)
    with pytest.raises(ShapeError, match="valid names"):
        estimate(net, x, "categorical", 2, 2, gen, params=["missing.weight"])
    with pytest.raises(ShapeError, match="outside the valid range"):
        estimate(net, x, "categorical", 2, 2, gen, params={"0.weight": [99]})
    with pytest.raises(InvalidArgumentError, match="estimators"):
        estimate(net, x, "categorical", 2, 2, gen, estimators=("fisher",))
    with pytest.raises(TypeError, match="torch.Generator"):
        estimate(net, x, "categorical", 2, 2, 0)
    with pytest.raises(NoSamplerError, match="no sampler"):
        estimate(net, x, _NoSampler(kernels.get("categorical", C=3)), 2, 2, gen)
    bad = x.clone()
    bad[0, 0] = math.inf
    with pytest.raises(NonFiniteError):
        estimate(net, bad, "categorical", 2, 2, gen)
    mc = estimate(net, x, "categorical", 2, 2, gen)
    with pytest.raises(ShapeError, match="exact must be"):
        compare(mc, {"mean1": {}})
    other = exact_moments(net, x[:2], "categorical")
    with pytest.raises(ShapeError, match="inputs"):
        compare(mc, other)


def test_plots(tmp_path, tanh_case):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    net, x, mc, engine = tanh_case
    report = compare(mc, engine)
    report.plot(tmp_path / "variances.png")
    assert (tmp_path / "variances.png").stat().st_size > 0
    small = [
        estimate(net, x, "categorical", n, 100, torch.Generator().manual_seed(n)) for n in (2, 8)
    ]
    fig = plot_convergence([compare(mc, engine) for mc in small], tmp_path / "convergence.png")
    assert len(fig.axes) == 2 and (tmp_path / "convergence.png").stat().st_size > 0


def test_progress_bar(capsys):
    net, x = net_and_inputs(3)
    estimate(net, x, "categorical", 2, 2, torch.Generator().manual_seed(0), progress=True)
    assert "fishsym.montecarlo" in capsys.readouterr().err
