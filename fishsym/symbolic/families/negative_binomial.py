"""Negative binomial with known ``r`` (failures before the ``r``-th success).

``p(y) = Γ(y+r)/(Γ(r)·y!)·(1−p)^y·p^r``; ``t = y``, ``h = log(1 − p) < 0``,
``F(h) = −r·log(1 − eʰ)``, ``log k(y) = log Γ(y+r) − log Γ(r) − log y!``.
"""

import sympy as sp

from fishsym.symbolic.domain import NEGATIVE, natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import NonNegativeIntegers


@register("negative_binomial")
def negative_binomial(r=2):
    """Negative binomial with known r > 0: t = y, h = log(1 − p) < 0."""
    r = sp.nsimplify(r)
    if not (r.is_real and r.is_positive):
        raise ValueError(f"negative_binomial: r must be a positive number; got {r!r}")
    h, y = natural_symbol("h", NEGATIVE), sp.Symbol("y", integer=True, nonnegative=True)
    logk = sp.loggamma(y + r) - sp.loggamma(r) - sp.log(sp.factorial(y))
    return ExponentialFamily(
        "negative_binomial", (h,), y, (y,), -r * sp.log(1 - sp.exp(h)), logk,
        NonNegativeIntegers(), domain={h: NEGATIVE}, sizes={"r": r},
        description="h = log(1-p), r known",
    )
