"""The normalisation check run at construction stays cheap at network output sizes and
still catches a wrong log-partition (issue 2, construction-time check).

No timed assertions: construction times are printed by benchmarks/bench_symbolic.py.
Here each route is held to an independent computation of the same mass — the float64
log-sum-exp to the exact value and to the mpmath sum, the closed Gaussian integral to the
dense Gauss–Hermite rule — and each must reject a deliberately wrong F.
"""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from fishsym.errors import FamilyDefinitionError
from fishsym.symbolic import ExponentialFamily, families, verify_family
from fishsym.symbolic.domain import natural_symbol
from fishsym.symbolic.expectation import (
    NORMALISATION_DPS,
    gauss_hermite_expectations,
    gaussian_log_mass,
    normalisation_check,
    numeric_expectations,
)
from fishsym.symbolic.family import NORMALISATION_SEED
from fishsym.symbolic.support import (
    FiniteSupport,
    NonNegativeIntegers,
    ProductSupport,
    real_space,
)

#: sizes the numeric layer builds from network outputs; before the fast routes these took
#: minutes (categorical C=1000 about 300 s, gaussian sigma2=2 about 170 s)
LARGE_SIZES = [
    ("categorical", {"C": 200}),
    ("multinomial", {"n": 2, "C": 10}),
    ("independent_bernoulli", {"d": 8}),
    ("gaussian", {"d": 5, "sigma2": 2}),
]
#: the wrong constant added to F in the rejection tests, and the smallest one: far above
#: every route's tolerance (≤ 1e-12), far below anything a density check at float64
#: resolution without a derived tolerance would reliably see
WRONG_CONSTANT = sp.Rational(1, 10)
SMALL_WRONG_CONSTANT = sp.Rational(1, 10**9)
#: two evaluations of one mass at NORMALISATION_DPS digits agree far below this
MPMATH_AGREEMENT = 1e-20


def construction_values(fam):
    """The random valid parameter at which construction checked the family."""
    return fam.random_natural_params(np.random.default_rng(NORMALISATION_SEED))


def categorical_parts(C):
    h = [natural_symbol(f"h{c + 1}") for c in range(C)]
    y = [sp.Symbol(f"y{c + 1}", integer=True, nonnegative=True) for c in range(C)]
    logsumexp = sp.log(sp.Add(*(sp.exp(hc) for hc in h)))
    return h, y, logsumexp


def categorical_with(C, log_partition_shift):
    h, y, logsumexp = categorical_parts(C)
    return ExponentialFamily(
        "categorical", h, y, y, logsumexp + log_partition_shift, 0, FiniteSupport.one_hot(C)
    )


@pytest.mark.parametrize(("family_name", "sizes"), LARGE_SIZES)
def test_large_families_construct(family_name, sizes):
    fam = families.get(family_name, **sizes)
    check = fam.construction_check
    assert check is not None and check.passed, check
    expected = "Gaussian integral" if family_name == "gaussian" else "float64 log-sum-exp"
    assert check.route.startswith(expected), check


def test_wrong_log_partition_of_large_categorical_is_rejected():
    """C = 50, F = logsumexp + 0.1: the mass is e^{-0.1}, and the message says so."""
    with pytest.raises(FamilyDefinitionError, match="does not normalise") as err:
        categorical_with(50, WRONG_CONSTANT)
    message = str(err.value)
    assert f"{-math.expm1(-0.1):.3g}" in message, message
    assert "float64 log-sum-exp over 50 points" in message and "(46 more)" in message


def test_tiny_error_of_large_categorical_is_rejected():
    """F + 1e-9 at C = 200 is rejected: the float64 tolerance there is ~1e-12."""
    with pytest.raises(FamilyDefinitionError, match="does not normalise"):
        categorical_with(200, SMALL_WRONG_CONSTANT)
    assert categorical_with(200, 0).construction_check.tol < float(SMALL_WRONG_CONSTANT) / 100


@pytest.mark.parametrize("shift", [0, WRONG_CONSTANT, -SMALL_WRONG_CONSTANT])
def test_float64_route_matches_exact_and_mpmath_mass(shift):
    """For F = logsumexp + δ the mass is e^{−δ} exactly; the float64 route finds
    |e^{−δ} − 1| within its stated tolerance, and so does the mpmath sum."""
    h, y, logsumexp = categorical_parts(30)
    wrong = ExponentialFamily(
        "categorical", h, y, y, logsumexp + shift, 0, FiniteSupport.one_hot(30), check=False
    )
    values = construction_values(wrong)
    check = normalisation_check(wrong, values)
    exact = abs(math.expm1(-float(shift)))
    assert abs(check.error - exact) <= check.tol, (check, exact)
    (mass,) = numeric_expectations(wrong, [sp.Integer(1)], values, dps=NORMALISATION_DPS)
    assert abs(float(abs(mass - 1)) - exact) <= check.tol


def test_float64_route_handles_large_counts():
    """Binomial(2000): log C(2000, y) as log Γ (no overflow), mass within tolerance; a
    wrong F is caught at the same size."""
    fam = families.get("binomial", n=2000)
    assert fam.construction_check.passed
    assert fam.construction_check.route == "float64 log-sum-exp over 2001 points"
    (h,) = fam.natural_params
    with pytest.raises(FamilyDefinitionError, match="does not normalise"):
        ExponentialFamily(
            "binomial",
            (h,),
            fam.y,
            fam.suff_stat,
            fam.log_partition * (1 + sp.Rational(1, 10**9)),
            fam.log_base_measure,
            fam.support,
            sizes=fam.sizes,
        )


def test_float64_unavailable_falls_back_to_mpmath_sum():
    """log k = log Fibonacci(y+1) has no float64 translation: the mpmath sum decides, and
    still rejects a wrong F."""
    h, y = sp.Symbol("h", real=True), sp.Symbol("y", integer=True, nonnegative=True)
    logk = sp.log(sp.fibonacci(y + 1))
    support = FiniteSupport.integer_range(0, 3)
    F = sp.log(1 + sp.exp(h) + 2 * sp.exp(2 * h) + 3 * sp.exp(3 * h))
    fam = ExponentialFamily("fib", (h,), y, (y,), F, logk, support)
    assert fam.construction_check.route == "mpmath sum", fam.construction_check
    assert "float64 evaluation unavailable" in fam.construction_check.detail
    assert fam.construction_check.passed
    with pytest.raises(FamilyDefinitionError, match="route: mpmath sum"):
        ExponentialFamily("fib", (h,), y, (y,), F + SMALL_WRONG_CONSTANT, logk, support)


def correlated_gaussian(log_partition_shift=0, check=True):
    """t = y on R², log k = −(y₁² + y₁y₂ + y₂²) − ½ log((2π)²/3): covariance
    A⁻¹ with A = [[2, 1], [1, 2]], so F(h) = hᵀA⁻¹h/2 = (h₁² − h₁h₂ + h₂²)/3."""
    h = [natural_symbol("h1"), natural_symbol("h2")]
    y = [sp.Symbol("y1", real=True), sp.Symbol("y2", real=True)]
    logk = -(y[0] ** 2 + y[0] * y[1] + y[1] ** 2) - sp.log((2 * sp.pi) ** 2 / 3) / 2
    F = (h[0] ** 2 - h[0] * h[1] + h[1] ** 2) / 3 + log_partition_shift
    return ExponentialFamily("correlated", h, y, y, F, logk, real_space(2), check=check)


def rebuilt_gaussian(log_partition_shift=0, check=True):
    """The registered Gaussian (d = 3, σ² = 2) with F + shift."""
    fam = families.get("gaussian", d=3, sigma2=2)
    return ExponentialFamily(
        "gaussian",
        fam.natural_params,
        fam.obs_symbols,
        fam.suff_stat,
        fam.log_partition + log_partition_shift,
        fam.log_base_measure,
        fam.support,
        check=check,
    )


@pytest.mark.parametrize(
    "make", [correlated_gaussian, rebuilt_gaussian], ids=["correlated-2d", "isotropic-3d"]
)
def test_gaussian_integral_matches_dense_gauss_hermite(make):
    """The block-factorised closed form (Cholesky per coupled block) and the dense
    Gauss–Hermite rule (inverse and determinant of the whole A) give the same log mass,
    −δ for F + δ (δ = 0 and 0.1)."""
    for shift in (sp.Integer(0), WRONG_CONSTANT):
        fam = make(shift, check=False)
        values = construction_values(fam)
        log_mass = gaussian_log_mass(fam, values)
        (mass,) = gauss_hermite_expectations(fam, [sp.Integer(1)], values, NORMALISATION_DPS)
        with mpmath.workdps(NORMALISATION_DPS):
            assert abs(log_mass - mpmath.log(mass)) <= MPMATH_AGREEMENT
            assert abs(log_mass + mpmath.mpf(shift.p) / shift.q) <= MPMATH_AGREEMENT


def test_gaussian_route_rejects_wrong_F_and_non_integrable_density():
    assert correlated_gaussian().construction_check.passed
    for fam in (correlated_gaussian, rebuilt_gaussian):
        with pytest.raises(FamilyDefinitionError, match="Gaussian integral"):
            fam(SMALL_WRONG_CONSTANT, True)
    h, y = natural_symbol("h"), sp.Symbol("y", real=True)
    with pytest.raises(FamilyDefinitionError, match="diverges or did not converge"):
        ExponentialFamily("grows", (h,), y, (y,), h**2 / 2, y**2 / 2, real_space(1))


def test_learned_variance_gaussian_uses_gaussian_integral():
    fam = families.get("gaussian_meanvar")
    assert fam.construction_check.route.startswith("Gaussian integral")


def test_family_without_a_route_warns_and_verify_reports_it():
    """Two independent Poisson counts (a product of series): no construction route. It
    says so — a warning and construction_check.error None — and verify_family reports
    the direct expectations as not checked instead of passing them."""
    h = (natural_symbol("h1"), natural_symbol("h2"))
    y = (sp.Symbol("y1", integer=True), sp.Symbol("y2", integer=True))
    with pytest.warns(UserWarning, match="not checked at construction"):
        fam = ExponentialFamily(
            "two_poissons",
            h,
            y,
            y,
            sp.exp(h[0]) + sp.exp(h[1]),
            -sp.log(sp.factorial(y[0])) - sp.log(sp.factorial(y[1])),
            ProductSupport([NonNegativeIntegers(), NonNegativeIntegers()]),
        )
    assert fam.construction_check.error is None and fam.construction_check.passed is None
    assert fam.construction_check.route == "none"
    records = verify_family(fam, stats_oracle=False)
    unchecked = [r for r in records if r.method == "none"]
    assert unchecked and not any(r.passed for r in unchecked)
