"""Poisson: ``t = y ∈ {0,1,…}``, ``h = log λ``, ``F = eʰ``, ``log k = −log y!``."""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import NonNegativeIntegers


@register("poisson")
def poisson():
    """Poisson with log-rate natural parameter: t = y."""
    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    return ExponentialFamily(
        "poisson", (h,), y, (y,), sp.exp(h), -sp.log(sp.factorial(y)), NonNegativeIntegers(),
        description="h = log(rate)",
    )
