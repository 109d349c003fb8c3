"""Univariate Gaussian with unknown mean and variance (learned variance).

``h = (μ/σ², −1/(2σ²))`` with ``h₂ < 0``, ``t(y) = (y, y²)``,
``F(h) = −h₁²/(4h₂) − ½·log(−2h₂)``, ``log k = −½·log(2π)``.
"""

import sympy as sp

from fishsym.symbolic.domain import NEGATIVE, REALS, natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import RealLine


@register("gaussian_meanvar")
def gaussian_meanvar():
    """Univariate Gaussian, unknown mean and variance: t = (y, y²), h₂ < 0."""
    h1, h2 = natural_symbol("h1", REALS), natural_symbol("h2", NEGATIVE)
    y = sp.Symbol("y", real=True)
    F = -(h1**2) / (4 * h2) - sp.log(-2 * h2) / 2
    return ExponentialFamily(
        "gaussian_meanvar", (h1, h2), y, (y, y**2), F, -sp.log(2 * sp.pi) / 2, RealLine(),
        domain={h1: REALS, h2: NEGATIVE},
        description="h1 = mu/sigma^2, h2 = -1/(2 sigma^2)",
    )
