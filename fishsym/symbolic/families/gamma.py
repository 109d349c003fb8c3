"""Gamma: ``t = (log y, y)``, ``h = (α − 1, −β)`` with ``h₁ > −1``, ``h₂ < 0``.

``F(h) = log Γ(h₁ + 1) − (h₁ + 1)·log(−h₂)``, ``k = 1`` on ``y > 0``.
"""

import sympy as sp

from fishsym.symbolic.domain import NEGATIVE, natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import PositiveReals


@register("gamma")
def gamma():
    """Gamma: t = (log y, y), h = (shape − 1, −rate)."""
    dom1 = sp.Interval.open(-1, sp.oo)
    h1, h2 = natural_symbol("h1", dom1), natural_symbol("h2", NEGATIVE)
    y = sp.Symbol("y", positive=True)
    F = sp.loggamma(h1 + 1) - (h1 + 1) * sp.log(-h2)
    return ExponentialFamily(
        "gamma", (h1, h2), y, (sp.log(y), y), F, sp.Integer(0), PositiveReals(),
        domain={h1: dom1, h2: NEGATIVE}, description="h1 = shape-1, h2 = -rate",
    )
