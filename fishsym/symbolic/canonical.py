"""Canonical form of a log-density written in any parametrisation.

A user writes ``log p(y | θ)`` as they know it — a Poisson with its rate
``y·log λ − λ − log y!``, a Gaussian with ``(μ, σ)``, an inverse Gaussian with
``(μ, λ)`` — and :func:`from_log_density` rewrites it as (docs/theory.md §1)

    log p(y | θ) = t(y)ᵀ η(θ) − A(θ) + log k(y),

introduces natural parameters ``h = η(θ)``, inverts that map to express the
log-partition ``F(h) = A(θ(h))``, derives the natural domain (the image of the parameter
domain) and returns an :class:`~fishsym.symbolic.family.ExponentialFamily`.

The split is by sympy expansion: the expanded log-density must be a sum of terms
``g(θ)·f(y)``; a term that mixes ``y`` and ``θ`` inside one function (``log(y + θ)``,
``exp(θ·y)``) is not an exponential family in ``θ``, and the error names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sympy as sp

from fishsym.errors import CanonicalFormError
from fishsym.symbolic.domain import REALS, Domain, assumptions_for, natural_symbol
from fishsym.symbolic.family import ExponentialFamily
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

#: seed of the random parameters at which inverse-map branches are tested
BRANCH_SEED = 20240205
#: number of random parameters a branch of θ(h) must map back correctly
N_BRANCH_POINTS = 3
#: digits of the numeric round trip θ → h = η(θ) → θ(h) used to pick a branch
BRANCH_DPS = 30
#: relative tolerance of that round trip: a wrong branch is off by O(1) (a sign, a
#: reciprocal), the right one by rounding at BRANCH_DPS digits, ~1e-29
BRANCH_RTOL = 1e-20


# ================================================================== helpers
def _observation_assumptions(support: Support, n_obs: int) -> list[dict]:
    """sympy assumptions each observation coordinate satisfies on ``support``."""

    def one(s: Support) -> dict:
        if isinstance(s, (PositiveReals, UnitInterval)):
            return {"positive": True}
        if isinstance(s, NonNegativeIntegers):
            return {"integer": True, "nonnegative": True}
        if isinstance(s, (RealLine, Circle)):
            return {"real": True}
        if isinstance(s, FiniteSupport):
            coords = list(zip(*s.points, strict=True))
            out = {"real": True}
            if all(float(v) == int(v) for c in coords for v in c):
                out["integer"] = True
            if all(v >= 0 for c in coords for v in c):
                out["nonnegative"] = True
            return out
        return {}

    if isinstance(support, ProductSupport):
        out = []
        for f in support.factors:
            out += [one(f)] * f.dim
        return out
    return [one(support)] * n_obs


def _interval_parametrisation(var_name: str, interval: sp.Interval) -> sp.Expr:
    """An expression in a fresh positive (or real) symbol ``s`` sweeping ``interval``.

    ``(a, ∞) → a + s``, ``(−∞, b) → b − s``, ``(a, b) → a + (b − a)·s/(1 + s)``, ``R → s``:
    substituting it lets sympy's assumption system decide signs on the interval.
    """
    lo, hi = interval.inf, interval.sup
    if lo.is_infinite and hi.is_infinite:
        return sp.Symbol(f"_s_{var_name}", real=True)
    s = sp.Symbol(f"_s_{var_name}", positive=True)
    if hi.is_infinite:
        return lo + s
    if lo.is_infinite:
        return hi - s
    return lo + (hi - lo) * s / (1 + s)


def _inside(expr: sp.Expr, interval: sp.Interval) -> bool | None:
    """Whether ``expr`` (in symbols carrying assumptions) lies in ``interval`` for all values."""
    expr = sp.together(sp.simplify(expr))
    conds = []
    if interval.inf.is_finite:
        d = sp.simplify(expr - interval.inf)
        conds.append(d.is_nonnegative if not interval.left_open else d.is_positive)
    else:
        conds.append(True if expr.is_finite else None)
    if interval.sup.is_finite:
        d = sp.simplify(interval.sup - expr)
        conds.append(d.is_nonnegative if not interval.right_open else d.is_positive)
    conds.append(expr.is_real)
    if any(c is False for c in conds):
        return False
    return True if all(c is True for c in conds) else None


def _monotone_image(expr: sp.Expr, var: sp.Symbol, interval: sp.Interval) -> sp.Interval | None:
    """The image of ``interval`` under ``var ↦ expr`` when sympy can show it monotone.

    Other symbols in ``expr`` keep their assumptions; the image is returned only if its
    endpoints do not depend on them.
    """
    sweep = _interval_parametrisation(str(var), interval)
    slope = sp.simplify(sp.diff(expr, var).subs(var, sweep))
    if slope.is_positive:
        increasing = True
    elif slope.is_negative:
        increasing = False
    else:
        return None
    try:
        lo = (
            sp.limit(expr, var, interval.inf, "+")
            if interval.inf.is_finite
            else sp.limit(expr, var, -sp.oo)
        )
        hi = (
            sp.limit(expr, var, interval.sup, "-")
            if interval.sup.is_finite
            else sp.limit(expr, var, sp.oo)
        )
    except (NotImplementedError, ValueError):
        return None
    if (lo.free_symbols | hi.free_symbols) or lo.has(sp.AccumBounds) or hi.has(sp.AccumBounds):
        return None
    if not increasing:
        lo, hi = hi, lo
    left_open = interval.left_open if increasing else interval.right_open
    right_open = interval.right_open if increasing else interval.left_open
    return sp.Interval(lo, hi, left_open or lo.is_infinite, right_open or hi.is_infinite)


def _complexity(expr: sp.Expr) -> int:
    """Operation count, plus a penalty for radicals in denominators (``1/sqrt(−1/h)``)."""
    radical_denominators = sum(
        1
        for node in sp.preorder_traversal(expr)
        if isinstance(node, sp.Pow)
        and node.exp.is_negative
        and (node.base.has(sp.Pow) or not node.exp.is_integer)
    )
    return sp.count_ops(expr) + 2 * radical_denominators


def _tidy(expr: sp.Expr) -> sp.Expr:
    """The simplest of a few equivalent forms (logs expanded only where the symbols'
    assumptions make it valid, so every form is the same function on the domain)."""
    simple = sp.simplify(expr)
    candidates = [expr, simple, sp.expand_log(expr), sp.expand_log(simple)]
    candidates += [sp.expand(sp.expand_log(c)) for c in candidates[:2]]
    candidates += [sp.expand(sp.radsimp(c)) for c in candidates[2:]]
    return min(candidates, key=_complexity)


# ================================================================== the split
def _split(
    expr: sp.Expr, ys: Sequence[sp.Symbol], params: Sequence[sp.Symbol], shown: dict, name: str
):
    """Split an expanded log-density into ``{f(y): g(θ)}``, ``P(θ)``, ``log k(y)``."""
    stats: dict[sp.Expr, sp.Expr] = {}
    param_part, base = sp.Integer(0), sp.Integer(0)
    pset, yset = set(params), set(ys)
    for term in sp.Add.make_args(expr):
        coeff, ypart = term.as_independent(*ys, as_Add=False)
        if ypart.free_symbols & pset:
            raise CanonicalFormError(
                f"{name}: cannot separate the term {term.xreplace(shown)} of the log-density into "
                f"(function of the parameters) × (function of y): "
                f"{ypart.xreplace(shown)} mixes the observation and the parameters. "
                "An exponential family's log-density is t(y)ᵀη(θ) − A(θ) + log k(y)."
            )
        if ypart == 1:
            if coeff.free_symbols & pset:
                param_part += coeff
            else:
                base += coeff
        elif coeff.free_symbols & pset:
            stats[ypart] = stats.get(ypart, sp.Integer(0)) + coeff
        else:
            base += term
    stats = {f: g for f, g in stats.items() if sp.expand(g) != 0}
    extra = (param_part.free_symbols | base.free_symbols) - pset - yset
    if extra:
        raise CanonicalFormError(
            f"{name}: the log-density contains symbols {sorted(map(str, extra))} that are "
            f"neither the observation {tuple(map(str, ys))} nor the parameters "
            f"{tuple(map(str, params))}"
        )
    return stats, param_part, base


def _order_stats(stats: dict, suff_stat, ys, shown) -> tuple[list, list]:
    """Sufficient statistics and their coefficients ``η_j(θ)``, in the requested order."""
    if suff_stat is None:
        keys = sorted(stats, key=sp.default_sort_key)
        return keys, [stats[k] for k in keys]
    ts, etas, used = [], [], set()
    for t in suff_stat:
        t = sp.sympify(t)
        match = [
            f
            for f in stats
            if f not in used
            and (f / t).free_symbols.isdisjoint(ys)
            and sp.simplify(f / t).is_number
        ]
        if len(match) != 1:
            found = ", ".join(str(f.xreplace(shown)) for f in stats)
            raise CanonicalFormError(
                f"suff_stat entry {t.xreplace(shown)} matches none (or several) of the "
                f"statistics found in the log-density: {found}"
            )
        f = match[0]
        used.add(f)
        ts.append(t)
        etas.append(stats[f] * sp.simplify(f / t))
    missing = [f for f in stats if f not in used]
    if missing:
        raise CanonicalFormError(
            f"suff_stat omits the statistic(s) {[str(f.xreplace(shown)) for f in missing]} "
            "that the log-density contains"
        )
    return ts, etas


# ================================================================== inversion
def _pick_branch(solutions, params, etas, gs, param_dom: Domain) -> dict | None:
    """The solution θ(g) of η(θ) = g that maps η(θ) back to θ on the parameter domain."""
    rng = np.random.default_rng(BRANCH_SEED)
    samples = [param_dom.sample(rng) for _ in range(N_BRANCH_POINTS)]
    for sol in solutions:
        if set(sol) != set(params):
            continue
        ok = True
        for theta in samples:
            g_vals = {g: eta.subs(theta) for g, eta in zip(gs, etas, strict=True)}
            for p in params:
                back = complex(sp.N(sol[p].subs(g_vals), BRANCH_DPS))
                ref = float(theta[p])
                if not abs(back - ref) <= BRANCH_RTOL * max(1.0, abs(ref)):
                    ok = False
                    break
            if not ok:
                break
        if ok:
            return sol
    return None


def _natural_domain_given(natural_domain, hs_names: list[str]) -> list[sp.Interval]:
    d = len(hs_names)
    if isinstance(natural_domain, Mapping):
        out, used = [], set()
        for j, nm in enumerate(hs_names):
            keys = [k for k in natural_domain if k in (j, nm) or str(k) == nm]
            used.update(keys)
            out.append(natural_domain[keys[0]] if keys else REALS)
        unknown = [k for k in natural_domain if k not in used]
        if unknown:
            raise CanonicalFormError(
                f"natural_domain names {unknown}; the natural parameters are {hs_names} "
                f"(or their indices 0..{d - 1})"
            )
    else:
        out = list(natural_domain)
        if len(out) != d:
            raise CanonicalFormError(
                f"natural_domain has {len(out)} intervals; the family has {d} natural "
                f"parameters {hs_names}"
            )
    for iv in out:
        if not isinstance(iv, sp.Interval):
            raise CanonicalFormError(f"natural_domain entries must be sympy Intervals; got {iv!r}")
    return out


def _derive_natural_domain(etas, params, param_dom: Domain, inverse, gs, hs_names, shown, name):
    """Image of the parameter domain under ``θ ↦ η(θ)`` as a product of intervals.

    Each ``η_j`` must be monotone in one parameter with an image that does not depend on
    the others (so that it is the projection of the image); the product of these
    intervals is then certified to be the whole image by checking symbolically that
    ``θ(h)`` lies in the parameter domain for every ``h`` in it.
    """
    sym_params = {p: _interval_parametrisation(str(p), param_dom.intervals[p]) for p in params}
    intervals = []
    for j, eta in enumerate(etas):
        image = None
        for p in params:
            if p not in eta.free_symbols:
                continue
            others = {q: sym_params[q] for q in params if q != p}
            image = _monotone_image(eta.subs(others), p, param_dom.intervals[p])
            if image is not None:
                break
        if image is None:
            raise CanonicalFormError(
                f"{name}: could not derive the natural domain of {hs_names[j]} = "
                f"{eta.xreplace(shown)} from the parameter domain (it is not monotone in a "
                "single parameter with a range independent of the others); pass "
                f"natural_domain={{'{hs_names[j]}': sympy.Interval(...), ...}}"
            )
        intervals.append(image)
    sweep = {
        g: _interval_parametrisation(nm, iv)
        for g, nm, iv in zip(gs, hs_names, intervals, strict=True)
    }
    for p in params:
        inside = _inside(inverse[p].subs(sweep), param_dom.intervals[p])
        used = [g for g in gs if g in inverse[p].free_symbols]
        if inside is None and len(used) == 1:
            # θ_p depends on one natural parameter: its monotone image must fit
            (g,) = used
            image = _monotone_image(inverse[p], g, intervals[gs.index(g)])
            inside = image is not None and image.is_subset(param_dom.intervals[p])
        if inside is not True:
            box = " × ".join(str(iv) for iv in intervals)
            raise CanonicalFormError(
                f"{name}: could not certify that every h in {box} comes from a valid parameter: "
                f"{shown.get(p, p)}(h) = {inverse[p].xreplace(shown)} is not provably in "
                f"{param_dom.intervals[p]}; pass natural_domain explicitly"
            )
    return intervals


# ================================================================== public API
def from_log_density(
    log_density,
    y,
    params: Sequence[sp.Symbol],
    support: Support,
    *,
    name: str,
    param_domain: Mapping[sp.Symbol, sp.Interval] | None = None,
    natural_domain=None,
    suff_stat: Sequence | None = None,
    check: bool = True,
    description: str = "",
) -> ExponentialFamily:
    """An :class:`ExponentialFamily` from a log-density in any parametrisation.

    ``log_density`` = ``log p(y | θ)`` is expanded (logs, products, trigonometric sums)
    and split into ``t(y)ᵀη(θ) − A(θ) + log k(y)``. Natural parameters ``h = η(θ)``
    (named ``h`` or ``h1..hd``) replace ``θ``; ``F(h) = A(θ(h))`` with ``θ(h)`` the branch
    of the inverse map that is consistent with ``param_domain``. docs/theory.md §1.

    Parameters
    ----------
    log_density: sympy expression in ``y`` and ``params``.
    y: the observation symbol, or a sequence of symbols for a vector observation.
    params: the parameter symbols ``θ`` of the given parametrisation (length ``d``).
    support: where ``y`` lives (:mod:`fishsym.symbolic.support`).
    name: the family's name.
    param_domain: ``{θ_i: Interval}``; parameters not named use their sympy assumptions
        (``positive=True`` → ``(0, ∞)``), else the real line.
    natural_domain: intervals of the natural parameters (a sequence in the order of
        ``t``, or a mapping by index or name ``"h1"``). Derived when omitted: each
        ``η_j`` monotone in one parameter, the image certified by ``θ(h) ∈`` domain.
    suff_stat: optional order (and scaling) of ``t``, e.g. ``(y, 1/y)``; each entry must be
        a constant multiple of a statistic found in the log-density.
    check: check the normalisation numerically at a random natural parameter.

    Returns
    -------
    ExponentialFamily, with extra attributes ``source_params`` (θ), ``natural_map``
    (``{h_j: η_j(θ)}``) and ``inverse_map`` (``{θ_i: θ_i(h)}``).

    Raises
    ------
    CanonicalFormError: a term mixes ``y`` and ``θ``; the numbers of statistics and
        parameters differ (a curved family, or unidentifiable parameters); ``η`` cannot be
        inverted on the parameter domain; the natural domain cannot be derived.
    """
    ys = (y,) if isinstance(y, sp.Symbol) else tuple(y)
    params = tuple(params)
    if not ys or not all(isinstance(s, sp.Symbol) for s in ys):
        raise CanonicalFormError(
            f"{name}: y must be a sympy Symbol or a sequence of Symbols; got {y!r}"
        )
    if not params or not all(isinstance(p, sp.Symbol) for p in params):
        raise CanonicalFormError(
            f"{name}: params must be a non-empty sequence of sympy Symbols; got {params!r}"
        )
    if not isinstance(support, Support):
        raise CanonicalFormError(
            f"{name}: support must be a fishsym.symbolic.support.Support; got {support!r}"
        )
    if support.dim != len(ys):
        raise CanonicalFormError(
            f"{name}: the support has {support.dim} coordinate(s) but y has {len(ys)} symbol(s)"
        )
    expr = sp.sympify(log_density)
    extra = expr.free_symbols - set(ys) - set(params)
    if extra:
        raise CanonicalFormError(
            f"{name}: log_density depends on {sorted(map(str, extra))}, which are neither the "
            f"observation {tuple(map(str, ys))} nor params {tuple(map(str, params))}"
        )

    # parameter domain, and working symbols that carry its assumptions
    param_domain = dict(param_domain or {})
    unknown = set(param_domain) - set(params)
    if unknown:
        raise CanonicalFormError(
            f"{name}: param_domain names {sorted(map(str, unknown))}, not in params"
        )
    intervals = {}
    for p in params:
        if p in param_domain:
            intervals[p] = param_domain[p]
        elif p.is_positive:
            intervals[p] = sp.Interval.open(0, sp.oo)
        elif p.is_negative:
            intervals[p] = sp.Interval.open(-sp.oo, 0)
        else:
            intervals[p] = REALS
    work_p = {p: sp.Symbol(f"_{p.name}", **assumptions_for(intervals[p])) for p in params}
    obs_assumptions = _observation_assumptions(support, len(ys))
    work_y = {yy: sp.Symbol(f"_{yy.name}", **a) for yy, a in zip(ys, obs_assumptions, strict=True)}
    shown = {v: k for k, v in {**work_p, **work_y}.items()}
    wp = [work_p[p] for p in params]
    wy = [work_y[yy] for yy in ys]
    param_dom = Domain({work_p[p]: intervals[p] for p in params})

    expanded = sp.expand(expr.xreplace({**work_p, **work_y}), trig=True, log=True, force=False)
    stats, param_part, base = _split(expanded, wy, wp, shown, name)
    ts, etas = _order_stats(
        stats,
        None if suff_stat is None else [sp.sympify(t).xreplace(work_y) for t in suff_stat],
        set(wy),
        shown,
    )
    d = len(ts)
    if d != len(params):
        found = ", ".join(
            f"{t.xreplace(shown)}·({e.xreplace(shown)})" for t, e in zip(ts, etas, strict=True)
        )
        kind = (
            "a curved exponential family: its natural parameters are not free"
            if d > len(params)
            else "its parameters are not identifiable from the statistics"
        )
        raise CanonicalFormError(
            f"{name}: the log-density has {d} sufficient statistic(s) [{found}] but "
            f"{len(params)} parameter(s) {tuple(map(str, params))}; this is {kind}. "
            "t(y) and θ must have the same length."
        )

    # natural parameters: invert η(θ) = g on the parameter domain
    hs_names = ["h"] if d == 1 else [f"h{j + 1}" for j in range(d)]
    taken = {s.name for s in (*ys, *params)}
    if taken & set(hs_names):
        hs_names = [f"{n}_nat" for n in hs_names]
    gs = [sp.Symbol(f"_g{j}", real=True) for j in range(d)]
    try:
        solutions = sp.solve([e - g for e, g in zip(etas, gs, strict=True)], wp, dict=True)
    except (NotImplementedError, ValueError) as err:
        raise CanonicalFormError(
            f"{name}: could not invert the natural-parameter map "
            f"{[str(e.xreplace(shown)) for e in etas]} for {params}: {err}"
        ) from None
    inverse = _pick_branch(solutions, wp, etas, gs, param_dom)
    if inverse is None:
        raise CanonicalFormError(
            f"{name}: could not invert the natural-parameter map h = "
            f"{[str(e.xreplace(shown)) for e in etas]} for {params} on the parameter domain "
            f"{param_dom}: sympy found {len(solutions)} solution branch(es), none mapping "
            "η(θ) back to θ"
        )

    if natural_domain is not None:
        nat_intervals = _natural_domain_given(natural_domain, hs_names)
    else:
        nat_intervals = _derive_natural_domain(
            etas, wp, param_dom, inverse, gs, hs_names, shown, name
        )
    hs = [natural_symbol(nm, iv) for nm, iv in zip(hs_names, nat_intervals, strict=True)]
    to_h = dict(zip(gs, hs, strict=True))
    theta_of_h = {p: inverse[p].subs(to_h) for p in wp}

    log_partition = _tidy((-param_part).subs(theta_of_h))
    back_y = {v: k for k, v in work_y.items()}
    fam = ExponentialFamily(
        name,
        hs,
        ys[0] if isinstance(y, sp.Symbol) else ys,
        [t.xreplace(back_y) for t in ts],
        log_partition,
        base.xreplace(back_y),
        support,
        domain=dict(zip(hs, nat_intervals, strict=True)),
        description=description or f"from a log-density in parameters {tuple(map(str, params))}",
        check=check,
    )
    back_p = {v: k for k, v in work_p.items()}
    fam.source_params = params
    fam.natural_map = {h: e.xreplace(back_p) for h, e in zip(hs, etas, strict=True)}
    fam.inverse_map = {back_p[p]: sp.simplify(theta_of_h[p]) for p in wp}
    return fam


__all__ = ["from_log_density", "CanonicalFormError"]
