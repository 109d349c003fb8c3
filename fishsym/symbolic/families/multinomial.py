"""Multinomial with ``n`` trials over ``C`` classes (over-complete logits).

``y`` = count vector summing to ``n``, ``t = y``, ``F(h) = n·log Σ_c exp h_c``,
``log k(y) = log(n! / Π_c y_c!)``.
"""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import FiniteSupport


@register("multinomial", output_size="C")
def multinomial(n=2, C=3):
    """Multinomial(n) over C classes, over-complete logits: t = counts."""
    if int(n) != n or n < 1:
        raise ValueError(f"multinomial: n must be a positive integer; got {n!r}")
    if int(C) != C or C < 2:
        raise ValueError(f"multinomial: C must be an integer ≥ 2; got {C!r}")
    h = [natural_symbol(f"h{c + 1}") for c in range(C)]
    y = [sp.Symbol(f"y{c + 1}", integer=True, nonnegative=True) for c in range(C)]
    F = n * sp.log(sp.Add(*(sp.exp(hc) for hc in h)))
    logk = sp.log(sp.factorial(n)) - sum(sp.log(sp.factorial(yc)) for yc in y)
    return ExponentialFamily(
        "multinomial", h, y, y, F, logk, FiniteSupport.compositions(n, C),
        sizes={"n": n, "C": C}, description="counts over C classes, n trials",
    )
