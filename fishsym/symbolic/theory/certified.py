"""Certified exact-real arithmetic: rational interval enclosures of constants and of
exp/log/roots/π/polygamma (:func:`enclose`), decisions made in exact rational arithmetic
(:func:`certify_le`), exact zero tests of numbers, and eigenvalue enclosures of symmetric
pencils.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import sympy as sp
from sympy.polys.matrices import DomainMatrix

from fishsym.symbolic import tensors
from fishsym.symbolic.theory.constants import PRECISION_BITS, ROOT_EPS


class UnsupportedEnclosureError(ValueError):
    """An expression contains a function :func:`enclose` has no rigorous bound for."""


def _floor_grid(q: Fraction) -> Fraction:
    scale = 1 << PRECISION_BITS
    if q.denominator <= scale:
        return q
    return Fraction(math.floor(q * scale), scale)


def _ceil_grid(q: Fraction) -> Fraction:
    scale = 1 << PRECISION_BITS
    if q.denominator <= scale:
        return q
    return Fraction(math.ceil(q * scale), scale)


class Interval:
    """A closed interval ``[lo, hi]`` with exact rational endpoints (outward rounded)."""

    __slots__ = ("lo", "hi")

    def __init__(self, lo, hi=None):
        lo = Fraction(lo)
        hi = lo if hi is None else Fraction(hi)
        if lo > hi:
            raise ValueError(f"empty interval [{lo}, {hi}]")
        self.lo, self.hi = _floor_grid(lo), _ceil_grid(hi)

    def __add__(self, o):
        o = _as_interval(o)
        return Interval(self.lo + o.lo, self.hi + o.hi)

    __radd__ = __add__

    def __neg__(self):
        return Interval(-self.hi, -self.lo)

    def __sub__(self, o):
        return self + (-_as_interval(o))

    def __rsub__(self, o):
        return _as_interval(o) - self

    def __mul__(self, o):
        o = _as_interval(o)
        p = (self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi)
        return Interval(min(p), max(p))

    __rmul__ = __mul__

    def inv(self) -> Interval:
        if self.contains_zero():
            raise ZeroDivisionError(f"1/{self}: the interval contains 0")
        return Interval(1 / self.hi, 1 / self.lo)

    def __truediv__(self, o):
        return self * _as_interval(o).inv()

    def __pow__(self, n: int):
        if n < 0:
            return (self ** (-n)).inv()
        if n % 2 == 1 or self.lo >= 0:
            return Interval(self.lo**n, self.hi**n)
        if self.hi <= 0:
            return Interval(self.hi**n, self.lo**n)
        return Interval(0, max(self.lo**n, self.hi**n))

    def contains_zero(self) -> bool:
        return self.lo <= 0 <= self.hi

    @property
    def width(self) -> Fraction:
        return self.hi - self.lo

    @property
    def mid(self) -> Fraction:
        return (self.lo + self.hi) / 2

    def __repr__(self) -> str:
        if self.lo == self.hi:
            return f"[{self.lo}]"
        return f"[{float(self.mid):.17g} ± {float(self.width / 2):.1e}]"


def _as_interval(x) -> Interval:
    return x if isinstance(x, Interval) else Interval(Fraction(x))


def _tol() -> Fraction:
    return Fraction(1, 1 << (PRECISION_BITS + 8))


@lru_cache(maxsize=4096)
def _exp_rational(q: Fraction) -> Interval:
    """``exp(q)``: Taylor series at ``q/2^k`` (|·| ≤ 1/2) with the Lagrange remainder
    ``≤ e^{1/2}|r|^N/N! < 2|r|^N/N!``, then squared ``k`` times."""
    k, r = 0, q
    while abs(r) > Fraction(1, 2):
        r /= 2
        k += 1
    s, term, j = Fraction(0), Fraction(1), 0
    while True:
        s += term
        j += 1
        term = term * r / j
        if 2 * abs(term) < _tol():
            break
    iv = Interval(s - 2 * abs(term), s + 2 * abs(term))
    for _ in range(k):
        iv = iv * iv
    return iv


def _atanh_series(z: Fraction) -> Interval:
    """``atanh(z) = Σ z^{2j+1}/(2j+1)`` for ``|z| ≤ 1/3``; tail ``≤ |z|^{2N+1}/((2N+1)(1−z²))``."""
    s, power, j = Fraction(0), z, 0
    while True:
        s += power / (2 * j + 1)
        j += 1
        power *= z * z
        tail = abs(power) / ((2 * j + 1) * (1 - z * z))
        if tail < _tol():
            return Interval(s - tail, s + tail)


@lru_cache(maxsize=4096)
def _log_rational(q: Fraction) -> Interval:
    """``log q = m·log 2 + 2 atanh((r−1)/(r+1))`` with ``q = 2^m r``, ``r ∈ [1/2, 2]``."""
    if q <= 0:
        raise ValueError(f"log of a non-positive number {q}")
    m, r = 0, q
    while r > 2:
        r /= 2
        m += 1
    while r < Fraction(1, 2):
        r *= 2
        m -= 1
    log2 = 2 * _atanh_series(Fraction(1, 3))
    return 2 * _atanh_series((r - 1) / (r + 1)) + log2 * m


def _root_rational(q: Fraction, n: int) -> Interval:
    """``q^{1/n}`` for ``q ≥ 0`` by integer ``n``-th roots on the 2^-P grid."""
    if q < 0:
        raise ValueError(f"real {n}-th root of a negative number {q}")
    scale = 1 << PRECISION_BITS
    a = (q.numerator * scale**n) // q.denominator
    r, _ = sp.integer_nthroot(int(a), n)
    return Interval(Fraction(int(r), scale), Fraction(int(r) + 1, scale))


@lru_cache(maxsize=1)
def _pi() -> Interval:
    """π = 16 atan(1/5) − 4 atan(1/239) (Machin); alternating series bracket each atan."""

    def atan_inv(m: int) -> Interval:
        s, j, x = Fraction(0), 0, Fraction(1, m)
        while True:
            term = x ** (2 * j + 1) / (2 * j + 1)
            if term < _tol():
                return Interval(s - term, s + term)
            s += term if j % 2 == 0 else -term
            j += 1

    return 16 * atan_inv(5) - 4 * atan_inv(239)


@lru_cache(maxsize=1024)
def _polygamma_rational(k: int, x: Fraction) -> Interval:
    """``ψ^{(k)}(x)`` for ``k ≥ 1``, ``x > 0``: ``(−1)^{k+1} k! Σ_{n≥0} (x+n)^{−k−1}``.

    The first ``M`` terms are summed exactly (shifting to ``X = x + M ≥ 60``); the tail
    ``Σ_{n≥0} f(n)``, ``f(t) = (X+t)^{−k−1}``, by Euler–Maclaurin with ``p = 30``:
    ``∫f + f(0)/2 − Σ_{j<p} B_{2j}/(2j)! f^{(2j−1)}(0)`` and remainder at most
    ``2|B_{2p}|/(2p)!·|f^{(2p−1)}(0)|`` (f is completely monotone).
    """
    if k < 1 or x <= 0:
        raise UnsupportedEnclosureError(f"polygamma({k}, {x}) needs k ≥ 1 and x > 0")
    shift = max(0, 60 - math.floor(x))
    X = x + shift
    head = sum((Fraction(1) / (x + n) ** (k + 1) for n in range(shift)), Fraction(0))

    def deriv(m: int) -> Fraction:
        rising = math.prod(range(k + 1, k + 1 + m))
        return (-1) ** m * Fraction(rising) / X ** (k + 1 + m)

    p = 30
    tail = Fraction(1, k) / X**k + Fraction(1, 2) / X ** (k + 1)
    for j in range(1, p):
        b = sp.bernoulli(2 * j)
        tail -= Fraction(int(b.p), int(b.q)) / math.factorial(2 * j) * deriv(2 * j - 1)
    bp = sp.bernoulli(2 * p)
    err = 2 * abs(Fraction(int(bp.p), int(bp.q))) / math.factorial(2 * p) * abs(deriv(2 * p - 1))
    sign = (-1) ** (k + 1) * math.factorial(k)
    center = sign * (head + tail)
    return Interval(center - abs(sign) * err, center + abs(sign) * err)


@lru_cache(maxsize=4096)
def _besseli_rational(n: int, x: Fraction) -> Interval:
    """``I_n(x)`` for integer ``n ≥ 0``, ``x ≥ 0``: ``Σ_m (x/2)^{2m+n}/(m!(m+n)!)``.

    Every term is positive, so a partial sum is a lower bound; once the term ratio
    ``q_m = (x/2)²/((m+1)(m+n+1))`` is below ½ it only decreases, and the tail after
    the last term ``t`` summed is at most ``t·q/(1 − q) ≤ 2tq``.
    """
    if n < 0 or x < 0:
        raise UnsupportedEnclosureError(f"besseli({n}, {x}) needs n ≥ 0 and x ≥ 0")
    half2 = (x / 2) ** 2
    term = (x / 2) ** n / math.factorial(n)
    total, m = Fraction(0), 0
    while True:
        total += term
        q = half2 / ((m + 1) * (m + n + 1))
        term = term * q
        m += 1
        if q < Fraction(1, 2) and 2 * term < _tol() * max(total, Fraction(1)):
            return Interval(total, total + 2 * term)


def _monotone(fn, iv: Interval, increasing: bool) -> Interval:
    a, b = fn(iv.lo), fn(iv.hi)
    return Interval(a.lo, b.hi) if increasing else Interval(b.lo, a.hi)


def enclose(expr) -> Interval:
    """A rigorous rational interval containing the real number ``expr``.

    Supports rationals, ``π``, ``e``, sums, products, integer and rational powers,
    ``exp``, ``log``, ``polygamma(k ≥ 1, ·)``, ``besseli(n, x ≥ 0)``, ``Abs`` and the
    hyperbolic functions (via
    ``exp``). Raises :class:`UnsupportedEnclosureError` for anything else.
    """
    e = sp.sympify(expr)
    if e.is_Rational:
        return Interval(Fraction(int(e.p), int(e.q)))
    if e is sp.pi:
        return _pi()
    if e is sp.E:
        return _exp_rational(Fraction(1))
    if isinstance(e, sp.Add):
        out = Interval(0)
        for a in e.args:
            out = out + enclose(a)
        return out
    if isinstance(e, sp.Mul):
        out = Interval(1)
        for a in e.args:
            out = out * enclose(a)
        return out
    if isinstance(e, sp.Pow):
        base, ex = e.args
        if ex.is_Integer:
            return enclose(base) ** int(ex)
        if ex.is_Rational:
            b = enclose(base)
            if b.lo < 0:
                raise UnsupportedEnclosureError(f"{e}: rational power of a possibly negative base")
            p, q = int(ex.p), int(ex.q)
            root = _monotone(lambda t: _root_rational(t, q), b, True)
            return root**p
        return enclose(sp.exp(ex * sp.log(base)))
    if isinstance(e, sp.exp):
        return _monotone(_exp_rational, enclose(e.args[0]), True)
    if isinstance(e, sp.log):
        arg = enclose(e.args[0])
        if arg.lo <= 0:
            raise UnsupportedEnclosureError(f"{e}: log of a possibly non-positive number")
        return _monotone(_log_rational, arg, True)
    if isinstance(e, sp.polygamma):
        k = e.args[0]
        if not (k.is_Integer and int(k) >= 1):
            raise UnsupportedEnclosureError(f"{e}: only polygamma(k ≥ 1, ·) is enclosed")
        k = int(k)
        arg = enclose(e.args[1])
        if arg.lo <= 0:
            raise UnsupportedEnclosureError(f"{e}: polygamma at a possibly non-positive point")
        # ψ^{(k)} is decreasing for odd k, increasing for even k, on (0, ∞)
        return _monotone(lambda t: _polygamma_rational(k, t), arg, increasing=(k % 2 == 0))
    if isinstance(e, sp.besseli):
        n = e.args[0]
        if not n.is_Integer:
            raise UnsupportedEnclosureError(f"{e}: only besseli of integer order is enclosed")
        n = abs(int(n))  # I_{−n} = I_n
        arg = enclose(e.args[1])
        if arg.lo < 0:
            raise UnsupportedEnclosureError(f"{e}: besseli at a possibly negative point")
        # I_n is increasing on [0, ∞): I_n' = (I_{n−1} + I_{n+1})/2 > 0 there
        return _monotone(lambda t: _besseli_rational(n, t), arg, True)
    if isinstance(e, sp.Abs):
        iv = enclose(e.args[0])
        if iv.lo >= 0:
            return iv
        if iv.hi <= 0:
            return -iv
        return Interval(0, max(-iv.lo, iv.hi))
    if isinstance(e, (sp.tanh, sp.sinh, sp.cosh, sp.coth, sp.sech, sp.csch)):
        return enclose(e.rewrite(sp.exp))
    raise UnsupportedEnclosureError(f"no rigorous enclosure for {e} ({type(e).__name__})")


@dataclass(frozen=True)
class Value:
    """A real number known by an enclosing interval and, when available, exactly."""

    interval: Interval
    exact: sp.Expr | None = None

    @staticmethod
    def of(expr) -> Value:
        e = sp.sympify(expr)
        return Value(enclose(e), e)

    def _combine(self, other, op):
        other = other if isinstance(other, Value) else Value.of(other)
        ex = None if self.exact is None or other.exact is None else op(self.exact, other.exact)
        return Value(op(self.interval, other.interval), ex)

    def __add__(self, o):
        return self._combine(o, lambda a, b: a + b)

    def __sub__(self, o):
        return self._combine(o, lambda a, b: a - b)

    def __mul__(self, o):
        return self._combine(o, lambda a, b: a * b)

    def __pow__(self, n: int):
        return Value(self.interval**n, None if self.exact is None else self.exact**n)


def certify_le(lhs: Value, rhs: Value) -> tuple[bool | None, str]:
    """Decide ``lhs ≤ rhs`` exactly: by disjoint (or exact rational) enclosures, else —
    when they overlap, i.e. in a case of equality — by proving ``rhs − lhs = 0`` exactly
    (:func:`exact_number_is_zero`). None when undecided."""
    if lhs.interval.hi <= rhs.interval.lo:
        return True, "enclosure"
    if lhs.interval.lo > rhs.interval.hi:
        return False, "enclosure"
    if (
        lhs.exact is not None
        and rhs.exact is not None
        and exact_number_is_zero(rhs.exact - lhs.exact)
    ):
        return True, "equality"
    return None, "undecided"


def exact_number_is_zero(e: sp.Expr) -> bool:
    """Prove that a real number built from rationals and transcendental atoms is 0.

    Each ``exp(q)`` with rational ``q`` becomes ``z^{qL}`` (``z = e^{1/L}``, ``L`` the common
    denominator) and every other atom (``polygamma(k, r)``, ``log r``, ``tanh r``, ``π``,
    ``√2``, …) a fresh symbol; if the resulting rational function cancels to 0, the number
    is 0 (the substitution is a ring homomorphism back). Sound, not complete: False means
    "not proved".
    """
    e = sp.sympify(e)
    if e == 0:
        return True
    if e.free_symbols:
        return False
    exps = [a for a in e.atoms(sp.exp) if a.args[0].is_Rational]
    lcm = math.lcm(*(int(a.args[0].q) for a in exps)) if exps else 1
    z = sp.Dummy("z", positive=True)
    mapping: dict = {a: z ** int(a.args[0] * lcm) for a in exps}
    others = [a for a in e.atoms(sp.Function) if a not in mapping]
    others += [a for a in e.atoms(sp.Pow) if a.exp.is_Rational and not a.exp.is_Integer]
    others += list(e.atoms(sp.NumberSymbol))
    for a in others:
        mapping.setdefault(a, sp.Dummy("a", positive=True))
    return sp.cancel(sp.together(e.xreplace(mapping))) == 0


def extreme_eigenvalues(G: sp.Matrix, D: Sequence[int] | None = None) -> tuple[Value, Value, str]:
    """Cached front of :func:`_extreme_eigenvalues` (points repeat across models)."""
    return _extreme_eigenvalues(sp.ImmutableMatrix(G), tuple(D) if D is not None else None)


@lru_cache(maxsize=256)
def _extreme_eigenvalues(
    G: sp.ImmutableMatrix, D: tuple[int, ...] | None
) -> tuple[Value, Value, str]:
    """``(λ_min, λ_max)`` of the symmetric pencil ``G v = λ D v`` (``D`` diagonal, ≥ 1).

    Exact characteristic polynomial ``det(G − λD)`` and real-root isolation
    (``Poly.intervals``); a rational extreme root is returned exactly. When entries of
    ``G`` are not rational they are enclosed, the polynomial is formed at the midpoints
    and the root intervals are widened by Weyl's bound ``‖E‖₂ ≤ max_i Σ_j rad_ij``.
    """
    n = G.rows
    D = [1] * n if D is None else list(D)
    if n == 1:
        lam = Value.of(G[0, 0] / D[0])
        return lam, lam, "1×1"
    entries = [[sp.sympify(G[i, j]) for j in range(n)] for i in range(n)]
    rational = all(e.is_Rational for row in entries for e in row)
    if rational:
        mid = sp.Matrix(entries)
        rho = Fraction(0)
    else:
        enc = [[enclose(e) for e in row] for row in entries]
        mid = sp.Matrix(
            n, n, lambda i, j: sp.Rational(enc[i][j].mid.numerator, enc[i][j].mid.denominator)
        )
        rho = max(sum((enc[i][j].width / 2 for j in range(n)), Fraction(0)) for i in range(n))
    # det(G − λD) = det(D)·det(D⁻¹G − λ): the characteristic polynomial of a rational
    # matrix, computed over ℚ (DomainMatrix) — far faster than a symbolic determinant
    scaled = sp.Matrix(n, n, lambda i, j: mid[i, j] / D[i])
    coeffs = DomainMatrix.from_Matrix(scaled).convert_to(sp.QQ).charpoly()
    lam = sp.Dummy("lambda")
    poly = sp.Poly([sp.QQ.to_sympy(c) for c in coeffs], lam, domain=sp.QQ)
    sqf = poly.sqf_part()
    ivs = sqf.intervals(eps=sp.Rational(ROOT_EPS.numerator, ROOT_EPS.denominator))
    rational_roots = [
        -f.all_coeffs()[1] / f.all_coeffs()[0] for f, _ in sp.factor_list(sqf)[1] if f.degree() == 1
    ]

    def value(iv) -> Value:
        (a, b), _ = iv
        exact = next((r for r in rational_roots if a <= r <= b), None) if rho == 0 else None
        if exact is not None:
            return Value(Interval(Fraction(int(exact.p), int(exact.q))), exact)
        return Value(
            Interval(Fraction(int(a.p), int(a.q)) - rho, Fraction(int(b.p), int(b.q)) + rho)
        )

    how = "exact char. poly + root isolation" + ("" if rational else " (Weyl-widened enclosure)")
    return value(ivs[0]), value(ivs[-1]), how


def sym2_pencil(mu4: Mapping[tensors.Multiset, sp.Expr], d: int) -> tuple[sp.Matrix, list[int]]:
    """The matricisation of a symmetric 4-tensor on Sym²(R^d).

    With ``s_{ab} = v_a v_b`` (``a ≤ b``) and ``m_{ab} = 1`` (a = b) or 2:
    ``T[v⁴] = sᵀ G s`` with ``G_{(ab),(ce)} = m_ab m_ce T_abce`` and
    ``‖v‖⁴ = sᵀ D s``, ``D = diag(m_ab)``. The pencil's extreme eigenvalues bound
    ``T[v⁴]/‖v‖⁴`` — certified bounds on ``λ_min(T)``, ``λ_max(T)`` (docs/theory.md §3).
    """
    pairs = list(tensors.multisets(d, 2))
    mult = [1 if a == b else 2 for a, b in pairs]
    G = sp.Matrix(
        len(pairs),
        len(pairs),
        lambda i, j: mult[i] * mult[j] * mu4[tuple(sorted(pairs[i] + pairs[j]))],
    )
    return G, mult
