"""Exponential: ``t = y > 0``, ``h = −λ < 0``, ``F = −log(−h)``."""

import sympy as sp

from fishsym.symbolic.domain import NEGATIVE, natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import PositiveReals


@register("exponential")
def exponential():
    """Exponential with natural parameter h = −rate < 0: t = y."""
    h, y = natural_symbol("h", NEGATIVE), sp.Symbol("y", positive=True)
    return ExponentialFamily(
        "exponential", (h,), y, (y,), -sp.log(-h), sp.Integer(0), PositiveReals(),
        domain={h: NEGATIVE}, description="h = -rate",
    )
