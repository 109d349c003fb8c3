"""Label budgets (docs/theory.md §5): the variance of the mean-Fisher estimate with ``N``
labels per input — over the given inputs, or over inputs drawn from them — against a
direct simulation of that estimate; the two error statements; the inverse."""

import math
from statistics import NormalDist

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import fishsym
from fishsym.montecarlo.compare import bonferroni_threshold

#: family-wise false-alarm rate of the simulation test (seeded: always passes or always
#: fails; a correct implementation fails with this probability)
MC_ALPHA = 1e-3


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def case():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=_gen(p.numel()), dtype=torch.float64))
    x = torch.randn(5, 3, generator=_gen(1), dtype=torch.float64)
    res = fishsym.fisher_variances(model, x, "categorical")
    # the squared score of every (input, label): [n, C, P], by plain autograd
    params = {k: v.detach() for k, v in model.named_parameters()}

    def ell(p, xi, y):  # y one-hot
        return (torch.log_softmax(functional_call(model, p, (xi[None],))[0], -1) * y).sum()

    ys = torch.eye(3, dtype=torch.float64)
    g = vmap(vmap(grad(ell), in_dims=(None, None, 0)), in_dims=(None, 0, None))(params, x, ys)
    table = torch.cat([g[k].reshape(5, 3, -1) for k in params], -1) ** 2
    with torch.no_grad():
        probs = torch.softmax(model(x), -1)
    return model, x, res, table, probs


def _flat(d):
    return torch.cat([t.reshape(-1) for t in d.values()])


@pytest.mark.parametrize("n_inputs", [None, 3])
def test_variance_of_the_mean_fisher_estimate_matches_simulation(case, n_inputs):
    """Replicates of the N-label estimate (inputs fixed, or drawn with replacement): the
    sample variance of each entry against σ² of the budget module, z-tested with the
    replicates' own fourth moment."""
    from fishsym.variance.budget import _sigma2

    model, x, res, table, probs = case
    N, R = 2, 6000
    gen = _gen(7)
    estimates = []
    for _ in range(R):
        rows = (
            torch.arange(x.shape[0])
            if n_inputs is None
            else torch.randint(0, x.shape[0], (n_inputs,), generator=gen)
        )
        labels = torch.multinomial(probs[rows], N, replacement=True, generator=gen)  # [n, N]
        estimates.append(table[rows[:, None], labels].mean((0, 1)))
    est = torch.stack(estimates)
    centred = est - est.mean(0)
    s2 = centred.pow(2).sum(0) / (R - 1)
    m4 = centred.pow(4).mean(0)
    se = ((m4 - s2 * s2).clamp_min(0) / R).sqrt()
    sigma2 = _flat(_sigma2(res, "squared_score", N, n_inputs))
    tested = se > 0
    z = (s2[tested] - sigma2[tested]) / se[tested]
    assert float(z.abs().max()) <= bonferroni_threshold(int(tested.sum()), MC_ALPHA)
    # the mean is the Fisher (unbiased)
    z_mean = (est.mean(0) - _flat(res.fisher))[tested] / (sigma2[tested] / R).sqrt()
    assert float(z_mean.abs().max()) <= bonferroni_threshold(int(tested.sum()), MC_ALPHA)


def test_error_statements_and_their_inverse(case):
    _, _, res, _, _ = case
    prob, N = 0.9, 4
    cheb = res.relative_error(N, prob=prob, method="chebyshev")
    normal = res.relative_error(N, prob=prob, method="normal")
    for group, names in res.groups.items():
        v = sum(float(res.var["squared_score"][n].sum()) for n in names) / N
        v4 = sum(float((res.var["squared_score"][n] / N).pow(2).sum()) for n in names)
        f = math.sqrt(sum(float(res.fisher[n].pow(2).sum()) for n in names))
        row = next(r for r in cheb if r["group"] == group and r["estimator"] == "squared_score")
        assert row["norm"] == pytest.approx(math.sqrt(v / (1 - prob)) / f, rel=1e-12)
        row = next(r for r in normal if r["group"] == group and r["estimator"] == "squared_score")
        z1 = NormalDist().inv_cdf(prob)
        assert row["norm"] == pytest.approx(math.sqrt(v + z1 * math.sqrt(2 * v4)) / f, rel=1e-12)
    # the normal statement is the sharper one; both fall as 1/√N
    for a, b in zip(cheb, normal, strict=True):
        assert b["norm"] <= a["norm"]
    # the inverse: the smallest N that reaches the target
    from fishsym.variance.budget import group_errors

    for method in ("chebyshev", "normal"):
        for target in ("norm", "median", "q90"):
            need = res.labels_for(0.2, method=method, target=target, prob=prob)
            for group, n_labels in need.items():
                err = group_errors(res, "squared_score", n_labels, None, prob, method)
                assert err[group][target] <= 0.2
                if n_labels > 1:
                    before = group_errors(res, "squared_score", n_labels - 1, None, prob, method)
                    assert before[group][target] > 0.2


def test_the_input_part_can_make_labels_useless(case):
    """With inputs drawn from the data, Var_x I / n_x is a floor no label count removes."""
    _, _, res, _, _ = case
    tiny = res.labels_for(1e-4, n_inputs=2)
    assert all(v == math.inf for v in tiny.values())
    assert all(v < math.inf for v in res.labels_for(1e-4).values())  # fixed inputs: finite


def test_bad_arguments(case):
    _, _, res, _, _ = case
    with pytest.raises(fishsym.errors.FishsymError, match="method"):
        res.relative_error(1, method="exact")
    with pytest.raises(fishsym.errors.FishsymError, match="hutchinson"):
        res.labels_for(0.1, estimator="hutchinson")
    with pytest.raises(fishsym.errors.FishsymError, match="target"):
        res.labels_for(0.1, target="mean")


def _two_entries():
    """One layer of two entries: F̄ = (1, 2), one-draw variances (0.04, 0.09), bias
    (0.1, 0) — numbers for which the error statements are computed by hand below."""
    from types import SimpleNamespace

    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return SimpleNamespace(
        var={"merging_recipe": {"w": t(0.04, 0.09)}},
        bias={"merging_recipe": {"w": t(0.1, 0.0)}},
        means={"fisher": {"w": t(1.0, 2.0)}},
        groups={"layer": ["w"]},
    )


#: (method, probability) → (norm, median, q90) by hand for :func:`_two_entries`, one label
HAND = {
    # Chebyshev at p = 0.75: σ/√(1−p) = 2σ → per entry (0.1 + 0.4, 0.6), relative (0.5,
    # 0.3); norm (‖b‖ + √(Σσ²/(1−p)))/‖F̄‖ = (0.1 + √0.52)/√5
    ("chebyshev", 0.75): ((0.1 + math.sqrt(0.52)) / math.sqrt(5), 0.4, 0.3 + 0.9 * 0.2),
    # Chebyshev at p = 0.96: σ/√0.04 = 5σ → (0.1 + 1.0, 1.5) relative (1.1, 0.75)
    ("chebyshev", 0.96): (
        (0.1 + math.sqrt(0.13 / 0.04)) / math.sqrt(5),
        (1.1 + 0.75) / 2,
        0.75 + 0.9 * 0.35,
    ),
    # normal at p = 0.95: two-sided z = 1.959964 per entry → (0.1 + 0.2z, 0.3z/2);
    # norm: χ² matched in mean 0.13 and variance 2(0.04² + 0.09²), one-sided Φ⁻¹(0.95)
    ("normal", 0.95): (
        (0.1 + math.sqrt(0.13 + 1.6448536269514722 * math.sqrt(2 * (0.0016 + 0.0081))))
        / math.sqrt(5),
        ((0.1 + 0.2 * 1.959963984540054) + 0.3 * 1.959963984540054 / 2) / 2,
        0.3 * 1.959963984540054 / 2
        + 0.9 * (0.1 + 0.2 * 1.959963984540054 - 0.3 * 1.959963984540054 / 2),
    ),
}


@pytest.mark.parametrize("method, prob", list(HAND))
def test_error_statements_equal_hand_computed_values(method, prob):
    """Issue 23 E: `1 − p` for `√(1 − p)` in the biased Chebyshev count, or a one-sided
    quantile in the per-entry normal statement, passed the suite. Hand values catch both."""
    from fishsym.variance.budget import group_errors, labels_for

    res = _two_entries()
    got = group_errors(res, "merging_recipe", 1, None, prob, method)["layer"]
    for key, want in zip(("norm", "median", "q90"), HAND[(method, prob)], strict=True):
        assert got[key] == pytest.approx(want, rel=1e-12), key
    # the inverse: N labels divide the variances by N; the fewest N reaching a target
    for target in ("norm", "median", "q90"):
        for goal in (0.3, 0.5):
            n = labels_for(res, goal, "merging_recipe", None, prob, method, target)["layer"]
            if math.isinf(n):  # the bias alone is above the goal
                assert (
                    group_errors(res, "merging_recipe", 10**15, None, prob, method)["layer"][target]
                    > goal
                )
                continue
            err = lambda k: group_errors(res, "merging_recipe", k, None, prob, method)["layer"][
                target
            ]  # noqa: E731
            assert err(n) <= goal < err(n - 1) if n > 1 else err(n) <= goal


def test_the_tables_users_read_print_the_numbers():
    """The printed tables: relative errors as percentages to 3 digits, ``∞`` where the
    layer's Fisher is zero, ``-`` where no quantile exists; draws as integers, ``never``
    for a biased estimator that cannot reach the target (both formatters were mutated
    unnoticed before)."""
    from fishsym.variance.budget import ErrorReport
    from fishsym.variance.estimators import EstimatorComparison

    report = ErrorReport(
        [
            {"group": "a", "estimator": "squared_score", "n_params": 3,
             "norm": 0.12345, "median": math.inf, "q90": math.nan},
        ],
        header="h",
    )  # fmt: skip
    row = report.table().splitlines()[-1].split()
    assert row[3:] == ["12.3%", "∞", "-"]
    comparison = EstimatorComparison(
        [
            {"group": "a", "estimator": "squared_score", "rel_bias": 0.0, "rel_std": 0.5,
             "cost": 4, "draws": 12345.0, "passes": math.inf, "best": True},
        ],
        rel_error=0.1, prob=0.95, n_inputs=4,
    )  # fmt: skip
    row = comparison.table().splitlines()[-1].split()
    assert "12,345" in row and "never" in row
