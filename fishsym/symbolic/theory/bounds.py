"""Claim 5 of :func:`check_theory`: the docs/theory.md §3 bounds at exact points, and the
categorical spectrum facts (docs/theory.md §4).

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np
import sympy as sp

from fishsym.symbolic import models as _models
from fishsym.symbolic import tensors
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.models import SymbolicModel
from fishsym.symbolic.records import CheckResult
from fishsym.symbolic.theory.certified import (
    Value,
    certify_le,
    enclose,
    extreme_eigenvalues,
    sym2_pencil,
)
from fishsym.symbolic.theory.claims import _family_label, _model_tag
from fishsym.symbolic.theory.constants import N_POINTS, POINTS, SOS, SYMBOLIC
from fishsym.symbolic.theory.derivation import _combine_methods
from fishsym.symbolic.theory.identities import vector_symbols
from fishsym.symbolic.theory.zero import _opaque_atoms, prove_zero


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
