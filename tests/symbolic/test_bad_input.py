"""Bad input raises the specific fishsym exception, with a message that names the
argument and says what is valid (issue 2, "Bad input"). Nothing returns NaN silently."""

import numpy as np
import pytest
import sympy as sp

from fishsym.errors import (
    CanonicalFormError,
    DomainError,
    FamilyDefinitionError,
    UnknownFamilyError,
)
from fishsym.symbolic import ExponentialFamily, families, from_log_density
from fishsym.symbolic.expectation import numeric_expectations
from fishsym.symbolic.support import (
    FiniteSupport,
    NonNegativeIntegers,
    PositiveReals,
    RealLine,
)

FAMILY_NAMES = families.names()


def poisson_parts():
    h = sp.Symbol("h", real=True)
    y = sp.Symbol("y", integer=True, nonnegative=True)
    return h, y, -sp.log(sp.factorial(y)), NonNegativeIntegers()


def test_normalisation_failure():
    h, y, logk, sup = poisson_parts()
    with pytest.raises(FamilyDefinitionError, match="does not normalise") as err:
        ExponentialFamily("poisson_twice", (h,), y, (y,), 2 * sp.exp(h), logk, sup)
    assert "log_partition" in str(err.value)


def test_normalisation_failure_finite_support():
    h = sp.Symbol("h", real=True)
    y = sp.Symbol("y", integer=True)
    with pytest.raises(FamilyDefinitionError, match="does not normalise"):
        ExponentialFamily(
            "coin", (h,), y, (y,), sp.log(1 + sp.exp(h)), 0, FiniteSupport.integer_range(0, 2)
        )


def test_suff_stat_and_natural_params_dimension_mismatch():
    h, y, logk, sup = poisson_parts()
    with pytest.raises(FamilyDefinitionError, match=r"suff_stat has 2 entries but there are 1"):
        ExponentialFamily("p", (h,), y, (y, y**2), sp.exp(h), logk, sup)


def test_log_partition_depending_on_y():
    h, y, logk, sup = poisson_parts()
    with pytest.raises(
        FamilyDefinitionError, match=r"log_partition must be a function of the natural"
    ) as err:
        ExponentialFamily("p", (h,), y, (y,), sp.exp(h) + y, logk, sup)
    assert "['y']" in str(err.value)


def test_suff_stat_and_base_measure_depending_on_h():
    h, y, logk, sup = poisson_parts()
    with pytest.raises(
        FamilyDefinitionError, match=r"suff_stat must be a function of the observation"
    ):
        ExponentialFamily("p", (h,), y, (y * h,), sp.exp(h), logk, sup)
    with pytest.raises(
        FamilyDefinitionError, match=r"log_base_measure must be a function of the obs"
    ):
        ExponentialFamily("p", (h,), y, (y,), sp.exp(h), logk + h, sup)


def test_malformed_declarations():
    h, y, logk, sup = poisson_parts()
    with pytest.raises(FamilyDefinitionError, match="natural_params must be"):
        ExponentialFamily("p", ("h",), y, (y,), sp.exp(h), logk, sup)
    with pytest.raises(FamilyDefinitionError, match="repeats"):
        ExponentialFamily("p", (h, h), y, (y, y), sp.exp(h), logk, sup)
    with pytest.raises(FamilyDefinitionError, match="support must be"):
        ExponentialFamily("p", (h,), y, (y,), sp.exp(h), logk, "integers")
    with pytest.raises(FamilyDefinitionError, match="support has 1 coordinates but y has 2"):
        ExponentialFamily("p", (h,), [y, sp.Symbol("z")], (y,), sp.exp(h), logk, sup)
    with pytest.raises(FamilyDefinitionError, match="one interval per natural parameter"):
        ExponentialFamily(
            "p", (h,), y, (y,), sp.exp(h), logk, sup, domain={sp.Symbol("g"): sp.Interval(0, 1)}
        )


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_natural_parameter_outside_domain(family_name):
    """A value outside the declared interval (or non-finite) is a DomainError naming the
    parameter and its interval, for the check and for numeric expectations alike."""
    fam = families.get(family_name)
    good = fam.random_natural_params(np.random.default_rng(1))
    for h, interval in fam.domain.intervals.items():
        bad_values = [sp.nan, sp.oo]
        if interval.sup.is_finite:
            bad_values.append(interval.sup + 1)
        if interval.inf.is_finite:
            bad_values.append(interval.inf - 1)
        for bad in bad_values:
            values = {**good, h: bad}
            with pytest.raises(DomainError, match=str(h)) as err:
                fam.check_natural_params(values)
            if bad not in (sp.nan, sp.oo):
                assert str(interval) in str(err.value)
                with pytest.raises(DomainError):
                    numeric_expectations(fam, [sp.Integer(1)], values)
    with pytest.raises(DomainError, match="no value given"):
        fam.check_natural_params({})


def test_unknown_family_name():
    with pytest.raises(UnknownFamilyError, match="unknown family name 'poison'") as err:
        families.get("poison")
    assert "poisson" in str(err.value) and "categorical" in str(err.value)
    with pytest.raises(KeyError):  # also a KeyError for callers that catch the builtin
        families.entry("nope")


def test_bad_size_arguments():
    with pytest.raises(TypeError, match=r"unexpected size argument\(s\) \['K'\].*C=3"):
        families.get("categorical", K=3)
    with pytest.raises(ValueError, match="C must be an integer"):
        families.get("categorical", C=1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        families.get("binomial", n=0)


def test_bad_orders_and_vectors():
    fam = families.get("categorical", C=3)
    with pytest.raises(ValueError, match=r"order k must be an integer in 1\.\.6"):
        fam.cumulant(7)
    with pytest.raises(ValueError, match=r"order k must be an integer in 0\.\.6"):
        fam.central_moment(-1)
    with pytest.raises(ValueError, match="v has length 2; the family has d = 3"):
        fam.quartic_form([1, 2])
    with pytest.raises(ValueError, match="point has length 1"):
        fam.moment_about([0], 2)


def test_non_canonical_log_density():
    y, th = sp.Symbol("y", positive=True), sp.Symbol("theta", positive=True)
    with pytest.raises(CanonicalFormError, match=r"cannot separate the term log\(theta \+ y\)"):
        from_log_density(sp.log(y + th) - th, y, [th], PositiveReals(), name="bad")
    # CanonicalFormError is a FamilyDefinitionError
    with pytest.raises(FamilyDefinitionError):
        from_log_density(sp.log(y + th) - th, y, [th], PositiveReals(), name="bad")


def test_from_log_density_argument_checks():
    y, th = sp.Symbol("y"), sp.Symbol("theta", positive=True)
    with pytest.raises(CanonicalFormError, match="params must be a non-empty sequence"):
        from_log_density(y * th, y, [], RealLine(), name="x")
    with pytest.raises(CanonicalFormError, match="support must be"):
        from_log_density(y * th, y, [th], "reals", name="x")
    with pytest.raises(CanonicalFormError, match="support has 1 coordinate"):
        from_log_density(y * th, [y, sp.Symbol("z")], [th], RealLine(), name="x")
    with pytest.raises(CanonicalFormError, match=r"param_domain names \['z'\]"):
        from_log_density(
            y * th, y, [th], RealLine(), name="x", param_domain={sp.Symbol("z"): sp.Interval(0, 1)}
        )
    with pytest.raises(CanonicalFormError, match="natural_domain has 2 intervals"):
        from_log_density(
            y * sp.log(th) - th - sp.log(sp.factorial(y)),
            y,
            [th],
            NonNegativeIntegers(),
            name="x",
            natural_domain=[sp.Reals, sp.Reals],
        )
    with pytest.raises(CanonicalFormError, match=r"natural_domain names \['h7'\]"):
        from_log_density(
            y * sp.log(th) - th - sp.log(sp.factorial(y)),
            y,
            [th],
            NonNegativeIntegers(),
            name="x",
            natural_domain={"h7": sp.Reals},
        )
