"""Hold Monte Carlo estimates to exact values, with a stated false-alarm rate.

For each estimator ``a`` (``Î₁`` squared score, ``Î₂`` negative Hessian), input ``x_n``
and selected entry ``θ_p``, with ``N`` labels per estimate and ``R`` replicates, exact
single-label mean ``I`` and variance ``V_a`` (so ``V = V_a/N`` for the ``N``-label
estimator):

* **mean**:      ``z = (Ī − I) / √(V/R)`` — the standard error under the null (the exact
  implementation is right) is known exactly, so ``z`` has mean 0 and variance 1 for any
  label distribution;
* **variance**:  the sample variance ``s²`` of the replicates against ``V``, through the
  Wilson–Hilferty cube root: ``z = ((s²/V)^{1/3} − 1 + q)/√q`` with ``q = Var(s²)/(9V²)``
  and ``Var(s²) = (μ₄ − V²(R−3)/(R−1))/R`` (docs/theory.md §6). ``μ₄``, the fourth central
  moment of the ``N``-label estimate, is exact when the exact side is an
  :func:`~fishsym.reference.exact_moments` result (``μ₄ = (μ₄⁽¹⁾ − 3V_a²)/N³ +
  3V_a²/N²`` from its single-label fourth moments); otherwise the kurtosis ``m₄/s⁴`` of
  the replicates is used, scaled by the null variance ``V²``. The cube root matters:
  ``s²`` is right-skewed (a scaled χ², by Satterthwaite), and a plain ``(s² − V)/SE``
  — worse, one studentised by the replicates' own ``m₄``, which is small exactly when
  ``s²`` is — puts several times the nominal mass beyond ``|z| = 4``.

Both are approximately standard normal by the central limit theorem once enough
independent variation enters: an entry is **resolved** when the effective number of
replicates carrying its variance, ``ESS = R·V²/μ₄`` (exact) or ``R·m₂²/m₄`` (empirical),
is at least :data:`MIN_ESS`. The skewness of either statistic is then about
``1/√ESS ≤ 0.1``. Unresolved entries (a rare label carries all the variance, so the
normal approximation fails) are counted, not tested.

**Aggregated test.** Within a layer the z-scores are strongly dependent — all weights
feeding one unit share the same labels, so their ``Î₁`` are proportional — which rules
out χ² and Fisher combinations (they assume independence and would raise false alarms
far above the stated rate). The Bonferroni test on ``max |z|`` controls the
family-wise false-alarm rate under any dependence: with ``m`` z-scores in the whole
report and false-alarm rate ``α``, each is held to ``|z| ≤ z* = Φ⁻¹(1 − α/(2m))``, so a
correct implementation fails the report with probability at most ``α`` (to the normal
approximation). Each group reports its Bonferroni-adjusted p-value
``min(1, 2m(1 − Φ(max|z|)))``. Measured on synthetic skewed replicates with known moments
(tests/montecarlo/test_compare_synthetic.py, 2,000 reports at nominal 5 %): 2.7 % of
correct reports fail with exact fourth moments, 4.3 % with empirical ones.

**Exact zeros.** Where the exact variance is zero to floating-point resolution — ``Î₂``
in the last (linear) layer, every ``Î₂`` of a ReLU network (docs/theory.md §2) — the sampled
per-label values are the same real number, so the Monte Carlo variance must vanish up
to rounding: ``s ≤ ZERO_ULPS · ε · |Ī|`` (``ε`` the machine epsilon of the coarser of
the Monte Carlo and exact dtypes); the same resolution decides which exact variances
count as zero (``√V_a ≤ ZERO_ULPS · ε · |I|``). Such entries are checked that way, not
by z-scores. An entry whose ``√V_a`` lies below ``ZERO_ULPS · ε`` times the largest of its
parameter tensor (per input) is at round-off level — typically an exact zero evaluated
as a cancellation, like a key bias under softmax — and counts as unresolved.

With an input-averaged exact result (``FisherVariances`` with ``per_sample=False``) the
input-averaged Monte Carlo quantities are compared: ``mean_n Ī_n`` with ``fisher`` and
``mean_n s²_n`` with ``var/N``, standard errors combined over the independent inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import torch
from torch import Tensor

from fishsym.common import parameter_group
from fishsym.errors import ShapeError
from fishsym.montecarlo.estimate import ESTIMATORS, MonteCarloEstimate
from fishsym.reference.exact import ESTIMATOR_KEYS
from fishsym.reference.selection import ParamSelection

#: an entry is tested by z-scores only when at least this many replicates effectively
#: carry its variance; the skewness of the statistics is then ≲ 1/√MIN_ESS = 0.1
MIN_ESS = 100.0
#: exact zeros: the per-label values agree in exact arithmetic and are evaluated along
#: label-dependent paths of a few dozen roundings, each ≤ ε relative; 100 ulps of the
#: mean bounds their spread with margin
ZERO_ULPS = 100.0
#: fractions of |z| above 2 and 3 for a standard normal
NORMAL_FRACTION_OVER = {2: 2 * (1 - NormalDist().cdf(2.0)), 3: 2 * (1 - NormalDist().cdf(3.0))}


@dataclass
class EntryResult:
    """Per (estimator, parameter) arrays, shaped like the Monte Carlo result
    ``[n_inputs, *shape]`` / ``[n_inputs, k]`` (or without the input axis when the exact
    side is input-averaged). ``z_mean``/``z_var`` are NaN where an entry was not tested
    (``zero`` or not ``resolved``)."""

    estimator: str
    name: str
    exact_mean: Tensor
    exact_var: Tensor  # variance of the n_labels-label estimator
    mc_mean: Tensor
    mc_var: Tensor
    z_mean: Tensor
    z_var: Tensor
    zero: Tensor  # theory predicts zero variance
    zero_ok: Tensor  # (where zero) the MC variance vanished to rounding
    resolved: Tensor


@dataclass
class GroupResult:
    """The aggregated test of one parameter group (layer) and estimator."""

    group: str
    estimator: str
    n_values: int
    n_tested: int
    n_zero: int
    n_unresolved: int
    zero_violations: int
    max_abs_z_mean: float
    max_abs_z_var: float
    frac_over: dict[int, float]
    p_value: float
    status: str  # "ok", "FAIL" or "inconclusive"


@dataclass
class ComparisonReport:
    """Result of :func:`compare`. ``passed`` is True when no group failed and every group
    was testable; ``format()`` (or ``str``) prints the table."""

    false_alarm: float
    threshold: float
    n_tests: int
    se_method: str
    per_sample: bool
    n_labels: int
    replicates: int
    groups: list[GroupResult]
    entries: dict[tuple[str, str], EntryResult] = field(repr=False)

    @property
    def passed(self) -> bool:
        return all(g.status == "ok" for g in self.groups)

    def __bool__(self) -> bool:  # a report is not a truth value by accident
        raise TypeError("use report.passed to test a ComparisonReport")

    def format(self) -> str:
        lines = [
            f"Monte Carlo vs exact — {self.n_labels} labels per estimate × {self.replicates} "
            f"replicates; {'per input' if self.per_sample else 'input-averaged'}; "
            f"variance SE {self.se_method}",
            f"Bonferroni over {self.n_tests} z-scores at false-alarm rate {self.false_alarm:g}: "
            f"|z| ≤ {self.threshold:.2f}; resolved means ESS ≥ {MIN_ESS:g}; exact zeros "
            f"to {ZERO_ULPS:g} ulps",
            f"{'group':<16}{'estimator':<15}{'values':>8}{'tested':>8}{'zero':>7}{'unres':>7}"
            f"{'max|z| mean':>13}{'max|z| var':>12}{'>2':>7}{'>3':>7}{'p(adj)':>9}  status",
        ]
        e2, e3 = NORMAL_FRACTION_OVER[2], NORMAL_FRACTION_OVER[3]
        for g in self.groups:
            zero = f"{g.n_zero}" + (f"!{g.zero_violations}" if g.zero_violations else "")
            lines.append(
                f"{g.group:<16}{g.estimator:<15}{g.n_values:>8}{g.n_tested:>8}{zero:>7}"
                f"{g.n_unresolved:>7}{_fmt(g.max_abs_z_mean):>13}{_fmt(g.max_abs_z_var):>12}"
                f"{_pct(g.frac_over[2]):>7}{_pct(g.frac_over[3]):>7}{g.p_value:>9.3g}  {g.status}"
            )
        lines.append(
            f"expected fractions of |z| > 2, > 3 under normality: {_pct(e2)}, {_pct(e3)} "
            f"(z-scores within a group are dependent, so the observed fractions scatter more)"
        )
        lines.append(f"PASSED: {self.passed}")
        return "\n".join(lines)

    __str__ = format

    def plot(self, path=None):
        """MC variance against exact variance, log–log, one panel per group (needs
        matplotlib). Entries with predicted zero variance are left out (counted in the
        title). Saves to ``path`` when given; returns the figure."""
        from fishsym.montecarlo.plots import plot_variances

        return plot_variances(self, path)


# --------------------------------------------------------------------------- z-tests
# Elementwise z-scores against exact values and a Bonferroni test of a family of them,
# for checks that hold other Monte Carlo quantities to exact ones (paper_checks, the
# notebooks): the same statistics as the reports above, in one place.

#: where the exact value is 0 and the estimate has zero spread (se = 0) the z-score is
#: defined only if the estimate is 0 too; |estimate| ≤ this counts as 0 (rounding of a
#: float64 sum of exact zeros and ~1e-16 terms)
ZERO_ATOL = 1e-12
#: an exact zero *variance* is matched by a sample variance below ZERO_RTOL × mean²: a
#: relative spread of 1e-6, far above float64 rounding between label draws (~1e-16,
#: e.g. two code paths of a log-density whose curvature does not depend on the label)
#: and far below any real label noise
ZERO_RTOL = 1e-12
#: float64 evaluation error of an "exact" value or of a sample mean, relative to the value:
#: added in quadrature to the standard error, so that an estimator with zero (or
#: rounding-level) spread is compared at rounding precision instead of dividing by ~0
ROUND_RTOL = 1e-12


def bonferroni_threshold(n_tests: int, alpha: float) -> float:
    """``Φ⁻¹(1 − α/(2K))``: the ``|z|`` bound for ``K = n_tests`` two-sided tests at
    family-wise false-alarm rate ``α``."""
    if n_tests < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_tests ≥ 1 and 0 < alpha < 1; got {n_tests}, {alpha}")
    return NormalDist().inv_cdf(1 - alpha / (2 * n_tests))


def z_scores(
    estimate: torch.Tensor,
    exact: torch.Tensor,
    se: torch.Tensor,
    zero_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(estimate − exact)/√(se² + (ROUND_RTOL·|exact|)²)``.

    Where that is 0: 0 if the two values agree within ``ZERO_ATOL·(1 + |exact|)``, else
    ``inf``. With ``zero_scale`` (for variances: the squared mean of the estimator), an
    exact value of 0 is tested as an exact zero instead: 0 if
    ``|estimate| ≤ ZERO_RTOL·zero_scale``, else ``inf`` — a z-score against a standard error
    made of rounding would be meaningless.
    """
    estimate, exact, se = (t.detach().to(torch.float64) for t in (estimate, exact, se))
    diff = estimate - exact
    se = (se**2 + (ROUND_RTOL * exact.abs()) ** 2).sqrt()
    z = diff / torch.where(se > 0, se, torch.ones_like(se))
    scale = ZERO_ATOL * (1 + exact.abs())
    degenerate = torch.where(diff.abs() <= scale, torch.zeros_like(z), torch.full_like(z, math.inf))
    z = torch.where(se > 0, z, degenerate)
    if zero_scale is not None:
        zero_scale = zero_scale.detach().to(torch.float64).abs()
        at_zero = torch.where(
            estimate.abs() <= ZERO_RTOL * zero_scale,
            torch.zeros_like(z),
            torch.full_like(z, math.inf),
        )
        z = torch.where(exact == 0, at_zero, z)
    return z


@dataclass
class ZTest:
    """The outcome of a family of z-tests."""

    n_tests: int
    alpha: float
    threshold: float
    max_abs_z: float
    frac_above_2: float
    frac_above_3: float

    @property
    def passed(self) -> bool:
        return self.max_abs_z <= self.threshold

    def describe(self) -> str:
        return (
            f"max|z|={self.max_abs_z:.2f} ≤ {self.threshold:.2f} over {self.n_tests} tests "
            f"(family-wise false-alarm rate {self.alpha:g}); |z|>2: {100 * self.frac_above_2:.1f}% "
            f"(≈4.6% expected), |z|>3: {100 * self.frac_above_3:.2f}% (≈0.27% expected)"
        )


def z_test(z: torch.Tensor, alpha: float) -> ZTest:
    """Bonferroni test of all ``z`` at family-wise false-alarm rate ``alpha``."""
    z = z.reshape(-1).abs()
    n = int(z.numel())
    if n == 0:
        raise ValueError("z_test needs at least one z-score")
    return ZTest(
        n_tests=n,
        alpha=alpha,
        threshold=bonferroni_threshold(n, alpha),
        max_abs_z=float(z.max()),
        frac_above_2=float((z > 2).to(torch.float64).mean()),
        frac_above_3=float((z > 3).to(torch.float64).mean()),
    )


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}"


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f}%"


# ---------------------------------------------------------------------------------- exact
class _ExactView:
    """Uniform access to an exact result: FisherVariances, ExactMoments or a plain dict."""

    def __init__(self, exact):
        if isinstance(exact, Mapping) and all(
            k in exact for k in ("mean1", "var1", "mean2", "var2")
        ):
            self.kind = "exact_moments"
            self.per_sample = True
            self.means = {e: exact[ESTIMATOR_KEYS[e][0]] for e in ESTIMATORS}
            self.vars = {e: exact[ESTIMATOR_KEYS[e][1]] for e in ESTIMATORS}
            c4_1 = getattr(exact, "central4_1", None)
            c4_2 = getattr(exact, "central4_2", None)
            self.central4 = (
                {"squared_score": c4_1, "neg_hessian": c4_2}
                if c4_1 is not None and c4_2 is not None
                else None
            )
            self.indices = dict(getattr(exact, "indices", {}) or {})
            first = next(iter(self.means["squared_score"].values()))
        elif all(hasattr(exact, a) for a in ("fisher", "var1", "var2", "per_sample")):
            self.kind = "fisher_variances"
            self.per_sample = bool(exact.per_sample)
            self.means = {e: exact.fisher for e in ESTIMATORS}
            self.vars = {"squared_score": exact.var1, "neg_hessian": exact.var2}
            self.central4 = None
            self.indices = {}
            first = next(iter(exact.fisher.values()))
        else:
            raise ShapeError(
                "exact must be a fishsym.fisher_variances result (FisherVariances) or an "
                f"exact_moments result (keys mean1, var1, mean2, var2); got {type(exact).__name__}"
            )
        self.dtype = first.dtype

    def take(self, table: dict, est: str, name: str, sel: ParamSelection, n_inputs: int) -> Tensor:
        """Exact values of the MC-selected entries: ``[n, k]`` (per sample) or ``[k]``."""
        if table is None or name not in table[est]:
            raise ShapeError(
                f"compare: the exact result has no entry for parameter {name!r} (it covers "
                f"{list(table[est]) if table else []})"
            )
        t = table[est][name].to(torch.float64)
        if self.per_sample:
            if t.shape[0] != n_inputs:
                raise ShapeError(
                    f"compare: the exact result has {t.shape[0]} inputs but the Monte Carlo "
                    f"estimate has {n_inputs}; use the same inputs for both"
                )
            flat = t.reshape(n_inputs, -1)
        else:
            flat = t.reshape(1, -1)
        want = sel.flat_indices(name)
        have = self.indices.get(name)
        if have is None:
            if int(want.max()) >= flat.shape[1]:
                raise ShapeError(
                    f"compare: parameter {name!r} has {flat.shape[1]} exact entries; "
                    f"the Monte Carlo estimate selects index {int(want.max())}"
                )
            out = flat[:, want]
        else:
            pos = {int(i): j for j, i in enumerate(have.tolist())}
            missing = [int(i) for i in want.tolist() if int(i) not in pos]
            if missing:
                raise ShapeError(
                    f"compare: the exact result for {name!r} lacks flat indices {missing[:5]} "
                    f"that the Monte Carlo estimate selects; compute both on the same entries"
                )
            out = flat[:, torch.tensor([pos[int(i)] for i in want.tolist()], dtype=torch.long)]
        return out if self.per_sample else out[0]


# ---------------------------------------------------------------------------------- compare
def compare(mc: MonteCarloEstimate, exact, false_alarm: float = 0.01) -> ComparisonReport:
    """Compare Monte Carlo estimates with exact means and variances (see module docstring).

    Parameters
    ----------
    mc:
        A :func:`fishsym.montecarlo.estimate` result.
    exact:
        ``fishsym.fisher_variances(...)`` (``per_sample=True`` compares per input;
        ``per_sample=False`` compares input averages) or ``exact_moments(...)`` (exact
        standard errors for the variance).
    false_alarm:
        Probability that a correct implementation fails the report (Bonferroni over all
        z-scores, normal approximation), in ``(0, 1)``.

    Returns
    -------
    ComparisonReport
        ``.passed``, ``.groups`` (per layer and estimator), ``.entries`` (z-scores),
        ``format()``, ``plot()``.
    """
    if not isinstance(mc, MonteCarloEstimate):
        raise ShapeError(
            f"mc must be a fishsym.montecarlo.estimate result; got {type(mc).__name__}"
        )
    if not (isinstance(false_alarm, (int, float)) and 0 < false_alarm < 1):
        raise ShapeError(f"false_alarm must be a probability in (0, 1); got {false_alarm!r}")
    view = _ExactView(exact)
    N, R = mc.n_labels, mc.replicates
    # the coarser of the two dtypes limits how small a variance can be told from zero
    eps = max(torch.finfo(mc.dtype).eps, torch.finfo(view.dtype).eps)
    entries: dict[tuple[str, str], EntryResult] = {}
    for est in mc.estimators:
        sel = mc.selection[est]
        se_var_emp = mc.se_var(est)
        ess_emp = mc.ess(est)
        for name in sel.names:
            I = view.take(view.means, est, name, sel, mc.n_inputs)
            V1 = view.take(view.vars, est, name, sel, mc.n_inputs)
            c4 = view.take(view.central4, est, name, sel, mc.n_inputs) if view.central4 else None
            m = mc.mean[est][name].reshape(mc.n_inputs, -1)
            s2 = mc.var[est][name].reshape(mc.n_inputs, -1)
            m4 = mc.central4[est][name].reshape(mc.n_inputs, -1)
            se_emp = se_var_emp[name].reshape(mc.n_inputs, -1)
            ess = ess_emp[name].reshape(mc.n_inputs, -1)
            V = V1 / N
            c = (R - 3) / (R - 1)
            tiny = torch.finfo(torch.float64).tiny
            if view.per_sample:
                mean_se = (V / R).sqrt()
                mc_mean, mc_var = m, s2
                if c4 is not None:
                    mu4 = (c4 - 3 * V1**2) / N**3 + 3 * V1**2 / N**2
                    kurt = mu4 / (V**2).clamp(min=tiny)
                else:
                    kurt = m4 / (s2**2).clamp(min=tiny)
                rel_var = (kurt - c).clamp(min=0) / R
                eff = torch.where(kurt > 0, R / kurt.clamp(min=tiny), torch.zeros_like(kurt))
                if c4 is None:
                    eff = ess
                spread = s2.sqrt()
            else:
                n = mc.n_inputs
                mean_se = (V / (R * n)).sqrt()
                mc_mean, mc_var = m.mean(0), s2.mean(0)
                rel_var = (se_emp**2).sum(0) / n**2 / (V**2).clamp(min=tiny)
                eff = ess.sum(0)
                spread = s2.sqrt().max(0).values
            # theory predicts zero variance, to the resolution of the Monte Carlo dtype
            zero = V1.sqrt() <= ZERO_ULPS * eps * I.abs()
            zero_tol = (
                ZERO_ULPS * eps * (mc_mean.abs() if view.per_sample else m.abs().max(0).values)
            )
            zero_ok = spread <= zero_tol
            # below the round-off of its own tensor (an exact zero evaluated as the
            # cancellation of non-zero terms, e.g. a key bias under softmax): neither a
            # z-score nor the exact-zero test can judge it; it counts as unresolved
            sd = V1.sqrt()
            negligible = sd <= ZERO_ULPS * eps * sd.amax(-1, keepdim=True)
            resolved = ~zero & ~negligible & (eff >= MIN_ESS) & (rel_var > 0) & (mean_se > 0)
            nan = torch.full_like(mc_mean, math.nan)
            one = torch.ones_like(mean_se)
            z_mean = torch.where(resolved, (mc_mean - I) / mean_se.where(resolved, one), nan)
            z_var = torch.where(
                resolved,
                _wilson_hilferty(mc_var, V.where(resolved, one), rel_var.where(resolved, one)),
                nan,
            )
            shape = mc.mean[est][name].shape if view.per_sample else mc.mean[est][name].shape[1:]
            entries[(est, name)] = EntryResult(
                est,
                name,
                *(
                    t.reshape(shape)
                    for t in (I, V, mc_mean, mc_var, z_mean, z_var, zero, zero_ok, resolved)
                ),
            )
    n_tests = 2 * sum(int(e.resolved.sum()) for e in entries.values())
    threshold = bonferroni_threshold(max(n_tests, 1), false_alarm)
    groups = _aggregate(entries, mc, threshold, n_tests)
    return ComparisonReport(
        false_alarm=float(false_alarm),
        threshold=threshold,
        n_tests=n_tests,
        se_method="exact (fourth moments from exact_moments)"
        if view.central4
        else "empirical (kurtosis of the replicates)",
        per_sample=view.per_sample,
        n_labels=N,
        replicates=R,
        groups=groups,
        entries=entries,
    )


def _wilson_hilferty(s2: Tensor, V: Tensor, rel_var: Tensor) -> Tensor:
    """z-score of a sample variance ``s²`` against ``V`` with ``Var(s²) = rel_var · V²``.

    By Satterthwaite ``s² ≈ V·χ²_ν/ν`` with ``ν = 2/rel_var``, and by Wilson–Hilferty
    ``(χ²_ν/ν)^{1/3}`` is close to normal with mean ``1 − 2/(9ν)`` and variance ``2/(9ν)``;
    with ``q = rel_var/9``: ``z = ((s²/V)^{1/3} − 1 + q)/√q``. The cube root removes the
    right skew of ``s²`` that a plain ``(s² − V)/SE`` keeps.
    """
    q = rel_var / 9
    return ((s2.clamp(min=0) / V) ** (1 / 3) - 1 + q) / q.sqrt()


def _aggregate(entries, mc, threshold: float, n_tests: int) -> list[GroupResult]:
    order: dict[tuple[str, str], list[EntryResult]] = {}
    for (est, name), e in entries.items():
        order.setdefault((parameter_group(name), est), []).append(e)
    out = []
    for (group, est), members in order.items():
        zm = torch.cat([e.z_mean.flatten() for e in members])
        zv = torch.cat([e.z_var.flatten() for e in members])
        zero = torch.cat([e.zero.flatten() for e in members])
        zero_ok = torch.cat([e.zero_ok.flatten() for e in members])
        resolved = torch.cat([e.resolved.flatten() for e in members])
        z = torch.cat([zm[resolved], zv[resolved]]).abs()
        n_values = zm.numel()
        n_tested = int(resolved.sum())
        n_zero = int(zero.sum())
        violations = int((zero & ~zero_ok).sum())
        max_m = float(zm[resolved].abs().max()) if n_tested else math.nan
        max_v = float(zv[resolved].abs().max()) if n_tested else math.nan
        frac = {k: float((z > k).double().mean()) if n_tested else math.nan for k in (2, 3)}
        zmax = float(z.max()) if n_tested else 0.0
        p_value = min(1.0, 2 * max(n_tests, 1) * (1 - NormalDist().cdf(zmax))) if n_tested else 1.0
        if violations or (n_tested and zmax > threshold):
            status = "FAIL"
        elif n_tested == 0 and n_zero == 0:
            status = "inconclusive"
        else:
            status = "ok"
        out.append(
            GroupResult(
                group,
                est,
                n_values,
                n_tested,
                n_zero,
                n_values - n_tested - n_zero,
                violations,
                max_m,
                max_v,
                frac,
                p_value,
                status,
            )
        )
    return out


__all__ = [
    "compare",
    "ComparisonReport",
    "GroupResult",
    "EntryResult",
    "MIN_ESS",
    "ZERO_ULPS",
    "ROUND_RTOL",
    "ZERO_ATOL",
    "ZERO_RTOL",
    "ZTest",
    "bonferroni_threshold",
    "z_scores",
    "z_test",
]
