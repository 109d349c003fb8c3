"""Generic tests of every registered family (a newly registered family is tested here
with no new test). docs/theory.md §1: cumulants are derivatives of F, central moments follow by
the set-partition formula, moments about a point by the binomial shift.

Equalities of expressions are decided by :func:`fishsym.symbolic.verify.same_function`:
an exact identity wherever sympy can decide one (rational functions of e^h, expand,
simplify), else evaluation at random valid parameters with 30 digits.
"""

import itertools

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fishsym.errors import FamilyDefinitionError
from fishsym.symbolic import families, tensors
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.verify import same_function

FAMILY_NAMES = families.names()

#: hypothesis examples per property: each example is a symbolic comparison (~10–100 ms)
N_EXAMPLES = 8
#: a wrong constant in F that the construction check must reject for every family: the
#: check's tolerances are ≤ 1e-12 (mpmath routes) or ~1e-14 (float64 at default sizes)
F_PERTURBATION = sp.Rational(1, 10**6)


def assert_same(fam, a, b, what):
    ok, method = same_function(fam, a, b)
    assert ok, f"{fam.name}: {what}: {a} != {b} (decided by {method})"


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_registry_entry_builds_and_declares(family_name):
    fam = families.get(family_name)
    assert fam is families.get(family_name), "get() must cache instances"
    assert fam.dim == len(fam.natural_params) == fam.suff_stat.shape[0]
    assert fam.log_partition.free_symbols <= set(fam.natural_params)
    assert fam.suff_stat.free_symbols <= set(fam.obs_symbols)
    assert set(fam.domain.intervals) == set(fam.natural_params)
    assert fam.support.dim == len(fam.obs_symbols)
    expected = (
        sum((t * h for t, h in zip(fam.suff_stat, fam.natural_params, strict=True)), sp.Integer(0))
        - fam.log_partition
        + fam.log_base_measure
    )
    assert sp.expand(fam.log_density - expected) == 0


def rebuild(fam, log_partition):
    """The declaration of ``fam`` with another log-partition (construction checks it)."""
    y = fam.obs_symbols if len(fam.obs_symbols) > 1 else fam.obs_symbols[0]
    return ExponentialFamily(
        fam.name, fam.natural_params, y, fam.suff_stat, log_partition,
        fam.log_base_measure, fam.support, domain=fam.domain, sizes=fam.sizes,
    )


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_construction_checks_normalisation(family_name):
    """Construction checked Σ/∫ p = 1 by a route of its own (never skipped for a
    registered family), within the tolerance that route states, and rejects F + 1e-6."""
    fam = families.get(family_name)
    check = fam.construction_check
    assert check is not None and check.route != "none", check
    assert check.passed, check
    assert 0 < check.tol <= 1e-12, check
    if fam.support.finite:
        assert check.route.startswith("float64 log-sum-exp"), check
    with pytest.raises(FamilyDefinitionError, match="does not normalise") as err:
        rebuild(fam, fam.log_partition + F_PERTURBATION)
    assert "log_partition" in str(err.value)
    assert rebuild(fam, fam.log_partition).construction_check.passed


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_cumulants_are_symmetric_kth_derivatives(family_name):
    """κ_k[i_1..i_k] = ∂ᵏF/∂h_{i_1}…∂h_{i_k} for every ordered index tuple, k = 1..4
    (all tuples: symmetry), and for a few random tuples at k = 5, 6."""
    fam = families.get(family_name)
    h, F, d = fam.natural_params, fam.log_partition, fam.dim
    rng = np.random.default_rng(5)
    for k in (1, 2, 3, 4, 5, 6):
        kappa = fam.cumulant(k)
        assert kappa.shape == (d,) * k
        if k <= 4:
            tuples = list(itertools.product(range(d), repeat=k))
        else:
            tuples = [tuple(rng.integers(0, d, size=k)) for _ in range(2)]
        for idx in tuples:
            direct = sp.diff(F, *[h[i] for i in idx])
            assert_same(fam, kappa[idx], direct, f"kappa_{k}{idx}")
            # symmetry: every permutation of the indices is the same entry
            for perm in {tuple(idx[j] for j in p) for p in itertools.permutations(range(k))}:
                assert kappa[perm] == kappa[idx]
    assert all(fam.mean[c] == fam.cumulant(1)[c] for c in range(d))
    assert fam.fisher == sp.Matrix(d, d, lambda c, e: fam.cumulant(2)[c, e])


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_low_central_moments_are_cumulants(family_name):
    """μ_2 = κ_2 = I and μ_3 = κ_3 (no partition with blocks ≥ 2 splits 2 or 3 indices)."""
    fam = families.get(family_name)
    mu2, mu3 = fam.central_moment(2), fam.central_moment(3)
    for idx in itertools.product(range(fam.dim), repeat=2):
        assert_same(fam, mu2[idx], fam.fisher[idx], f"mu2{idx} vs I")
    kappa3 = fam.cumulant(3)
    for idx in itertools.product(range(fam.dim), repeat=3):
        assert_same(fam, mu3[idx], kappa3[idx], f"mu3{idx} vs kappa3")


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_mu4_is_kappa4_plus_three_pairings(family_name):
    """docs/theory.md §1: μ4[a,b,c,e] = κ4 + κ2[a,b]κ2[c,e] + κ2[a,c]κ2[b,e] + κ2[a,e]κ2[b,c]."""
    fam = families.get(family_name)
    k2, k4, mu4 = fam.cumulant(2), fam.cumulant(4), fam.central_moment(4)
    for a, b, c, e in tensors.multisets(fam.dim, 4):
        by_hand = k4[a, b, c, e] + k2[a, b] * k2[c, e] + k2[a, c] * k2[b, e] + k2[a, e] * k2[b, c]
        assert_same(fam, mu4[a, b, c, e], by_hand, f"mu4[{a},{b},{c},{e}]")


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_moment_about_mean_is_central_moment(family_name):
    fam = families.get(family_name)
    for k in (0, 2, 3, 4):
        about = fam.moment_about_entries(fam.mean, k)
        central = fam.central_moment_entries(k)
        for ms in central:
            assert_same(fam, about[ms], central[ms], f"moment_about(mean, {k}){ms}")
    # order 0 is the total mass, order 1 the shift of the mean
    assert fam.moment_about([0] * fam.dim, 0) == sp.Array(1)
    point = [sp.Rational(c + 1, 3) for c in range(fam.dim)]
    first = fam.moment_about(point, 1)
    for c in range(fam.dim):
        assert_same(fam, first[c], fam.mean[c] - point[c], f"moment_about(a, 1)[{c}]")


def _full_contraction(array, v):
    """``Σ_{i_1..i_k} T[i_1..i_k] v_{i_1}…v_{i_k}`` over the full Array (no symmetry)."""
    total = sp.Integer(0)
    for idx in itertools.product(range(len(v)), repeat=array.rank()):
        term = array[idx]
        for i in idx:
            term *= v[i]
        total += term
    return total


rationals = st.fractions(min_value=-3, max_value=3, max_denominator=16).map(sp.Rational)


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
@settings(max_examples=N_EXAMPLES, deadline=None)
@given(data=st.data())
def test_forms_are_contractions(family_name, data):
    """quartic_form(v) = μ4 contracted with v four times; quadratic_form(v) = vᵀ I v."""
    fam = families.get(family_name)
    v = data.draw(st.lists(rationals, min_size=fam.dim, max_size=fam.dim), label="v")
    assert_same(fam, fam.quartic_form(v), _full_contraction(fam.central_moment(4), v), "quartic")
    quad = (sp.Matrix(v).T * fam.fisher * sp.Matrix(v))[0, 0]
    assert_same(fam, fam.quadratic_form(v), quad, "quadratic")


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_natural_params_lie_in_domain(family_name, seed):
    fam = families.get(family_name)
    for exact in (True, False):
        values = fam.random_natural_params(np.random.default_rng(seed), exact=exact)
        assert set(values) == set(fam.natural_params)
        fam.check_natural_params(values)  # raises DomainError otherwise
        for h, val in values.items():
            interval = fam.domain.intervals[h]
            assert interval.contains(sp.S(val)), f"{h}={val} outside {interval}"
            if exact:
                assert isinstance(val, sp.Rational)
    a = fam.random_natural_params(np.random.default_rng(seed))
    b = fam.random_natural_params(np.random.default_rng(seed))
    assert a == b, "same generator state must give the same parameters"


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_size_arguments_and_output_size(family_name):
    ent = families.entry(family_name)
    fam = families.get(family_name)
    if ent.output_size == "C_minus_1":
        assert fam.dim == fam.sizes["C"] - 1
    elif ent.output_size is not None:
        assert fam.dim == fam.sizes[ent.output_size]
    else:
        assert len(fam.obs_symbols) == 1, "scalar families have one observation symbol"


def test_set_partition_counts():
    """μ4 has the 4-block term and 3 pairings; μ6: 15 pairings + 10 (3,3) + 15 (4,2) + 1."""

    def profile(k):
        out = {}
        for part in tensors.set_partitions(k, min_block=2):
            key = tuple(sorted(len(b) for b in part))
            out[key] = out.get(key, 0) + 1
        return out

    assert profile(2) == {(2,): 1}
    assert profile(3) == {(3,): 1}
    assert profile(4) == {(4,): 1, (2, 2): 3}
    assert profile(5) == {(5,): 1, (2, 3): 10}
    assert profile(6) == {(6,): 1, (2, 2, 2): 15, (3, 3): 10, (2, 4): 15}
    # all partitions: Bell numbers
    assert [len(tensors.set_partitions(k)) for k in range(1, 7)] == [1, 2, 5, 15, 52, 203]
    for part in tensors.set_partitions(5):
        assert sorted(i for b in part for i in b) == list(range(5))


def test_multiset_counts_and_multiplicity():
    """C(d+k−1, k) distinct entries; multiplicities sum to dᵏ (715 for Categorical(10) μ4)."""
    for d, k in [(3, 4), (10, 4), (4, 6)]:
        ms = list(tensors.multisets(d, k))
        assert len(ms) == sp.binomial(d + k - 1, k)
        assert sum(tensors.multiplicity(m) for m in ms) == d**k
