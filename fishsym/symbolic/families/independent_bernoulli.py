"""Independent Bernoulli labels (multi-label classification), ``d`` outputs.

``y ∈ {0,1}^d``, ``t = y``, ``F(h) = Σ_c log(1 + e^{h_c})``.
"""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import FiniteSupport


@register("independent_bernoulli", output_size="d")
def independent_bernoulli(d=2):
    """d independent Bernoulli labels (multi-label), logits as natural parameters."""
    if int(d) != d or d < 1:
        raise ValueError(f"independent_bernoulli: d must be a positive integer; got {d!r}")
    h = [natural_symbol(f"h{c + 1}") for c in range(d)]
    y = [sp.Symbol(f"y{c + 1}", integer=True, nonnegative=True) for c in range(d)]
    F = sum(sp.log(1 + sp.exp(hc)) for hc in h)
    return ExponentialFamily(
        "independent_bernoulli", h, y, y, F, sp.Integer(0), FiniteSupport.binary_vectors(d),
        sizes={"d": d}, description="multi-label: independent logits",
    )
