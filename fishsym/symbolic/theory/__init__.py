"""Symbolic proofs of the estimator theory (docs/theory.md §1–§5, §9).

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
   at another natural parameter;
8. the estimators of §9: the batched squared score's mean and variance over two inputs,
   the Hutchinson probe's mean and variance, and the recipe's factor ``RRᵀ = I(h)``
   (:mod:`fishsym.symbolic.theory.estimators`);
9. the paper's companions of Theorem 4.1: eq. (8) with the certified ``λ̃(M)`` values of
   ``M = μ₄ − I⊗I``, Cor. 4.2, Prop. 4.3 (finite supports: a Lagrange-identity
   certificate), Thm. 5.2 (categorical), Lemma 4.8 and the off-diagonal bounds of App. C
   (:mod:`fishsym.symbolic.theory.companions`).

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


The package is split along the method: :mod:`.constants`, :mod:`.certified` (exact-real
arithmetic), :mod:`.zero` (the one zero test), :mod:`.moments`, :mod:`.closed_forms`,
:mod:`.derivation`, :mod:`.identities`, :mod:`.claims`, :mod:`.bounds` and :mod:`.suite`.
"""

from __future__ import annotations

from fishsym.symbolic.theory.bounds import (  # noqa: F401
    check_bounds,
    check_categorical_spectrum,
    family_point,
)
from fishsym.symbolic.theory.certified import (  # noqa: F401
    Interval,
    UnsupportedEnclosureError,
    Value,
    certify_le,
    enclose,
    exact_number_is_zero,
    extreme_eigenvalues,
    sym2_pencil,
)
from fishsym.symbolic.theory.claims import (  # noqa: F401
    CLAIM_TEXT,
    _family_label,
    check_affine,
    check_decomposition,
    check_empirical,
    empirical_identities,
    family_shift_link,
    shift_moment,
)
from fishsym.symbolic.theory.closed_forms import (  # noqa: F401
    CLOSED_FORMS,
    ClosedForms,
)
from fishsym.symbolic.theory.companions import check_companions  # noqa: F401
from fishsym.symbolic.theory.constants import (  # noqa: F401
    CLAIMS,
    INPUT_WEIGHTS,
    INPUT_WEIGHTS_NXNY,
    N_POINTS,
    N_X,
    N_Y,
    POINTS,
    PRECISION_BITS,
    ROOT_EPS,
    SIMPLIFY_OPS_LIMIT,
    SOS,
    SYMBOLIC,
)
from fishsym.symbolic.theory.derivation import (  # noqa: F401
    Derivation,
    StepResult,
    derive,
    expected_curvature,
    expected_score,
    log_partition_function,
    model_step,
    suff_stat_symbols,
)
from fishsym.symbolic.theory.identities import (  # noqa: F401
    family_link,
    identities,
    neg_hessian,
    polynomial_ring,
    squared_score,
    vector_symbols,
)
from fishsym.symbolic.theory.moments import (  # noqa: F401
    FamilyMoments,
    FreeCumulants,
    expect_independent,
)
from fishsym.symbolic.theory.suite import (  # noqa: F401
    SUITE_MODELS,
    check_theory,
    check_theory_suite,
    inverse_gaussian,
    summary_table,
)
from fishsym.symbolic.theory.zero import (  # noqa: F401
    ZeroTest,
    prove_zero,
)

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
    "check_companions",
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
