"""Binomial with ``n`` trials: ``t = y ∈ {0..n}``, ``h`` = logit, ``F = n·log(1 + eʰ)``."""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import FiniteSupport


@register("binomial")
def binomial(n=3):
    """Binomial(n), logit natural parameter: t = y ∈ {0..n}."""
    if int(n) != n or n < 1:
        raise ValueError(f"binomial: n must be a positive integer; got {n!r}")
    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    logk = sp.log(sp.binomial(n, y))
    return ExponentialFamily(
        "binomial", (h,), y, (y,), n * sp.log(1 + sp.exp(h)), logk,
        FiniteSupport.integer_range(0, n), sizes={"n": n}, description="h = logit(p)",
    )
