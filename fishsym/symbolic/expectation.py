"""Direct expectations over a family's density, independent of the cumulant route.

``E_h[f(y)] = Σ_y / ∫ f(y) k(y) exp(t(y)ᵀh − F(h)) dy`` evaluated at given natural
parameters: exactly (finite supports, symbolic sums) or numerically with mpmath at high
precision (series, integrals). These are the oracles of :mod:`fishsym.symbolic.verify`;
they never look at ``∇F``.

:func:`normalisation_check` is the cheap check run when a family is constructed: it
picks, per support, a route whose cost stays small at the sizes networks use (a
vectorised float64 log-sum-exp over a finite support, the closed Gaussian integral for
densities quadratic in ``y``) and returns the error together with a tolerance derived
from that route's precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from fishsym.symbolic.support import (
    Circle,
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
    line / positive reals / unit interval / one period of the circle by tanh–sinh quadrature (:func:`tanh_sinh`, which
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
    return _real_line_only(fam.support) and quadratic_structure(fam) is not None


def _real_line_only(support: Support) -> bool:
    factors = support.factors if isinstance(support, ProductSupport) else (support,)
    return all(isinstance(f, RealLine) for f in factors)


def _quadratic_coefficients(expr: sp.Expr, ys: Sequence[sp.Symbol]) -> dict | None:
    """``expr`` as a polynomial of total degree ≤ 2 in ``ys``, or None if it is not one.

    Returns ``{(): c, (i,): b_i, (i, j): q_ij}`` (``i ≤ j`` index ``ys``) with
    ``expr = c + Σ_i b_i y_i + Σ_{i≤j} q_ij y_i y_j``; the coefficients are free of
    ``ys``. Reads the terms of ``expand(expr)`` one at a time, so the cost is linear in
    their number (``sympy.Poly`` in ``d`` generators is not, for large ``d``).
    """
    index = {y: i for i, y in enumerate(ys)}
    out: dict[tuple[int, ...], sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(sp.sympify(expr))):
        coeff, monomial = term.as_independent(*ys, as_Add=False)
        idx: list[int] = []
        for factor in sp.Mul.make_args(monomial):
            if factor == 1:
                continue
            base, power = factor.as_base_exp()
            if base not in index or not (power.is_Integer and power > 0):
                return None
            idx += [index[base]] * int(power)
        if len(idx) > 2:
            return None
        key = tuple(sorted(idx))
        out[key] = out.get(key, sp.Integer(0)) + coeff
    return out


def quadratic_structure(fam) -> tuple[list[dict], dict] | None:
    """``t_c(y)`` and ``log k(y)`` as polynomials of degree ≤ 2 in ``y``, or None.

    Returns ``(t_coefficients, log_base_coefficients)`` in the format of
    :func:`_quadratic_coefficients`. Then ``log p(y|h) = Σ_c h_c t_c(y) + log k(y) − F(h)``
    is quadratic in ``y`` for every ``h``: a Gaussian-type density (docs/theory.md §6).
    """
    ys = fam.obs_symbols
    t_coefficients = [_quadratic_coefficients(t, ys) for t in fam.suff_stat]
    log_base = _quadratic_coefficients(fam.log_base_measure, ys)
    if log_base is None or any(c is None for c in t_coefficients):
        return None
    return t_coefficients, log_base


def _log_density_coefficients(fam, values: Mapping, dps: int) -> dict[tuple[int, ...], object]:
    """Coefficients of the quadratic ``y ↦ log p(y|h)`` at ``values`` (mpmath numbers).

    Keys as in :func:`_quadratic_coefficients`; the constant includes ``−F(h)``, taken
    by ``evalf`` at ``dps + 10`` digits (never through derivatives of ``F``). The other
    coefficients are combined exactly (sympy) before rounding once.
    """
    structure = quadratic_structure(fam)
    if structure is None:
        raise NotComputable(f"{fam.name}: the log-density is not quadratic in y")
    t_coefficients, log_base = structure
    exact: dict[tuple[int, ...], sp.Expr] = dict(log_base)
    for h, coefficients in zip(fam.natural_params, t_coefficients, strict=True):
        hv = sp.sympify(values[h])
        for key, v in coefficients.items():
            exact[key] = exact.get(key, sp.Integer(0)) + hv * v
    exact[()] = exact.get((), sp.Integer(0)) - fam.log_partition.evalf(dps + 10, subs=values)
    with mpmath.workdps(dps + 10):
        return {key: _to_mpmath(v, dps + 10) for key, v in exact.items()}


def _to_mpmath(value, dps: int):
    value = sp.sympify(value)
    if value.is_Rational:
        return mpmath.mpf(value.p) / value.q
    num = sp.N(value, dps)
    if not num.is_real:
        raise NotConverged(f"coefficient {value} of the log-density is not real")
    return mpmath.mpf(num)


def _quadratic_form(coefficients: Mapping, d: int):
    """``(A, b, c)`` with ``log p(y|h) = c + bᵀy − ½ yᵀAy`` (dense mpmath matrices)."""
    A, b = mpmath.zeros(d, d), mpmath.zeros(d, 1)
    c = mpmath.mpf(0)
    for key, v in coefficients.items():
        if not key:
            c = v
        elif len(key) == 1:
            b[key[0]] = v
        elif key[0] == key[1]:
            A[key[0], key[0]] = -2 * v
        else:
            A[key[0], key[1]] = A[key[1], key[0]] = -v
    return A, b, c


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
    exact up to the working precision (docs/theory.md §6).
    """
    import itertools

    ys = fam.obs_symbols
    d = len(ys)
    fs = [sp.sympify(f).subs(values) for f in fs]
    if not all(f.is_polynomial(*ys) for f in fs):
        raise NotComputable(f"{fam.name}: Gauss–Hermite needs polynomial integrands")
    coefficients = _log_density_coefficients(fam, values, dps)
    with mpmath.workdps(dps + 10):
        A, b, c = _quadratic_form(coefficients, d)
        try:
            mpmath.cholesky(A)
        except ValueError:
            raise NotConverged(
                f"{fam.name}: the log-density's quadratic part is not negative definite at "
                f"{values}: the density is not integrable"
            ) from None
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
        if isinstance(s, Circle):
            return [-mpmath.pi, mpmath.pi]  # one period of a 2π-periodic density
        return None

    if isinstance(support, ProductSupport):
        parts = [one(f) for f in support.factors]
        return None if any(p is None for p in parts) else parts
    part = one(support)
    return None if part is None else [part]


# ================================================================== construction-time check
#: unit roundoff of float64, u = 2⁻⁵³
FLOAT64_UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2
#: relative error, in units of u, of one float64 value of t_c(y) or log k(y): exact for
#: the integer statistics of the built-in families, ≤ 1 for a correctly rounded
#: elementary function, a few for math.lgamma / math.gamma; 8 covers all of them
FLOAT_EVALUATION_ULPS = 8
#: factor on the first-order rounding bound of the float64 log-sum-exp (see
#: :func:`_finite_float64_check`); covers the second-order terms and the few additive
#: roundings (the shift by the maximum, exp, log, the final subtraction) folded into it
FLOAT_BOUND_SAFETY = 4
#: points per block of the vectorised evaluation (bounds memory at ~2²² floats a block)
FLOAT_BLOCK_ENTRIES = 2**22
#: tolerance of the mpmath routes of the construction check (series, tanh–sinh and
#: nested quadrature at NORMALISATION_DPS digits stop at an estimated 1e-25, the Gaussian
#: integral is exact up to rounding at that precision): 1e-12 is far above their error
#: and far below the error of any wrong term of F
MPMATH_NORMALISATION_TOL = 1e-12
#: working precision (decimal digits) of the mpmath routes of the construction check
NORMALISATION_DPS = 30


@dataclass(frozen=True)
class NormalisationCheck:
    """``|Σ/∫ p(y|h) − 1|`` at one natural parameter, and how it was obtained.

    Attributes
    ----------
    route:  the route that computed it (``"float64 log-sum-exp over S points"``,
            ``"Gaussian integral (Gauss-Hermite, degree 0)"``, ``"mpmath nsum"``, …, or
            ``"none"`` when no route exists for the support)
    error:  ``|mass − 1|``; ``inf`` when the route did not converge (a density that is
            not summable/integrable), ``None`` when no route exists
    tol:    the largest error the route's own rounding can explain at this parameter
    detail: extra words (why a route fell back, why none exists)
    """

    route: str
    error: float | None
    tol: float
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        """``error ≤ tol``; None when nothing was checked."""
        return None if self.error is None else bool(self.error <= self.tol)


def normalisation_check(fam, values: Mapping) -> NormalisationCheck:
    """Check ``Σ/∫ k(y)·exp(t(y)ᵀh − F(h)) = 1`` at ``values`` cheaply (docs/theory.md §1).

    Routes, by support:

    * **finite** (``S`` points): ``log Σ_y p(y|h) = LSE_y(t(y)ᵀh + log k(y)) − F(h)`` with
      ``t`` and ``log k`` evaluated at all points at once by a float64 ``lambdify`` (never
      one expression with ``S`` terms), ``F(h)`` by ``evalf`` at 30 digits, and a
      tolerance from the float64 rounding bound (:func:`_finite_float64_check`); if float64
      cannot evaluate ``t`` or ``log k`` (an unsupported function, an overflow) the
      mpmath sum, slower, decides;
    * **R^d with a log-density quadratic in y** (any ``σ²``, any ``d``, including learned
      variance): the Gaussian integral in closed form — Gauss–Hermite with one node,
      exact for the constant integrand — factorised over the blocks of coupled
      coordinates, in mpmath (:func:`gaussian_log_mass`);
    * non-negative integers: ``mpmath.nsum``; one interval: tanh–sinh; two intervals:
      nested ``mpmath.quad`` (slow; only user families reach it);
    * anything else: no route; the result says so (``error=None``, ``route="none"``)
      and :func:`fishsym.symbolic.verify.verify_family` reports the normalisation as not
      checked.

    Returns
    -------
    NormalisationCheck
    """
    fam.check_natural_params(values)
    points = finite_points(fam.support)
    if points is not None:
        try:
            return _finite_float64_check(fam, values, points)
        except _FloatRouteUnavailable as why:
            fallback = f"float64 evaluation unavailable ({why}); "
            return _mpmath_check(fam, values, "mpmath sum", fallback)
    if _real_line_only(fam.support) and quadratic_structure(fam) is not None:
        route = "Gaussian integral (Gauss-Hermite, degree 0)"
        try:
            log_mass = gaussian_log_mass(fam, values, NORMALISATION_DPS)
        except NotConverged as err:
            return NormalisationCheck(route, math.inf, MPMATH_NORMALISATION_TOL, str(err))
        with mpmath.workdps(NORMALISATION_DPS):
            error = float(abs(mpmath.expm1(log_mass)))
        return NormalisationCheck(route, error, MPMATH_NORMALISATION_TOL)
    route = numeric_route(fam)
    if route == "none":
        return NormalisationCheck(
            "none",
            None,
            MPMATH_NORMALISATION_TOL,
            f"no normalisation route for support {fam.support!r}",
        )
    return _mpmath_check(fam, values, f"mpmath {route}")


def normalisation_error(fam, values: Mapping) -> float | None:
    """``|Σ/∫ p(y|h) − 1|`` at ``values`` by :func:`normalisation_check`; ``None`` when no
    route can compute it, ``inf`` when the route did not converge (never silently
    accepted). Compare with ``normalisation_check(fam, values).tol``."""
    return normalisation_check(fam, values).error


def _mpmath_check(fam, values: Mapping, route: str, detail: str = "") -> NormalisationCheck:
    try:
        (mass,) = numeric_expectations(fam, [sp.Integer(1)], values, dps=NORMALISATION_DPS)
    except NotConverged as err:
        return NormalisationCheck(route, math.inf, MPMATH_NORMALISATION_TOL, detail + str(err))
    except NotComputable as err:
        return NormalisationCheck("none", None, MPMATH_NORMALISATION_TOL, detail + str(err))
    return NormalisationCheck(route, float(abs(mass - 1)), MPMATH_NORMALISATION_TOL, detail)


class _FloatRouteUnavailable(Exception):
    """float64 cannot evaluate ``t`` or ``log k`` on the support (the mpmath sum decides)."""


def _finite_float64_check(fam, values: Mapping, points: Sequence[tuple]) -> NormalisationCheck:
    """The finite-support route of :func:`normalisation_check`.

    With ``a_y = t(y)ᵀh + log k(y)`` and ``m = max_y a_y``:
    ``log mass = m + log Σ_y e^{a_y − m} − F(h)``. Rounding bound, to first order in
    ``u = 2⁻⁵³`` (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1, §4.2):
    with ``M = max(1, max_y (Σ_c |t_c(y) h_c| + |log k(y)|), |F(h)|)``,

    * each ``a_y``: ``h`` rounded to float64 (exact for the dyadic random parameters),
      ``t_c(y)`` and ``log k(y)`` within ``FLOAT_EVALUATION_ULPS`` each, and a
      ``d + 1``-term sum: ``≤ (d + 1 + 2·FLOAT_EVALUATION_ULPS)·u·M``;
    * the sum of ``S`` positive terms ``e^{a_y − m}``: relative ``≤ (S − 1)·u``, i.e.
      absolute ``≤ (S − 1)·u`` after the log; exp, log, the shift and the final
      subtraction of ``F(h)`` (30 digits, rounded once) add a few ``u·M``.

    The tolerance is ``FLOAT_BOUND_SAFETY·u·(S + (d + 2·FLOAT_EVALUATION_ULPS + 4)·M)``:
    about 1e-12 for Categorical(1000), so any wrong term of ``F`` above that is caught.
    Points with ``k(y) = 0`` (``a_y = −∞``) carry no mass and are left out of ``M``.
    """
    ys, d = fam.obs_symbols, fam.dim
    h = np.array([float(values[s]) for s in fam.natural_params], dtype=np.float64)
    F = fam.log_partition.evalf(NORMALISATION_DPS, subs=dict(values))
    if not F.is_number or F.free_symbols:
        raise _FloatRouteUnavailable(f"evalf cannot evaluate F(h) (it gives {F})")
    if not (F.is_real and F.is_finite):
        return NormalisationCheck(
            "float64 log-sum-exp",
            math.inf,
            0.0,
            f"F(h) = {F} is not a finite real number at this parameter",
        )
    F = float(F)
    t_at = _vectorised(list(fam.suff_stat), ys)
    log_k_at = _vectorised([fam.log_base_measure], ys)
    n_points = len(points)
    block = max(1, FLOAT_BLOCK_ENTRIES // max(d, len(ys)))
    exponents, magnitudes = [], []
    for start in range(0, n_points, block):
        pts = np.asarray(points[start : start + block], dtype=np.float64).reshape(-1, len(ys))
        t = t_at(pts)
        log_k = log_k_at(pts)[:, 0]
        if not np.isfinite(t).all():
            raise _FloatRouteUnavailable("t(y) is not finite at some support point")
        if np.isnan(log_k).any() or np.isposinf(log_k).any():
            raise _FloatRouteUnavailable("log k(y) is NaN or +inf at some support point")
        exponents.append(t @ h + log_k)
        magnitudes.append(np.abs(t) @ np.abs(h) + np.abs(log_k))
    a, mag = np.concatenate(exponents), np.concatenate(magnitudes)
    carried = np.isfinite(a)
    u, ulps = FLOAT64_UNIT_ROUNDOFF, FLOAT_EVALUATION_ULPS
    scale = max(1.0, abs(F), float(mag[carried].max()) if carried.any() else 0.0)
    tol = FLOAT_BOUND_SAFETY * u * (n_points + (d + 2 * ulps + 4) * scale)
    route = f"float64 log-sum-exp over {n_points} points"
    if not carried.any():
        return NormalisationCheck(route, 1.0, tol, "k(y) = 0 at every support point")
    m = float(a[carried].max())
    log_mass = m + math.log(float(np.exp(a[carried] - m).sum())) - F
    return NormalisationCheck(route, abs(math.expm1(log_mass)), tol)


def _vectorised(exprs: Sequence[sp.Expr], ys: Sequence[sp.Symbol]):
    """``pts [n, len(ys)] ↦ [n, len(exprs)]``: the expressions at ``n`` points, float64.

    One ``lambdify`` of the list (numpy), called once per block of points. Logs of
    factorials, binomials and Γ are rewritten as ``log Γ`` first, so large counts do not
    overflow.
    """
    try:
        fn = sp.lambdify(
            ys, [_log_gamma_form(sp.sympify(e)) for e in exprs], modules=[_FLOAT_FUNCTIONS, "numpy"]
        )
    except Exception as err:  # noqa: BLE001  (the printer raises many kinds; mpmath decides)
        raise _FloatRouteUnavailable(f"lambdify failed: {type(err).__name__}: {err}") from None

    def evaluate(pts: np.ndarray) -> np.ndarray:
        n = pts.shape[0]
        try:
            with np.errstate(all="ignore"):
                columns = fn(*pts.T)
            arrays = [np.asarray(col) for col in columns]
            if any(np.iscomplexobj(col) for col in arrays):
                raise _FloatRouteUnavailable("a value is complex")
            return np.stack(
                [np.broadcast_to(col.astype(np.float64), (n,)) for col in arrays], axis=1
            )
        except _FloatRouteUnavailable:
            raise
        except Exception as err:  # noqa: BLE001  (numpy/math raise many kinds; mpmath decides)
            raise _FloatRouteUnavailable(f"{type(err).__name__}: {err}") from None

    return evaluate


def _log_gamma_form(expr: sp.Expr) -> sp.Expr:
    """``log n! → log Γ(n+1)``, ``log C(a, b) → log Γ(a+1) − log Γ(b+1) − log Γ(a−b+1)``,
    ``log Γ(x) → log Γ(x)`` (the same function, as ``loggamma``)."""

    def is_log_of_gamma_kind(e) -> bool:
        return isinstance(e, sp.log) and isinstance(
            e.args[0], (sp.factorial, sp.gamma, sp.binomial)
        )

    def log_gamma(x):
        # unevaluated: loggamma(2001) would otherwise become log of a 5700-digit integer
        return sp.loggamma(x, evaluate=False)

    def rewrite(e):
        inner = e.args[0]
        if isinstance(inner, sp.factorial):
            return log_gamma(inner.args[0] + 1)
        if isinstance(inner, sp.gamma):
            return log_gamma(inner.args[0])
        a, b = inner.args
        return log_gamma(a + 1) - log_gamma(b + 1) - log_gamma(a - b + 1)

    return expr.replace(is_log_of_gamma_kind, rewrite)


#: float64 versions of the special functions numpy lacks (math's, applied elementwise)
_FLOAT_FUNCTIONS = {
    "loggamma": np.vectorize(math.lgamma, otypes=[np.float64]),
    "gamma": np.vectorize(math.gamma, otypes=[np.float64]),
    "factorial": np.vectorize(lambda x: math.gamma(x + 1), otypes=[np.float64]),
}


def gaussian_log_mass(fam, values: Mapping, dps: int = NORMALISATION_DPS):
    """``log ∫ p(y|h) dy`` on ``R^d`` for a log-density ``c + bᵀy − ½yᵀAy`` (mpmath).

    ``∫ e^{c + bᵀy − ½yᵀAy} dy = e^{c + ½bᵀA⁻¹b} (2π)^{d/2} / √det A`` for ``A ≻ 0`` —
    Gauss–Hermite with one node, exact for the constant integrand (docs/theory.md §6). ``A``,
    ``b``, ``c`` are read off ``t``, ``log k`` and ``F(h)`` (:func:`_log_density_coefficients`),
    never off derivatives of ``F``. The integral factorises over the blocks of
    coordinates coupled by ``A``'s off-diagonal entries, so a diagonal ``A`` (isotropic
    Gaussians) costs ``O(d)``; each block is factorised by Cholesky, which also decides
    ``A ≻ 0``.

    Raises :class:`NotConverged` when ``A`` is not positive definite (not integrable).
    """
    d = len(fam.obs_symbols)
    coefficients = _log_density_coefficients(fam, values, dps)
    parent = list(range(d))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key, v in coefficients.items():
        if len(key) == 2 and key[0] != key[1] and v != 0:
            parent[root(key[0])] = root(key[1])
    members: dict[int, list[int]] = {}
    for i in range(d):
        members.setdefault(root(i), []).append(i)
    block_terms: dict[int, dict] = {r: {} for r in members}
    for key, v in coefficients.items():
        if key:
            block_terms[root(key[0])][key] = v
    with mpmath.workdps(dps + 10):
        log_mass = coefficients.get((), mpmath.mpf(0))
        half_log_2pi = mpmath.log(2 * mpmath.pi) / 2
        for r, block in members.items():
            position = {i: k for k, i in enumerate(block)}
            local = {tuple(position[i] for i in key): v for key, v in block_terms[r].items()}
            A, b, _ = _quadratic_form(local, len(block))
            try:
                chol = mpmath.cholesky(A)
            except ValueError:
                raise NotConverged(
                    f"{fam.name}: the log-density's quadratic part is not negative definite "
                    f"at {format_values(values)}: the density is not integrable"
                ) from None
            z = mpmath.lu_solve(chol, b)  # L z = b, so bᵀA⁻¹b = ‖z‖²
            log_det = 2 * mpmath.fsum(mpmath.log(chol[k, k]) for k in range(len(block)))
            log_mass += mpmath.fsum(zk**2 for zk in z) / 2 + len(block) * half_log_2pi
            log_mass -= log_det / 2
        return +log_mass


def format_values(values: Mapping, n: int = 4) -> str:
    """``values`` for a message: the first ``n`` entries, then how many more."""
    items = list(values.items())
    text = ", ".join(f"{k}: {v}" for k, v in items[:n])
    return "{" + text + (f", … ({len(items) - n} more)" if len(items) > n else "") + "}"
