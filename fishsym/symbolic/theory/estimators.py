"""Claim 8 of :func:`check_theory`: the estimators of docs/theory.md §9, proved.

* **Batched squared score** over two inputs with their own natural parameters and
  independent model labels: ``E (X₁+X₂)² = I₁ + I₂`` and
  ``Var (X₁+X₂)² = κ₄,₁[u₁⁴] + κ₄,₂[u₂⁴] + 2(I₁+I₂)²`` (``X_n = (t_n − η_n)ᵀu_n``), against
  the per-sample sum ``Var(X₁² + X₂²) = Σ_n (κ₄,n + 2I_n²)`` — in free cumulants, exact in
  ``ℚ[κ, u, T]``, then linked to the family's own cumulants (:func:`family_link`).
* **Hutchinson probe** (family-free): for a Rademacher ``ξ`` and any ``a ∈ ℝ^r``, by
  enumeration of all ``2^r`` sign vectors, ``E(ξᵀa)² = ‖a‖²`` and
  ``Var(ξᵀa)² = 2Σ_{j≠k} a_j²a_k² = 2(‖a‖⁴ − Σa_k⁴) ≤ 2‖a‖⁴`` (the gap ``2Σa_k⁴`` is a sum
  of squares).
* **The recipe's factor** ``R`` with ``RRᵀ = I(h)``, so that ``‖Rᵀu‖² = uᵀIu``: for
  categorical heads (over-complete, minimal, multinomial) the recipe's
  ``Rᵀ = diag(√p) − √p pᵀ`` against the family's own Fisher information, symbolically; for
  one natural parameter ``R = √I``; other families use the symmetric square root of
  ``I(h)``, for which ``RRᵀ = I`` holds by construction (stated, not re-proved).

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

import itertools
import time
from functools import cache

import sympy as sp

from fishsym.symbolic.records import CheckResult
from fishsym.symbolic.theory.closed_forms import CLOSED_FORMS, ClosedForms
from fishsym.symbolic.theory.derivation import _combine_methods, suff_stat_symbols
from fishsym.symbolic.theory.identities import family_link, polynomial_ring, vector_symbols
from fishsym.symbolic.theory.moments import FreeCumulants, expect_independent
from fishsym.symbolic.theory.zero import ZeroTest, prove_zero

TEXT = "estimators of §9: batched score, Hutchinson probe, the recipe's factor"


@cache
def estimator_identities(d: int, cf: ClosedForms = CLOSED_FORMS) -> tuple[tuple[str, ZeroTest]]:
    """The §9 identities for output dimension ``d``, proved (cached: family-free)."""
    R, cums, (u1, u2, T1, T2) = polynomial_ring(
        [FreeCumulants(d, tag="^1"), FreeCumulants(d, tag="^2")],
        vector_symbols("u^1", d),
        vector_symbols("u^2", d),
        suff_stat_symbols(d, tag="^(1)"),
        suff_stat_symbols(d, tag="^(2)"),
    )
    c1, c2 = cums

    def score(T, cum, u):
        return sum(((t - e) * uc for t, e, uc in zip(T, cum.eta, u, strict=True)), R.zero)

    x1, x2 = score(T1, c1, u1), score(T2, c2, u2)
    copies = [(T1, c1), (T2, c2)]
    i1, i2 = cf.fisher_diag(c1, u1), cf.fisher_diag(c2, u2)
    k1 = cf.var1_cumulant(c1, u1) - 2 * i1 * i1  # κ₄[u⁴]
    k2 = cf.var1_cumulant(c2, u2) - 2 * i2 * i2
    batched = (x1 + x2) ** 2
    mean = expect_independent(batched, copies)
    second = expect_independent(batched * batched, copies)
    summed = x1 * x1 + x2 * x2
    mean_s = expect_independent(summed, copies)
    second_s = expect_independent(summed * summed, copies)
    out: list[tuple[str, object]] = [
        ("E (X₁+X₂)² = I₁ + I₂", mean - (i1 + i2)),
        (
            "Var (X₁+X₂)² = κ₄,₁ + κ₄,₂ + 2(I₁+I₂)²",
            second - mean * mean - (k1 + k2 + 2 * (i1 + i2) ** 2),
        ),
        (
            "Var (X₁²+X₂²) = Σ (κ₄,n + 2I_n²)",
            second_s - mean_s * mean_s - (k1 + k2 + 2 * (i1 * i1 + i2 * i2)),
        ),
    ]
    a = sp.symbols(f"a_1:{d + 1}", real=True)
    values = [
        sum(s * ak for s, ak in zip(signs, a, strict=True)) ** 2
        for signs in itertools.product((-1, 1), repeat=d)
    ]
    m = sp.Add(*values) / len(values)
    v = sp.Add(*(val**2 for val in values)) / len(values) - m**2
    norm2 = sp.Add(*(ak**2 for ak in a))
    cross = 2 * sp.Add(*(a[j] ** 2 * a[k] ** 2 for j in range(d) for k in range(d) if j != k))
    out += [
        ("E_ξ (ξᵀa)² = ‖a‖²", sp.expand(m - norm2)),
        ("Var_ξ (ξᵀa)² = 2Σ_{j≠k} a_j²a_k²", sp.expand(v - cross)),
        (
            "2Σ_{j≠k} a_j²a_k² = 2(‖a‖⁴ − Σa⁴)",
            sp.expand(cross - 2 * (norm2**2 - sp.Add(*(ak**4 for ak in a)))),
        ),
    ]
    return tuple((label, prove_zero(e)) for label, e in out)


def recipe_factor(fam) -> tuple[str, ZeroTest] | None:
    """``R Rᵀ = I(h)`` for the recipe's factor of a categorical head, symbolically; ``None``
    for other families (the symmetric square root: true by construction)."""
    name = fam.name
    if name not in ("categorical", "categorical_minimal", "multinomial"):
        return None
    d = fam.dim
    mean = list(fam.mean)
    if name == "categorical_minimal":
        p = mean + [1 - sp.Add(*mean)]
    elif name == "multinomial":
        n = sp.Integer(fam.sizes["n"])
        p = [m / n for m in mean]
    else:
        p = mean
    scale = sp.Integer(fam.sizes["n"]) if name == "multinomial" else sp.Integer(1)
    C = len(p)
    # Rᵀ[y, c] = √(scale·p_y) (δ_yc − p_c), c over the d natural parameters
    rt = [
        [sp.sqrt(scale * p[y]) * ((1 if y == c else 0) - p[c]) for c in range(d)] for y in range(C)
    ]
    diff = sp.Add(
        *(
            (sp.Add(*(rt[y][c] * rt[y][e] for y in range(C))) - fam.fisher[c, e]) ** 2
            for c in range(d)
            for e in range(d)
        )
    )
    return "R Rᵀ = I(h) for Rᵀ = diag(√p) − √p pᵀ", prove_zero(diff)


def check_estimators(fam, model, cf: ClosedForms = CLOSED_FORMS) -> list[CheckResult]:
    """Claim 8 (module docstring) for ``fam``; ``model`` only tags the record (the
    identities hold for any ``u``)."""
    from fishsym.symbolic.theory.claims import _family_label, _model_tag

    t0 = time.perf_counter()
    proofs = list(estimator_identities(fam.dim, cf))
    factor = recipe_factor(fam)
    if factor is not None:
        proofs.append(factor)
    link = family_link(fam)
    failed = [f"{label}: {z.note}" for label, z in proofs if z.zero is not True]
    passed = link.passed and not failed
    methods = {link.method, *(z.method for _, z in proofs)}
    parts = [
        "; ".join(label for label, _ in proofs) + " — differences 0"
        if not failed
        else "FAILED " + "; ".join(failed),
        "family link ✓" if link.passed else f"family link FAILED: {link.detail}",
    ]
    if factor is None:
        parts.append("R = symmetric square root of I(h): RRᵀ = I by construction")
    parts.append(f"{time.perf_counter() - t0:.2f}s")
    return [
        CheckResult(
            f"8. {TEXT} [{_model_tag(model)}]",
            _family_label(fam),
            _combine_methods(methods),
            passed,
            " | ".join(parts),
        )
    ]


__all__ = ["check_estimators", "estimator_identities", "recipe_factor"]
