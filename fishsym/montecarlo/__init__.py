"""Monte Carlo cross-checks: seeded sampling of labels, replicated estimators, statistics.

(``diagonal_fisher``, the sampled Fisher as a product, lives in :mod:`fishsym.sampling`;
it is re-exported here for old imports.)

``estimate(model, inputs, family, n_labels, replicates, generator)`` forms ``Î₁`` and
``Î₂`` the way a practitioner would (labels drawn from the model, autograd on the
sampled log-likelihoods), replicated so that their variances can be measured;
``compare(mc, exact, false_alarm)`` holds them to the exact values with z-scores, a
Bonferroni test per layer at a false-alarm rate the user sets, and exact-zero checks.
"""

from fishsym.montecarlo.compare import (
    MIN_ESS,
    ZERO_ULPS,
    ComparisonReport,
    EntryResult,
    GroupResult,
    compare,
)
from fishsym.montecarlo.estimate import ESTIMATORS, MonteCarloEstimate, draw_labels, estimate
from fishsym.montecarlo.plots import plot_convergence, plot_variances
from fishsym.sampling import DiagonalFisher, diagonal_fisher

__all__ = [
    "estimate",
    "diagonal_fisher",
    "DiagonalFisher",
    "compare",
    "MonteCarloEstimate",
    "ComparisonReport",
    "GroupResult",
    "EntryResult",
    "ESTIMATORS",
    "MIN_ESS",
    "ZERO_ULPS",
    "draw_labels",
    "plot_convergence",
    "plot_variances",
]
