"""verify_family: every registered family passes every generic check, the checks cover
the claims of issue 2 §5, and each kind of check fails on a deliberately broken family
(a check that cannot fail would be a defect)."""

from functools import cache

import numpy as np
import pytest
import sympy as sp

from fishsym.symbolic import CheckResult, families, format_table, verify_all, verify_family
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.support import FiniteSupport, NonNegativeIntegers, PositiveReals

FAMILY_NAMES = families.names()

#: registry families that sympy.stats knows (its moments are an external oracle)
STATS_ORACLE = {
    "poisson",
    "bernoulli",
    "binomial",
    "geometric",
    "negative_binomial",
    "exponential",
    "gaussian",
    "gaussian_meanvar",
    "gamma",
    "beta",
}

GENERIC_CLAIMS = (
    "normalisation",
    "mean: E[t] = grad F",
    "covariance: Cov[t] = I = hess F",
    "mu3: E[(t-eta)^3] = central_moment(3)",
    "mu4: E[(t-eta)^4] = central_moment(4)",
    "moment_about(a), k=2",
    "moment_about(a), k=3",
    "moment_about(a), k=4",
    "I symmetric",
    "I positive semi-definite",
)


@cache
def records_of(name):
    return tuple(verify_family(families.get(name)))


def failures(records):
    return format_table(records, only_failures=True)


def claim_passed(records, prefix):
    hits = [r for r in records if r.claim.startswith(prefix)]
    assert hits, f"no record for claim {prefix!r}; claims: {[r.claim for r in records]}"
    return all(r.passed for r in hits)


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_every_check_passes(family_name):
    records = records_of(family_name)
    assert records and all(isinstance(r, CheckResult) for r in records)
    assert all(r.passed for r in records), "\n" + failures(records)


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_checks_cover_the_claims(family_name):
    records = records_of(family_name)
    claims = [r.claim for r in records]
    for prefix in GENERIC_CLAIMS:
        assert any(c.startswith(prefix) for c in claims), f"missing {prefix!r}"
    fam = families.get(family_name)
    if fam.support.finite:
        # finite supports are decided exactly, never numerically
        tensor = [
            r for r in records if r.claim.startswith(("mean", "cov", "mu", "moment_about", "norm"))
        ]
        assert all(r.method.startswith("exact sum, identity in e^h") for r in tensor), (
            "\n" + format_table(tensor)
        )
    else:
        assert any("mpmath" in r.method for r in records)
    if family_name in ("categorical", "multinomial"):
        assert claim_passed(records, "all-ones vector in the kernel of I")
    if family_name in STATS_ORACLE:
        oracle = [r for r in records if r.claim.startswith("sympy.stats")]
        assert oracle, "sympy.stats oracle missing"
    if family_name in ("gamma", "beta"):
        assert claim_passed(records, "sympy.stats E[y], Var[y]")


def test_symbolic_gaussian_normalisation():
    records = records_of("gaussian")
    norm = [r for r in records if r.claim.startswith("normalisation")]
    assert any(r.method == "sympy Gaussian integral" and r.passed for r in norm)


def test_verify_all_runs_named_families():
    records = verify_all(["bernoulli", "categorical_minimal"])
    assert {r.family for r in records} == {"bernoulli", "categorical_minimal"}
    assert all(r.passed for r in records), "\n" + failures(records)


def test_verify_family_rejects_a_non_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        verify_family(families.get("bernoulli"), rng=0)


# ------------------------------------------------------------------ the checks can fail
def fresh(name):
    """A new (uncached) instance, safe to break."""
    ent = families.entry(name)
    fam = ent.factory(**ent.defaults)
    fam.registry_name = name  # as families.get sets it: selects the sympy.stats oracle
    return fam


def failed_claims(records):
    return {r.claim.split(":")[0] for r in records if not r.passed}


@pytest.mark.parametrize("name", ["categorical", "poisson"])
def test_a_wrong_mu4_entry_is_caught(name):
    fam = fresh(name)
    entries = fam.central_moment_entries(4)
    key = next(iter(entries))
    entries[key] = entries[key] + sp.Rational(1, 10**6)
    bad = failed_claims(verify_family(fam, stats_oracle=False))
    # E[(t−a)^4] contains μ4 itself (the term with no shift)
    assert bad == {"mu4", "moment_about(a), k=4"}, bad


@pytest.mark.parametrize("name", ["multinomial", "geometric"])
def test_a_wrong_moment_about_is_caught(name):
    """μ_0 = 2 (the bug this check found in the first version of family.py)."""
    fam = fresh(name)
    fam.central_moment_entries(0)[()] = sp.Integer(2)
    bad = failed_claims(verify_family(fam))
    assert {"moment_about(a), k=2", "moment_about(a), k=3", "moment_about(a), k=4"} <= bad
    assert "mu4" not in bad and "normalisation" not in bad
    if name == "geometric":  # sympy.stats' raw moments disagree as well
        assert any(c.startswith("sympy.stats moment") for c in bad)


def test_a_wrong_log_partition_is_caught_everywhere():
    """A Poisson whose F is off by h/1000: normalisation and every moment fail."""
    h, y = sp.Symbol("h", real=True), sp.Symbol("y", integer=True, nonnegative=True)
    fam = ExponentialFamily(
        "poisson_wrong",
        (h,),
        y,
        (y,),
        sp.exp(h) + h / 1000,
        -sp.log(sp.factorial(y)),
        NonNegativeIntegers(),
        check=False,
    )
    bad = failed_claims(verify_family(fam))
    assert {"normalisation", "mean", "covariance", "mu3", "mu4"} <= bad


def test_a_wrong_finite_log_partition_is_caught_exactly():
    """F = log(1 + e^h + e^{2h}/10⁹): still rational in e^h, so refuted exactly."""
    fam = fresh("bernoulli")
    (h,) = fam.natural_params
    wrong = ExponentialFamily(
        "bernoulli_wrong",
        fam.natural_params,
        fam.y,
        fam.suff_stat,
        sp.log(1 + sp.exp(h) + sp.exp(2 * h) / 10**9),
        0,
        fam.support,
        check=False,
    )
    records = verify_family(wrong)
    for claim in ("normalisation", "mean", "covariance", "mu3", "mu4"):
        (rec,) = [r for r in records if r.claim.startswith(claim)]
        assert not rec.passed and "identity in e^h" in rec.method, rec


def test_a_non_psd_fisher_is_caught():
    fam = fresh("gamma")
    fam.__dict__["fisher"] = sp.Matrix([[1, 2], [2, 1]])  # eigenvalues 3 and −1
    records = verify_family(fam, stats_oracle=False)
    psd = [r for r in records if r.claim == "I positive semi-definite"]
    assert not psd[0].passed


def test_a_missing_kernel_vector_is_caught():
    fam = fresh("categorical")
    c = fam.cumulant_entries(2)
    fam._cumulants[(0, 0)] = c[(0, 0)] + sp.Rational(1, 1000)
    fam.__dict__.pop("fisher", None)
    records = verify_family(fam, stats_oracle=False)
    kernel = [r for r in records if r.claim.startswith("all-ones")]
    assert kernel and not kernel[0].passed


def test_a_wrong_direct_density_is_caught_by_sympy_stats():
    """Beta with k(y) = 2 on half the support would fool nothing derived from F, but
    E[y] from the density disagrees with sympy.stats' Beta."""
    fam = fresh("beta")
    h1, h2 = fam.natural_params
    # swapped statistics: the density is Beta(h2+1, h1+1), F unchanged (symmetric in h)
    swapped = ExponentialFamily(
        "beta",
        (h1, h2),
        fam.y,
        (fam.suff_stat[1], fam.suff_stat[0]),
        fam.log_partition,
        0,
        fam.support,
        domain=fam.domain,
        check=True,
    )
    swapped.registry_name = "beta"
    records = verify_family(swapped, rng=np.random.default_rng(3))
    bad = failed_claims(records)
    assert "sympy.stats E[y], Var[y] = direct expectation" in bad


def test_user_defined_family_directly():
    """Rayleigh(σ): t = y², h = −1/(2σ²) < 0, F = −log(−2h), log k = log y on y > 0."""
    h = sp.Symbol("h", negative=True)
    y = sp.Symbol("y", positive=True)
    fam = ExponentialFamily(
        "rayleigh",
        (h,),
        y,
        (y**2,),
        -sp.log(-2 * h),
        sp.log(y),
        PositiveReals(),
        domain={h: sp.Interval.open(-sp.oo, 0)},
    )
    records = verify_family(fam)
    assert all(r.passed for r in records), "\n" + failures(records)
    # E[y²] = 2σ² = −1/h
    assert sp.simplify(fam.mean[0] + 1 / h) == 0


def test_vector_gaussian_is_verified_by_gauss_hermite():
    """R^d supports use the exact Gauss–Hermite route (read off the log-density)."""
    records = verify_family(families.get("gaussian", d=2, sigma2=2))
    assert all(r.passed for r in records), "\n" + failures(records)
    assert any("Gauss-Hermite" in r.method for r in records)


def test_gauss_hermite_and_tanh_sinh_agree():
    """Two independent numeric routes on the same 1-D Gaussian, to 1e-25 (their stated
    precision at dps=30), including a degree-8 moment."""
    from fishsym.symbolic.expectation import gauss_hermite_expectations, numeric_expectations

    fam = families.get("gaussian_meanvar")
    values = fam.random_natural_params(np.random.default_rng(3))
    y = fam.y
    fs = [sp.Integer(1), y, y**2, (y - 1) ** 4, y**8]
    gh = gauss_hermite_expectations(fam, fs, values, 30)
    ts = numeric_expectations(fam, fs, values, 30)
    for a, b in zip(gh, ts, strict=True):
        assert abs(a - b) <= 1e-25 * max(1, abs(b)), (a, b)


def test_same_function_decides_both_ways():
    from fishsym.symbolic.verify import same_function

    cat = families.get("categorical")
    p1 = cat.mean[0]
    assert same_function(cat, p1, 1 - cat.mean[1] - cat.mean[2]) == (True, "identity in e^h")
    assert same_function(cat, p1, p1 + sp.Rational(1, 10**12))[0] is False
    gamma = families.get("gamma")
    h1, h2 = gamma.natural_params
    assert same_function(gamma, gamma.mean[0], sp.polygamma(0, h1 + 1) - sp.log(-h2))[0]
    # a small perturbation that is not a rational function of e^h: decided numerically
    wrong = sp.polygamma(0, h1 + 1) - sp.log(-h2) + sp.polygamma(2, h1 + 1) / 10**9
    ok, method = same_function(gamma, gamma.mean[0], wrong)
    assert not ok and "mpmath" in method


def test_finite_family_outside_the_rational_class():
    """t = y/2 on {0, 1, 2}: densities involve e^{h/2}, not rational in e^h, so the exact
    route falls back to simplify / mpmath — and still catches a wrong μ4."""
    h, y = sp.Symbol("h", real=True), sp.Symbol("y", integer=True)
    args = ("half_count", (h,), y, (y / 2,), sp.log(1 + sp.exp(h / 2) + sp.exp(h)), 0)
    fam = ExponentialFamily(*args, FiniteSupport.integer_range(0, 2))
    records = verify_family(fam)
    assert all(r.passed for r in records), "\n" + failures(records)
    moments = [r for r in records if r.claim.startswith("mu4")]
    assert "identity in e^h" not in moments[0].method
    broken = ExponentialFamily(*args, FiniteSupport.integer_range(0, 2))
    broken.central_moment_entries(4)[(0, 0, 0, 0)] += sp.Rational(1, 10**6)
    assert failed_claims(verify_family(broken)) == {"mu4", "moment_about(a), k=4"}


def test_verify_and_theory_share_one_zero_test(monkeypatch):
    """``verify`` decides identities with the theory's symbolic zero test (no second
    one): it proves, refutes and leaves undecided exactly as ``prove_zero``'s exact stage,
    and a planted wrong answer from it changes what ``same_function`` concludes."""
    import sympy as sp

    from fishsym.symbolic import families, verify
    from fishsym.symbolic.theory import zero

    h = sp.Symbol("h", real=True)
    assert zero.symbolic_zero(sp.exp(sp.log(2) * h) - 2**h).zero is True
    assert zero.symbolic_zero(h**2 - h).zero is False  # a nonzero polynomial over ℚ
    assert zero.symbolic_zero(sp.Function("f")(h)).zero is None
    fam = families.get("poisson")
    (eta,) = fam.natural_params
    a, b = sp.exp(eta) * sp.cosh(eta), (sp.exp(2 * eta) + 1) / 2
    assert verify.same_function(fam, a, b)[0]
    monkeypatch.setattr(verify, "symbolic_zero", lambda e: zero.ZeroTest(False, "planted"))
    assert not verify.same_function(fam, a, b)[0]
