"""Claims 1–4, 6 and 7 of :func:`check_theory`: identities, affine parameters (V₂ = 0),
decomposition over inputs, the empirical Fisher.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cache

import numpy as np
import sympy as sp

from fishsym.symbolic import models as _models
from fishsym.symbolic import tensors
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.models import SymbolicModel
from fishsym.symbolic.records import CheckResult
from fishsym.symbolic.theory.closed_forms import CLOSED_FORMS, ClosedForms
from fishsym.symbolic.theory.constants import INPUT_WEIGHTS, SYMBOLIC
from fishsym.symbolic.theory.derivation import (
    StepResult,
    _combine_methods,
    derive,
    model_step,
    suff_stat_symbols,
)
from fishsym.symbolic.theory.identities import (
    _var,
    family_link,
    identities,
    polynomial_ring,
    vector_symbols,
)
from fishsym.symbolic.theory.moments import FamilyMoments, FreeCumulants
from fishsym.symbolic.theory.zero import ZeroTest, prove_zero

CLAIM_TEXT = {
    1: "unbiased: E Î₁ = E Î₂ = uᵀIu",
    2: "V₁ = μ₄[u⁴]−I² = κ₄[u⁴]+2I², V₂ = wᵀIw",
    3: "covariances (pullback forms)",
    4: "V₂ ≡ 0 where h is affine",
    5: "bounds of docs/theory.md §3",
    6: "input/label decomposition",
    7: "empirical Fisher mean, bias, variance",
    8: "estimators of §9 (batched score, Hutchinson, the recipe's factor)",
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
