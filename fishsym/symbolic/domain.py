"""Domains of natural parameters.

Each natural parameter ``h_j`` ranges over an interval (``sympy.Interval``). The domain
gives the sympy assumptions of the symbol (``h < 0`` → ``negative=True``), checks numeric
values, and samples valid values for tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import sympy as sp

from fishsym.errors import DomainError

REALS = sp.Interval(-sp.oo, sp.oo)
NEGATIVE = sp.Interval.open(-sp.oo, 0)
POSITIVE = sp.Interval.open(0, sp.oo)


def assumptions_for(interval: sp.Interval) -> dict[str, bool]:
    """sympy assumptions implied by an interval domain (used when creating symbols)."""
    out: dict[str, bool] = {"real": True}
    if interval.is_subset(NEGATIVE):
        out["negative"] = True
    elif interval.is_subset(POSITIVE):
        out["positive"] = True
    return out


def natural_symbol(name: str, interval: sp.Interval = REALS) -> sp.Symbol:
    """A natural-parameter symbol carrying the assumptions of its domain."""
    return sp.Symbol(name, **assumptions_for(interval))


def _sampling_box(interval: sp.Interval) -> tuple[float, float]:
    """A bounded sub-interval of ``interval``, well inside it, used for random values."""
    lo, hi = interval.inf, interval.sup
    if lo.is_infinite and hi.is_infinite:
        return -1.5, 1.5
    if lo.is_infinite:
        return float(hi) - 2.5, float(hi) - 0.3
    if hi.is_infinite:
        return float(lo) + 0.3, float(lo) + 2.5
    width = float(hi - lo)
    return float(lo) + 0.1 * width, float(hi) - 0.1 * width


class Domain:
    """Product of per-parameter intervals: ``{h : h_j ∈ intervals[h_j]}``."""

    def __init__(self, intervals: Mapping[sp.Symbol, sp.Interval]):
        self.intervals = dict(intervals)

    def contains(self, values: Mapping[sp.Symbol, object]) -> bool:
        try:
            self.check(values)
        except DomainError:
            return False
        return True

    def check(self, values: Mapping[sp.Symbol, object], family: str = "family") -> None:
        """Raise :class:`DomainError` naming the first parameter outside its interval."""
        for sym, interval in self.intervals.items():
            if sym not in values:
                raise DomainError(f"{family}: no value given for natural parameter {sym}")
            val = sp.S(values[sym])
            if val.is_real is False or val.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
                raise DomainError(f"{family}: natural parameter {sym}={val} is not a finite real")
            if val.is_number and not interval.contains(val):
                raise DomainError(
                    f"{family}: natural parameter {sym}={val} lies outside its domain "
                    f"{interval}; valid values satisfy {sym} ∈ {interval}"
                )

    def sample(self, rng: np.random.Generator, exact: bool = True, denominator: int = 64):
        """Random valid values, one per parameter, drawn in a box well inside the domain.

        With ``exact=True`` the values are sympy Rationals with the given denominator (so
        that symbolic checks at these points stay exact); else Python floats.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy.random.Generator, e.g. np.random.default_rng(0)")
        out = {}
        for sym, interval in self.intervals.items():
            lo, hi = _sampling_box(interval)
            x = rng.uniform(lo, hi)
            if exact:
                val = sp.Rational(int(round(x * denominator)), denominator)
                if not interval.contains(val):  # rounding pushed it onto a bound
                    val = sp.Rational(int(np.floor(x * denominator)), denominator)
                out[sym] = val
            else:
                out[sym] = float(x)
        return out

    def as_relational(self) -> sp.Boolean:
        """The domain as one sympy relational (``And`` of per-parameter conditions)."""
        return sp.And(*(iv.as_relational(s) for s, iv in self.intervals.items()))

    def __repr__(self) -> str:
        parts = ", ".join(f"{s} ∈ {iv}" for s, iv in self.intervals.items())
        return f"Domain({parts})"
