"""Bad input raises specific fishsym errors whose messages name the argument."""

from __future__ import annotations

import pytest
import torch

import fishsym.kernels as kernels
from fishsym.errors import (
    DomainError,
    InfiniteSupportError,
    NonFiniteError,
    ShapeError,
    UnknownFamilyError,
)
from fishsym.symbolic import families

F64 = torch.float64


@pytest.mark.parametrize("family_name", families.names())
def test_bad_h_shape_dtype_and_values(family_name, kt):
    k = kernels.get(family_name)
    h = kt.random_h(families.get(family_name), kt.rng(0), 2)
    v = torch.ones(k.d, 2, dtype=F64)
    with pytest.raises(ShapeError, match=rf"h must have shape \[\.\.\., d\] with d = {k.d}"):
        k.mean(torch.zeros(2, k.d + 1, dtype=F64))
    with pytest.raises(ShapeError, match="h must have shape"):
        k.quartic(torch.zeros((), dtype=F64), v)
    with pytest.raises(TypeError, match="h must have a floating dtype"):
        k.fisher(torch.zeros(2, k.d, dtype=torch.int64))
    with pytest.raises(TypeError, match="h must be a torch.Tensor"):
        k.mean([0.0] * k.d)
    bad = h.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="h contains NaN"):
        k.log_partition(bad)
    bad[1, 0] = float("inf")
    with pytest.raises(NonFiniteError):
        k.check_h(bad)
    with pytest.raises(ShapeError, match="v must have shape"):
        k.quadratic(h, torch.ones(k.d + 1, 2, dtype=F64))
    with pytest.raises(ShapeError, match="v must have shape"):
        k.quartic(h, torch.ones(k.d, dtype=F64))
    with pytest.raises(ShapeError, match="do not broadcast"):
        k.quartic(h, torch.ones(3, k.d, 2, dtype=F64))
    with pytest.raises(NonFiniteError, match="v contains"):
        k.quartic(h, torch.full((k.d, 2), float("nan"), dtype=F64))
    gen = torch.Generator()
    with pytest.raises(ShapeError, match="n must be a positive"):
        k.sample(h, 0, gen)
    with pytest.raises(TypeError, match="n must be a positive int"):
        k.sample(h, 2.5, gen)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        k.sample(h, 2, None)
    k.check_h(h)  # valid parameters pass


@pytest.mark.parametrize(
    "family_name,column,value,interval",
    [
        ("gamma", 1, 0.0, r"\(-oo, 0\)"),
        ("gamma", 0, -1.0, r"\(-1, oo\)"),
        ("exponential", 0, 0.5, r"\(-oo, 0\)"),
        ("beta", 1, -2.0, r"\(-1, oo\)"),
        ("geometric", 0, 0.0, r"\(-oo, 0\)"),
        ("negative_binomial", 0, 1.0, r"\(-oo, 0\)"),
        ("gaussian_meanvar", 1, 0.25, r"\(-oo, 0\)"),
    ],
)
def test_h_outside_domain(family_name, column, value, interval, kt):
    k = kernels.get(family_name)
    h = kt.random_h(families.get(family_name), kt.rng(0), 3)
    h[2, column] = value
    with pytest.raises(
        DomainError, match=rf"h\[\.\.\., {column}\] = .* valid values satisfy .*{interval}"
    ):
        k.quartic(h, torch.ones(k.d, 1, dtype=F64))
    with pytest.raises(DomainError):
        k.check_h(h)


@pytest.mark.parametrize("dtype,h", [(torch.float64, 800.0), (torch.float32, 100.0)])
def test_overflow_is_reported(dtype, h):
    k = kernels.get("poisson")
    big = torch.tensor([[0.0], [h]], dtype=dtype)
    with pytest.raises(NonFiniteError, match="overflows"):
        k.check_h(big)
    with pytest.raises(NonFiniteError, match="overflows"):
        k.mean(big)


def test_stable_families_do_not_overflow():
    """Logit and softmax families stay finite far beyond where exp(h) overflows."""
    h = torch.tensor([[800.0, -800.0, 0.0]], dtype=torch.float64)
    for name, hh in [
        ("categorical", h),
        ("independent_bernoulli", torch.tensor([[800.0, -800.0]], dtype=F64)),
        ("bernoulli", torch.tensor([[800.0]], dtype=F64)),
        ("categorical_minimal", h[:, :2]),
    ]:
        k = kernels.get(name)
        k.check_h(hh)
        v = torch.ones(k.d, 2, dtype=F64)
        for out in (k.mean(hh), k.fisher(hh), k.quadratic(hh, v), k.quartic(hh, v)):
            assert torch.isfinite(out).all(), name


@pytest.mark.parametrize(
    "family_name,labels,match",
    [
        (
            "categorical",
            torch.tensor([0, 3]),
            r"not in the support; valid labels: class indices 0..2",
        ),
        ("categorical", torch.tensor([-1]), "class indices"),
        ("categorical_minimal", torch.tensor([3]), "class indices 0..2"),
        ("poisson", torch.tensor([2, -1]), "non-negative integers"),
        ("poisson", torch.tensor([1.5]), "non-negative integers"),
        ("binomial", torch.tensor([4]), "integers 0..3"),
        ("bernoulli", torch.tensor([2]), "integers 0..1"),
        ("multinomial", torch.tensor([[1, 0, 0]]), "summing to n = 2"),
        ("multinomial", torch.tensor([[3, -1, 0]]), "non-negative"),
        ("independent_bernoulli", torch.tensor([[0, 2]]), r"\{0, 1\}\^2"),
        ("exponential", torch.tensor([-0.5]), "y > 0"),
        ("gamma", torch.tensor([0.0]), "y > 0"),
        ("beta", torch.tensor([1.0]), r"\(0, 1\)"),
        ("gaussian", torch.tensor([float("inf")]), "finite reals"),
    ],
)
def test_labels_outside_support(family_name, labels, match, kt):
    k = kernels.get(family_name)
    h = kt.random_h(families.get(family_name), kt.rng(0), 1)[0]
    with pytest.raises(DomainError, match=match):
        k.log_prob(labels, h)


def test_bad_label_shapes_and_dtypes():
    cat = kernels.get("categorical", C=3)
    h = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(TypeError, match="integer"):
        cat.log_prob(torch.tensor([0.0, 1.0]), h)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        cat.log_prob([0, 1], h)
    with pytest.raises(ShapeError, match="do not broadcast"):
        cat.log_prob(torch.tensor([0, 1, 2]), h)
    mult = kernels.get("multinomial")
    with pytest.raises(ShapeError, match=r"obs_shape \(3,\)"):
        mult.log_prob(torch.tensor([2, 0]), torch.zeros(3, dtype=F64))
    gauss = kernels.get("gaussian", d=3, sigma2=2)
    with pytest.raises(ShapeError, match=r"obs_shape \(3,\)"):
        gauss.log_prob(torch.zeros(2, dtype=F64), torch.zeros(3, dtype=F64))
    with pytest.raises(TypeError, match="real"):
        kernels.get("gamma").log_prob(torch.tensor([True]), torch.tensor([0.5, -1.0], dtype=F64))


def test_get_errors():
    with pytest.raises(UnknownFamilyError, match="unknown family name 'nope'"):
        kernels.get("nope")
    with pytest.raises(TypeError, match="unexpected size argument"):
        kernels.get("categorical", K=3)
    with pytest.raises(TypeError, match="registered family name"):
        kernels.get(3)
    with pytest.raises(TypeError, match="only accepted with a family name"):
        kernels.get(families.get("poisson"), C=3)
    with pytest.raises(ValueError, match="C must be an integer"):
        kernels.get("categorical", C=1)
    with pytest.raises(InfiniteSupportError, match="infinite"):
        kernels.get("poisson").support_labels()
    assert kernels.get("categorical", C=4) is kernels.get("categorical", C=4)
    assert kernels.get("poisson") is kernels.get(families.get("poisson"))


@pytest.mark.parametrize(
    "name,sizes,label,integral",
    [
        ("bernoulli", {}, 0.5, 1.0),
        ("binomial", {"n": 3}, 2.5, 2.0),
        ("independent_bernoulli", {"d": 2}, [1.0, 0.25], [1.0, 0.0]),
        ("multinomial", {"n": 3, "C": 2}, [1.5, 1.5], [1.0, 2.0]),
    ],
)
def test_float_labels_must_hold_integers(name, sizes, label, integral):
    """Float labels are accepted when they hold integers (1.0) and refused by name when
    they do not (0.5): a mutation that skipped the integrality check went unnoticed."""
    k = kernels.get(name, **sizes)
    h = torch.zeros(k.d, dtype=torch.float64)
    y = torch.tensor(label, dtype=torch.float64)
    with pytest.raises(DomainError, match="support"):
        k.log_prob(y, h)
    k.log_prob(torch.tensor(integral, dtype=torch.float64), h)  # integral floats are fine


@pytest.mark.parametrize("top, shown", [(2, "0, 1, 2$"), (7, r"0, 1, 2, 3, 4, 5, … \(8 labels\)$")])
def test_a_finite_support_names_its_labels(top, shown):
    """Mutation audit (issue 23, kernels/generic.py): a label outside a user family's
    finite support names the valid labels — all of them up to six, else the first six and
    how many there are."""
    import sympy as sp

    from fishsym.kernels.generic import GenericKernel
    from fishsym.symbolic import ExponentialFamily
    from fishsym.symbolic.support import FiniteSupport

    h = sp.Symbol("h", real=True)
    y = sp.Symbol("y", integer=True)
    log_partition = sp.log(sum(sp.exp(h * k) for k in range(top + 1)))
    family = ExponentialFamily(
        f"counts_to_{top}", (h,), y, (y,), log_partition, 0, FiniteSupport.integer_range(0, top)
    )
    kernel = GenericKernel(family)
    with pytest.raises(DomainError, match="valid labels: " + shown):
        kernel.suff_stat(torch.tensor([top + 1]))


def test_a_user_family_on_the_real_line_refuses_infinite_labels():
    """Mutation audit (issue 23, kernels/generic.py): the generic kernel of a user family
    on the real line (no structured kernel) refuses NaN and ±inf labels by name and
    takes finite ones, floating or integer."""
    import math

    import sympy as sp

    from fishsym.kernels.generic import GenericKernel
    from fishsym.symbolic import ExponentialFamily
    from fishsym.symbolic.support import RealLine

    h = sp.Symbol("h", real=True)
    y = sp.Symbol("y", real=True)
    family = ExponentialFamily(
        "unit_gaussian_here", (h,), y, (y,), h**2 / 2, -(y**2) / 2 - sp.log(2 * sp.pi) / 2,
        RealLine(),
    )  # fmt: skip
    kernel = GenericKernel(family)
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(DomainError, match="finite reals"):
            kernel.suff_stat(torch.tensor([0.5, bad], dtype=torch.float64))
    assert kernel.suff_stat(torch.tensor([0.5, -2.0], dtype=torch.float64)).tolist() == [
        [0.5],
        [-2.0],
    ]
    assert kernel.suff_stat(torch.tensor([3])).tolist() == [[3.0]]
