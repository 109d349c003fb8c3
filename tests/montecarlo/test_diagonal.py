"""``diagonal_fisher``: its intervals cover the exact Fisher (fishsym's exact route) at the
nominal rate, for the squared score and the Hutchinson estimator, on an MLP, a CNN and a
1,000-class head; it stops when the target is reached or the budget is spent, and says
which."""

import math

import pytest
import torch
from torch import nn

import fishsym
from fishsym.montecarlo.diagonal import t_quantile

#: binomial standard errors the coverage fraction may stray from the nominal 95 %
#: (seeded draws: the test always passes or always fails)
COVERAGE_SIGMAS = 4.0


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _init(model, seed, scale=1.0):
    gen = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(
                torch.randn(p.shape, generator=gen, dtype=p.dtype)
                * scale
                / math.sqrt(max(1, p.shape[-1] if p.dim() > 1 else 1))
            )
    return model.double().eval()


CASES = {
    "mlp": (
        lambda: _init(nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 5)), 1, 2.0),
        lambda: torch.randn(48, 6, generator=_gen(2), dtype=torch.float64),
    ),
    "cnn": (
        lambda: _init(
            nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(27, 4)), 3, 2.0
        ),
        lambda: torch.randn(48, 1, 5, 5, generator=_gen(4), dtype=torch.float64),
    ),
    "1000-class": (
        lambda: _init(nn.Sequential(nn.Linear(8, 1000)), 5, 3.0),
        lambda: torch.randn(32, 8, generator=_gen(6), dtype=torch.float64),
    ),
}


#: independent runs of the coverage test, and rounds (draws per input) in each
RUNS, ROUNDS = 24, 128


@pytest.mark.parametrize(
    "case, estimator",
    [
        (c, e)
        for c in CASES
        for e in ("squared_score", "hutchinson")
        if (c, e) != ("1000-class", "squared_score")
    ],
)
def test_intervals_cover_the_exact_fisher(case, estimator):
    """Over independent runs, the fraction of entries whose 95 % interval holds the exact
    Fisher is 95 %, within the standard error of that fraction across runs (entries of
    one run share its draws and are not independent). At 128 rounds: the t-interval of
    skewed squared scores reaches its nominal rate only with enough rounds (MIN_ROUNDS)."""
    make, inputs = CASES[case]
    model, x = make(), inputs()
    truth = fishsym.fisher_variances(model, x, "categorical", bounds=False).fisher
    fractions = []
    runs = RUNS // 2 if case == "1000-class" else RUNS  # its rounds cost 10× more
    for run in range(runs):
        est = fishsym.diagonal_fisher(
            model,
            x,
            "categorical",
            estimator=estimator,
            exact=False,
            rel_error=1e-9,
            max_labels=ROUNDS,
            generator=_gen(100 + run),
        )
        assert set(est.rounds.values()) == {ROUNDS}
        lower, upper = est.ci(0.95)
        inside = torch.cat(
            [((lower[n] <= truth[n]) & (truth[n] <= upper[n])).reshape(-1) for n in truth]
        )
        positive = torch.cat([(truth[n] > 0).reshape(-1) for n in truth])
        fractions.append(float(inside[positive].double().mean()))
    f = torch.tensor(fractions, dtype=torch.float64)
    se = max(
        float(f.std()) / math.sqrt(runs), math.sqrt(0.95 * 0.05 / (runs * int(positive.sum())))
    )
    assert abs(float(f.mean()) - 0.95) <= COVERAGE_SIGMAS * se, (float(f.mean()), se)


def test_rare_labels_are_unresolved_not_exact():
    """A 1,000-class head with few labels: many classes are never drawn, so the squared
    score's rounds cannot show their variance; diagonal_fisher must not claim precision
    there, and "auto" must prefer the Hutchinson estimator."""
    make, inputs = CASES["1000-class"]
    model, x = make(), inputs()
    sq = fishsym.diagonal_fisher(
        model,
        x,
        "categorical",
        estimator="squared_score",
        exact=False,
        rel_error=0.5,
        max_labels=32,
        generator=_gen(11),
    )
    assert set(sq.status.values()) == {"budget spent"}
    auto = fishsym.diagonal_fisher(
        model, x, "categorical", exact=False, rel_error=0.5, max_labels=32, generator=_gen(12)
    )
    assert set(auto.estimators.values()) == {"hutchinson"}


def test_stops_at_the_target_and_reports():
    make, inputs = CASES["mlp"]
    model, x = make(), inputs()
    est = fishsym.diagonal_fisher(
        model, x, "categorical", exact=False, rel_error=0.25, generator=_gen(8)
    )
    assert set(est.status.values()) == {"reached"}
    assert all(v <= 0.25 for v in est.achieved.values())
    assert set(est.estimators.values()) <= {"squared_score", "hutchinson"}
    text = est.report()
    assert "reached" in text and "median rel. error" in text
    # a budget that cannot reach the target says so
    tight = fishsym.diagonal_fisher(
        model, x, "categorical", exact=False, rel_error=1e-3, max_labels=20, generator=_gen(9)
    )
    assert set(tight.status.values()) == {"budget spent"}
    assert max(tight.rounds.values()) <= 20


def test_the_exact_route_when_cheap():
    make, inputs = CASES["mlp"]
    model, x = make(), inputs()
    est = fishsym.diagonal_fisher(model, x, "categorical", generator=_gen(10))
    truth = fishsym.fisher_variances(model, x, "categorical", bounds=False).fisher
    assert set(est.estimators.values()) == {"exact"}
    for n in truth:
        torch.testing.assert_close(est.value[n], truth[n])
        assert float(est.stderr[n].abs().max()) == 0


def test_student_t_quantile():
    scipy_stats = pytest.importorskip("scipy.stats")
    for dof in (10, 15, 63, 1000):
        for p in (0.9, 0.975, 0.995):
            assert t_quantile(p, dof) == pytest.approx(scipy_stats.t.ppf(p, dof), rel=5e-4)


def test_bad_arguments():
    make, inputs = CASES["mlp"]
    model, x = make(), inputs()
    with pytest.raises(fishsym.errors.FishsymError, match="estimator"):
        fishsym.diagonal_fisher(model, x, "categorical", estimator="magic", generator=_gen(1))
    with pytest.raises(fishsym.errors.FishsymError, match="generator"):
        fishsym.diagonal_fisher(model, x, "categorical", generator=None)
    with pytest.raises(fishsym.errors.FishsymError, match="max_labels"):
        fishsym.diagonal_fisher(model, x, "categorical", max_labels=1, generator=_gen(1))


def test_the_model_is_untouched(unchanged):
    make, inputs = CASES["cnn"]
    model, x = make(), inputs()
    model[0].register_forward_hook(lambda m, i, o: None)
    before = unchanged.snapshot(model)
    fishsym.diagonal_fisher(
        model, x, "categorical", exact=False, rel_error=0.5, max_labels=20, generator=_gen(13)
    )
    fishsym.diagonal_fisher(model, x, "categorical", generator=_gen(14))  # the exact route
    unchanged.check(before, model)
