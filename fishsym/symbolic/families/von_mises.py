"""Von Mises on the circle with learned mean direction and concentration.

``t(y) = (cos y, sin y)``, ``h = (κ cos μ, κ sin μ) ∈ R²`` (``κ = ‖h‖ ≥ 0``, the
concentration; ``h = 0`` is the uniform distribution on the circle),
``F(h) = log(2π·I₀(‖h‖))`` with ``I₀`` the modified Bessel function of the first kind,
``k = 1`` on one period ``[−π, π)``.
"""

import sympy as sp

from fishsym.symbolic.domain import REALS, natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import Circle


@register("von_mises")
def von_mises():
    """Von Mises on the circle: t = (cos y, sin y), h = (κ cos μ, κ sin μ) ∈ R²."""
    h1, h2 = natural_symbol("h1", REALS), natural_symbol("h2", REALS)
    y = sp.Symbol("y", real=True)
    F = sp.log(2 * sp.pi * sp.besseli(0, sp.sqrt(h1**2 + h2**2)))
    return ExponentialFamily(
        "von_mises", (h1, h2), y, (sp.cos(y), sp.sin(y)), F, sp.Integer(0), Circle(),
        domain={h1: REALS, h2: REALS},
        description="h1 = kappa cos(mu), h2 = kappa sin(mu)",
    )
