"""Supports of the observation ``y`` of an exponential family.

A support says where ``y`` lives and how an expectation over it is taken: a finite sum
(``FiniteSupport``), a series over the non-negative integers, or an integral over the
real line, the positive reals, the unit interval or the circle. Vector observations whose
coordinates are independent in support use ``ProductSupport``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from fishsym.errors import MemoryBudgetError

#: the most labels a finite support is enumerated with (every point is a Python tuple:
#: about 100 bytes per coordinate and label, so 10⁶ labels are ~1 GB at 10 coordinates)
MAX_SUPPORT_LABELS = 10**6


def check_support_size(count: int, what: str, advice: str) -> None:
    """Refuse, before building it, a support of more than :data:`MAX_SUPPORT_LABELS` labels."""
    if count > MAX_SUPPORT_LABELS:
        raise MemoryBudgetError(
            f"{what} has {count:,} labels, more than the {MAX_SUPPORT_LABELS:,} "
            f"(MAX_SUPPORT_LABELS) that fishsym enumerates. {advice}"
        )


class Support:
    """Base class. ``kind`` is a short name used in messages and records."""

    kind: str = "abstract"
    #: number of coordinates of one observation
    dim: int = 1
    #: True when expectations are finite sums
    finite: bool = False
    #: True when the coordinates are integers (sums), False for integrals
    discrete: bool = False

    def contains(self, value) -> bool:
        raise NotImplementedError

    def sympy_set(self) -> sp.Set:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, repr=False)
class FiniteSupport(Support):
    """A finite set of observations; each point is a tuple of length ``dim``."""

    points: tuple[tuple[int, ...], ...]
    kind = "finite"
    finite = True
    discrete = True

    def __post_init__(self):
        if not self.points:
            raise ValueError("FiniteSupport needs at least one point")
        lengths = {len(p) for p in self.points}
        if len(lengths) != 1:
            raise ValueError(f"FiniteSupport points must share one length; got {sorted(lengths)}")

    @property
    def dim(self) -> int:  # type: ignore[override]
        return len(self.points[0])

    def contains(self, value) -> bool:
        value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        return value in set(self.points)

    def sympy_set(self) -> sp.Set:
        if self.dim == 1:
            return sp.FiniteSet(*(p[0] for p in self.points))
        return sp.FiniteSet(*(sp.Tuple(*p) for p in self.points))

    def __repr__(self) -> str:
        if len(self.points) <= 6:
            return f"FiniteSupport({list(self.points)})"
        return f"FiniteSupport({len(self.points)} points)"

    # constructors -------------------------------------------------------------------
    @classmethod
    def integer_range(cls, lo: int, hi: int) -> FiniteSupport:
        """``{lo, …, hi}`` as a scalar support."""
        return cls(tuple((i,) for i in range(lo, hi + 1)))

    @classmethod
    def one_hot(cls, C: int) -> FiniteSupport:
        """The ``C`` one-hot vectors of length ``C`` (a categorical label)."""
        return cls(tuple(tuple(int(i == c) for i in range(C)) for c in range(C)))

    @classmethod
    def binary_vectors(cls, d: int) -> FiniteSupport:
        """``{0, 1}^d`` (independent binary labels)."""
        fits = int(math.log2(MAX_SUPPORT_LABELS))
        check_support_size(
            2**d,
            f"{{0, 1}}^{d}",
            f"Enumerate at most d = {fits} binary labels; the numeric kernel "
            f"fishsym.kernels.get('independent_bernoulli', d={d}) needs no support.",
        )
        return cls(tuple(itertools.product((0, 1), repeat=d)))

    @classmethod
    def compositions(cls, n: int, C: int) -> FiniteSupport:
        """Count vectors of length ``C`` with non-negative entries summing to ``n``."""
        count = math.comb(n + C - 1, C - 1)  # stars and bars
        fits = max(
            (m for m in range(n + 1) if math.comb(m + C - 1, C - 1) <= MAX_SUPPORT_LABELS),
            default=0,
        )
        check_support_size(
            count,
            f"the support of n = {n} counts over C = {C} classes (C(n+C−1, C−1))",
            f"At C = {C} at most n = {fits} trials are enumerated; the numeric kernel "
            f"fishsym.kernels.get('multinomial', n={n}, C={C}) needs no support.",
        )

        def rec(remaining: int, slots: int):
            # stars and bars: the first coordinate takes k, the rest share remaining − k
            if slots == 1:
                yield (remaining,)
                return
            for k in range(remaining, -1, -1):
                for tail in rec(remaining - k, slots - 1):
                    yield (k, *tail)

        return cls(tuple(sorted(rec(n, C))))


class NonNegativeIntegers(Support):
    """``{0, 1, 2, …}``; expectations are series."""

    kind = "nonnegative-integers"
    discrete = True

    def contains(self, value) -> bool:
        return float(value) >= 0 and float(value) == int(value)

    def sympy_set(self) -> sp.Set:
        return sp.Naturals0


class RealLine(Support):
    """``(−∞, ∞)``; expectations are integrals."""

    kind = "real-line"

    def contains(self, value) -> bool:
        return bool(sp.S(value).is_finite) and bool(sp.S(value).is_real)

    def sympy_set(self) -> sp.Set:
        return sp.Reals


class PositiveReals(Support):
    """``(0, ∞)``."""

    kind = "positive-reals"

    def contains(self, value) -> bool:
        return float(value) > 0

    def sympy_set(self) -> sp.Set:
        return sp.Interval.open(0, sp.oo)


class UnitInterval(Support):
    """``(0, 1)``."""

    kind = "unit-interval"

    def contains(self, value) -> bool:
        return 0 < float(value) < 1

    def sympy_set(self) -> sp.Set:
        return sp.Interval.open(0, 1)


class Circle(Support):
    """The circle: an angle ``y`` in radians, one period ``[−π, π)``; expectations are
    integrals over that period. Any real representative of an angle is a valid label
    (a density on the circle is 2π-periodic in ``y``); samplers return ``[−π, π)``."""

    kind = "circle"

    def contains(self, value) -> bool:
        return math.isfinite(float(value))

    def sympy_set(self) -> sp.Set:
        return sp.Interval.Ropen(-sp.pi, sp.pi)


class ProductSupport(Support):
    """A vector observation whose coordinate ``j`` ranges over ``factors[j]``."""

    kind = "product"

    def __init__(self, factors: Sequence[Support]):
        if not factors:
            raise ValueError("ProductSupport needs at least one factor")
        self.factors = tuple(factors)
        self.finite = all(f.finite for f in self.factors)
        self.discrete = all(f.discrete for f in self.factors)

    @property
    def dim(self) -> int:  # type: ignore[override]
        return sum(f.dim for f in self.factors)

    def contains(self, value) -> bool:
        return len(value) == self.dim and all(
            f.contains(v) for f, v in zip(self.factors, value)
        )

    def sympy_set(self) -> sp.Set:
        return sp.ProductSet(*(f.sympy_set() for f in self.factors))

    def __repr__(self) -> str:
        kinds = {f.kind for f in self.factors}
        if len(kinds) == 1:
            return f"ProductSupport({next(iter(kinds))}^{len(self.factors)})"
        return f"ProductSupport({[f.kind for f in self.factors]})"


def real_space(d: int) -> Support:
    """``R^d``: a real line for ``d = 1``, else a product of real lines."""
    return RealLine() if d == 1 else ProductSupport([RealLine()] * d)
