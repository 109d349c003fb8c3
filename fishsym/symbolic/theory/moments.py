"""Moments of the sufficient statistic as polynomials in free cumulant symbols (moment–cumulant
formulas), expectations over independent copies, and a family's own moments.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import sympy as sp
from sympy.polys.rings import PolyElement

from fishsym.symbolic import tensors
from fishsym.symbolic.family import ExponentialFamily


class FreeCumulants:
    """Free cumulant symbols of a ``d``-dimensional sufficient statistic, orders 1..4.

    ``η_c = κ_c``, ``κ_ce``, ``κ_cef``, ``κ_cefg`` are independent symbols (one per index
    multiset). :meth:`raw` gives ``E[t^α]`` by the moment–cumulant formula (all set
    partitions); the closed forms use ``I = κ₂`` and ``μ₄ = κ₄ + 3·Sym(κ₂⊗κ₂)``.
    """

    max_order = 4

    def __init__(self, d: int, tag: str = ""):
        self.d = int(d)
        self.tag = tag
        self._kappa: dict[tensors.Multiset, sp.Symbol] = {}
        for k in range(1, self.max_order + 1):
            for ms in tensors.multisets(self.d, k):
                label = "".join(str(c + 1) for c in ms)
                name = f"η_{label}{tag}" if k == 1 else f"κ_{label}{tag}"
                self._kappa[ms] = sp.Symbol(name, real=True)
        self._raw: dict[tensors.Multiset, sp.Expr] = {}

    def kappa(self, ms: Sequence[int]) -> sp.Symbol:
        """The cumulant symbol ``κ_ms`` (``η_c`` for one index)."""
        return self._kappa[tuple(sorted(ms))]

    def bind(self, R) -> FreeCumulants:
        """The same cumulants as generators of the polynomial ring ``R`` (fast arithmetic)."""
        other = copy.copy(self)
        gens = dict(zip(R.symbols, R.gens, strict=True))
        other._kappa = {ms: gens[s] for ms, s in self._kappa.items()}
        other._raw = {}
        return other

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(self._kappa.values())

    @property
    def eta(self) -> list[sp.Symbol]:
        return [self.kappa((c,)) for c in range(self.d)]

    @property
    def fisher(self) -> sp.Matrix:
        return sp.Matrix(self.d, self.d, lambda c, e: self.kappa((c, e)))

    def raw(self, ms: Sequence[int]) -> sp.Expr:
        """``E[t_{ms}]`` = Σ over set partitions π of the positions of Π_B κ_{ms_B}."""
        ms = tuple(sorted(ms))
        if not ms:
            return sp.Integer(1)
        if ms not in self._raw:
            total = sp.Integer(0)
            for part in tensors.set_partitions(len(ms), min_block=1):
                term = sp.Integer(1)
                for block in part:
                    term *= self.kappa(tuple(ms[j] for j in block))
                total += term
            self._raw[ms] = total
        return self._raw[ms]

    def central4_entries(self) -> dict[tensors.Multiset, sp.Expr]:
        """``μ₄[a,b,c,e] = κ₄[abce] + κ₂[ab]κ₂[ce] + κ₂[ac]κ₂[be] + κ₂[ae]κ₂[bc]``
        (docs/theory.md §1)."""
        k2 = self.kappa
        return {
            (a, b, c, e): k2((a, b, c, e))
            + k2((a, b)) * k2((c, e))
            + k2((a, c)) * k2((b, e))
            + k2((a, e)) * k2((b, c))
            for a, b, c, e in tensors.multisets(self.d, 4)
        }

    def entries(self, k: int) -> dict[tensors.Multiset, sp.Expr]:
        return {ms: self.kappa(ms) for ms in tensors.multisets(self.d, k)}

    # forms used by the closed forms -------------------------------------------------
    def quadratic(self, u) -> sp.Expr:
        return tensors.symmetric_form(self.entries(2), self.d, 2, list(u))

    def bilinear(self, w, x) -> sp.Expr:
        return tensors.multilinear_form(self.entries(2), [list(w), list(x)])

    def cubic(self, u) -> sp.Expr:
        return tensors.symmetric_form(self.entries(3), self.d, 3, list(u))

    def quartic(self, u) -> sp.Expr:
        return tensors.symmetric_form(self.central4_entries(), self.d, 4, list(u))

    def cumulant4(self, u) -> sp.Expr:
        return tensors.symmetric_form(self.entries(4), self.d, 4, list(u))

    def form4(self, a, b, c, e) -> sp.Expr:
        return tensors.multilinear_form(
            self.central4_entries(), [list(a), list(b), list(c), list(e)]
        )

    # expectation ----------------------------------------------------------------------
    def expect(self, expr: sp.Expr, T: Sequence[sp.Symbol]) -> sp.Expr:
        """``E[f(t)]`` for a polynomial ``f`` in the symbols ``T``: ``T^α ↦ E[t^α]``."""
        return expect_independent(expr, [(T, self)])


def expect_independent(expr, copies: Sequence[tuple[Sequence, object]]):
    """``E`` over independent labels: copy ``j`` has statistic symbols ``T^{(j)}`` and a
    moment source with ``.raw(ms)``; a monomial ``Π_j (T^{(j)})^{α_j}`` has expectation
    ``Π_j E[t^{α_j}]``. ``expr`` is a sympy expression or a polynomial-ring element."""
    if isinstance(expr, PolyElement):
        return _expect_ring(expr, copies)
    gens = [s for T, _ in copies for s in T]
    poly = sp.Poly(expr, *gens)
    total = sp.Integer(0)
    for monom, coeff in poly.terms():
        term = coeff
        pos = 0
        for T, source in copies:
            chunk = monom[pos : pos + len(T)]
            pos += len(T)
            ms = tuple(c for c, power in enumerate(chunk) for _ in range(power))
            if ms:
                term *= source.raw(ms)
        total += term
    return total


def _expect_ring(f: PolyElement, copies) -> PolyElement:
    R = f.ring
    where = [[R.gens.index(t) for t in T] for T, _ in copies]
    moment_cache: dict = {}
    total = R.zero
    for monom, coeff in f.terms():
        rest = list(monom)
        term = R.ground_new(coeff)
        for (_, source), pos in zip(copies, where, strict=True):
            ms = []
            for c, k in enumerate(pos):
                ms += [c] * monom[k]
                rest[k] = 0
            if ms:
                key = (id(source), tuple(ms))
                if key not in moment_cache:
                    moment_cache[key] = source.raw(ms)
                term = term * moment_cache[key]
        total += term * R({tuple(rest): 1})
    return total


class FamilyMoments:
    """The same interface as :class:`FreeCumulants`, on the family's own expressions.

    ``subs`` optionally renames the natural parameters (e.g. ``h → h_p``).
    """

    def __init__(self, fam: ExponentialFamily, subs: Mapping | None = None):
        self.fam = fam
        self.d = fam.dim
        self.subs = dict(subs or {})
        self._raw_k: dict[int, dict] = {}

    def _s(self, e):
        return e.xreplace(self.subs) if self.subs else e

    @property
    def eta(self) -> list[sp.Expr]:
        return [self._s(e) for e in self.fam.mean]

    @property
    def fisher(self) -> sp.Matrix:
        return self._s(self.fam.fisher)

    def raw(self, ms: Sequence[int]) -> sp.Expr:
        ms = tuple(sorted(ms))
        if not ms:
            return sp.Integer(1)
        k = len(ms)
        if k not in self._raw_k:
            self._raw_k[k] = self.fam.moment_about_entries([0] * self.d, k)
        return self._s(self._raw_k[k][ms])

    def central_entries(self, k: int) -> dict:
        return {ms: self._s(v) for ms, v in self.fam.central_moment_entries(k).items()}

    def quadratic(self, u) -> sp.Expr:
        return self._s(self.fam.quadratic_form(list(u)))

    def bilinear(self, w, x) -> sp.Expr:
        return self._s(tensors.multilinear_form(self.fam.cumulant_entries(2), [list(w), list(x)]))

    def cubic(self, u) -> sp.Expr:
        return self._s(self.fam.central_moment_form(3, list(u)))

    def quartic(self, u) -> sp.Expr:
        return self._s(self.fam.quartic_form(list(u)))

    def cumulant4(self, u) -> sp.Expr:
        return self._s(self.fam.cumulant_form(4, list(u)))

    def form4(self, a, b, c, e) -> sp.Expr:
        return self._s(
            tensors.multilinear_form(
                self.fam.central_moment_entries(4), [list(a), list(b), list(c), list(e)]
            )
        )

    def expect(self, expr: sp.Expr, T: Sequence[sp.Symbol]) -> sp.Expr:
        return expect_independent(expr, [(T, self)])
