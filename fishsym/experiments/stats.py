"""z-score tests with a stated false-alarm rate.

A Monte Carlo estimate ``m̂`` of a quantity with exact value ``μ`` and standard error
``se`` gives ``z = (m̂ − μ)/se``, approximately standard normal when the exact value is
right. Many coordinates are tested at once, so the threshold is Bonferroni's:
``|z| ≤ Φ⁻¹(1 − α/(2K))`` for all ``K`` tests holds with probability at least ``1 − α`` for a
correct implementation (a union bound: valid however the tests are correlated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch

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


__all__ = [
    "ZERO_ATOL",
    "ZERO_RTOL",
    "ROUND_RTOL",
    "bonferroni_threshold",
    "z_scores",
    "ZTest",
    "z_test",
]
