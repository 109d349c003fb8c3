"""Beta: ``t = (log y, log(1 − y))``, ``h = (α − 1, β − 1)``, both ``> −1``.

``F(h) = log Γ(h₁+1) + log Γ(h₂+1) − log Γ(h₁+h₂+2)``, ``k = 1`` on ``(0, 1)``.
"""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import UnitInterval


@register("beta")
def beta():
    """Beta: t = (log y, log(1−y)), h = (alpha − 1, beta − 1)."""
    dom = sp.Interval.open(-1, sp.oo)
    h1, h2 = natural_symbol("h1", dom), natural_symbol("h2", dom)
    y = sp.Symbol("y", positive=True)
    F = sp.loggamma(h1 + 1) + sp.loggamma(h2 + 1) - sp.loggamma(h1 + h2 + 2)
    return ExponentialFamily(
        "beta", (h1, h2), y, (sp.log(y), sp.log(1 - y)), F, sp.Integer(0), UnitInterval(),
        domain={h1: dom, h2: dom}, description="h1 = alpha-1, h2 = beta-1",
    )
