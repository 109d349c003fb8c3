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


class NotConverged(NotComputable):
    """A route exists but did not reach the requested precision (e.g. a density that is
    not integrable, or one too sharply peaked for the quadrature)."""


def finite_points(support: Support) -> list[tuple] | None:
    """All observations of a finite support (a tuple per point), or None if infinite."""
    if isinstance(support, FiniteSupport):
        return list(support.points)
    if isinstance(support, ProductSupport) and support.finite:
        import itertools

        factor_points = [finite_points(f) for f in support.factors]
        return [sum(combo, ()) for combo in itertools.product(*factor_points)]
    return None


_finite_points = finite_points  # the name used before it was public


def exact_expectation(fam, f: sp.Expr, values: Mapping | None = None) -> sp.Expr:
    """``E[f(y)]`` as an exact sympy expression, for finite supports only.

    ``values`` (optional) substitutes natural parameters first.
    """
    points = finite_points(fam.support)
    if points is None:
        raise NotComputable(f"{fam.name}: exact expectation needs a finite support")
    dens = sp.exp(fam.log_density)
    total = sp.Integer(0)
    for pt in points:
        sub = dict(zip(fam.obs_symbols, pt, strict=True))
        total += (f * dens).subs(sub)
    if values is not None:
        total = total.subs(values)
    return total


def numeric_expectations(
    fam, fs: Sequence[sp.Expr], values: Mapping, dps: int = DPS
) -> list[mpmath.mpf]:
    """``[E[f(y)] for f in fs]`` at numeric natural parameters, with mpmath.

    Finite supports are summed, the non-negative integers by ``mpmath.nsum``, the real
    line / positive reals / unit interval by tanh–sinh quadrature (:func:`tanh_sinh`, which
    handles the integrable endpoint singularities of e.g. the beta density, and evaluates
    the density once per node for all ``fs``); products of two continuous coordinates by
    nested ``mpmath.quad`` (slow).
    """
    fam.check_natural_params(values)
    ys = fam.obs_symbols
    log_dens = fam.log_density.subs(values)
    with mpmath.workdps(dps):
        funcs = [sp.lambdify(ys, sp.sympify(f).subs(values), modules="mpmath") for f in fs]
        ldens = sp.lambdify(ys, log_dens, modules="mpmath")
        points = finite_points(fam.support)
        if points is not None:
            out = []
            for fn in funcs:
                acc = mpmath.mpf(0)
                for pt in points:
                    acc += fn(*pt) * mpmath.exp(ldens(*pt))
                out.append(+acc)
            return out
        intervals = _continuous_intervals(fam.support)
        if len(ys) > 1 and gaussian_type(fam):
            return gauss_hermite_expectations(fam, fs, values, dps)
        if isinstance(fam.support, NonNegativeIntegers):
            return [
                mpmath.nsum(lambda k, fn=fn: fn(k) * mpmath.exp(ldens(k)), [0, mpmath.inf])
                for fn in funcs
            ]
        if intervals is None or len(intervals) > 2:
            raise NotComputable(
                f"{fam.name}: no numeric expectation route for support {fam.support!r}"
            )
        if len(intervals) == 1:
            vector = sp.lambdify(ys, [sp.sympify(f).subs(values) for f in fs], modules="mpmath")

            def integrand(x):
                dens = mpmath.exp(ldens(x))
                return [v * dens for v in vector(x)]

            return tanh_sinh(integrand, *intervals[0], n_out=len(fs), dps=dps)
        return [
            mpmath.quad(lambda *y, fn=fn: fn(*y) * mpmath.exp(ldens(*y)), *intervals)
            for fn in funcs
        ]


def tanh_sinh(integrand, a, b, n_out: int, dps: int) -> list[mpmath.mpf]:
    """``∫_a^b g(x) dx`` for a vector-valued ``g`` (``n_out`` components), tanh–sinh.

    The rule of :func:`mpmath.quad`, with one evaluation of ``g`` per node shared by all
    components (the density is evaluated once, not once per moment). The step is halved
    until mpmath's own error estimate (quadratic convergence extrapolated from the last
    three levels) of every component is below ``10^−(dps−5)`` relative.

    Raises :class:`NotComputable` if that does not happen by mpmath's default degree + 3.
    """
    from mpmath.calculus.quadrature import TanhSinh

    with mpmath.workdps(dps + 10):
        rule = TanhSinh(mpmath.mp)
        prec = mpmath.mp.prec
        eps = mpmath.mpf(10) ** (-(dps - 5))
        a, b = mpmath.mpmathify(a), mpmath.mpmathify(b)
        levels: list[list] = []
        for degree in range(1, rule.guess_degree(prec) + 4):
            h = mpmath.ldexp(1, -degree)
            acc = [mpmath.mpf(0)] * n_out
            for x, w in rule.get_nodes(a, b, degree, prec):
                for i, v in enumerate(integrand(x)):
                    acc[i] += w * v
            prev = levels[-1] if levels else [mpmath.mpf(0)] * n_out
            levels.append([p / 2 + h * s for p, s in zip(prev, acc, strict=True)])
            if len(levels) >= 3 and all(
                rule.estimate_error([lv[i] for lv in levels], prec, eps)
                <= eps * max(1, abs(levels[-1][i]))
                for i in range(n_out)
            ):
                return [+v for v in levels[-1]]
    raise NotConverged(f"tanh–sinh quadrature on [{a}, {b}] did not converge to {dps - 5} digits")


def gaussian_type(fam) -> bool:
    """Real-line coordinates and a log-density polynomial of degree ≤ 2 in ``y``."""
    sup = fam.support
    factors = sup.factors if isinstance(sup, ProductSupport) else (sup,)
    if not all(isinstance(f, RealLine) for f in factors):
        return False
    ld = sp.expand(fam.log_density)
    if not ld.is_polynomial(*fam.obs_symbols):
        return False
    return sp.Poly(ld, *fam.obs_symbols).total_degree() <= 2


def _hermite_rule(n: int) -> tuple[list, list]:
    """Gauss–Hermite nodes and weights for ``∫ g(z) e^{−z²} dz`` (Golub–Welsch)."""
    jacobi = mpmath.zeros(n, n)
    for k in range(1, n):
        jacobi[k - 1, k] = jacobi[k, k - 1] = mpmath.sqrt(mpmath.mpf(k) / 2)
    nodes, vectors = mpmath.eigsy(jacobi)
    weights = [mpmath.sqrt(mpmath.pi) * vectors[0, i] ** 2 for i in range(n)]
    return [nodes[i] for i in range(n)], weights


def gauss_hermite_expectations(fam, fs: Sequence[sp.Expr], values: Mapping, dps: int = DPS):
    """``[E[f(y)]]`` for a density ``exp(c + bᵀy − ½yᵀAy)`` on ``R^d`` and polynomial ``f``.

    Read ``A``, ``b``, ``c`` off the log-density (never off ``F``'s derivatives); the
    density is ``mass · N(A⁻¹b, A⁻¹)`` with ``mass = e^{c + ½bᵀA⁻¹b}(2π)^{d/2}/√det A``, and
    the tensor Gauss–Hermite rule with ``n`` nodes per axis integrates polynomials of
    degree ≤ 2n − 1 in each coordinate exactly, so ``E[f] = mass · Σ_k w_k f(y_k)`` is
    exact up to the working precision (THEORY §6).
    """
    import itertools

    ys = fam.obs_symbols
    d = len(ys)
    fs = [sp.sympify(f).subs(values) for f in fs]
    if not all(f.is_polynomial(*ys) for f in fs):
        raise NotComputable(f"{fam.name}: Gauss–Hermite needs polynomial integrands")
    poly = sp.Poly(sp.expand(fam.log_density.subs(values)), *ys)
    with mpmath.workdps(dps + 10):
        A, b = mpmath.zeros(d, d), mpmath.zeros(d, 1)
        c = mpmath.mpf(0)
        for powers, coeff in poly.terms():
            coeff = mpmath.mpf(sp.N(coeff, dps + 10))
            idx = [i for i, p in enumerate(powers) for _ in range(p)]
            if not idx:
                c = coeff
            elif len(idx) == 1:
                b[idx[0]] = coeff
            elif idx[0] == idx[1]:
                A[idx[0], idx[0]] = -2 * coeff
            else:
                A[idx[0], idx[1]] = A[idx[1], idx[0]] = -coeff
        if min(mpmath.eigsy(A)[0]) <= 0:
            raise NotConverged(
                f"{fam.name}: the log-density's quadratic part is not negative definite at "
                f"{values}: the density is not integrable"
            )
        cov = A**-1
        mean = cov * b
        mass = mpmath.exp(c + (b.T * mean)[0] / 2) * (2 * mpmath.pi) ** (mpmath.mpf(d) / 2)
        mass /= mpmath.sqrt(mpmath.det(A))
        chol = mpmath.cholesky(cov)
        degree = max(sp.Poly(f, *ys).total_degree() for f in fs)
        nodes, weights = _hermite_rule(degree // 2 + 1)
        vector = sp.lambdify(ys, fs, modules="mpmath")
        acc = [mpmath.mpf(0)] * len(fs)
        scale = mpmath.sqrt(2)
        norm = mpmath.pi ** (mpmath.mpf(d) / 2)
        for combo in itertools.product(range(len(nodes)), repeat=d):
            z = mpmath.matrix([nodes[k] * scale for k in combo])
            point = mean + chol * z
            w = mpmath.fprod(weights[k] for k in combo) / norm
            for i, v in enumerate(vector(*point)):
                acc[i] += w * v
        return [+(mass * v) for v in acc]


def numeric_route(fam) -> str:
    """Name of the route :func:`numeric_expectations` takes for this family's support."""
    if finite_points(fam.support) is not None:
        return "sum"
    if len(fam.obs_symbols) > 1 and gaussian_type(fam):
        return "Gauss-Hermite"
    if isinstance(fam.support, NonNegativeIntegers):
        return "nsum"
    intervals = _continuous_intervals(fam.support)
    if intervals is None or len(intervals) > 2:
        return "none"
    return "tanh-sinh" if len(intervals) == 1 else "nested quad"


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
    """``|Σ/∫ p(y|h) − 1|`` at ``values``; ``None`` when no route can compute it, ``inf``
    when the route did not converge (never silently accepted)."""
    try:
        (mass,) = numeric_expectations(fam, [sp.Integer(1)], values, dps=30)
    except NotConverged:
        return float("inf")
    except NotComputable:
        return None
    return float(abs(mass - 1))
