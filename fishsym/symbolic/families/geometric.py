"""Geometric (failures before the first success): ``p(y) = (1−p)^y·p``, ``y ∈ {0,1,…}``.

``t = y``, ``h = log(1 − p) < 0``, ``F(h) = −log(1 − eʰ)``.
"""

import sympy as sp

from fishsym.symbolic.domain import NEGATIVE, natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import NonNegativeIntegers


@register("geometric")
def geometric():
    """Geometric on {0,1,…}: t = y, h = log(1 − p) < 0."""
    h, y = natural_symbol("h", NEGATIVE), sp.Symbol("y", integer=True, nonnegative=True)
    return ExponentialFamily(
        "geometric", (h,), y, (y,), -sp.log(1 - sp.exp(h)), sp.Integer(0),
        NonNegativeIntegers(), domain={h: NEGATIVE}, description="h = log(1-p)",
    )
