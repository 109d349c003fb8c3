"""Symbolic proofs of the estimator theory (docs/theory.md §1–§5).

``check_theory(fam, model)`` proves, for an exponential family ``fam`` and a symbolic
parametrised map ``h(θ; x)`` (:mod:`fishsym.symbolic.models`), the closed forms and bounds
that the numeric layer implements, and returns one :class:`CheckResult` per claim:

1. unbiasedness ``E Î₁ = E Î₂ = u_iᵀ I u_i``;
2. ``V₁ = μ₄[u_i⁴] − I(θ_i|x)² = κ₄[u_i⁴] + 2 I(θ_i|x)²`` and ``V₂ = w_iᵀ I w_i``;
3. the covariance (pullback) forms for pairs ``(i, j)``;
4. ``V₂ ≡ 0`` where ``h`` is affine in ``θ_i``, and for ReLU / leaky-ReLU networks off
   the kinks;
5. the bounds of §3 (with equality for isotropic Gaussian heads) and the categorical
   spectrum facts and certified quartic bound of §4;
6. the input/label decomposition of §5 for a finite input distribution;
7. the empirical-Fisher mean, bias and variance of §5 with labels from the same family
   at another natural parameter.

How the proofs work — and why they are fast and family-independent
-------------------------------------------------------------------
The log-likelihood is ``ℓ = Tᵀh(θ; x) − F(h(θ; x)) + log k(y)`` where ``T = t(y)`` is a
vector of symbols ``T_1..T_d``. Every proof of claims 1–4 and 6 factors into three
exact steps.

*Model step (sympy's chain rule, per model).* ``F`` enters as an abstract function
whose partial derivatives are again abstract functions (``F_c``, ``F_ce``, …), so
``sympy.diff`` differentiates ``ℓ`` through the *actual* network and produces the score
``∂_iℓ`` and curvature ``∂²_iℓ`` with the derivatives of ``F`` left unevaluated. Those are
replaced by free symbols ``η_c, κ_ce, …`` (the family's cumulants at ``h``), and we prove,
for every parameter, ``∂_iℓ − (T−η)ᵀu_i ≡ 0`` and
``∂²_iℓ − [(T−η)ᵀw_i − u_iᵀκ₂u_i] ≡ 0`` with ``u_i = ∂h/∂θ_i``, ``w_i = ∂²h/∂θ_i²``
computed separately from ``h``. This is the only place the network enters claims 1–3.

*Expectation step (pure algebra, per output dimension d).* The single-label estimators
are polynomials of degree ≤ 4 in ``T``; ``E_y`` replaces each monomial ``T^α`` by the raw
moment ``E[t^α]``. The raw moments are written as the moment–cumulant polynomials in
*free* cumulant symbols, ``E[t^α] = Σ_π Π_{B∈π} κ_{α_B}`` over all set partitions ``π``;
the closed forms use ``I = κ₂`` and ``μ₄ = κ₄ + 3·Sym(κ₂⊗κ₂)`` (docs/theory.md §1). With ``u_i``,
``w_i`` as free vectors too, each claim becomes a polynomial identity in ``(u, w, κ)``,
computed in the polynomial ring ``ℚ[T, u, w, κ]`` (sympy's sparse polynomials): its
representation is canonical, so "is the difference 0" costs nothing and a nonzero
difference is a certified refutation. Proved once per ``d``, in milliseconds, for every
family at once; substituting the network's ``u_i(θ, x)``, ``w_i(θ, x)`` (model step)
specialises it.

*Family step (the link, per family).* The identities hold for the family because its
own tensors are those polynomials of its own cumulants: we prove that
``fam.moment_about_entries(0, k)`` (the raw moments, ``k ≤ 4``),
``fam.central_moment_entries(k)`` and ``fam.quadratic_form``, ``fam.quartic_form``,
``fam.cumulant_form(4, ·)`` equal the moment–cumulant polynomials with the family's
cumulant entries ``∂^k F`` substituted. These are small expressions in ``h`` alone; for
loggamma families (gamma, beta) they are polynomials in ``polygamma(k, ·)`` and
``expand`` settles them — no rational-point evaluation of ``polygamma`` is ever needed.

So ``E[Î(θ_i)] − closed form`` is proved zero *through the family's raw moments*: the
family's raw moments are replaced by fresh symbols that satisfy exactly the
moment–cumulant relations the family satisfies (proved), which makes the identity purely
algebraic, fast and independent of how complicated ``F`` is.

Claim 7 (labels from the family at ``h_q``, model at ``h_p``) factors the same way: the
§5 closed forms and the shift formula are identities in the free cumulants of ``q`` and a
free model mean ``a = η(h_p)`` and Fisher ``J = I(h_p)``; the family step proves
``fam.moment_about_entries(a, k)`` (the family's shift formula) equal to the direct
expansion of ``E_q[Π(t − a)]`` through its raw moments, identically in ``a``.

Zero tests (:func:`prove_zero`): ``expand``, then ``cancel``, then ``simplify`` (small
expressions only); an expanded polynomial over ℚ that is not 0 is certified nonzero.
Only if all of these fail is the difference evaluated exactly at random rational points
(``method="exact-rational-points"``, a Schwartz–Zippel identity test); floating point is
never used to decide anything.

Inequalities (claim 5) are proved by an exact identity where one exists (the isotropic
Gaussian equalities; a sum-of-squares certificate for the categorical quartic bound; the
one-line Rayleigh/Gershgorin/trace identities of §4) and otherwise by exact evaluation at
random rational points: the network's ``u_i``, ``w_i`` at rational ``θ, x`` (the last
bias is solved so that ``h`` hits a chosen point of the family's domain; exp-type
families use ``h = log r``, which makes their tensors rational), eigenvalues of ``I`` and
of the symmetric matricisation of ``μ₄`` located by exact real-root isolation of their
characteristic polynomials (``Poly.intervals``). A smooth concrete activation is
evaluated through the placeholder network with rational values of ``σ, σ', σ''`` (the
bounds concern the vectors ``u_i``, ``w_i``, and every such value is realised by some
smooth activation). When a family's tensors are not
rational at any convenient point (``polygamma`` for gamma/beta, ``sqrt`` for an inverse
Gaussian), each number is enclosed in a rational interval by rigorous series bounds
(:func:`enclose`; Euler–Maclaurin for ``polygamma``) and eigenvalue enclosures are widened
by Weyl's perturbation bound; the decision is still made in exact rational arithmetic.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, lru_cache

import numpy as np
import sympy as sp
from sympy.polys.matrices import DomainMatrix
from sympy.polys.rings import PolyElement, ring

from fishsym.errors import ArgumentTypeError, InvalidArgumentError, UnsupportedModelError
from fishsym.symbolic import families as _registry
from fishsym.symbolic import models as _models
from fishsym.symbolic import tensors
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.models import SymbolicModel
from fishsym.symbolic.records import CheckResult

SYMBOLIC = "symbolic-simplify"
SOS = "symbolic-sos-certificate"
POINTS = "exact-rational-points"

#: sympy.simplify is tried only below this operation count: beyond it, it can run for
#: minutes, and the exact rational-point test is the better fallback
SIMPLIFY_OPS_LIMIT = 400
#: number of random rational points of the fallback identity test and of the bound checks
N_POINTS = 3
#: enclosures are rounded outward to multiples of 2^-PRECISION_BITS (~9e-78): far below
#: any gap an inequality check has to resolve, and it keeps rational sizes bounded
PRECISION_BITS = 256
#: width to which real roots of characteristic polynomials are isolated
ROOT_EPS = Fraction(1, 10**24)
#: the finite input distribution of claim 6 (one pair (x, y)): weights of three inputs
INPUT_WEIGHTS = (sp.Rational(1, 6), sp.Rational(1, 3), sp.Rational(1, 2))
#: the input law of the (N_x, N_y) form of claim 6: weights of two inputs
INPUT_WEIGHTS_NXNY = (sp.Rational(1, 3), sp.Rational(2, 3))
#: numbers of inputs and of labels per input of the (N_x, N_y) form checked in claim 6
N_X, N_Y = 2, 2
CLAIMS = (1, 2, 3, 4, 5, 6, 7)


# ============================================================================ zero tests
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

    ``expand`` → ``cancel`` → ``simplify`` (small expressions); an expanded polynomial
    over ℚ that is not 0 is certified nonzero (its expanded form is canonical). Otherwise
    the expression is evaluated exactly at ``n_points`` random rational points (free
    symbols drawn by their sign assumptions, placeholder functions given random rational
    values): a nonzero value proves nonzero; zeros at every point are reported as zero
    with ``method="exact-rational-points"`` — a Schwartz–Zippel identity test (a proof with
    high probability) for rational functions, a spot check otherwise. None of the
    registered families' proofs needs this fallback.
    """
    if isinstance(expr, PolyElement):
        # an element of ℚ[symbols]: its representation is canonical
        if expr == 0:
            return ZeroTest(True, SYMBOLIC, "0 in ℚ[symbols]")
        monom, coeff = expr.terms()[0]
        term = expr.ring({monom: coeff}).as_expr()
        return ZeroTest(False, SYMBOLIC, f"nonzero polynomial over ℚ, e.g. term {term}")
    e = sp.sympify(expr)
    if e == 0:
        return ZeroTest(True, SYMBOLIC, "identically 0")
    e = sp.expand(e)
    if e == 0:
        return ZeroTest(True, SYMBOLIC, "expand")
    if _is_polynomial_over_q(e):
        return ZeroTest(False, SYMBOLIC, f"nonzero polynomial, e.g. term {sp.Add.make_args(e)[0]}")
    if not e.has(sp.Piecewise):
        c = sp.cancel(sp.together(e))
        if c == 0:
            return ZeroTest(True, SYMBOLIC, "cancel")
        e = c
    if sp.count_ops(e) <= SIMPLIFY_OPS_LIMIT and sp.simplify(e) == 0:
        return ZeroTest(True, SYMBOLIC, "simplify")
    return _zero_at_points(e, rng or np.random.default_rng(0), n_points)


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


# ============================================================================ moments
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
        """``μ₄[a,b,c,e] = κ₄[abce] + κ₂[ab]κ₂[ce] + κ₂[ac]κ₂[be] + κ₂[ae]κ₂[bc]`` (docs/theory.md §1)."""
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


# ============================================================================ closed forms
def _fisher_diag(m, u):
    """``I(θ_i|x) = u_iᵀ I u_i`` (docs/theory.md §1)."""
    return m.quadratic(u)


def _var1(m, u):
    """``V₁ = μ₄[u⁴] − I(θ_i|x)²`` (docs/theory.md §2, N = 1)."""
    return m.quartic(u) - m.quadratic(u) ** 2


def _var1_cumulant(m, u):
    """``V₁ = κ₄[u⁴] + 2 I(θ_i|x)²`` (docs/theory.md §2)."""
    return m.cumulant4(u) + 2 * m.quadratic(u) ** 2


def _var2(m, w):
    """``V₂ = wᵀ I w`` (docs/theory.md §2)."""
    return m.quadratic(w)


def _cov1(m, u, v):
    """``Cov(Î₁(θ_i), Î₁(θ_j)) = μ₄[u_i,u_i,u_j,u_j] − I_ii I_jj`` (docs/theory.md §2)."""
    return m.form4(u, u, v, v) - m.quadratic(u) * m.quadratic(v)


def _cov2(m, w, x):
    """``Cov(Î₂(θ_i), Î₂(θ_j)) = w_iᵀ I w_j`` (docs/theory.md §2)."""
    return m.bilinear(w, x)


def _joint_var(v_cond, fisher_cond, weights, n_x=1, n_y=1):
    """``(1/N_x)(E_x[v_a]/N_y + Var_x[I(θ_i|x)])`` over a finite input law (docs/theory.md §5)."""
    e_v = sum(q * v for q, v in zip(weights, v_cond, strict=True))
    e_i = sum(q * f for q, f in zip(weights, fisher_cond, strict=True))
    var_i = sum(q * f**2 for q, f in zip(weights, fisher_cond, strict=True)) - e_i**2
    return (e_v * sp.Rational(1, n_y) + var_i) * sp.Rational(1, n_x)


def _delta_dot(mq, mp, u):
    """``δᵀu`` with ``δ = E_q[t] − η(h)``: data mean minus model mean."""
    return sum((a - b) * c for a, b, c in zip(mq.eta, mp.eta, u, strict=True))


def _empirical_mean(mq, mp, u):
    """``E_q[(∂_iℓ)²] = uᵀ(Cov_q[t] + δδᵀ)u`` with ``δ = E_q[t] − η(h)`` (docs/theory.md §5).

    ``mq``: moments of the data labels' law; ``mp``: the model's (``η(h)``, ``I(h)``).
    """
    return mq.quadratic(u) + _delta_dot(mq, mp, u) ** 2


def _empirical_bias(mq, mp, u):
    """``E_q[(∂_iℓ)²] − I(θ_i|x) = uᵀ(Cov_q[t] − I(h) + δδᵀ)u`` (docs/theory.md §5)."""
    return mq.quadratic(u) - mp.quadratic(u) + _delta_dot(mq, mp, u) ** 2


def _shifted_fourth(mq, mp, u):
    """``E_q[(uᵀ(t−η))⁴] = μ₄^q[u⁴] + 4μ₃^q[u³](δᵀu) + 6μ₂^q[u²](δᵀu)² + (δᵀu)⁴`` (docs/theory.md §5)."""
    du = _delta_dot(mq, mp, u)
    return mq.quartic(u) + 4 * mq.cubic(u) * du + 6 * mq.quadratic(u) * du**2 + du**4


def _empirical_var(mq, mp, u):
    """``E_q[(uᵀ(t−η))⁴] − (E_q[(uᵀ(t−η))²])²`` with the shift formula (docs/theory.md §5)."""
    return _shifted_fourth(mq, mp, u) - _empirical_mean(mq, mp, u) ** 2


def _empirical_hessian_mean(mq, mp, u, w):
    """``E_q[−∂²_iℓ] = I(θ_i|x) − δᵀw_i`` (docs/theory.md §5)."""
    return mp.quadratic(u) - _delta_dot(mq, mp, w)


def _empirical_hessian_var(mq, mp, w):
    """``Var_q[∂²_iℓ] = w_iᵀ Cov_q[t] w_i`` (docs/theory.md §5)."""
    return mq.quadratic(w)


@dataclass(frozen=True)
class ClosedForms:
    """The closed forms under test (docs/theory.md §1–§5). Replace one (``dataclasses.replace``)
    to see that a wrong formula is refuted: every check compares the exact expectation
    against these functions."""

    fisher_diag: Callable = _fisher_diag
    var1: Callable = _var1
    var1_cumulant: Callable = _var1_cumulant
    var2: Callable = _var2
    cov1: Callable = _cov1
    cov2: Callable = _cov2
    joint_var: Callable = _joint_var
    empirical_mean: Callable = _empirical_mean
    empirical_bias: Callable = _empirical_bias
    empirical_var: Callable = _empirical_var
    empirical_hessian_mean: Callable = _empirical_hessian_mean
    empirical_hessian_var: Callable = _empirical_hessian_var


CLOSED_FORMS = ClosedForms()


# ============================================================================ model step
class _LogPartitionDerivative(sp.Function):
    """``∂^{ms} F`` applied to ``h``: an abstract function whose derivative in argument
    ``c`` is ``∂^{ms+c} F`` — sympy's chain rule then leaves the cumulants unevaluated."""

    ms: tuple[int, ...] = ()

    @classmethod
    def eval(cls, *args):
        return None

    def fdiff(self, argindex=1):
        return log_partition_function(tuple(sorted((*self.ms, argindex - 1))))(*self.args)


@cache
def log_partition_function(ms: tuple[int, ...] = ()) -> type[_LogPartitionDerivative]:
    """The function class ``∂^{ms}F`` (``F`` itself for ``ms = ()``)."""
    name = "F" if not ms else "F_" + "".join(str(c + 1) for c in ms)
    return type(name, (_LogPartitionDerivative,), {"ms": tuple(ms)})


@dataclass(frozen=True, eq=False)
class Derivation:
    """ℓ, score and curvature of a model with an abstract log-partition ``F``.

    ``score[i] = ∂ℓ/∂θ_i`` and ``curvature[i] = ∂²ℓ/∂θ_i²`` as computed by sympy, with the
    derivatives of ``F`` at ``h(θ; x)`` replaced by the cumulant symbols of ``cumulants``.
    """

    model: SymbolicModel
    T: tuple[sp.Symbol, ...]
    cumulants: FreeCumulants
    loglik: sp.Expr
    score: tuple[sp.Expr, ...]
    curvature: tuple[sp.Expr, ...]


def suff_stat_symbols(d: int, tag: str = "") -> tuple[sp.Symbol, ...]:
    """``T_1..T_d``: the sufficient statistic as symbols (ℓ is linear in them)."""
    return tuple(sp.Symbol(f"T_{c + 1}{tag}", real=True) for c in range(d))


def derive(model: SymbolicModel) -> Derivation:
    """Differentiate ``ℓ = Tᵀh − F(h) + log k(y)`` through the model (cached per model)."""
    if "derivation" in model._cache:
        return model._cache["derivation"]
    d = model.d
    T = suff_stat_symbols(d)
    cum = FreeCumulants(d)
    F = log_partition_function(())(*model.outputs)
    loglik = (
        sum((t * h for t, h in zip(T, model.outputs, strict=True)), sp.Integer(0))
        - F
        + sp.Symbol("log_k_y")
    )
    score, curvature = [], []
    for theta in model.params:
        s = sp.diff(loglik, theta)
        score.append(s)
        curvature.append(sp.diff(s, theta))
    der = Derivation(
        model,
        T,
        cum,
        loglik,
        tuple(_to_cumulant_symbols(s, model, cum) for s in score),
        tuple(_to_cumulant_symbols(c, model, cum) for c in curvature),
    )
    model._cache["derivation"] = der
    return der


def _to_cumulant_symbols(expr: sp.Expr, model: SymbolicModel, cum: FreeCumulants) -> sp.Expr:
    mapping = {}
    for a in expr.atoms(_LogPartitionDerivative):
        if a.args != model.outputs:  # pragma: no cover - guards the construction above
            raise AssertionError(f"{a} is not evaluated at the model's h")
        mapping[a] = cum.kappa(a.ms)
    return expr.xreplace(mapping)


def expected_score(der: Derivation, i: int) -> sp.Expr:
    """``(T − η)ᵀ u_i`` (docs/theory.md §1) with ``u_i`` from the model."""
    u = der.model.jac(i)
    return sum(
        ((t - e) * uc for t, e, uc in zip(der.T, der.cumulants.eta, u, strict=True)), sp.Integer(0)
    )


def expected_curvature(der: Derivation, i: int) -> sp.Expr:
    """``(T − η)ᵀ w_i − u_iᵀ I u_i`` (docs/theory.md §1)."""
    w = der.model.hess_diag(i)
    lin = sum(
        ((t - e) * wc for t, e, wc in zip(der.T, der.cumulants.eta, w, strict=True)), sp.Integer(0)
    )
    return lin - der.cumulants.quadratic(der.model.jac(i))


@dataclass(frozen=True)
class StepResult:
    passed: bool
    method: str
    detail: str


def model_step(model: SymbolicModel) -> StepResult:
    """Prove ``∂_iℓ = (T−η)ᵀu_i`` and ``∂²_iℓ = (T−η)ᵀw_i − u_iᵀIu_i`` for every parameter."""
    if "model_step" in model._cache:
        return model._cache["model_step"]
    der = derive(model)
    methods, failures = set(), []
    for i in range(model.n_params):
        for what, got, want in (
            ("score", der.score[i], expected_score(der, i)),
            ("curvature", der.curvature[i], expected_curvature(der, i)),
        ):
            z = prove_zero(got - want)
            methods.add(z.method)
            if z.zero is not True:
                failures.append(f"{what} of {model.params[i]}: {z.note}")
    res = StepResult(
        not failures,
        _combine_methods(methods),
        f"{model.name}: ∂ℓ, ∂²ℓ by sympy's chain rule = docs/theory.md §1 forms for all "
        f"{model.n_params} parameters"
        if not failures
        else "; ".join(failures[:3]),
    )
    model._cache["model_step"] = res
    return res


def _combine_methods(methods: Iterable[str]) -> str:
    methods = set(methods)
    return POINTS if POINTS in methods else (SOS if SOS in methods else SYMBOLIC)


# ============================================================================ identities
def vector_symbols(name: str, d: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"{name}_{c + 1}", real=True) for c in range(d))


def squared_score(T, cum, u) -> sp.Expr:
    """Single-label ``Î₁ = ((T − η)ᵀu)²``."""
    return sum(((t - e) * uc for t, e, uc in zip(T, cum.eta, u, strict=True)), sp.Integer(0)) ** 2


def neg_hessian(T, cum, u, w) -> sp.Expr:
    """Single-label ``Î₂ = −[(T − η)ᵀw − uᵀIu]``."""
    lin = sum(((t - e) * wc for t, e, wc in zip(T, cum.eta, w, strict=True)), sp.Integer(0))
    return cum.quadratic(u) - lin


def _var(cum, T, f):
    return cum.expect(f**2, T) - cum.expect(f, T) ** 2


def _cov(cum, T, f, g):
    return cum.expect(f * g, T) - cum.expect(f, T) * cum.expect(g, T)


def polynomial_ring(cumulant_sets: Sequence[FreeCumulants], *symbol_groups: Sequence[sp.Symbol]):
    """``ℚ[all symbols]``: returns the ring, the cumulant sets bound to it and the symbol
    groups as ring generators. Polynomial-ring arithmetic is exact and its zero test is
    free (canonical representation) — the identities of the expectation step live here."""
    syms = [s for c in cumulant_sets for s in c.symbols] + [s for g in symbol_groups for s in g]
    R = ring(syms, sp.QQ)[0]
    gens = dict(zip(R.symbols, R.gens, strict=True))
    return (
        R,
        [c.bind(R) for c in cumulant_sets],
        [tuple(gens[s] for s in g) for g in symbol_groups],
    )


@cache
def identities(
    d: int, claim: int, cf: ClosedForms = CLOSED_FORMS
) -> tuple[tuple[str, ZeroTest], ...]:
    """The expectation-step identities of a claim for output dimension ``d``, proved.

    Returns ``(statement, ZeroTest)`` pairs; cached (they do not depend on the family).
    """
    R, (cum,), (T, u, v, w, x) = polynomial_ring(
        [FreeCumulants(d)], suff_stat_symbols(d), *(vector_symbols(n, d) for n in "uvwx")
    )
    I1u, I2u = squared_score(T, cum, u), neg_hessian(T, cum, u, w)
    out: list[tuple[str, sp.Expr]] = []
    if claim == 1:
        out += [
            ("E Î₁ = uᵀIu", cum.expect(I1u, T) - cf.fisher_diag(cum, u)),
            ("E Î₂ = uᵀIu", cum.expect(I2u, T) - cf.fisher_diag(cum, u)),
        ]
    elif claim == 2:
        out += [
            ("Var Î₁ = μ₄[u⁴] − I²", _var(cum, T, I1u) - cf.var1(cum, u)),
            ("μ₄[u⁴] − I² = κ₄[u⁴] + 2I²", cf.var1(cum, u) - cf.var1_cumulant(cum, u)),
            ("Var Î₂ = wᵀIw", _var(cum, T, I2u) - cf.var2(cum, w)),
        ]
    elif claim == 3:
        I1v, I2v = squared_score(T, cum, v), neg_hessian(T, cum, v, x)
        out += [
            (
                "Cov(Î₁(θ_i), Î₁(θ_j)) = μ₄[u_i,u_i,u_j,u_j] − I_ii I_jj",
                _cov(cum, T, I1u, I1v) - cf.cov1(cum, u, v),
            ),
            ("Cov(Î₂(θ_i), Î₂(θ_j)) = w_iᵀIw_j", _cov(cum, T, I2u, I2v) - cf.cov2(cum, w, x)),
            ("Cov(Î₁(θ_i), Î₁(θ_i)) = V₁", cf.cov1(cum, u, u) - cf.var1(cum, u)),
        ]
    elif claim == 4:
        zero_w = (sp.Integer(0),) * d
        I2_affine = neg_hessian(T, cum, u, zero_w)
        out += [
            ("w = 0 ⇒ Î₂ = uᵀIu from one label", I2_affine - cf.fisher_diag(cum, u)),
            ("w = 0 ⇒ Var Î₂ = 0", _var(cum, T, I2_affine)),
            ("w = 0 ⇒ wᵀIw = 0", cf.var2(cum, zero_w)),
        ]
    elif claim == 6:
        out += _decomposition_identities(d, cf)
    else:
        raise ValueError(f"identities exist for claims 1, 2, 3, 4, 6; got {claim}")
    return tuple((label, prove_zero(e)) for label, e in out)


def _decomposition_identities(d: int, cf: ClosedForms) -> list[tuple[str, sp.Expr]]:
    """Claim 6: joint (x, y) estimators over a finite input law (docs/theory.md §5).

    Input ``n`` has its own cumulants (``h`` differs per input) and its own ``u``, ``w``.
    The joint expectation is ``Σ_n q_n E_y[· | x_n]``; labels of different draws are
    independent, so a monomial's expectation factorises over the label copies.
    """
    q = INPUT_WEIGHTS
    n_in = len(q)
    draws = [(k, j) for k in range(N_X) for j in range(N_Y)]
    R, cums, groups = polynomial_ring(
        [FreeCumulants(d, tag=f"^{n + 1}") for n in range(n_in)],
        *(vector_symbols(f"u^{n + 1}", d) for n in range(n_in)),
        *(vector_symbols(f"w^{n + 1}", d) for n in range(n_in)),
        suff_stat_symbols(d),
        *(suff_stat_symbols(d, tag=f"^({k + 1},{j + 1})") for k, j in draws),
    )
    us, ws = groups[:n_in], groups[n_in : 2 * n_in]
    T = groups[2 * n_in]
    labels = dict(zip(draws, groups[2 * n_in + 1 :], strict=True))
    out = []
    for a, name in ((1, "Î₁"), (2, "Î₂")):

        def est(T, n, a=a):
            if a == 1:
                return squared_score(T, cums[n], us[n])
            return neg_hessian(T, cums[n], us[n], ws[n])

        def v_cond(n, a=a):
            return cf.var1(cums[n], us[n]) if a == 1 else cf.var2(cums[n], ws[n])

        # one pair (x, y): E[f] = Σ_n q_n E[f | x_n]
        mean = sum(q[n] * cums[n].expect(est(T, n), T) for n in range(n_in))
        second = sum(q[n] * cums[n].expect(est(T, n) ** 2, T) for n in range(n_in))
        fisher_cond = [cf.fisher_diag(cums[n], us[n]) for n in range(n_in)]
        vs = [v_cond(n) for n in range(n_in)]
        out.append(
            (
                f"Var {name}(x,y) = E_x v + Var_x I",
                second - mean**2 - cf.joint_var(vs, fisher_cond, q),
            )
        )
        # N_x inputs drawn i.i.d. from the first two inputs' law, N_y labels each.
        # Î = mean of the N_x·N_y single-label estimators; E[Î²] is expanded over all pairs
        # of draws, each pair's expectation taken over its own label copies (which
        # factorises when the copies differ) and over the inputs the pair sees.
        q2 = INPUT_WEIGHTS_NXNY
        first_m = second_m = sp.Integer(0)
        for assign in itertools.product(range(2), repeat=N_X):
            weight = math.prod(q2[n] for n in assign)
            for dr in draws:
                first_m += weight * cums[assign[dr[0]]].expect(
                    est(labels[dr], assign[dr[0]]), labels[dr]
                )
            for d1, d2 in itertools.product(draws, repeat=2):
                n1, n2 = assign[d1[0]], assign[d2[0]]
                copies = [(labels[d1], cums[n1])] + ([] if d1 == d2 else [(labels[d2], cums[n2])])
                product = est(labels[d1], n1) * est(labels[d2], n2)
                second_m += weight * expect_independent(product, copies)
        first_m *= sp.Rational(1, N_X * N_Y)
        second_m *= sp.Rational(1, (N_X * N_Y) ** 2)
        out.append(
            (
                f"Var {name} over (N_x={N_X}, N_y={N_Y}) = (E_x v/N_y + Var_x I)/N_x",
                second_m - first_m**2 - cf.joint_var(vs[:2], fisher_cond[:2], q2, N_X, N_Y),
            )
        )
    return out


# ============================================================================ family link
_LINK_CACHE: dict[int, tuple[ExponentialFamily, StepResult]] = {}


def family_link(fam: ExponentialFamily) -> StepResult:
    """Prove the family's tensors are the moment–cumulant polynomials of its cumulants.

    ``E[t^α]`` (``fam.moment_about_entries(0, k)``, ``k ≤ 4``), ``μ_k``
    (``fam.central_moment_entries``) and the forms ``vᵀIv``, ``μ₄[v⁴]``, ``κ₄[v⁴]`` of the
    family equal the :class:`FreeCumulants` expressions with ``κ_ms → ∂^{ms}F(h)``.
    """
    key = id(fam)
    if key in _LINK_CACHE and _LINK_CACHE[key][0] is fam:
        return _LINK_CACHE[key][1]
    d = fam.dim
    cum = FreeCumulants(d)
    sub = {}
    for k in range(1, 5):
        for ms, val in fam.cumulant_entries(k).items():
            sub[cum.kappa(ms)] = val
    fm = FamilyMoments(fam)
    checks: list[tuple[str, sp.Expr]] = []
    for k in range(1, 5):
        for ms in tensors.multisets(d, k):
            checks.append((f"E[t^{ms}]", fm.raw(ms) - cum.raw(ms).xreplace(sub)))
    c4 = cum.central4_entries()
    for ms, val in fam.central_moment_entries(4).items():
        checks.append((f"μ₄{ms}", val - c4[ms].xreplace(sub)))
    for k in (2, 3):
        for ms, val in fam.central_moment_entries(k).items():
            checks.append((f"μ_{k}{ms}", val - cum.kappa(ms).xreplace(sub)))
    v = vector_symbols("v", d)
    checks += [
        ("vᵀIv", fm.quadratic(v) - cum.quadratic(v).xreplace(sub)),
        ("μ₄[v⁴]", fm.quartic(v) - cum.quartic(v).xreplace(sub)),
        ("κ₄[v⁴]", fm.cumulant4(v) - cum.cumulant4(v).xreplace(sub)),
    ]
    methods, failures = set(), []
    for label, e in checks:
        z = prove_zero(e)
        methods.add(z.method)
        if z.zero is not True:
            failures.append(f"{label}: {z.note}")
    res = StepResult(
        not failures,
        _combine_methods(methods),
        f"{fam.name}: {len(checks)} raw/central moment entries and forms = moment–cumulant "
        "polynomials of ∂ᵏF"
        if not failures
        else "; ".join(failures[:3]),
    )
    _LINK_CACHE[key] = (fam, res)
    return res


# ============================================================================ claims 1-4, 6
CLAIM_TEXT = {
    1: "unbiased: E Î₁ = E Î₂ = uᵀIu",
    2: "V₁ = μ₄[u⁴]−I² = κ₄[u⁴]+2I², V₂ = wᵀIw",
    3: "covariances (pullback forms)",
    4: "V₂ ≡ 0 where h is affine",
    5: "bounds of docs/theory.md §3",
    6: "input/label decomposition",
    7: "empirical Fisher mean, bias, variance",
}


def _model_tag(model: SymbolicModel) -> str:
    act = model.spec.activation
    return model.spec.kind + ("" if act in (None, "sigma") else f"/{act}")


def _family_label(fam: ExponentialFamily) -> str:
    sizes = ",".join(f"{k}={v}" for k, v in fam.sizes.items())
    return f"{fam.name}({sizes})" if sizes else fam.name


def _identity_claim(fam, model, claim: int, cf: ClosedForms, extra: str = "") -> CheckResult:
    t0 = time.perf_counter()
    step = model_step(model)
    proofs = identities(model.d, claim, cf)
    link = family_link(fam)
    failed = [f"{label}: {z.note}" for label, z in proofs if z.zero is not True]
    passed = step.passed and link.passed and not failed
    methods = {step.method, link.method, *(z.method for _, z in proofs)}
    parts = [step.detail]
    parts.append(
        f"E through raw moments (free cumulants, d={model.d}): "
        + (
            "; ".join(label for label, _ in proofs) + " — differences 0"
            if not failed
            else "FAILED " + "; ".join(failed)
        )
    )
    parts.append("family link ✓" if link.passed else f"family link FAILED: {link.detail}")
    if extra:
        parts.append(extra)
    parts.append(f"{time.perf_counter() - t0:.2f}s")
    return CheckResult(
        f"{claim}. {CLAIM_TEXT[claim]} [{_model_tag(model)}]",
        _family_label(fam),
        _combine_methods(methods),
        passed,
        " | ".join(parts),
    )


def check_affine(fam, model: SymbolicModel, cf: ClosedForms = CLOSED_FORMS) -> list[CheckResult]:
    """Claim 4: ``w_i ≡ 0`` exactly for the affine parameters, hence ``Î₂`` is exact from
    one label and ``V₂ = 0``; and for ReLU / leaky-ReLU networks on every sign region."""
    out = []
    affine = model.affine_params()
    expected = (
        tuple(range(model.n_params)) if model.spec.kind == "glm" else model.last_layer_indices
    )
    if model.spec.activation in _models.PIECEWISE_LINEAR:
        expected = tuple(range(model.n_params))
    der = derive(model)
    # the derived single-label Î₂ = −∂²ℓ contains no t at all: exact from one label
    t_free = all(not sp.piecewise_fold(der.curvature[i]).has(*der.T) for i in affine)
    ok_set = affine == expected
    extra = (
        f"w_i ≡ 0 for {len(affine)}/{model.n_params} parameters "
        f"({', '.join(sorted({model.group_of(i) for i in affine}))}), expected "
        f"{'all' if len(expected) == model.n_params else 'the last layer'}"
        + ("" if ok_set else f" — MISMATCH: affine {affine} vs expected {expected}")
        + f"; derived −∂²ℓ free of t for all of them: {t_free}"
    )
    rec = _identity_claim(fam, model, 4, cf, extra)
    out.append(
        CheckResult(rec.claim, rec.family, rec.method, rec.passed and ok_set and t_free, rec.detail)
    )
    if model.spec.kind != "glm":
        for act in _models.PIECEWISE_LINEAR:
            out.append(_check_piecewise_network(fam, model, act, cf))
    return out


def _check_piecewise_network(fam, model: SymbolicModel, act: str, cf: ClosedForms) -> CheckResult:
    t0 = time.perf_counter()
    spec = model.spec
    kwargs = {"n_in": spec.n_in}
    if spec.kind == "mlp1":
        kwargs["width"] = spec.widths[0]
    else:
        kwargs["widths"] = spec.widths
    net = _models.build(spec.kind, spec.d, activation=act, **kwargs)
    regions = net.regions()
    if "regions_not_affine" not in net._cache:
        net._cache["regions_not_affine"] = [
            signs
            for signs in regions
            if len((reg := net.on_region(signs)).affine_params()) != reg.n_params
        ]
    bad = net._cache["regions_not_affine"]
    piecewise_all = len(net.affine_params()) == net.n_params
    step = model_step(net)
    proofs = identities(spec.d, 4, cf)
    link = family_link(fam)
    passed = (
        not bad
        and piecewise_all
        and step.passed
        and all(z.zero is True for _, z in proofs)
        and link.passed
    )
    detail = (
        f"{step.detail}; {net.name}: on each of the {len(regions)} sign regions of the "
        "hidden pre-activations "
        f"the activation is its linear piece and w_i ≡ 0 for all {net.n_params} parameters"
        + (f" (FAILED on {bad[:3]})" if bad else "")
        + f"; Piecewise form: every branch of ∂²h/∂θ_i² is 0 away from the kinks: {piecewise_all}"
        + f"; hence V₂ = 0 and Î₂ = I(θ|x) exactly | {time.perf_counter() - t0:.2f}s"
    )
    return CheckResult(
        f"4. V₂ ≡ 0 for {act} nets off the kinks [{spec.kind}]",
        _family_label(fam),
        _combine_methods({step.method, link.method, *(z.method for _, z in proofs)}),
        passed,
        detail,
    )


def check_decomposition(
    fam, model: SymbolicModel, cf: ClosedForms = CLOSED_FORMS, seed: int = 0
) -> CheckResult:
    """Claim 6: law of total variance over a finite input distribution (docs/theory.md §5).

    The inputs are fixed rationals with weights :data:`INPUT_WEIGHTS`; at each input the
    model step gives ``score = (T − η(h(θ;x_n)))ᵀu_i(x_n)``, the cumulants of the label law
    differ per input, and the identities are proved with per-input free cumulants.
    """
    rng = np.random.default_rng(seed)
    xs = [[_models.random_rational(rng) for _ in model.inputs] for _ in INPUT_WEIGHTS]
    per_input = [model_step(model.at_inputs(x)) if model.inputs else model_step(model) for x in xs]
    ok_inputs = all(s.passed for s in per_input)
    extra = (
        f"inputs {[tuple(map(str, x)) for x in xs]} "
        f"with weights {[str(q) for q in INPUT_WEIGHTS]}: "
        f"model step at each input ✓"
        if ok_inputs
        else "model step FAILED at an input"
    )
    rec = _identity_claim(fam, model, 6, cf, extra)
    return CheckResult(rec.claim, rec.family, rec.method, rec.passed and ok_inputs, rec.detail)


# ============================================================================ claim 7
def shift_moment(mq, point, ms: Sequence[int]):
    """``E_q[Π_j (t − a)_{ms_j}] = Σ_S μ^q_{|S|}[ms_S] Π_{j∉S} δ_{ms_j}`` with ``δ = η_q − a``,
    over subsets ``S`` of the positions (``μ₀ = 1``, ``μ₁ = 0``; docs/theory.md §5)."""
    k = len(ms)
    central4 = mq.central4_entries()
    total = sp.Integer(0)
    for subset in tensors.positions_subsets(k):
        if len(subset) == 1:
            continue
        sub_ms = tuple(sorted(ms[j] for j in subset))
        term = (
            sp.Integer(1)
            if not subset
            else central4[sub_ms]
            if len(subset) == 4
            else mq.kappa(sub_ms)
        )
        for j in range(k):
            if j not in subset:
                term = term * (mq.kappa((ms[j],)) - point[ms[j]])
        total = total + term
    return total


@cache
def empirical_identities(
    d: int, cf: ClosedForms = CLOSED_FORMS
) -> tuple[tuple[str, ZeroTest], ...]:
    """Claim 7 expectation step in free cumulants, proved (cached per ``d``).

    Data labels ``t ~ q`` with free cumulants ``κ^q``; the model's mean ``η(h) = a`` and
    Fisher ``I(h) = J`` are free too (they are the family's at another natural parameter
    ``h_p``; the identities hold for every value). Score ``(T − a)ᵀu``, curvature
    ``(T − a)ᵀw − uᵀJu``; ``E_q`` through the raw moments of ``q``.
    """
    R, (cq, cp), (T, u, w) = polynomial_ring(
        [FreeCumulants(d, tag="^q"), FreeCumulants(d, tag="^p")],
        suff_stat_symbols(d),
        vector_symbols("u", d),
        vector_symbols("w", d),
    )
    a = cp.eta
    score = sum(((t - e) * uc for t, e, uc in zip(T, a, u, strict=True)), sp.Integer(0))
    curv = sum(
        ((t - e) * wc for t, e, wc in zip(T, a, w, strict=True)), sp.Integer(0)
    ) - cp.quadratic(u)
    e2, e4 = cq.expect(score**2, T), cq.expect(score**4, T)
    shift_tests = []
    for k in (2, 3, 4):
        for ms in tensors.multisets(d, k):
            direct = cq.expect(math.prod((T[c] - a[c] for c in ms), start=R.one), T)
            shift_tests.append((ms, prove_zero(shift_moment(cq, a, ms) - direct)))
    bad = [f"{ms}: {z.note}" for ms, z in shift_tests if z.zero is not True]
    shift = ZeroTest(
        not bad, SYMBOLIC, "0 in ℚ[symbols] for every entry" if not bad else "; ".join(bad[:3])
    )
    out = [
        ("E_q[(∂ℓ)²] = uᵀ(Cov_q + δδᵀ)u", e2 - cf.empirical_mean(cq, cp, u)),
        ("bias = uᵀ(Cov_q − I + δδᵀ)u", e2 - cp.quadratic(u) - cf.empirical_bias(cq, cp, u)),
        (
            "Var_q[(∂ℓ)²] = shift-formula 4th moment − mean²",
            e4 - e2**2 - cf.empirical_var(cq, cp, u),
        ),
        ("E_q[−∂²ℓ] = I(θ|x) − δᵀw", cq.expect(-curv, T) - cf.empirical_hessian_mean(cq, cp, u, w)),
        ("Var_q[−∂²ℓ] = wᵀCov_q w", _var(cq, T, curv) - cf.empirical_hessian_var(cq, cp, w)),
    ]
    label = (
        f"E_q[(t−a)^⊗k]: shift formula = direct raw moments ({len(shift_tests)} entries, k=2..4)"
    )
    return ((label, shift), *((lab, prove_zero(e)) for lab, e in out))


_SHIFT_LINK_CACHE: dict[int, tuple[ExponentialFamily, StepResult]] = {}


def family_shift_link(fam: ExponentialFamily) -> StepResult:
    """The family's shift formula against its raw moments, at a free point ``a``.

    ``fam.moment_about_entries(a, k)`` (k = 2..4) equals ``E[Π_j (t − a)_{ms_j}]``
    expanded through ``fam.moment_about_entries(0, ·)`` (its raw moments), identically in
    ``a`` — so in particular at ``a = η(h_p)`` for any other natural parameter ``h_p``.
    """
    key = id(fam)
    if key in _SHIFT_LINK_CACHE and _SHIFT_LINK_CACHE[key][0] is fam:
        return _SHIFT_LINK_CACHE[key][1]
    d = fam.dim
    a = vector_symbols("a", d)
    T = suff_stat_symbols(d)
    fm = FamilyMoments(fam)
    failures, methods, n = [], set(), 0
    for k in (2, 3, 4):
        for ms, val in fam.moment_about_entries(list(a), k).items():
            direct = fm.expect(sp.Mul(*[T[c] - a[c] for c in ms]), T)
            z = prove_zero(val - direct)
            methods.add(z.method)
            n += 1
            if z.zero is not True:
                failures.append(f"{ms}: {z.note}")
    res = StepResult(
        not failures,
        _combine_methods(methods),
        f"fam.moment_about_entries(a, k) = direct raw-moment expansion for {n} entries (k=2..4)"
        if not failures
        else "; ".join(failures[:3]),
    )
    _SHIFT_LINK_CACHE[key] = (fam, res)
    return res


def check_empirical(
    fam: ExponentialFamily, model: SymbolicModel, cf: ClosedForms = CLOSED_FORMS
) -> list[CheckResult]:
    """Claim 7: empirical Fisher with labels from ``q`` = the family at ``h_q`` (docs/theory.md §5).

    The model's natural parameter is ``h_p`` (mean ``η(h_p)``, Fisher ``I(h_p)``); by the
    model step its score is ``(t − η(h_p))ᵀu_i``. Three exact steps: the identities of
    :func:`empirical_identities` (free cumulants of ``q``, free ``η(h_p)``, ``I(h_p)``);
    the family's shift formula ``fam.moment_about_entries`` against its raw moments
    (:func:`family_shift_link`); and the family link for its raw/central moments.
    """
    t0 = time.perf_counter()
    step = model_step(model)
    link = family_link(fam)
    shift = family_shift_link(fam)
    proofs = empirical_identities(fam.dim, cf)
    common = [step.passed, link.passed]
    methods = {step.method, link.method, shift.method, *(z.method for _, z in proofs)}
    (shift_label, shift_zero), rest = proofs[0], proofs[1:]
    tail = (
        f"{step.detail}; family link {'✓' if link.passed else 'FAILED: ' + link.detail} "
        f"| {time.perf_counter() - t0:.2f}s"
    )
    return [
        CheckResult(
            f"7. empirical: moments about η(h_p) (shift) [{_model_tag(model)}]",
            _family_label(fam),
            _combine_methods(methods),
            all(common) and shift.passed and shift_zero.zero is True,
            f"free cumulants: {shift_label}: {shift_zero.note}; family: {shift.detail}; {tail}",
        ),
        CheckResult(
            f"7. {CLAIM_TEXT[7]} [{_model_tag(model)}]",
            _family_label(fam),
            _combine_methods(methods),
            all(common) and shift.passed and all(z.zero is True for _, z in rest),
            "labels from the family at h_q, model at h_p, E_q through the raw moments of q: "
            + "; ".join(f"{lab} {'✓' if z.zero is True else '✗ ' + z.note}" for lab, z in rest)
            + f"; {tail}",
        ),
    ]


# ============================================================================ exact reals
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


def _monotone(fn, iv: Interval, increasing: bool) -> Interval:
    a, b = fn(iv.lo), fn(iv.hi)
    return Interval(a.lo, b.hi) if increasing else Interval(b.lo, a.hi)


def enclose(expr) -> Interval:
    """A rigorous rational interval containing the real number ``expr``.

    Supports rationals, ``π``, ``e``, sums, products, integer and rational powers,
    ``exp``, ``log``, ``polygamma(k ≥ 1, ·)``, ``Abs`` and the hyperbolic functions (via
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


# ============================================================================ claim 5
def _rational_near(x: float, denominator: int = 64) -> sp.Rational:
    return sp.Rational(int(round(x * denominator)), denominator)


def family_point(fam: ExponentialFamily, rng: np.random.Generator) -> tuple[dict, str]:
    """A point ``h0`` of the family's domain where its tensors are exact numbers.

    Tries a rational ``h`` and ``h = log r`` (rational ``r``; makes exp-type families'
    tensors rational); returns the first at which ``I`` and ``μ₄`` are rational, else the
    rational ``h`` (whose tensors are then enclosed rigorously).
    """
    base = fam.random_natural_params(rng)
    candidates = [(base, "h rational")]
    logs = {}
    for h, val in base.items():
        r = _rational_near(math.exp(float(val)))
        if r <= 0:
            break
        logs[h] = sp.log(r)
    else:
        if _in_domain(fam, logs):
            candidates.append((logs, "h = log r, r rational"))
    for point, how in candidates:
        ent = [*fam.cumulant_entries(2).values(), *fam.central_moment_entries(4).values()]
        if all(sp.sympify(e).xreplace(point).is_Rational for e in ent):
            return point, how + " (tensors rational)"
    return base, "h rational (tensors enclosed)"


def _in_domain(fam: ExponentialFamily, point: Mapping) -> bool:
    for h, interval in fam.domain.intervals.items():
        iv = enclose(point[h])
        if not (interval.inf == -sp.oo or iv.lo > Fraction(str(interval.inf))):
            return False
        if not (interval.sup == sp.oo or iv.hi < Fraction(str(interval.sup))):
            return False
    return True


def _isotropic(entries_form: sp.Expr, v: Sequence[sp.Symbol], power: int) -> sp.Expr | None:
    """``c`` if the form equals ``c·‖v‖^{power}`` identically for a constant ``c``, else None."""
    e1 = sp.sympify(entries_form).xreplace({s: (1 if k == 0 else 0) for k, s in enumerate(v)})
    if e1.free_symbols:
        return None
    norm = sum(s**2 for s in v) ** (power // 2)
    return e1 if sp.expand(entries_form - e1 * norm) == 0 else None


def check_bounds(
    fam: ExponentialFamily, model: SymbolicModel, seed: int = 0, n_points: int = N_POINTS
) -> list[CheckResult]:
    """Claim 5: the bounds of docs/theory.md §3 at exact random points, plus isotropic equality.

    At each point, per parameter (N = 1): ``‖w‖²λ_min(I) ≤ V₂ ≤ ‖w‖²λ_max(I)``,
    ``‖u‖⁴λ_lo(μ₄) − I² ≤ V₁ ≤ ‖u‖⁴λ_hi(μ₄) − I²``, the spectral forms
    ``‖u‖⁴(λ_lo(μ₄) − λ_max(I)²) ≤ V₁ ≤ ‖u‖⁴(λ_hi(μ₄) − λ_min(I)²)``, and per tensor
    group the trace forms. ``λ_lo/λ_hi(μ₄)`` are the certified bounds of the Sym²
    matricisation (or the closed form when ``μ₄[v⁴] = c‖v‖⁴``).

    The bounds are statements about the vectors ``u_i``, ``w_i`` at one ``h``; the network
    supplies them. A smooth concrete activation (sigmoid, tanh, softplus) has
    transcendental values at rational points, so the point evaluation uses the same
    architecture with the placeholder activation, whose values ``σ(a), σ'(a), σ''(a)``
    are drawn as random rationals (every such triple is realised by some smooth ``σ``):
    ``u_i``, ``w_i`` are then exact rationals. ReLU networks are evaluated as they are.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    d = fam.dim
    tag = _model_tag(model)
    if model.spec.activation in ("sigmoid", "tanh", "softplus"):
        spec = model.spec
        sizes = {"n_in": spec.n_in}
        sizes.update({"width": spec.widths[0]} if spec.kind == "mlp1" else {"widths": spec.widths})
        model = _models.build(spec.kind, d, activation="sigma", **sizes)
    v = vector_symbols("v", d)
    fam_label = _family_label(fam)
    out: list[CheckResult] = []

    # isotropic heads (Gaussian with known covariance): the bounds are equalities
    iso2 = _isotropic(fam.quadratic_form(list(v)), v, 2)
    iso4 = _isotropic(fam.quartic_form(list(v)), v, 4)
    if iso2 is not None and iso4 is not None and iso4 == 3 * iso2**2:
        u, w = vector_symbols("u", d), vector_symbols("w", d)
        nu, nw = sum(s**2 for s in u), sum(s**2 for s in w)
        fu = fam.quadratic_form(list(u))
        v1 = fam.quartic_form(list(u)) - fu**2
        eqs = [
            ("I(θ|x) = σ²‖u‖²", fu - iso2 * nu),
            ("V₁ = 2σ⁴‖u‖⁴ = ‖u‖⁴λ_max(μ₄) − I² = ‖u‖⁴λ_min(μ₄) − I²", v1 - 2 * iso2**2 * nu**2),
            ("upper = lower for V₁", (nu**2 * iso4 - fu**2) - v1),
            ("V₂ = ‖w‖²λ_max(I) = ‖w‖²λ_min(I)", fam.quadratic_form(list(w)) - iso2 * nw),
            ("coefficient of variation of Î₁ = √2", v1 - 2 * fu**2),
        ]
        proofs = [(lab, prove_zero(e)) for lab, e in eqs]
        out.append(
            CheckResult(
                "5. isotropic (Gaussian) head: bounds hold with equality",
                fam_label,
                SYMBOLIC,
                all(z.zero is True for _, z in proofs),
                f"I = {iso2}·Id, μ₄[v⁴] = {iso4}‖v‖⁴ exactly; "
                + "; ".join(lab for lab, _ in proofs),
            )
        )

    failures, n_checked, hows = [], 0, set()
    for _ in range(n_points):
        h0, how_point = family_point(fam, rng)
        hows.add(how_point)
        values = model.sample_point(rng, [h0[h] for h in fam.natural_params])
        I = fam.fisher.xreplace(h0)
        mu4 = {
            ms: sp.sympify(val).xreplace(h0) for ms, val in fam.central_moment_entries(4).items()
        }
        if iso2 is not None:
            lam_min_I = lam_max_I = Value.of(iso2)
        else:
            lam_min_I, lam_max_I, how = extreme_eigenvalues(I)
            hows.add("λ(I): " + how)
        if iso4 is not None:
            lam_lo = lam_hi = Value.of(iso4)
            hows.add("λ(μ₄): closed form")
        else:
            G, D = sym2_pencil(mu4, d)
            lam_lo, lam_hi, how = extreme_eigenvalues(G, D)
            hows.add("λ(μ₄): Sym² matricisation, " + how)
        jac = [_models.substitute(model.jac(i), values) for i in range(model.n_params)]
        hes = [_models.substitute(model.hess_diag(i), values) for i in range(model.n_params)]
        opaque = {}
        for vec in (*jac, *hes):
            for e in vec:
                for a in _opaque_atoms(sp.sympify(e)):
                    opaque.setdefault(a, _models.random_rational(rng))
        jac = [[sp.sympify(e).xreplace(opaque) for e in vec] for vec in jac]
        hes = [[sp.sympify(e).xreplace(opaque) for e in vec] for vec in hes]
        group_sums: dict[str, dict[str, Value]] = {}
        for i in range(model.n_params):
            u, w = jac[i], hes[i]
            nu = Value.of(sum(e**2 for e in u))
            nw = Value.of(sum(e**2 for e in w))
            fisher_u = Value.of(sp.expand((sp.Matrix(u).T * I * sp.Matrix(u))[0, 0]))
            q4 = Value.of(sp.expand(tensors.symmetric_form(mu4, d, 4, u)))
            v2 = Value.of(sp.expand((sp.Matrix(w).T * I * sp.Matrix(w))[0, 0]))
            v1 = q4 - fisher_u**2
            ineqs = [
                ("‖w‖²λ_min(I) ≤ V₂", nw * lam_min_I, v2),
                ("V₂ ≤ ‖w‖²λ_max(I)", v2, nw * lam_max_I),
                ("‖u‖⁴λ_lo(μ₄) − I² ≤ V₁", nu**2 * lam_lo - fisher_u**2, v1),
                ("V₁ ≤ ‖u‖⁴λ_hi(μ₄) − I²", v1, nu**2 * lam_hi - fisher_u**2),
                ("‖u‖⁴(λ_lo(μ₄) − λ_max(I)²) ≤ V₁", nu**2 * (lam_lo - lam_max_I**2), v1),
                ("V₁ ≤ ‖u‖⁴(λ_hi(μ₄) − λ_min(I)²)", v1, nu**2 * (lam_hi - lam_min_I**2)),
            ]
            for label, lhs, rhs in ineqs:
                ok, why = certify_le(lhs, rhs)
                n_checked += 1
                if ok is not True:
                    failures.append(f"{model.params[i]}: {label} ({why})")
            g = group_sums.setdefault(
                model.group_of(i),
                {k: Value.of(0) for k in ("v1", "v2", "nu2", "nw", "i2")},
            )
            g["v1"], g["v2"] = g["v1"] + v1, g["v2"] + v2
            g["nu2"], g["nw"], g["i2"] = g["nu2"] + nu**2, g["nw"] + nw, g["i2"] + fisher_u**2
        for name, g in group_sums.items():
            for label, lhs, rhs in (
                ("Σ V₂ ≤ λ_max(I) Σ‖w‖²", g["v2"], g["nw"] * lam_max_I),
                ("λ_min(I) Σ‖w‖² ≤ Σ V₂", g["nw"] * lam_min_I, g["v2"]),
                ("Σ V₁ ≤ λ_hi(μ₄) Σ‖u‖⁴ − Σ I²", g["v1"], g["nu2"] * lam_hi - g["i2"]),
                ("λ_lo(μ₄) Σ‖u‖⁴ − Σ I² ≤ Σ V₁", g["nu2"] * lam_lo - g["i2"], g["v1"]),
            ):
                ok, why = certify_le(lhs, rhs)
                n_checked += 1
                if ok is not True:
                    failures.append(f"group {name}: {label} ({why})")
    out.append(
        CheckResult(
            f"5. bounds of §3 at exact points [{tag}]",
            fam_label,
            POINTS,
            not failures,
            f"{model.name}: {n_checked} inequalities at {n_points} random exact points "
            + ("(activation values drawn as rationals) " if tag != _model_tag(model) else "")
            + f"({'; '.join(sorted(hows))})"
            + (f" — FAILED: {failures[:4]}" if failures else "")
            + f" | {time.perf_counter() - t0:.2f}s",
        )
    )
    return out


def _is_categorical(fam: ExponentialFamily) -> bool:
    return getattr(fam, "registry_name", fam.name) == "categorical"


_SPECTRUM_CACHE: dict[tuple, tuple[ExponentialFamily, list[CheckResult]]] = {}


def check_categorical_spectrum(
    fam: ExponentialFamily, seed: int = 0, n_points: int = N_POINTS
) -> list[CheckResult]:
    """Cached front of :func:`_categorical_spectrum` (it does not depend on the model)."""
    key = (id(fam), seed, n_points)
    if key not in _SPECTRUM_CACHE or _SPECTRUM_CACHE[key][0] is not fam:
        _SPECTRUM_CACHE[key] = (fam, _categorical_spectrum(fam, seed, n_points))
    return list(_SPECTRUM_CACHE[key][1])


def _categorical_spectrum(fam: ExponentialFamily, seed: int, n_points: int) -> list[CheckResult]:
    """docs/theory.md §4 facts for the over-complete categorical family, in ``p = softmax(h)``.

    Symbolic (all ``p`` on the simplex): ``I = diag(p) − ppᵀ`` and
    ``μ₄[v⁴] = Σ_c p_c(v_c − pᵀv)⁴`` (from the family at ``h = log p``); ``I𝟙 = 0``;
    ``e_cᵀIe_c = p_c(1−p_c)``; ``diag(p) − I = ppᵀ``; ``tr I = 1 − ‖p‖²``; the absolute row
    sums are ``2p_c(1−p_c)``; ``1/4 − p(1−p) = (p − 1/2)²``; last-layer
    ``V₁ = z⁴p_a(1−p_a)(1−2p_a)²``; and the sum-of-squares certificate of
    ``λ_max(μ₄) ≤ (1 − 2p_min + ‖p‖²)λ_max(I)``. Exact (random rational ``p``): the
    eigenvalues of ``I`` by root isolation against every stated bound, and the best local
    value of ``μ₄`` below both certified upper bounds.
    """
    t0 = time.perf_counter()
    C = fam.dim
    fam_label = _family_label(fam)
    p = [sp.Symbol(f"p_{c + 1}", positive=True) for c in range(C - 1)]
    p.append(1 - sum(p))
    logp = {h: sp.log(pc) for h, pc in zip(fam.natural_params, p, strict=True)}
    v = vector_symbols("v", C)
    I = fam.fisher.xreplace(logp)
    I_theory = sp.diag(*p) - sp.Matrix(p) * sp.Matrix(p).T
    pv = sum(pc * vc for pc, vc in zip(p, v, strict=True))
    mu4_theory = sum(pc * (vc - pv) ** 4 for pc, vc in zip(p, v, strict=True))
    ones = sp.Matrix([1] * C)
    B = sp.Symbol("B", positive=True)
    norm_p2 = sum(pc**2 for pc in p)
    nv2 = sum(vc**2 for vc in v)
    a = [[(1 if e == c else 0) - p[e] for e in range(C)] for c in range(C)]
    s = [sum(a[c][e] * v[e] for e in range(C)) for c in range(C)]
    certificate = sum(
        p[c]
        * s[c] ** 2
        * (
            (B - sum(x**2 for x in a[c])) * nv2
            + sum((a[c][j] * v[k] - a[c][k] * v[j]) ** 2 for j in range(C) for k in range(j + 1, C))
        )
        for c in range(C)
    )
    z, pa = sp.Symbol("z", real=True), p[0]
    u_last = [z if c == 0 else 0 for c in range(C)]
    identities_ = [
        ("I(h=log p) = diag(p) − ppᵀ", (I - I_theory)),
        (
            "μ₄[v⁴](h=log p) = Σ p_c(v_c − pᵀv)⁴",
            fam.quartic_form(list(v)).xreplace(logp) - mu4_theory,
        ),
        ("I𝟙 = 0 (λ_min = 0, I = Cov ⪰ 0)", I_theory * ones),
        (
            "e_cᵀIe_c = p_c(1−p_c)",
            sp.Matrix([I_theory[c, c] - p[c] * (1 - p[c]) for c in range(C)]),
        ),
        (
            "diag(p) − I = ppᵀ ⪰ 0 (λ_max ≤ max p)",
            sp.diag(*p) - I_theory - sp.Matrix(p) * sp.Matrix(p).T,
        ),
        ("tr I = 1 − ‖p‖² (λ_max ≤ tr I)", I_theory.trace() - (1 - norm_p2)),
        (
            "Σ_e |I_ce| = 2p_c(1−p_c) (Gershgorin)",
            sp.Matrix(
                [
                    I_theory[c, c]
                    - sum(I_theory[c, e] for e in range(C) if e != c)
                    - 2 * p[c] * (1 - p[c])
                    for c in range(C)
                ]
            ),
        ),
        (
            "1/4 − p(1−p) = (p − 1/2)² (2 max p(1−p) ≤ 1/2)",
            sp.Rational(1, 4) - pa * (1 - pa) - (pa - sp.Rational(1, 2)) ** 2,
        ),
        (
            "‖e_c − p‖² = 1 − 2p_c + ‖p‖²",
            sp.Matrix([sum(x**2 for x in a[c]) - (1 - 2 * p[c] + norm_p2) for c in range(C)]),
        ),
        (
            "last layer: μ₄[(z e_a)⁴] − I² = z⁴p_a(1−p_a)(1−2p_a)²",
            mu4_theory.xreplace(dict(zip(v, u_last, strict=True)))
            - (I_theory[0, 0] * z**2) ** 2
            - z**4 * pa * (1 - pa) * (1 - 2 * pa) ** 2,
        ),
        (
            "SOS: B‖v‖²·vᵀIv − μ₄[v⁴] = "
            "Σ_c p_c s_c²[(B−‖e_c−p‖²)‖v‖² + Σ_{j<k}(a_j v_k − a_k v_j)²]",
            B * nv2 * (sp.Matrix(v).T * I_theory * sp.Matrix(v))[0, 0] - mu4_theory - certificate,
        ),
    ]
    sym_fail, methods = [], set()
    for label, e in identities_:
        entries = list(e) if isinstance(e, sp.MatrixBase) else [e]
        for entry in entries:
            zt = prove_zero(entry)
            methods.add(zt.method)
            if zt.zero is not True:
                sym_fail.append(f"{label}: {zt.note}")
                break
    out = [
        CheckResult(
            "5. categorical spectrum facts (§4): identities",
            fam_label,
            _combine_methods(methods | {SOS}),
            not sym_fail,
            "; ".join(label for label, _ in identities_)
            + ("" if not sym_fail else f" — FAILED: {sym_fail[:3]}")
            + " — every term of the certificate is ≥ 0 since p_c ≥ 0 and B = max_c ‖e_c − p‖²",
        )
    ]

    rng = np.random.default_rng(seed)
    pt_fail, lines = [], []
    for _ in range(n_points):
        raw = rng.integers(1, 40, size=C)
        pr = [sp.Rational(int(r), int(raw.sum())) for r in raw]
        Ip = I_theory.xreplace(dict(zip(p[:-1], pr[:-1], strict=True)))
        lam_min, lam_max, _ = extreme_eigenvalues(Ip)
        pq = [pc * (1 - pc) for pc in pr]
        upper = min(max(pr), 2 * max(pq), 1 - sum(x**2 for x in pr))
        facts = [
            ("λ_min(I) = 0", lam_min.exact == 0),
            ("max p(1−p) ≤ λ_max(I)", certify_le(Value.of(max(pq)), lam_max)[0]),
            ("λ_max(I) ≤ min(max p, 2max p(1−p), 1−‖p‖²)", certify_le(lam_max, Value.of(upper))[0]),
            ("min(...) ≤ 1/2", bool(upper <= sp.Rational(1, 2))),
        ]
        mu4_pt = {
            ms: sp.expand(
                val.xreplace({h: sp.log(x) for h, x in zip(fam.natural_params, pr, strict=True)})
            )
            for ms, val in fam.central_moment_entries(4).items()
        }
        G, D = sym2_pencil(mu4_pt, C)
        _, lam_hi_M, _ = extreme_eigenvalues(G, D)
        bound = Value.of(1 - 2 * min(pr) + sum(x**2 for x in pr)) * lam_max
        # best local value: μ₄[v⁴]/‖v‖⁴ over basis vectors and pairwise differences
        cands = [[1 if e == c else 0 for e in range(C)] for c in range(C)]
        cands += [
            [(1 if e == c else 0) - (1 if e == k else 0) for e in range(C)]
            for c in range(C)
            for k in range(c + 1, C)
        ]
        local = max(
            (
                tensors.symmetric_form(mu4_pt, C, 4, vec) / sum(x**2 for x in vec) ** 2
                for vec in cands
            ),
            key=lambda x: x,
        )
        facts += [
            ("local μ₄ value ≤ (1−2p_min+‖p‖²)λ_max(I)", certify_le(Value.of(local), bound)[0]),
            (
                "local μ₄ value ≤ λ_max(Sym² matricisation)",
                certify_le(Value.of(local), lam_hi_M)[0],
            ),
        ]
        tighter = (
            "categorical bound" if bound.interval.hi < lam_hi_M.interval.lo else "matricisation"
        )
        lines.append(
            f"p={tuple(map(str, pr))}: λ_max(I)∈{lam_max.interval}, certified λ_max(μ₄) ≤ "
            f"{float(min(bound.interval.hi, lam_hi_M.interval.hi)):.6g} ({tighter} tighter), "
            f"local {float(local):.6g}"
        )
        pt_fail += [f"{label} at p={pr}" for label, ok in facts if ok is not True]
    out.append(
        CheckResult(
            "5. categorical spectrum facts (§4): exact points",
            fam_label,
            POINTS,
            not pt_fail,
            "; ".join(lines)
            + (f" — FAILED: {pt_fail[:3]}" if pt_fail else "")
            + f" | {time.perf_counter() - t0:.2f}s",
        )
    )
    return out


# ============================================================================ entry points
def _as_family(fam) -> ExponentialFamily:
    if isinstance(fam, ExponentialFamily):
        return fam
    if isinstance(fam, str):
        return _registry.get(fam)
    raise TypeError(f"fam must be an ExponentialFamily or a registered family name; got {fam!r}")


def _as_model(model, d: int, activation: str | None) -> SymbolicModel:
    if isinstance(model, SymbolicModel):
        if model.d != d:
            raise UnsupportedModelError(
                f"model has d = {model.d} outputs but the family has d = {d} natural parameters"
            )
        return model
    if model not in _models.MODELS:
        raise UnsupportedModelError(
            f"model must be one of {', '.join(_models.MODELS)} or a SymbolicModel; got {model!r}"
        )
    if model == "glm":
        return _models.build("glm", d)
    return _models.build(model, d, activation=activation or "sigma")


def check_theory(
    fam,
    model="glm",
    *,
    activation: str | None = None,
    claims: Iterable[int] = CLAIMS,
    seed: int = 0,
    n_points: int = N_POINTS,
    closed_forms: ClosedForms = CLOSED_FORMS,
) -> list[CheckResult]:
    """Prove the estimator theory of docs/theory.md §1–§5 for a family and a symbolic model.

    Parameters
    ----------
    fam:          an :class:`ExponentialFamily` or a registered name (default sizes)
    model:        ``"glm"``, ``"mlp1"``, ``"mlp2"`` or a :class:`SymbolicModel` with
                  ``d = fam.dim`` outputs
    activation:   for the networks: one of :data:`fishsym.symbolic.models.ACTIVATIONS`
                  (default: the placeholder ``"sigma"``, i.e. any smooth activation)
    claims:       which of the claims 1–7 (module docstring) to check
    seed:         seeds the random exact points (claims 5, 6)
    n_points:     number of random exact points of the bound checks
    closed_forms: the formulas under test (:class:`ClosedForms`)

    Returns
    -------
    list[CheckResult]: one record per checked statement (``claim``, ``family``,
    ``method`` — ``"symbolic-simplify"``, ``"symbolic-sos-certificate"`` or
    ``"exact-rational-points"`` —, ``passed``, ``detail``).
    """
    fam = _as_family(fam)
    m = _as_model(model, fam.dim, activation)
    if isinstance(claims, (int, np.integer)) and not isinstance(claims, bool):
        claims = (int(claims),)
    try:
        claims = set(claims)
    except TypeError:
        raise ArgumentTypeError(
            f"claims must be a claim number or an iterable of them, among {CLAIMS}; "
            f"got {claims!r}"
        ) from None
    unknown = claims - set(CLAIMS)
    if unknown or not claims:
        raise InvalidArgumentError(
            f"claims must be among {CLAIMS} (at least one); got {sorted(claims)}"
        )
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise InvalidArgumentError(
            f"n_points must be an integer ≥ 1 (random exact points of the bound checks; with "
            f"none, nothing would be checked); got {n_points!r}"
        )
    out: list[CheckResult] = []
    for claim in (1, 2, 3):
        if claim in claims:
            out.append(_identity_claim(fam, m, claim, closed_forms))
    if 4 in claims:
        out += check_affine(fam, m, closed_forms)
    if 5 in claims:
        out += check_bounds(fam, m, seed=seed, n_points=n_points)
        if _is_categorical(fam):
            out += check_categorical_spectrum(fam, seed=seed, n_points=n_points)
    if 6 in claims:
        out.append(check_decomposition(fam, m, closed_forms, seed=seed))
    if 7 in claims:
        out += check_empirical(fam, m, closed_forms)
    return out


def inverse_gaussian() -> ExponentialFamily:
    """A user-defined family, declared directly (not registered): the inverse Gaussian.

    ``p(y) = √(λ/(2πy³)) exp(−λ(y−m)²/(2m²y))`` on ``y > 0``; ``t = (y, 1/y)``,
    ``h = (−λ/(2m²), −λ/2)`` (both < 0), ``F(h) = −2√(h₁h₂) − ½ log(−2h₂)``,
    ``log k = −½ log(2π) − (3/2) log y``. Its tensors involve ``√(h₁h₂)``: the bound
    checks enclose them rigorously.
    """
    from fishsym.symbolic.domain import NEGATIVE, natural_symbol
    from fishsym.symbolic.support import PositiveReals

    h1, h2 = natural_symbol("h1", NEGATIVE), natural_symbol("h2", NEGATIVE)
    y = sp.Symbol("y", positive=True)
    return ExponentialFamily(
        "inverse_gaussian",
        (h1, h2),
        y,
        (y, 1 / y),
        -2 * sp.sqrt(h1 * h2) - sp.log(-2 * h2) / 2,
        -sp.log(2 * sp.pi) / 2 - sp.Rational(3, 2) * sp.log(y),
        PositiveReals(),
        domain={h1: NEGATIVE, h2: NEGATIVE},
        description="user-defined example: t = (y, 1/y)",
    )


#: (model, activation, claims) run by :func:`check_theory_suite` for every family: all
#: claims for the GLM and the placeholder-activation networks (any smooth σ), and the
#: model-dependent claims for concrete activations
SUITE_MODELS = (
    ("glm", None, CLAIMS),
    ("mlp1", "sigma", CLAIMS),
    ("mlp2", "sigma", CLAIMS),
    ("mlp1", "sigmoid", (1, 2, 4)),
    ("mlp1", "tanh", (1, 2, 4)),
    ("mlp1", "softplus", (1, 2, 4)),
    ("mlp2", "sigmoid", (1, 2)),
)


def check_theory_suite(
    family_names: Iterable[str] | None = None,
    models: Sequence[tuple[str, str | None, Iterable[int]]] = SUITE_MODELS,
    user_family: bool = True,
    seed: int = 0,
) -> list[CheckResult]:
    """The whole symbolic theorem suite: :func:`check_theory` for every registered family
    (default sizes), each model of ``models``, plus the user-defined
    :func:`inverse_gaussian` example. Returns all records (see :func:`summary_table`)."""
    fams = [
        _registry.get(n) for n in (family_names if family_names is not None else _registry.names())
    ]
    if user_family:
        fams.append(inverse_gaussian())
    out: list[CheckResult] = []
    for fam in fams:
        for model, act, claims in models:
            out += check_theory(fam, model, activation=act, claims=claims, seed=seed)
    return out


def summary_table(records: Iterable[CheckResult]) -> str:
    """One line per family, one column per claim: ✓ (all records passed), ✗ (a record
    failed) or · (not checked), with the record counts."""
    records = list(records)
    fams = list(dict.fromkeys(r.family for r in records))
    width = max(len(f) for f in fams) if fams else 6
    lines = [f"{'family':<{width}}  " + "  ".join(str(c) for c in CLAIMS) + "   records"]
    for f in fams:
        mine = [r for r in records if r.family == f]
        cells = []
        for c in CLAIMS:
            rs = [r for r in mine if r.claim.startswith(f"{c}.")]
            cells.append("·" if not rs else "✓" if all(r.passed for r in rs) else "✗")
        n_ok = sum(r.passed for r in mine)
        lines.append(f"{f:<{width}}  " + "  ".join(cells) + f"   {n_ok}/{len(mine)} passed")
    return "\n".join(lines)


__all__ = [
    "CLAIMS",
    "CLOSED_FORMS",
    "ClosedForms",
    "Derivation",
    "FamilyMoments",
    "FreeCumulants",
    "Interval",
    "Value",
    "ZeroTest",
    "certify_le",
    "check_affine",
    "check_bounds",
    "check_categorical_spectrum",
    "check_decomposition",
    "check_empirical",
    "check_theory",
    "check_theory_suite",
    "inverse_gaussian",
    "summary_table",
    "derive",
    "enclose",
    "expect_independent",
    "extreme_eigenvalues",
    "family_link",
    "family_point",
    "identities",
    "model_step",
    "prove_zero",
    "sym2_pencil",
]
