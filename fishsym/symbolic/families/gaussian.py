"""Gaussian with known isotropic covariance ``σ²·Id`` in ``d`` dimensions (regression).

``h = μ/σ²``, ``t(y) = y``, ``F(h) = σ²‖h‖²/2``, ``log k(y) = −‖y‖²/(2σ²) − (d/2)·log(2πσ²)``.
With ``σ² = 1`` (the default) the natural parameter is the mean: ``I = Id``, ``κ_4 = 0``
and ``μ_4[v⁴] = 3‖v‖⁴`` (docs/theory.md §4).
"""

import sympy as sp

from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.families import register
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import real_space


@register("gaussian", output_size="d")
def gaussian(d=1, sigma2=1):
    """Gaussian, known isotropic covariance sigma2·Id, d outputs (t = y)."""
    if int(d) != d or d < 1:
        raise ValueError(f"gaussian: d must be a positive integer; got {d!r}")
    s2 = sp.nsimplify(sigma2)
    if not (s2.is_real and s2.is_positive):
        raise ValueError(f"gaussian: sigma2 must be a positive number; got {sigma2!r}")
    h = [natural_symbol(f"h{c + 1}") for c in range(d)] if d > 1 else [natural_symbol("h")]
    y = [sp.Symbol(f"y{c + 1}", real=True) for c in range(d)] if d > 1 else [sp.Symbol("y", real=True)]
    F = s2 * sum(hc**2 for hc in h) / 2
    logk = -sum(yc**2 for yc in y) / (2 * s2) - sp.Rational(d, 2) * sp.log(2 * sp.pi * s2)
    return ExponentialFamily(
        "gaussian", h, y if d > 1 else y[0], y, F, logk, real_space(d),
        sizes={"d": d, "sigma2": sigma2},
        description="Gaussian with known covariance sigma2*Id; h = mean/sigma2",
    )
