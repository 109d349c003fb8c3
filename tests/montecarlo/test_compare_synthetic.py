"""The statistics of ``compare`` on synthetic replicates with known moments.

Single-label values are Gamma(a, θ) (skewed, like squared scores): mean ``aθ``,
variance ``aθ²``, fourth central moment ``3a(a+2)θ⁴``; the average of ``N`` of them is
Gamma(Na, θ/N), drawn directly. No network is involved, so the false-alarm rate and the
power of the aggregated test can be measured over hundreds of trials.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from fishsym.montecarlo import MIN_ESS, MonteCarloEstimate, compare
from fishsym.montecarlo.estimate import _replicate_stats
from fishsym.reference.selection import ParamSelection

N_LABELS = 16
REPLICATES = 500
#: shapes a of the single-label Gamma laws: skewness 2/√a from 2.8 down to 0.45; the
#: smallest still has ESS = R/(3 + 6/(aN)) ≈ 133 ≥ MIN_ESS, so every entry is tested
SHAPES = (0.5, 2.0, 20.0)
K_PER_SHAPE = 20


class _Exact(dict):
    """A stand-in exact_moments result (keys mean1..var2, optional central4_*)."""


def synthetic(rng: np.random.Generator, n_inputs=2, var_scale=1.0, with_central4=True):
    a = np.repeat(np.array(SHAPES), K_PER_SHAPE)  # [k]
    theta = rng.uniform(0.5, 2.0, size=(n_inputs, a.size))
    std = np.concatenate(
        [
            rng.standard_gamma(s * N_LABELS, size=(n_inputs, REPLICATES, K_PER_SHAPE))
            for s in SHAPES
        ],
        axis=-1,
    )  # Gamma(Na, 1), one block of entries per shape
    X = torch.from_numpy(std * (theta / N_LABELS)[:, None, :])  # [n, R, k]
    m, v, c4 = _replicate_stats(X)
    sel = ParamSelection({"w": torch.Size([a.size])}, {"w": None})
    mc = MonteCarloEstimate(
        family="synthetic",
        n_labels=N_LABELS,
        replicates=REPLICATES,
        n_inputs=n_inputs,
        dtype=torch.float64,
        selection={"squared_score": sel, "neg_hessian": sel},
        mean={e: {"w": m} for e in ("squared_score", "neg_hessian")},
        var={e: {"w": v} for e in ("squared_score", "neg_hessian")},
        central4={e: {"w": c4} for e in ("squared_score", "neg_hessian")},
        seconds=0.0,
    )
    at = torch.from_numpy(np.broadcast_to(a, theta.shape).copy())
    th = torch.from_numpy(theta)
    mean, var, mu4 = at * th, at * th**2, 3 * at * (at + 2) * th**4
    exact = _Exact(
        mean1={"w": mean},
        mean2={"w": mean},
        var1={"w": var * var_scale},
        var2={"w": var * var_scale},
    )
    if with_central4:
        exact.central4_1 = {"w": mu4}
        exact.central4_2 = {"w": mu4}
    return mc, exact


@pytest.mark.parametrize("with_central4", [True, False], ids=["exact-se", "empirical-se"])
def test_false_alarm_rate_is_controlled(with_central4):
    """Over T trials of a correct 'implementation', the report fails in at most a
    fraction α (Bonferroni). The assertion allows the Binomial(T, α) 1 − 1e-4 quantile,
    so this test itself fails falsely with probability below 1e-4."""
    alpha, trials = 0.05, 300
    rng = np.random.default_rng(20240205)
    fails, tested = 0, 0
    for _ in range(trials):
        mc, exact = synthetic(rng, with_central4=with_central4)
        report = compare(mc, exact, false_alarm=alpha)
        fails += not report.passed
        tested += report.n_tests
    limit = stats.binom.ppf(1 - 1e-4, trials, alpha)
    assert fails <= limit, f"{fails} of {trials} correct trials failed (allowed {limit:.0f})"
    if with_central4:  # exact ESS is deterministic: every entry is resolved
        assert tested == trials * 2 * 2 * len(SHAPES) * K_PER_SHAPE * 2


def test_z_scores_are_standard_normal():
    """Pooled z-scores of correct trials: mean 0, sd 1 within 5 standard errors of each
    (false-failure probability ~1e-6 per moment, treating trials as independent)."""
    rng = np.random.default_rng(7)
    zs = []
    for _ in range(60):
        mc, exact = synthetic(rng, n_inputs=1)
        report = compare(mc, exact)
        e = report.entries[("squared_score", "w")]
        zs += [e.z_mean.flatten(), e.z_var.flatten()]
    z = torch.cat(zs)
    assert abs(float(z.mean())) < 5 / z.numel() ** 0.5
    # the sample sd of n normal values has standard error 1/√(2n); 1/√n leaves room for
    # the z-scores' own kurtosis
    assert abs(float(z.std()) - 1) < 5 / z.numel() ** 0.5


@pytest.mark.parametrize("with_central4", [True, False], ids=["exact-se", "empirical-se"])
def test_planted_variance_is_flagged(with_central4):
    """A variance 1.5× too large gives z ≈ −0.5/√(kurt−1)·√R ≈ −6 per entry: flagged in
    every one of 20 trials (a miss has probability < 1e-6 per trial)."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        mc, exact = synthetic(rng, var_scale=1.5, with_central4=with_central4)
        report = compare(mc, exact, false_alarm=0.01)
        assert not report.passed
        assert all(g.status == "FAIL" for g in report.groups)


def test_unresolved_entries_are_not_tested():
    """A rare-event law (Bernoulli(ε) single labels, ε·N·R = 4 expected events) has
    ESS ≈ 4 < MIN_ESS: counted as unresolved, and the report is inconclusive."""
    rng = np.random.default_rng(3)
    eps = 4 / (N_LABELS * REPLICATES)
    X = torch.from_numpy(rng.binomial(N_LABELS, eps, size=(1, REPLICATES, 5)) / N_LABELS)
    m, v, c4 = _replicate_stats(X)
    sel = ParamSelection({"w": torch.Size([5])}, {"w": None})
    mc = MonteCarloEstimate(
        "synthetic",
        N_LABELS,
        REPLICATES,
        1,
        torch.float64,
        {"squared_score": sel},
        {"squared_score": {"w": m}},
        {"squared_score": {"w": v}},
        {"squared_score": {"w": c4}},
        0.0,
    )
    full = torch.full((1, 5), eps, dtype=torch.float64)
    exact = _Exact(
        mean1={"w": full},
        mean2={"w": full},
        var1={"w": full * (1 - eps)},
        var2={"w": full * (1 - eps)},
    )
    exact.central4_1 = exact.central4_2 = {"w": full * (1 - eps) * (1 - 3 * eps + 3 * eps**2)}
    report = compare(mc, exact)
    (group,) = report.groups
    assert group.n_unresolved == 5 and group.n_tested == 0 and group.status == "inconclusive"
    assert not report.passed
    assert MIN_ESS > 4


def test_report_formats_and_guards_truthiness():
    mc, exact = synthetic(np.random.default_rng(0))
    report = compare(mc, exact)
    text = str(report)
    assert "PASSED: True" in text and "squared_score" in text and "Bonferroni" in text
    with pytest.raises(TypeError, match="passed"):
        bool(report)
    with pytest.raises(ValueError, match="false_alarm"):
        compare(mc, exact, false_alarm=1.5)
