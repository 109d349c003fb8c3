"""Categorical with ``C`` classes, minimal form: ``C − 1`` natural parameters.

The last class is the reference: ``h_c = log(p_c / p_C)``, ``t = (y_1, …, y_{C−1})`` (the
first ``C − 1`` coordinates of the one-hot vector), ``F(h) = log(1 + Σ_{c<C} exp h_c)``.
Its Fisher information is positive definite.
"""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import FiniteSupport


@register("categorical_minimal", output_size="C_minus_1")
def categorical_minimal(C=3):
    """Categorical, C classes, minimal form: C−1 logits against the last class."""
    if int(C) != C or C < 2:
        raise ValueError(f"categorical_minimal: C must be an integer ≥ 2; got {C!r}")
    h = [natural_symbol(f"h{c + 1}") for c in range(C - 1)]
    y = [sp.Symbol(f"y{c + 1}", integer=True, nonnegative=True) for c in range(C)]
    F = sp.log(sp.Add(1, *(sp.exp(hc) for hc in h)))
    return ExponentialFamily(
        "categorical_minimal", h, y, y[:-1], F, sp.Integer(0), FiniteSupport.one_hot(C),
        sizes={"C": C}, description="C-1 logits relative to the last class",
    )
