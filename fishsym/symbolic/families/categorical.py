"""Categorical with ``C`` classes, over-complete logit form (what networks use).

``y`` is the one-hot vector ``e_y``, ``t = y``, ``h`` = logits,
``F(h) = log Σ_c exp h_c``; ``η = softmax(h)``, ``I = diag(p) − ppᵀ`` (singular: the
all-ones vector is in its kernel). docs/theory.md §4.
"""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import FiniteSupport


@register("categorical", output_size="C")
def categorical(C=3):
    """Categorical, C classes, over-complete logits: t = one-hot, F = logsumexp."""
    if int(C) != C or C < 2:
        raise ValueError(f"categorical: C must be an integer ≥ 2; got {C!r}")
    h = [natural_symbol(f"h{c + 1}") for c in range(C)]
    y = [sp.Symbol(f"y{c + 1}", integer=True, nonnegative=True) for c in range(C)]
    F = sp.log(sp.Add(*(sp.exp(hc) for hc in h)))
    return ExponentialFamily(
        "categorical", h, y, y, F, sp.Integer(0), FiniteSupport.one_hot(C),
        sizes={"C": C}, description="logits h (over-complete), one-hot t",
    )
