"""Claim 9 of :func:`check_theory`: the paper's companion statements to Theorem 4.1
(docs/theory.md §3) — Cor. 4.2, Prop. 4.3, Thm. 5.2, Lemma 4.8 and the off-diagonal
bounds of App. C — proved symbolically where an identity carries them and certified in
exact arithmetic at random exact points otherwise.

``M = μ₄ − I ⊗ I``, ``M[v⁴] = μ₄[v⁴] − (vᵀIv)² = Var_y(((t−η)ᵀv)²)``; its quartic form is
that of the symmetric tensor ``μ₄ − Sym(I⊗I)``, whose Sym² matricisation (the pencil of
:func:`~fishsym.symbolic.theory.certified.sym2_pencil`) gives certified outer values
``λ_lo(M) ≤ λ̃_min(M)``, ``λ̃_max(M) ≤ λ_hi(M)``.

* **Thm. 4.1 (8) and Cor. 4.2** (every family): per parameter,
  ``‖u‖⁴λ_lo(M) ≤ V₁ ≤ ‖u‖⁴λ_hi(M)`` with ``V₁ = M[u⁴]``; ``V₁ ≥ 0`` (``λ̃_min(M) ≥ 0``);
  and the values ``M[v⁴]/‖v‖⁴`` attained at the eigenvectors of ``I``, the coordinate axes
  and random rational directions lie inside both certified brackets, Cor. 4.2's
  ``[max(0, λ_lo(μ₄) − λ_max(I)²), λ_hi(μ₄) − λ_min(I)²]`` and the matricisation's.
* **Prop. 4.3** (finite supports): with ``a_y = t(y) − η`` and ``B = max_y ‖a_y‖²``
  computed exactly, the polynomial identity in ``v``
  ``B‖v‖²·vᵀIv − μ₄[v⁴] = Σ_y p(y)(a_yᵀv)²[(B − ‖a_y‖²)‖v‖² + Σ_{j<k}(a_{y,j}v_k − a_{y,k}v_j)²]``
  (Lagrange's identity, in expectation) is proved, every coefficient ``B − ‖a_y‖²`` is
  ``≥ 0``, so ``λ̃_max(μ₄) ≤ B·λ_max(I)``; and ``λ_max(I) ≤ tr I = Σ_y p(y)‖a_y‖² ≤ B``.
* **Thm. 5.2** (categorical, ``m(x) = min(p_max, 1 − ‖p‖²)``): symbolically, in ``p`` on
  the simplex, ``2 − ‖e_c − p‖² = 2p_c + Σ_e p_e(1 − p_e)`` (so ``B ≤ 2``), with
  claim 5's identities ``diag(p) − I = ppᵀ`` and ``tr I = 1 − ‖p‖²`` (so
  ``λ_max(I) ≤ m``) and its SOS certificate (``μ₄[v⁴] ≤ B‖v‖²vᵀIv``): the chain
  ``M[v⁴] ≤ μ₄[v⁴] ≤ B λ_max(I)‖v‖⁴ ≤ 2m‖v‖⁴``. At exact points: ``λ_max(I) ≤ m``
  certified, and the certified ``λ_hi(M)`` compared with ``2m`` (the tighter is reported).
* **trace form** (the Cor. 4.6 type, every family): per parameter group ``g`` with
  Jacobian ``J_g = [u_i]_{i∈g}``, ``λ_min(J_gJ_gᵀ)·tr I ≤ Σ_{i∈g} I(θ_i|x) = tr(I J_gJ_gᵀ)
  ≤ ‖J_g‖₂²·tr I`` (the paper's own constants there could not be read).
* **Lemma 4.8** (every family): ``Var_x I(θ_i|x) ≤ E_x[‖u_i‖⁴ λ_max(I)²]`` for a finite
  input law with weights :data:`~fishsym.symbolic.theory.constants.INPUT_WEIGHTS`; each
  input an independent exact point (the lemma holds for any joint law of ``(u_i, h)``).
* **App. C** (every family): for parameter pairs ``(i, j)``, one label,
  ``Var Î₁[i,j] = μ₄[u_i,u_i,u_j,u_j] − (u_iᵀIu_j)² ≤ ‖u_i‖²‖u_j‖² λ_hi(μ₄)`` (``γ̃_max(M) ≤
  λ̃_max(μ₄)`` by Cauchy–Schwarz, ``E[s_a²s_b²] ≤ √(E s_a⁴ E s_b⁴)``) and
  ``Var Î₂[i,j] = ∂²_{ij}hᵀ I ∂²_{ij}h ≤ ‖∂²_{ij}h‖² λ_max(I)``.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np
import sympy as sp

from fishsym.symbolic import models as _models
from fishsym.symbolic import tensors
from fishsym.symbolic.expectation import finite_points
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.models import SymbolicModel
from fishsym.symbolic.records import CheckResult
from fishsym.symbolic.theory.bounds import _is_categorical, family_point
from fishsym.symbolic.theory.certified import Value, certify_le, extreme_eigenvalues, sym2_pencil
from fishsym.symbolic.theory.claims import _family_label, _model_tag
from fishsym.symbolic.theory.constants import INPUT_WEIGHTS, POINTS, SOS, SYMBOLIC
from fishsym.symbolic.theory.derivation import _combine_methods
from fishsym.symbolic.theory.identities import vector_symbols
from fishsym.symbolic.theory.zero import _opaque_atoms, prove_zero

#: parameter pairs (i < j) checked per point in the App. C bounds
MAX_PAIRS = 8
#: random rational directions at which M[v⁴]/‖v‖⁴ is placed inside the certified brackets
N_DIRECTIONS = 4


def _placeholder(model: SymbolicModel, d: int) -> SymbolicModel:
    """The same architecture with the placeholder activation (see claim 5): exact ``u``,
    ``w`` at rational points, every value of ``σ, σ', σ''`` realised by a smooth ``σ``."""
    spec = model.spec
    if spec.activation not in ("sigmoid", "tanh", "softplus"):
        return model
    sizes = {"n_in": spec.n_in}
    sizes.update({"width": spec.widths[0]} if spec.kind == "mlp1" else {"widths": spec.widths})
    return _models.build(spec.kind, d, activation="sigma", **sizes)


def _tensors_at(fam: ExponentialFamily, h0) -> tuple[sp.Matrix, dict, dict]:
    """``I``, ``μ₄`` and ``M = μ₄ − Sym(I⊗I)`` (multiset entries) at the point ``h0``."""
    I = fam.fisher.xreplace(h0)
    mu4 = {ms: sp.sympify(v).xreplace(h0) for ms, v in fam.central_moment_entries(4).items()}
    M = {}
    for ms, val in mu4.items():
        a, b, c, e = ms
        sym = (I[a, b] * I[c, e] + I[a, c] * I[b, e] + I[a, e] * I[b, c]) / 3
        M[ms] = sp.expand(val - sym)
    return I, mu4, M


def _vectors_at(model: SymbolicModel, values, rng) -> tuple[list, dict]:
    """``u_i`` and the mixed ``∂²h/∂θ_i∂θ_j`` for the first pairs, exact."""
    P = model.n_params
    jac = [_models.substitute(model.jac(i), values) for i in range(P)]
    pairs = list(itertools.combinations(range(P), 2))[:MAX_PAIRS]
    mixed = {
        (i, j): _models.substitute(
            tuple(sp.diff(uc, model.params[j]) for uc in model.jac(i)), values
        )
        for i, j in pairs
    }
    opaque: dict = {}
    for vec in (*jac, *mixed.values()):
        for e in vec:
            for atom in _opaque_atoms(sp.sympify(e)):
                opaque.setdefault(atom, _models.random_rational(rng))

    def exact(vec):
        return [sp.sympify(e).xreplace(opaque) for e in vec]

    return [exact(v) for v in jac], {k: exact(v) for k, v in mixed.items()}


def _form4(T: dict, d: int, a: Sequence, b: Sequence) -> sp.Expr:
    """``T[a, a, b, b]`` for a symmetric 4-tensor given by its multiset entries."""
    total = sp.Integer(0)
    for idx in itertools.product(range(d), repeat=4):
        coef = a[idx[0]] * a[idx[1]] * b[idx[2]] * b[idx[3]]
        if coef != 0:
            total += coef * T[tuple(sorted(idx))]
    return sp.expand(total)


def _quad(I: sp.Matrix, a: Sequence, b: Sequence) -> sp.Expr:
    return sp.expand((sp.Matrix(a).T * I * sp.Matrix(b))[0, 0])


def _directions(I: sp.Matrix, d: int, rng) -> list[list]:
    """Coordinate axes, eigenvectors of ``I`` (when rational) and random rational vectors."""
    out = [[int(k == c) for k in range(d)] for c in range(d)]
    if all(sp.sympify(x).is_Rational for x in I):
        for _, _, vecs in I.eigenvects():
            out += [list(vec) for vec in vecs if all(sp.sympify(x).is_Rational for x in vec)]
    out += [[_models.random_rational(rng) for _ in range(d)] for _ in range(N_DIRECTIONS)]
    return [v for v in out if any(x != 0 for x in v)]


def _is_eigenvector(I: sp.Matrix, w: Sequence) -> bool:
    """``I w ∥ w`` exactly (``‖w‖²·Iw − (wᵀIw)·w ≡ 0``), for a non-zero ``w``."""
    if all(sp.sympify(e) == 0 for e in w):
        return False
    wv = sp.Matrix(w)
    residual = (wv.T * wv)[0, 0] * (I * wv) - (wv.T * I * wv)[0, 0] * wv
    return all(prove_zero(sp.expand(e)).zero is True for e in residual)


def _probabilities(fam: ExponentialFamily, h0) -> list[tuple[tuple, sp.Expr]] | None:
    """``[(y, p(y))]`` over a finite support at ``h0`` when every ``p(y)`` is rational."""
    points = finite_points(fam.support)
    if points is None:
        return None
    dens = fam.log_density.xreplace(h0)
    out = []
    for pt in points:
        p = sp.nsimplify(
            sp.simplify(sp.exp(dens.xreplace(dict(zip(fam.obs_symbols, pt, strict=True)))))
        )
        if not p.is_Rational:
            return None
        out.append((pt, p))
    return out


def check_companions(
    fam: ExponentialFamily, model: SymbolicModel, seed: int = 0, n_points: int = 2
) -> list[CheckResult]:
    """Claim 9 (module docstring): the companions of Theorem 4.1 at exact points, and the
    identities that carry Prop. 4.3 and Thm. 5.2."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed + 9)
    d = fam.dim
    fam_label = _family_label(fam)
    tag = _model_tag(model)
    model = _placeholder(model, d)
    keys = ("thm41", "lemma", "appc", "prop", "thm52", "trace")
    fail: dict[str, list[str]] = {k: [] for k in keys}
    counts: dict[str, int] = dict.fromkeys(fail, 0)
    prop_points = 0
    tighter: list[str] = []
    lemma_inputs: list[tuple[list, list]] = []  # per input: (I(θ_i|x) per i, ‖u‖⁴λ_max² per i)

    def check(key, label, lhs, rhs):
        ok, why = certify_le(lhs, rhs)
        counts[key] += 1
        if ok is not True:
            fail[key].append(f"{label} ({why})")

    for _ in range(max(n_points, len(INPUT_WEIGHTS))):
        h0, _how = family_point(fam, rng)
        values = model.sample_point(rng, [h0[h] for h in fam.natural_params])
        I, mu4, M = _tensors_at(fam, h0)
        lam_min, lam_max, _ = extreme_eigenvalues(I)
        G, D = sym2_pencil(mu4, d)
        lo_mu4, hi_mu4, _ = extreme_eigenvalues(G, D)
        G, D = sym2_pencil(M, d)
        lo_M, hi_M, _ = extreme_eigenvalues(G, D)
        jac, mixed = _vectors_at(model, values, rng)
        fishers, caps = [], []
        for i, u in enumerate(jac):
            nu = Value.of(sum(e**2 for e in u))
            fisher_u = Value.of(_quad(I, u, u))
            v1 = Value.of(sp.expand(tensors.symmetric_form(mu4, d, 4, u))) - fisher_u**2
            fishers.append(fisher_u)
            caps.append(nu**2 * lam_max**2)
            if len(lemma_inputs) >= n_points:
                continue  # the extra points only feed Lemma 4.8's input law
            name = str(model.params[i])
            check("thm41", f"{name}: ‖u‖⁴λ_lo(M) ≤ V₁", nu**2 * lo_M, v1)
            check("thm41", f"{name}: V₁ ≤ ‖u‖⁴λ_hi(M)", v1, nu**2 * hi_M)
            check("thm41", f"{name}: 0 ≤ V₁", Value.of(0), v1)
        lemma_inputs.append((fishers, caps))
        if len(lemma_inputs) > n_points:
            continue
        # trace-type form (Cor. 4.6): Σ_{i∈g} I(θ_i|x) = tr(I·J_gJ_gᵀ) ∈ λ(J_gJ_gᵀ)·tr I
        for group, idx in model.groups.items():
            J = sp.Matrix([jac[i] for i in idx]).T  # [d, |g|]
            g_min, g_max, _ = extreme_eigenvalues(J * J.T)
            total = sum((fishers[i] for i in idx), Value.of(0))
            tr_i = Value.of(I.trace())
            check("trace", f"{group}: λ_min(JJᵀ)·tr I ≤ Σ I(θ_i|x)", g_min * tr_i, total)
            check("trace", f"{group}: Σ I(θ_i|x) ≤ ‖J‖₂²·tr I", total, g_max * tr_i)
        # Cor. 4.2 / the matricisation bracket around attained values of M[v⁴]/‖v‖⁴
        cor_lo = lo_mu4 - lam_max**2
        cor_hi = hi_mu4 - lam_min**2
        for v in _directions(I, d, rng):
            n4 = sum(x**2 for x in v) ** 2
            m = Value.of(sp.expand(tensors.symmetric_form(M, d, 4, v)) / n4)
            check("thm41", "M[v⁴]/‖v‖⁴ ≥ 0", Value.of(0), m)
            check("thm41", "Cor. 4.2: λ_lo(μ₄) − λ_max(I)² ≤ M[v⁴]/‖v‖⁴", cor_lo, m)
            check("thm41", "Cor. 4.2: M[v⁴]/‖v‖⁴ ≤ λ_hi(μ₄) − λ_min(I)²", m, cor_hi)
            check("thm41", "λ_lo(M) ≤ M[v⁴]/‖v‖⁴ ≤ λ_hi(M)", lo_M, m)
            check("thm41", "M[v⁴]/‖v‖⁴ ≤ λ_hi(M)", m, hi_M)
        # App. C: off-diagonal variances of one label
        for (i, j), wij in mixed.items():
            ui, uj = jac[i], jac[j]
            var1 = Value.of(_form4(mu4, d, ui, uj) - _quad(I, ui, uj) ** 2)
            norms = Value.of(sum(e**2 for e in ui) * sum(e**2 for e in uj))
            var2 = Value.of(_quad(I, wij, wij))
            pair = f"({model.params[i]}, {model.params[j]})"
            check("appc", f"{pair}: Var Î₁[i,j] ≤ ‖u_i‖²‖u_j‖²λ_hi(μ₄)", var1, norms * hi_mu4)
            check("appc", f"{pair}: 0 ≤ Var Î₁[i,j]", Value.of(0), var1)
            bound = Value.of(sum(e**2 for e in wij)) * lam_max
            if _is_eigenvector(I, wij):
                # equality is possible (wᵀIw = ‖w‖²λ_max when w is a top eigenvector), where
                # enclosures cannot separate the sides: an eigenvector's Rayleigh quotient is
                # an eigenvalue, ≤ λ_max by definition
                counts["appc"] += 1
            else:
                check("appc", f"{pair}: Var Î₂[i,j] ≤ ‖∂²h‖²λ_max(I)", var2, bound)
        # Prop. 4.3 on finite supports
        probs = _probabilities(fam, h0)
        if probs is not None:
            prop_points += 1
            _prop_4_3(fam, I, mu4, probs, d, lam_max, check)
        if _is_categorical(fam):
            p = [sp.exp(h0[h]) for h in fam.natural_params]
            p = [sp.nsimplify(x / sum(p)) for x in p]
            m_x = min(max(p), 1 - sum(x**2 for x in p))
            check("thm52", "λ_max(I) ≤ m(x)", lam_max, Value.of(m_x))
            better = "matricisation λ_hi(M)" if hi_M.interval.hi < 2 * m_x else "2m(x)"
            tighter.append(
                f"λ_hi(M) = {float(hi_M.interval.hi):.4g} vs 2m(x) = {float(2 * m_x):.4g} "
                f"({better} tighter)"
            )
    # Lemma 4.8 over the finite input law
    weights = [Value.of(w) for w in INPUT_WEIGHTS]
    law = lemma_inputs[: len(weights)]
    for i in range(len(law[0][0])):
        mean = sum((w * inp[0][i] for w, inp in zip(weights, law, strict=True)), Value.of(0))
        second = sum((w * inp[0][i] ** 2 for w, inp in zip(weights, law, strict=True)), Value.of(0))
        cap = sum((w * inp[1][i] for w, inp in zip(weights, law, strict=True)), Value.of(0))
        check(
            "lemma",
            f"{model.params[i]}: Var_x I(θ_i|x) ≤ E_x[‖u_i‖⁴λ_max(I)²]",
            second - mean**2,
            cap,
        )

    out = [
        CheckResult(
            f"9. Thm. 4.1 (8) with λ̃(M), Cor. 4.2 [{tag}]",
            fam_label,
            POINTS,
            not fail["thm41"],
            f"{counts['thm41']} certified inequalities at {n_points} exact points: "
            "‖u‖⁴λ_lo(M) ≤ V₁ ≤ ‖u‖⁴λ_hi(M), V₁ ≥ 0, and M[v⁴]/‖v‖⁴ at axes, eigenvectors and "
            "random directions inside Cor. 4.2's and the matricisation's brackets"
            + (f" — FAILED: {fail['thm41'][:3]}" if fail["thm41"] else ""),
        ),
        CheckResult(
            f"9. trace form (Cor. 4.6 type): Σ_g I(θ_i|x) ≤ ‖J_g‖₂² tr I [{tag}]",
            fam_label,
            POINTS,
            not fail["trace"],
            f"{counts['trace']} certified inequalities, per parameter group g and point: "
            "λ_min(J_gJ_gᵀ)·tr I ≤ Σ_(i∈g) I(θ_i|x) = tr(I J_gJ_gᵀ) ≤ λ_max(J_gJ_gᵀ)·tr I (the "
            "paper's own constants in Cor. 4.6 could not be read; this form is proved: "
            "tr(AB) ∈ [λ_min(B), λ_max(B)]·tr A for A ⪰ 0)"
            + (f" — FAILED: {fail['trace'][:3]}" if fail["trace"] else ""),
        ),
        CheckResult(
            f"9. Lemma 4.8: Var_x I ≤ E_x[‖u‖⁴λ_max(I)²] [{tag}]",
            fam_label,
            POINTS,
            not fail["lemma"],
            f"{counts['lemma']} parameters, input law with weights "
            f"{', '.join(map(str, INPUT_WEIGHTS))} over independent exact points"
            + (f" — FAILED: {fail['lemma'][:3]}" if fail["lemma"] else ""),
        ),
        CheckResult(
            f"9. App. C off-diagonal bounds [{tag}]",
            fam_label,
            POINTS,
            not fail["appc"],
            f"{counts['appc']} certified inequalities over {min(MAX_PAIRS, len(mixed))} "
            "parameter pairs per point (γ̃_max(M) ≤ λ̃_max(μ₄) ≤ λ_hi(μ₄) by Cauchy–Schwarz)"
            + (f" — FAILED: {fail['appc'][:3]}" if fail["appc"] else ""),
        ),
    ]
    if prop_points:
        out.append(
            CheckResult(
                "9. Prop. 4.3: λ̃_max(μ₄) ≤ B·λ_max(I) ≤ B² (finite support)",
                fam_label,
                _combine_methods({SOS, POINTS}),
                not fail["prop"],
                f"Lagrange-identity certificate in expectation proved and {counts['prop']} "
                f"exact checks at {prop_points} points (B = max_y ‖t(y) − η‖², exact)"
                + (f" — FAILED: {fail['prop'][:3]}" if fail["prop"] else ""),
            )
        )
    if _is_categorical(fam):
        out.append(_thm_5_2_identities(fam, fam_label, tighter, fail["thm52"], counts["thm52"]))
    detail_time = f" | {time.perf_counter() - t0:.2f}s"
    out[-1] = CheckResult(
        out[-1].claim, out[-1].family, out[-1].method, out[-1].passed, out[-1].detail + detail_time
    )
    return out


def _prop_4_3(fam, I, mu4, probs, d, lam_max, check) -> None:
    """Prop. 4.3's certificate at one point (module docstring)."""
    eta = [
        sum(
            p * fam.suff_stat[c].xreplace(dict(zip(fam.obs_symbols, y, strict=True)))
            for y, p in probs
        )
        for c in range(d)
    ]
    v = vector_symbols("v", d)
    nv2 = sum(x**2 for x in v)
    a = [
        [
            sp.sympify(fam.suff_stat[c].xreplace(dict(zip(fam.obs_symbols, y, strict=True))))
            - eta[c]
            for c in range(d)
        ]
        for y, _ in probs
    ]
    norms = [sp.expand(sum(x**2 for x in ay)) for ay in a]
    B = max(norms)
    certificate = sum(
        p
        * sum(ay[c] * v[c] for c in range(d)) ** 2
        * (
            (B - n) * nv2
            + sum((ay[j] * v[k] - ay[k] * v[j]) ** 2 for j in range(d) for k in range(j + 1, d))
        )
        for (_, p), ay, n in zip(probs, a, norms, strict=True)
    )
    quad = (sp.Matrix(v).T * I * sp.Matrix(v))[0, 0]
    residual = B * nv2 * quad - tensors.symmetric_form(mu4, d, 4, list(v)) - certificate
    zt = prove_zero(sp.expand(residual))
    check(
        "prop",
        "B‖v‖²vᵀIv − μ₄[v⁴] = Σ_y p(y)(a_yᵀv)²[…] (identity in v)",
        Value.of(0),
        Value.of(0) if zt.zero is True else Value.of(-1),
    )
    for n in norms:
        check("prop", "B − ‖a_y‖² ≥ 0", Value.of(n), Value.of(B))
    trace = sp.expand(sum(p * n for (_, p), n in zip(probs, norms, strict=True)))
    check(
        "prop",
        "tr I = Σ_y p(y)‖a_y‖²",
        Value.of(0),
        Value.of(0) if sp.expand(I.trace() - trace) == 0 else Value.of(-1),
    )
    check("prop", "λ_max(I) ≤ tr I", lam_max, Value.of(I.trace()))
    check("prop", "tr I ≤ B", Value.of(trace), Value.of(B))


def _thm_5_2_identities(fam, fam_label, tighter, point_fail, n_point) -> CheckResult:
    """The symbolic links of Thm. 5.2's chain, in ``p`` on the simplex."""
    C = fam.dim
    p = [sp.Symbol(f"p_{c + 1}", positive=True) for c in range(C - 1)]
    p.append(1 - sum(p))
    norm_p2 = sum(x**2 for x in p)
    links = []
    for c in range(C):
        dist = sum(((1 if e == c else 0) - p[e]) ** 2 for e in range(C))
        links.append(2 - dist - (2 * p[c] + sum(x * (1 - x) for x in p)))
    links.append((1 - norm_p2) - sum(x * (1 - x) for x in p))
    sym_fail = [str(e) for e in links if prove_zero(sp.expand(e)).zero is not True]
    return CheckResult(
        "9. Thm. 5.2 (categorical): λ_max(I) ≤ m(x), λ̃_max(M) ≤ 2m(x)",
        fam_label,
        _combine_methods({SYMBOLIC, SOS, POINTS}),
        not sym_fail and not point_fail,
        "identities 2 − ‖e_c − p‖² = 2p_c + Σ_e p_e(1−p_e) (B ≤ 2) and 1 − ‖p‖² = "
        "Σ p_e(1−p_e) ≥ 0, with claim 5's diag(p) − I = ppᵀ, tr I = 1 − ‖p‖² and SOS "
        "certificate: M[v⁴] ≤ μ₄[v⁴] ≤ B λ_max(I)‖v‖⁴ ≤ 2m(x)‖v‖⁴; "
        f"{n_point} exact λ_max(I) ≤ m(x) checks; "
        + "; ".join(tighter)
        + (f" — FAILED: {(sym_fail + point_fail)[:3]}" if sym_fail or point_fail else ""),
    )
