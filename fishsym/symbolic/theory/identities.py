"""The claimed identities between derived expectations and closed forms, and the link from free
cumulants to each family's own moments.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import cache

import sympy as sp
from sympy.polys.rings import ring

from fishsym.symbolic import tensors
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.theory.closed_forms import CLOSED_FORMS, ClosedForms
from fishsym.symbolic.theory.constants import INPUT_WEIGHTS, INPUT_WEIGHTS_NXNY, N_X, N_Y
from fishsym.symbolic.theory.derivation import StepResult, _combine_methods, suff_stat_symbols
from fishsym.symbolic.theory.moments import FamilyMoments, FreeCumulants, expect_independent
from fishsym.symbolic.theory.zero import ZeroTest, prove_zero


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
