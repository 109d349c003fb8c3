"""Bernoulli: ``y ∈ {0, 1}``, ``t = y``, ``h`` = logit, ``F = log(1 + eʰ)``."""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import FiniteSupport


@register("bernoulli")
def bernoulli():
    """Bernoulli with logit natural parameter: t = y ∈ {0, 1}."""
    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    return ExponentialFamily(
        "bernoulli", (h,), y, (y,), sp.log(1 + sp.exp(h)), sp.Integer(0),
        FiniteSupport.integer_range(0, 1), description="h = logit(p)",
    )
