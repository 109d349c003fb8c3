"""Verification of a family's derived quantities, independent of the cumulant route.

Everything :class:`~fishsym.symbolic.family.ExponentialFamily` derives comes from
differentiating ``F`` (docs/theory.md §1): ``η = ∇F``, ``I = ∇²F``, ``κ_k = ∇ᵏF`` and the central
moments ``μ_k`` by the set-partition formula. This module checks those derivations
against quantities that never differentiate ``F``:

* **direct expectations** over the density ``p(y|h) = k(y)·exp(t(y)ᵀh − F(h))``:

  - finite supports: exact sums. Writing ``z_j = e^{h_j}`` turns every built-in finite
    family into rational functions of ``z``, so ``direct − derived`` is cancelled to
    zero as a rational function: an identity for *all* ``h``, not a spot check;
  - countable and continuous supports, at :data:`N_POINTS` random valid natural
    parameters with :data:`DPS` digits: ``mpmath.nsum`` over the non-negative integers,
    tanh–sinh quadrature on an interval, and for ``R^d`` densities whose log is quadratic
    in ``y`` a Gauss–Hermite rule that is exact for the polynomial integrands;
  - Gaussian-type normalisation additionally as a symbolic integral (sympy), for all ``h``;

* **sympy.stats** moments of the scalar families it knows (an oracle not written here);
* the Fisher information is symmetric (mixed partials in both orders) and positive
  semi-definite at random valid parameters; over-complete families whose ``Σ_c t_c(y)``
  is constant on the support have the all-ones vector in the kernel of ``I``, exactly.

Every check returns a :class:`~fishsym.symbolic.records.CheckResult` whose ``method``
says which route decided it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from fishsym.symbolic import tensors
from fishsym.symbolic.expectation import (
    NotComputable,
    finite_points,
    gaussian_type,
    normalisation_check,  # noqa: F401  (re-exported: the cheap check run at construction)
    normalisation_error,  # noqa: F401  (re-exported for callers of the earlier name)
    numeric_expectations,
    numeric_route,
)
from fishsym.symbolic.records import CheckResult, format_table
from fishsym.symbolic.theory.zero import symbolic_zero

#: seed of the default generator that draws the random valid parameters of the checks
VERIFY_SEED = 20240205
#: number of random valid natural parameters at which numeric routes are evaluated
N_POINTS = 2
#: working precision (decimal digits) of the numeric routes
DPS = 30
#: relative tolerance of numeric comparisons (relative to the largest entry of the
#: compared tensor, floored at 1). The quadrature stops at an estimated 1e-25 relative
#: error at DPS = 30 (expectation.tanh_sinh), nsum and Gauss–Hermite do better; 1e-18
#: leaves a wide margin for that error while staying two orders of magnitude below
#: float64 rounding, so an O(1) error in a formula — or a slip at float64 level — cannot
#: pass.
NUMERIC_RTOL = 1e-18
#: an eigenvalue of I counts as non-negative above −PSD_TOL·max(1, λ_max): the Fisher
#: matrix is evaluated at DPS digits and rounded to float64 once, then numpy's eigvalsh
#: adds backward error of order 1e-16·‖I‖; 1e-12 is far above both and far below any
#: genuinely negative eigenvalue of a wrong I.
PSD_TOL = 1e-12
#: method label of an exact identity between rational functions of z = e^h
_IDENTITY_Z = "identity in e^h"
#: moment orders of the moment-about-a-point check
MOMENT_ABOUT_ORDERS = (2, 3, 4)


# ================================================================== evaluation routes
class _ExactFiniteRoute:
    """Direct expectations as exact sums over a finite support.

    With ``h_j = log z_j`` every density value of a built-in finite family is a rational
    function of ``z`` (``exp(t·h) = Π z_j^{t_j}``, ``exp(−F)`` a power of a polynomial).
    Sums and products are then carried out in the field ``Q(z)`` of rational functions,
    whose elements are kept in lowest terms: two of them are equal iff they are the same
    function, i.e. the identity holds for *all* ``h``. Where the density is not rational
    in ``z`` (a user family with a non-integer statistic, say) the route computes with
    sympy expressions and decides by the symbolic zero test shared with
    :mod:`fishsym.symbolic.theory` (:func:`~fishsym.symbolic.theory.zero.symbolic_zero`),
    then by mpmath at random parameters, and says so.
    """

    def __init__(self, fam, rng: np.random.Generator, dps: int):
        self.fam, self.rng, self.dps = fam, rng, dps
        d = fam.dim
        self.points = finite_points(fam.support)
        self.z = tuple(sp.Symbol(f"z{j + 1}") for j in range(d))
        self.field = sp.field(",".join(map(str, self.z)), sp.QQ)[0]
        self.to_z = {h: sp.log(z) for h, z in zip(fam.natural_params, self.z, strict=True)}
        tvals = [[fam.suff_stat[c].subs(self._obs(pt)) for c in range(d)] for pt in self.points]
        dens = [sp.exp(fam.log_density.subs(self._obs(pt))) for pt in self.points]
        in_field = [[self._to_field(v) for v in row] for row in tvals]
        dens_field = [self._to_field(v) for v in dens]
        self.rational = all(v is not None for v in dens_field + sum(in_field, []))
        self.tvals = in_field if self.rational else tvals
        self.dens = dens_field if self.rational else dens
        self.label = "exact sum"

    def _obs(self, pt) -> dict:
        return dict(zip(self.fam.obs_symbols, pt, strict=True))

    def _to_field(self, expr):
        """``expr`` (in ``h``) as an element of ``Q(z)``; None if it is not rational in z."""
        try:
            return self.field.from_expr(sp.sympify(expr).subs(self.to_z))
        except ValueError:
            return None

    def mean(self) -> list:
        """``E[t_c] = Σ_y t_c(y)·p(y|h)`` for every ``c``."""
        zero = self.field.zero if self.rational else sp.Integer(0)
        out = []
        for c in range(self.fam.dim):
            out.append(sum((p * t[c] for p, t in zip(self.dens, self.tvals, strict=True)), zero))
        return out

    def product_moments(self, k: int, about: Sequence) -> dict[tensors.Multiset, object]:
        """``E[Π_j (t_{i_j} − a_{i_j})]`` for every multiset of order ``k`` (k = 0: the mass)."""
        zero = self.field.zero if self.rational else sp.Integer(0)
        if self.rational:
            about = [self.field(a) if not hasattr(a, "numer") else a for a in about]
        out = {}
        for ms in tensors.multisets(self.fam.dim, k):
            total = zero
            for p, t in zip(self.dens, self.tvals, strict=True):
                term = p
                for i in ms:
                    term = term * (t[i] - about[i])
                total = total + term
            out[ms] = total
        return out

    def value(self, g):
        """A derived (cumulant-route) expression in this route's representation."""
        if self.rational:
            v = self._to_field(g)
            if v is not None:
                return v
        return sp.sympify(g)

    def _as_expr(self, v) -> sp.Expr:
        """Back to a sympy expression in ``h`` (for the fallback decisions)."""
        if not isinstance(v, sp.Basic):  # an element of Q(z)
            v = v.as_expr()
        back = {z: sp.exp(h) for h, z in zip(self.fam.natural_params, self.z, strict=True)}
        return sp.sympify(v).subs(back)

    def compare(self, pairs: Sequence[tuple[object, object]]) -> tuple[bool, str, str]:
        """Decide ``a == b`` for every pair; returns (passed, method, detail)."""
        methods, worst, failures = set(), 0.0, []
        for i, (a, b) in enumerate(pairs):
            if not isinstance(a, sp.Basic) and not isinstance(b, sp.Basic):
                methods.add(_IDENTITY_Z)
                if a != b:
                    failures.append(i)
                continue
            a, b = self._as_expr(a), self._as_expr(b)
            decided = symbolic_zero(a - b)
            if decided.zero is not None:
                methods.add(f"exact ({decided.method})")
                if not decided.zero:
                    failures.append(i)
                continue
            diff = a - b
            # simplify is not a decision procedure: settle it numerically
            methods.add(f"mpmath {N_POINTS} pts, dps={self.dps}")
            for _ in range(N_POINTS):
                vals = self.fam.random_natural_params(self.rng)
                err = abs(complex(sp.N(diff.subs(vals), self.dps)))
                ref = abs(complex(sp.N(b.subs(vals), self.dps)))
                worst = max(worst, err)
                if not err <= NUMERIC_RTOL * max(1.0, ref):
                    failures.append(i)
                    break
        method = f"{self.label}, " + " + ".join(sorted(methods))
        if failures:
            detail = f"{len(failures)} of {len(pairs)} entries differ (first: #{failures[0]})"
            return False, method, detail
        extra = f"; max |diff| {worst:.1e}" if worst else ""
        return True, method, f"{len(pairs)} distinct entries agree{extra}"


class _NumericRoute:
    """Direct expectations by mpmath at random valid natural parameters."""

    def __init__(self, fam, rng: np.random.Generator, dps: int, n_points: int):
        self.fam, self.dps = fam, dps
        self.values = [fam.random_natural_params(rng) for _ in range(n_points)]
        route = numeric_route(fam)
        kind = "quad" if route == "tanh-sinh" else route  # short enough for format_table
        self.label = f"mpmath {kind}, {n_points} pts, dps={dps}"

    def expect_at(self, values: Mapping, fs: Sequence[sp.Expr]) -> list:
        return numeric_expectations(self.fam, list(fs), values, dps=self.dps)

    def evaluate(self, values: Mapping, g) -> mpmath.mpc | mpmath.mpf:
        with mpmath.workdps(self.dps):
            val = sp.N(sp.sympify(g).subs(values), self.dps)
            return mpmath.mpmathify(complex(val)) if not val.is_real else mpmath.mpf(val)


def _compare_numbers(pairs: Iterable[tuple[object, object]]) -> tuple[bool, float, float]:
    """(all agree, max |a−b|, scale) with the tolerance NUMERIC_RTOL·max(1, max |b|)."""
    pairs = list(pairs)
    scale = max([1.0] + [float(abs(b)) for _, b in pairs])
    worst = max([0.0] + [float(abs(a - b)) for a, b in pairs])
    return worst <= NUMERIC_RTOL * scale, worst, scale


def _sfloat(x, dps: int) -> sp.Float:
    """An mpmath number as a sympy Float that keeps ``dps`` digits."""
    return sp.Float(mpmath.nstr(x, dps + 5, strip_zeros=False), dps + 5)


# ================================================================== the checks
def _direct_tensor_fs(fam, k: int, about: Sequence) -> dict[tensors.Multiset, sp.Expr]:
    """Integrands ``Π_j (t_{i_j}(y) − a_{i_j})`` for every distinct multiset of order ``k``."""
    t = fam.suff_stat
    out = {}
    for ms in tensors.multisets(fam.dim, k):
        f = sp.Integer(1)
        for i in ms:
            f *= t[i] - about[i]
        out[ms] = f
    return out


def _tensor_claims(fam, random_point: Sequence) -> list[tuple[str, Callable, int, str | None]]:
    """``(claim, derived entries, order k, about)`` for each tensor check.

    ``about`` is None for the mean itself, ``"mean"`` for central moments — whose
    integrands are taken about the *direct* mean, never ``∇F``, so nothing on the direct
    side depends on derivatives of ``F`` — and ``"point"`` for moments about
    ``random_point``.
    """
    claims = [
        ("mean: E[t] = grad F", lambda: {(c,): fam.mean[c] for c in range(fam.dim)}, 1, None),
        ("covariance: Cov[t] = I = hess F", lambda: fam.cumulant_entries(2), 2, "mean"),
        ("mu3: E[(t-eta)^3] = central_moment(3)", lambda: fam.central_moment_entries(3), 3, "mean"),
        ("mu4: E[(t-eta)^4] = central_moment(4)", lambda: fam.central_moment_entries(4), 4, "mean"),
    ]
    for k in MOMENT_ABOUT_ORDERS:
        claims.append(
            (
                f"moment_about(a), k={k}: E[(t-a)^{k}]",
                lambda k=k: fam.moment_about_entries(random_point, k),
                k,
                "point",
            )
        )
    return claims


def _random_point(fam, rng: np.random.Generator) -> list[sp.Rational]:
    """A random rational point ``a`` (about which moments are checked)."""
    return [sp.Rational(int(rng.integers(-96, 97)), 64) for _ in range(fam.dim)]


def _check_exact(fam, route: _ExactFiniteRoute, random_point) -> list[CheckResult]:
    out = []
    mass = route.product_moments(0, [])[()]
    passed, method, detail = route.compare([(mass, route.value(1))])
    out.append(CheckResult("normalisation: sum p(y|h) = 1", fam.name, method, passed, detail))
    direct_mean = route.mean()
    for claim, derived, k, about in _tensor_claims(fam, random_point):
        entries = derived()
        if about is None:
            direct = {(c,): direct_mean[c] for c in range(fam.dim)}
        else:
            direct = route.product_moments(k, direct_mean if about == "mean" else random_point)
        pairs = [(direct[ms], route.value(entries[ms])) for ms in direct]
        passed, method, detail = route.compare(pairs)
        out.append(CheckResult(claim, fam.name, method, passed, detail))
    return out


def _numeric_point(fam, route, values, random_point, claims, results, masses) -> None:
    """Direct expectations and derived values of every tensor claim at one parameter."""
    dps = route.dps
    (mass,) = route.expect_at(values, [sp.Integer(1)])
    masses.append(mass)
    direct_mean = route.expect_at(values, list(fam.suff_stat))
    mean_syms = [_sfloat(m, dps) for m in direct_mean]
    for claim, derived, k, about in claims:
        entries = derived()
        if about is None:
            pairs = [
                (direct_mean[c], route.evaluate(values, entries[(c,)])) for c in range(fam.dim)
            ]
        else:
            a = mean_syms if about == "mean" else random_point
            fs = _direct_tensor_fs(fam, k, a)
            direct = route.expect_at(values, list(fs.values()))
            pairs = [
                (dv, route.evaluate(values, entries[ms])) for dv, ms in zip(direct, fs, strict=True)
            ]
        results[claim].append(_compare_numbers(pairs) + (len(pairs),))


def _check_numeric(fam, route: _NumericRoute, random_point) -> list[CheckResult]:
    out = []
    dps = route.dps
    claims = _tensor_claims(fam, random_point)
    results = {c[0]: [] for c in claims}
    masses = []
    for values in route.values:
        with mpmath.workdps(dps):  # arithmetic on the direct values keeps their digits
            _numeric_point(fam, route, values, random_point, claims, results, masses)
    ok, worst, _ = _compare_numbers((m, 1) for m in masses)
    out.append(
        CheckResult(
            "normalisation: sum/int p(y|h) = 1",
            fam.name,
            route.label,
            ok,
            f"max |mass - 1| = {worst:.1e} (tol {NUMERIC_RTOL:.0e})",
        )
    )
    for claim, res in results.items():
        ok = all(r[0] for r in res)
        worst = max(r[1] / r[2] for r in res)
        out.append(
            CheckResult(
                claim,
                fam.name,
                route.label,
                ok,
                f"{res[0][3]} distinct entries; max relative diff {worst:.1e} "
                f"(tol {NUMERIC_RTOL:.0e})",
            )
        )
    return out


# ------------------------------------------------------------------ symbolic normalisation
def _shifted_params(fam) -> dict:
    """Substitution ``h_j → lo + s`` / ``hi − s`` / real ``s``, with ``s`` a sympy symbol
    whose assumptions (positive, real) state the domain — integrate needs them to pick
    the convergent branch of a Gaussian integral."""
    sub = {}
    for h, iv in fam.domain.intervals.items():
        if iv.inf.is_finite:
            sub[h] = iv.inf + sp.Symbol(f"s_{h}", positive=True)
        elif iv.sup.is_finite:
            sub[h] = iv.sup - sp.Symbol(f"s_{h}", positive=True)
        else:
            sub[h] = sp.Symbol(f"s_{h}", real=True)
    return sub


def _symbolic_normalisation(fam) -> CheckResult | None:
    """``∫ p(y|h) dy = 1`` by sympy's Gaussian integral, for all ``h``; None if not decided."""
    if not gaussian_type(fam) or len(fam.obs_symbols) > 2:
        return None
    sub = _shifted_params(fam)
    dens = sp.exp(sp.expand(fam.log_density.subs(sub)))
    limits = [(y, -sp.oo, sp.oo) for y in fam.obs_symbols]
    try:
        mass = sp.integrate(dens, *limits)
    except Exception:  # noqa: BLE001  (sympy raises many kinds; the numeric route decides)
        return None
    if mass.has(sp.Integral) or symbolic_zero(mass - 1).zero is not True:
        return None
    return CheckResult(
        "normalisation: int p(y|h) dy = 1",
        fam.name,
        "sympy Gaussian integral",
        True,
        "equals 1 for all h in the domain",
    )


# ------------------------------------------------------------------ Fisher structure
def _check_fisher_structure(fam, rng: np.random.Generator, dps: int) -> list[CheckResult]:
    out = []
    h, F, d = fam.natural_params, fam.log_partition, fam.dim
    # symmetric: I[c,e] against the mixed partial taken in the other order
    bad = []
    how = "structural"
    for c in range(d):
        for e in range(c + 1, d):
            other = sp.diff(sp.diff(F, h[c]), h[e])
            for entry in (fam.fisher[c, e], fam.fisher[e, c]):
                diff = entry - other
                if diff == 0:
                    continue
                how = "exact zero test"
                if symbolic_zero(diff).zero is not True:
                    bad.append((c, e))
    out.append(
        CheckResult(
            "I symmetric: I[c,e] = I[e,c] = d2F/dh_e dh_c",
            fam.name,
            f"mixed partials, {how}",
            not bad,
            f"asymmetric entries {bad}" if bad else f"{d * (d - 1) // 2} off-diagonal pairs",
        )
    )
    # PSD at random valid parameters
    mins, ok = [], True
    for _ in range(N_POINTS):
        vals = fam.random_natural_params(rng)
        mat = np.array(
            [[complex(sp.N(fam.fisher[c, e].subs(vals), dps)) for e in range(d)] for c in range(d)]
        )
        if np.abs(mat.imag).max() > 0 or not np.isfinite(mat.real).all():
            ok = False
            mins.append(float("nan"))
            continue
        eig = np.linalg.eigvalsh(mat.real)
        mins.append(float(eig.min()))
        ok &= bool(eig.min() >= -PSD_TOL * max(1.0, float(eig.max())))
    out.append(
        CheckResult(
            "I positive semi-definite",
            fam.name,
            f"eigvalsh, {N_POINTS} random pts",
            ok,
            "min eigenvalues " + ", ".join(f"{m:.3g}" for m in mins),
        )
    )
    # over-complete: Σ_c t_c(y) constant on a finite support ⇒ I·1 = Cov[t]·1 = 0
    points = finite_points(fam.support)
    if points is not None and d > 1:
        totals = {
            sp.simplify(sum(fam.suff_stat).subs(dict(zip(fam.obs_symbols, pt, strict=True))))
            for pt in points
        }
        if len(totals) == 1:
            route = _ExactFiniteRoute(fam, rng, dps)
            zero = route.value(0)
            pairs = [(route.value(sum(fam.fisher[c, e] for e in range(d))), zero) for c in range(d)]
            passed, method, detail = route.compare(pairs)
            out.append(
                CheckResult(
                    "all-ones vector in the kernel of I (exactly)",
                    fam.name,
                    method.replace("exact sum, ", ""),
                    passed,
                    f"sum_c t_c(y) = {totals.pop()} on the support; {detail}",
                )
            )
    return out


# ------------------------------------------------------------------ sympy.stats oracle
def _stats_spec(fam):
    """How a registry family maps onto a sympy.stats random variable.

    Returns ``(X, shift, h_of_theta, theta_box, direct_y)`` — ``y = X − shift``; the
    natural parameters as functions of sympy.stats' parameters ``θ``; a box of valid
    ``θ`` for numeric spot checks; whether to also compare E[y], Var[y] by direct
    expectation — or None when sympy.stats has no such distribution.
    """
    from sympy import stats as ss

    name = getattr(fam, "registry_name", None)
    h = fam.natural_params
    pos = {"positive": True}
    if name == "poisson":
        lam = sp.Symbol("lambda", **pos)
        return ss.Poisson("X", lam), 0, {h[0]: sp.log(lam)}, {lam: (0.3, 5)}, False
    if name in ("bernoulli", "binomial"):
        p = sp.Symbol("p", **pos)
        X = ss.Bernoulli("X", p) if name == "bernoulli" else ss.Binomial("X", fam.sizes["n"], p)
        return X, 0, {h[0]: sp.log(p / (1 - p))}, {p: (0.05, 0.95)}, False
    if name == "geometric":
        # sympy.stats' Geometric counts trials up to the first success, on {1, 2, …}:
        # ours counts the failures before it, y = X − 1; e^h = 1 − p
        p = sp.Symbol("p", **pos)
        return ss.Geometric("X", p), 1, {h[0]: sp.log(1 - p)}, {p: (0.05, 0.95)}, False
    if name == "negative_binomial":
        # sympy.stats 1.14: P(X=k) = C(k+r−1, k)·p^r·(1−p)^k (k failures before the
        # r-th success with success probability p); ours has e^h = 1 − p
        p = sp.Symbol("p", **pos)
        X = ss.NegativeBinomial("X", fam.sizes["r"], p)
        return X, 0, {h[0]: sp.log(1 - p)}, {p: (0.05, 0.95)}, False
    if name == "exponential":
        lam = sp.Symbol("lambda", **pos)
        return ss.Exponential("X", lam), 0, {h[0]: -lam}, {lam: (0.3, 5)}, False
    if name == "gaussian" and fam.dim == 1:
        m = sp.Symbol("m", real=True)
        s2 = sp.nsimplify(fam.sizes.get("sigma2", 1))
        return ss.Normal("X", m, sp.sqrt(s2)), 0, {h[0]: m / s2}, {m: (-2, 2)}, False
    if name == "gaussian_meanvar":
        m, s = sp.Symbol("m", real=True), sp.Symbol("sigma", **pos)
        hs = {h[0]: m / s**2, h[1]: -1 / (2 * s**2)}
        return ss.Normal("X", m, s), 0, hs, {m: (-2, 2), s: (0.3, 3)}, False
    if name == "gamma":
        k, theta = sp.Symbol("k", **pos), sp.Symbol("theta", **pos)
        hs = {h[0]: k - 1, h[1]: -1 / theta}
        return ss.Gamma("X", k, theta), 0, hs, {k: (0.4, 4), theta: (0.3, 3)}, True
    if name == "beta":
        a, b = sp.Symbol("a", **pos), sp.Symbol("b", **pos)
        hs = {h[0]: a - 1, h[1]: b - 1}
        return ss.Beta("X", a, b), 0, hs, {a: (0.4, 4), b: (0.4, 4)}, True
    return None


def _identity(a, b, box: Mapping, rng: np.random.Generator, dps: int) -> tuple[bool, str, float]:
    """``a == b`` as functions of the symbols in ``box``: exactly when the difference is a
    rational function of them (cancel decides both ways) or the shared symbolic zero test
    decides; else mpmath at random points of the box (which can refute, and confirms to
    NUMERIC_RTOL)."""
    diff = sp.sympify(a) - sp.sympify(b)
    if diff == 0:
        return True, "symbolic", 0.0
    if diff.is_rational_function(*box):
        return sp.cancel(sp.together(diff)) == 0, "symbolic", 0.0
    decided = symbolic_zero(diff)
    if decided.zero is not None:
        return decided.zero, "symbolic", 0.0
    worst = 0.0
    for _ in range(N_POINTS):
        vals = {
            s: sp.Rational(int(round(rng.uniform(lo, hi) * 64)), 64) for s, (lo, hi) in box.items()
        }
        err = abs(complex(sp.N(diff.subs(vals), dps)))
        ref = abs(complex(sp.N(sp.sympify(b).subs(vals), dps)))
        worst = max(worst, err / max(1.0, ref))
        if not worst <= NUMERIC_RTOL:
            return False, "mpmath", worst
    return True, "mpmath", worst


def _check_stats_oracle(fam, rng: np.random.Generator, dps: int) -> list[CheckResult]:
    spec = _stats_spec(fam)
    if spec is None:
        return []
    from sympy import stats as ss

    X, shift, h_of_theta, box, direct_y = spec
    yv = X - shift
    out = []

    def ours(expr):
        return sp.sympify(expr).subs(h_of_theta)

    def record(claim, theirs, mine):
        ok, how, worst = _identity(theirs, ours(mine), box, rng, dps)
        method = "sympy.stats, " + (
            "symbolic" if how == "symbolic" else f"{N_POINTS} pts, dps={dps}"
        )
        if how == "symbolic":
            detail = "identical functions" if ok else "differ as functions of the parameters"
        else:
            detail = f"max relative diff {worst:.1e}"
        out.append(CheckResult(claim, fam.name, method, ok, detail))

    y = fam.obs_symbols[0]
    for j, tj in enumerate(fam.suff_stat):
        idx = lambda k, j=j: (j,) * k  # noqa: E731
        if tj == y:
            for k in (1, 2, 3, 4):
                record(
                    f"sympy.stats moment(y, {k}) = E[t_{j}^{k}]",
                    ss.moment(X, k, shift),
                    fam.raw_moment(k)[idx(k)],
                )
            for k in (2, 3, 4):
                record(
                    f"sympy.stats cmoment(y, {k}) = mu{k}[{j}..{j}]",
                    ss.cmoment(X, k),
                    fam.central_moment(k)[idx(k)],
                )
        elif tj.is_polynomial(y):
            tX = tj.subs(y, yv)
            record(f"sympy.stats E[{tj}] = eta_{j}", ss.E(tX), fam.mean[j])
            record(f"sympy.stats Var[{tj}] = I[{j},{j}]", ss.variance(tX), fam.fisher[j, j])
    if direct_y:
        # E[y] and Var[y] by direct expectation (y is not a coordinate of t for beta)
        route = _NumericRoute(fam, rng, dps, N_POINTS)
        theta_syms = list(box)
        solved = sp.solve([sp.Eq(hv, ex) for hv, ex in h_of_theta.items()], theta_syms, dict=True)
        pairs = []
        for values in route.values:
            with mpmath.workdps(dps):
                theta_vals = {s: e.subs(values) for s, e in solved[0].items()}
                e1, e2 = route.expect_at(values, [y, y**2])
                m_theirs = route.evaluate(theta_vals, ss.E(yv))
                v_theirs = route.evaluate(theta_vals, ss.variance(yv))
                pairs += [(e1, m_theirs), (e2 - e1**2, v_theirs)]
        ok, worst, scale = _compare_numbers(pairs)
        out.append(
            CheckResult(
                "sympy.stats E[y], Var[y] = direct expectation",
                fam.name,
                "sympy.stats vs " + route.label.replace("mpmath ", ""),
                ok,
                f"max relative diff {worst / scale:.1e} (tol {NUMERIC_RTOL:.0e})",
            )
        )
    return out


# ================================================================== public API
def same_function(
    fam, a, b, *, rng: np.random.Generator | None = None, dps: int = DPS
) -> tuple[bool, str]:
    """Whether ``a`` and ``b`` (expressions in ``fam``'s natural parameters) agree on its domain.

    Decided by the first route that settles it: structural equality; ``expand`` to 0;
    with ``h_j = log z_j``, cancellation of a rational function of ``z`` (exact for all
    ``h``); the shared symbolic zero test (``expand``, ``cancel``, ``simplify``); otherwise
    evaluation at :data:`N_POINTS` random valid parameters with ``dps`` digits (tolerance
    :data:`NUMERIC_RTOL`), which can refute and otherwise corroborates.

    Returns
    -------
    (equal, method): ``method`` names the route that decided.
    """
    diff = sp.sympify(a) - sp.sympify(b)
    if diff == 0:
        return True, "structural"
    if sp.expand(diff) == 0:
        return True, "expand"
    z = tuple(sp.Dummy(f"z{j}", positive=True) for j in range(fam.dim))
    zdiff = diff.subs({h: sp.log(zj) for h, zj in zip(fam.natural_params, z, strict=True)})
    if zdiff.is_rational_function(*z):
        return sp.cancel(sp.together(zdiff)) == 0, _IDENTITY_Z
    decided = symbolic_zero(diff)
    if decided.zero is not None:
        return decided.zero, f"exact ({decided.method})"
    rng = np.random.default_rng(VERIFY_SEED) if rng is None else rng
    for _ in range(N_POINTS):
        vals = fam.random_natural_params(rng)
        err = abs(complex(sp.N(diff.subs(vals), dps)))
        ref = abs(complex(sp.N(sp.sympify(b).subs(vals), dps)))
        if not err <= NUMERIC_RTOL * max(1.0, ref):
            return False, f"mpmath {N_POINTS} pts, dps={dps}"
    return True, f"mpmath {N_POINTS} pts, dps={dps}"


def verify_family(
    fam,
    *,
    rng: np.random.Generator | None = None,
    dps: int = DPS,
    n_points: int = N_POINTS,
    stats_oracle: bool = True,
) -> list[CheckResult]:
    """Check a family's derived quantities against direct expectations and sympy.stats.

    Claims (one :class:`CheckResult` each; docs/theory.md §1):

    * normalisation ``Σ/∫ k(y)·exp(t(y)ᵀh − F(h)) = 1``;
    * ``E[t] = ∇F = fam.mean``; ``Cov[t] = ∇²F = fam.fisher``;
      ``E[(t−η)^{⊗3}] = fam.central_moment(3)``, ``E[(t−η)^{⊗4}] = fam.central_moment(4)``
      (``η`` here is the *direct* mean); ``E[(t−a)^{⊗k}] = fam.moment_about(a, k)`` for
      ``k = 2, 3, 4`` at a random rational point ``a``;
    * ``I`` symmetric and positive semi-definite; all-ones in its kernel for
      over-complete families (``Σ_c t_c`` constant on the support);
    * for scalar families sympy.stats knows: its ``moment``/``cmoment`` of ``y`` equal
      ours on the coordinates of ``t`` equal to ``y`` (and E[y], Var[y] for gamma/beta).

    Finite supports are decided exactly (symbolic identities); other supports by mpmath
    at ``n_points`` random valid parameters with ``dps`` digits. A check that cannot be
    carried out is reported as failed, never silently skipped.

    Parameters
    ----------
    fam: an :class:`~fishsym.symbolic.family.ExponentialFamily`.
    rng: generator of the random parameters and points (default: seeded with VERIFY_SEED).

    Returns
    -------
    list[CheckResult]
    """
    rng = np.random.default_rng(VERIFY_SEED) if rng is None else rng
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator, e.g. np.random.default_rng(0)")
    random_point = _random_point(fam, rng)
    out: list[CheckResult] = []
    if finite_points(fam.support) is not None:
        out += _check_exact(fam, _ExactFiniteRoute(fam, rng, dps), random_point)
    else:
        try:
            numeric = _check_numeric(fam, _NumericRoute(fam, rng, dps, n_points), random_point)
        except NotComputable as err:
            numeric = [
                CheckResult("direct expectations", fam.name, "none", False, f"not checked: {err}")
            ]
        symbolic = _symbolic_normalisation(fam)
        if symbolic is not None:
            numeric = [symbolic] + numeric
        out += numeric
    out += _check_fisher_structure(fam, rng, dps)
    if stats_oracle:
        out += _check_stats_oracle(fam, rng, dps)
    return out


def verify_all(names: Iterable[str] | None = None, *, verbose: bool = False) -> list[CheckResult]:
    """:func:`verify_family` for every registered family (or ``names``) at default sizes."""
    from fishsym.symbolic import families

    out = []
    for name in names if names is not None else families.names():
        start = time.perf_counter()
        records = verify_family(families.get(name))
        out += records
        if verbose:
            print(f"{name:<24} {len(records):3d} checks  {time.perf_counter() - start:6.2f} s")
    return out


__all__ = [
    "verify_family",
    "verify_all",
    "same_function",
    "CheckResult",
    "format_table",
    "VERIFY_SEED",
]
