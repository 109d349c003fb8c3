"""The one zero test of the symbolic layer: exactly zero by simplification, or at exact rational
points (:func:`prove_zero`); :mod:`fishsym.symbolic.verify` uses it too.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.polys.rings import PolyElement

from fishsym.symbolic import models as _models
from fishsym.symbolic.theory.certified import UnsupportedEnclosureError, enclose
from fishsym.symbolic.theory.constants import N_POINTS, POINTS, SIMPLIFY_OPS_LIMIT, SYMBOLIC


@dataclass(frozen=True)
class ZeroTest:
    """Outcome of :func:`prove_zero`: ``zero`` is True (proved 0), False (proved nonzero)
    or None (undecided); ``method`` says how."""

    zero: bool | None
    method: str
    note: str = ""


def _is_polynomial_over_q(e: sp.Expr) -> bool:
    """True when ``e`` is a polynomial with rational coefficients in its free symbols."""
    if e.is_Rational:
        return True
    if e.atoms(sp.Function) or e.has(sp.pi, sp.E, sp.EulerGamma):
        return False
    try:
        poly = sp.Poly(e, *sorted(e.free_symbols, key=str))
    except sp.PolynomialError:
        return False
    return poly.domain.is_QQ or poly.domain.is_ZZ


def prove_zero(expr, rng: np.random.Generator | None = None, n_points: int = N_POINTS) -> ZeroTest:
    """Decide ``expr ≡ 0`` exactly.

    ``expand`` → ``cancel`` → ``simplify`` (small expressions; :func:`symbolic_zero`); an
    expanded polynomial over ℚ that is not 0 is certified nonzero (its expanded form is
    canonical). Otherwise the expression is evaluated exactly at ``n_points`` random
    rational points (free symbols drawn by their sign assumptions, placeholder functions
    given random rational values): a nonzero value proves nonzero; zeros at every point
    are reported as zero with ``method="exact-rational-points"`` — a Schwartz–Zippel
    identity test (a proof with high probability) for rational functions, a spot check
    otherwise. None of the registered families' proofs needs this fallback.
    """
    decided, e = _symbolic(expr)
    if decided is not None:
        return decided
    return _zero_at_points(e, rng or np.random.default_rng(0), n_points)


def symbolic_zero(expr) -> ZeroTest:
    """The exact, symbolic stage of :func:`prove_zero` alone: ``zero`` is True or False
    when simplification decides, None otherwise (the caller then settles it its own way —
    :mod:`fishsym.symbolic.verify` by high-precision evaluation on the family's domain)."""
    decided, _ = _symbolic(expr)
    return decided if decided is not None else ZeroTest(None, SYMBOLIC, "not decided")


def _symbolic(expr) -> tuple[ZeroTest | None, sp.Expr | None]:
    """``(decision, reduced expression)``; the decision is None when undecided."""
    if isinstance(expr, PolyElement):
        # an element of ℚ[symbols]: its representation is canonical
        if expr == 0:
            return ZeroTest(True, SYMBOLIC, "0 in ℚ[symbols]"), None
        monom, coeff = expr.terms()[0]
        term = expr.ring({monom: coeff}).as_expr()
        return ZeroTest(False, SYMBOLIC, f"nonzero polynomial over ℚ, e.g. term {term}"), None
    e = sp.sympify(expr)
    if e == 0:
        return ZeroTest(True, SYMBOLIC, "identically 0"), None
    e = sp.expand(e)
    if e == 0:
        return ZeroTest(True, SYMBOLIC, "expand"), None
    if _is_polynomial_over_q(e):
        term = sp.Add.make_args(e)[0]
        return ZeroTest(False, SYMBOLIC, f"nonzero polynomial, e.g. term {term}"), None
    if not e.has(sp.Piecewise):
        c = sp.cancel(sp.together(e))
        if c == 0:
            return ZeroTest(True, SYMBOLIC, "cancel"), None
        e = c
    if sp.count_ops(e) <= SIMPLIFY_OPS_LIMIT and sp.simplify(e) == 0:
        return ZeroTest(True, SYMBOLIC, "simplify"), None
    return None, e


def _random_point_value(sym: sp.Symbol, rng: np.random.Generator) -> sp.Rational:
    k = int(rng.integers(1, 97))
    val = sp.Rational(k, 32)
    if sym.is_negative:
        return -val
    if sym.is_positive or sym.is_nonnegative:
        return val
    return val if rng.integers(2) else -val


def _zero_at_points(e: sp.Expr, rng: np.random.Generator, n_points: int) -> ZeroTest:
    zeros = 0
    for _ in range(n_points):
        point = {s: _random_point_value(s, rng) for s in e.free_symbols}
        v = e.xreplace(point)
        opaque = {a: sp.Rational(int(rng.integers(-48, 49)), 16) for a in _opaque_atoms(v)}
        v = sp.cancel(sp.expand(v.xreplace(opaque)))
        if v == 0:
            zeros += 1
            continue
        if v.is_Rational:
            return ZeroTest(False, POINTS, f"value {v} ≠ 0 at {point}")
        try:
            iv = enclose(v)
        except UnsupportedEnclosureError:
            continue
        if not iv.contains_zero():
            return ZeroTest(False, POINTS, f"certified nonzero (enclosure {iv}) at {point}")
    if zeros == n_points:
        return ZeroTest(True, POINTS, f"0 at {n_points} random rational points")
    return ZeroTest(None, POINTS, "undecided: no simplification and no exact point value")


def _opaque_atoms(e: sp.Expr) -> set:
    """Applied placeholder functions (``σ^{(k)}(r)``, undefined functions) at numbers."""
    return {
        a
        for a in e.atoms(sp.Function)
        if isinstance(a, (_models.PlaceholderActivation, sp.core.function.AppliedUndef))
    }
