"""Direct expectations over a family's density, independent of the cumulant route.

``E_h[f(y)] = Σ_y / ∫ f(y) k(y) exp(t(y)ᵀh − F(h)) dy`` evaluated at given natural
parameters: exactly (finite supports, symbolic sums) or numerically with mpmath at high
precision (series, integrals). These are the oracles of :mod:`fishsym.symbolic.verify`;
they never look at ``∇F``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mpmath
import sympy as sp

from fishsym.symbolic.support import (
    FiniteSupport,
    NonNegativeIntegers,
    PositiveReals,
    ProductSupport,
    RealLine,
    Support,
    UnitInterval,
)

#: working precision (decimal digits) of numeric expectations; results are compared
#: at NUMERIC_TOL, far above the quadrature error at this precision
DPS = 40
NUMERIC_TOL = 1e-15


class NotComputable(Exception):
    """The expectation cannot be taken by the available routes for this support."""


def _finite_points(support: Support) -> list[tuple] | None:
    if isinstance(support, FiniteSupport):
        return list(support.points)
    if isinstance(support, ProductSupport) and support.finite:
        import itertools

        factor_points = [_finite_points(f) for f in support.factors]
        return [sum(combo, ()) for combo in itertools.product(*factor_points)]
    return None


def exact_expectation(fam, f: sp.Expr, values: Mapping | None = None) -> sp.Expr:
    """``E[f(y)]`` as an exact sympy expression, for finite supports only.

    ``values`` (optional) substitutes natural parameters first.
    """
    points = _finite_points(fam.support)
    if points is None:
        raise NotComputable(f"{fam.name}: exact expectation needs a finite support")
    dens = sp.exp(fam.log_density)
    total = sp.Integer(0)
    for pt in points:
        sub = dict(zip(fam.obs_symbols, pt))
        total += (f * dens).subs(sub)
    if values is not None:
        total = total.subs(values)
    return total


def numeric_expectations(
    fam, fs: Sequence[sp.Expr], values: Mapping, dps: int = DPS
) -> list[mpmath.mpf]:
    """``[E[f(y)] for f in fs]`` at numeric natural parameters, with mpmath.

    Finite supports are summed, the non-negative integers by ``mpmath.nsum``, the real
    line / positive reals / unit interval by ``mpmath.quad`` (tanh–sinh, which handles
    the integrable endpoint singularities of e.g. the beta density); products of up to two
    continuous coordinates by nested quadrature.
    """
    fam.check_natural_params(values)
    ys = fam.obs_symbols
    log_dens = fam.log_density.subs(values)
    with mpmath.workdps(dps):
        funcs = [sp.lambdify(ys, sp.sympify(f).subs(values), modules="mpmath") for f in fs]
        ldens = sp.lambdify(ys, log_dens, modules="mpmath")
        points = _finite_points(fam.support)
        if points is not None:
            out = []
            for fn in funcs:
                acc = mpmath.mpf(0)
                for pt in points:
                    acc += fn(*pt) * mpmath.exp(ldens(*pt))
                out.append(+acc)
            return out
        intervals = _continuous_intervals(fam.support)
        if isinstance(fam.support, NonNegativeIntegers):
            return [
                mpmath.nsum(lambda k, fn=fn: fn(k) * mpmath.exp(ldens(k)), [0, mpmath.inf])
                for fn in funcs
            ]
        if intervals is None or len(intervals) > 2:
            raise NotComputable(
                f"{fam.name}: no numeric expectation route for support {fam.support!r}"
            )
        return [
            mpmath.quad(lambda *y, fn=fn: fn(*y) * mpmath.exp(ldens(*y)), *intervals)
            for fn in funcs
        ]


def _continuous_intervals(support: Support):
    def one(s):
        if isinstance(s, RealLine):
            return [-mpmath.inf, mpmath.inf]
        if isinstance(s, PositiveReals):
            return [0, mpmath.inf]
        if isinstance(s, UnitInterval):
            return [0, 1]
        return None

    if isinstance(support, ProductSupport):
        parts = [one(f) for f in support.factors]
        return None if any(p is None for p in parts) else parts
    part = one(support)
    return None if part is None else [part]


def normalisation_error(fam, values: Mapping) -> float | None:
    """``|Σ/∫ p(y|h) − 1|`` at ``values``; ``None`` when no route can compute it."""
    try:
        (mass,) = numeric_expectations(fam, [sp.Integer(1)], values, dps=30)
    except NotComputable:
        return None
    return float(abs(mass - 1))
