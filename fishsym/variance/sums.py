"""Sums over inputs: the per-unit family moments of :mod:`fishsym.variance.moments`,
reduced into per-parameter running sums (or per-input rows), and the clock that projects
a long run's cost.

A block of units with layer input ``z`` adds ``f z_b²`` to the Fisher and ``· z_b⁴`` to
every other quantity (docs/theory.md §7): the block knows its own factorisation
(:meth:`fishsym.engine.ParamDerivatives.reduce`), so the sums over inputs are matrix
products, never a per-parameter-per-input tensor unless ``per_sample=True``.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from fishsym.common import distributed as _dist
from fishsym.engine import ParamDerivatives
from fishsym.variance import estimators as _est

#: per-input quantities summed over inputs, and the power of the layer input z they carry
POWER2 = ("fisher", "fisher_lower", "fisher_upper")
POWER4 = (
    "var1",
    "fisher_sq",
    "var1_lower",
    "var1_upper",
    "var2",
    "var2_lower",
    "var2_upper",
    "pvar1_lower",
    "pvar1_upper",
)
#: the bounds: ours ("exact_fisher" form: ‖u‖⁴λ(μ₄) − I²) and the paper's Theorem 4.1
#: (eq. 7 for I, eq. 8 ‖u‖⁴λ̃(M) for V₁; eq. 9 for V₂ is the same in both)
BOUNDS = (
    "var1_lower",
    "var1_upper",
    "var2_lower",
    "var2_upper",
    "fisher_lower",
    "fisher_upper",
    "pvar1_lower",
    "pvar1_upper",
)
#: sums over inputs (and the division by their number) of the non-negative per-input
#: bounds are rounded outward by ``(n + SUM_ULPS)·eps`` relative (a recursive or blocked
#: sum of ``n`` non-negative terms has relative error ``≤ (n − 1)·eps/2``; ``z⁴`` adds two
#: roundings and the mean one)
SUM_ULPS = 8


def quantities(bounds: bool, var2: bool) -> list[str]:
    """The per-input quantities summed: without ``bounds`` no bound, without ``var2``
    nothing of ``V₂``."""
    return [
        q
        for q in POWER2 + POWER4
        if (bounds or q not in BOUNDS) and (var2 or not q.startswith("var2"))
    ]


class Sums:
    """Running sums over inputs (or per-input values with ``per_sample``) of every
    quantity, per parameter, shaped like the parameter."""

    def __init__(
        self,
        shapes: dict[str, torch.Size],
        n_inputs: int,
        dtype: torch.dtype,
        per_sample: bool,
        bounds: bool,
        device: torch.device,
        extra=(),
        var2: bool = True,
    ):
        self.names = list(shapes)
        self.per_sample = per_sample
        self.quantities = quantities(bounds, var2)
        self.quantities += [q for q in extra if q not in self.quantities]
        lead = (n_inputs,) if per_sample else ()
        self.data = {
            name: {
                q: torch.zeros((*lead, *shape), dtype=dtype, device=device) for q in self.quantities
            }
            for name, shape in shapes.items()
        }

    def ensure(self, n_rows: int) -> None:
        """Room for ``n_rows`` per-input rows (a stream of unknown length grows them by
        doubling)."""
        if not self.per_sample:
            return
        for store in self.data.values():
            for q, t in store.items():
                if t.shape[0] < n_rows:
                    grown = t.new_zeros(max(n_rows, 2 * t.shape[0]), *t.shape[1:])
                    grown[: t.shape[0]] = t
                    store[q] = grown

    def trim(self, n_rows: int) -> None:
        """Drop per-input rows beyond the ``n_rows`` inputs read."""
        if self.per_sample:
            for store in self.data.values():
                for q in store:
                    store[q] = store[q][:n_rows]

    def reduce_ranks(self, n_local: int, device) -> int:
        """Sum (or, per input, gather in rank order) the sums across ranks; return the
        number of inputs over all ranks."""
        if self.per_sample:
            for store in self.data.values():
                for q in store:
                    store[q] = _dist.all_gather_rows(store[q])
        else:
            _dist.all_reduce_sum([t for store in self.data.values() for t in store.values()])
        return _dist.all_reduce_count(n_local, device)

    def add(self, pd: ParamDerivatives, moments: dict[str, Tensor | None], rows: slice) -> None:
        """Reduce one block's per-unit moments into its parameter's sums: the block knows
        its own factorisation (:meth:`ParamDerivatives.reduce`)."""
        pd.reduce(
            self.data[pd.name],
            moments,
            rows,
            self.per_sample,
            power2=POWER2 + _est.POWER2,
            power1=_est.POWER1,
        )


class CostClock:
    """Projects a run's total time once, from its throughput (parameter entries × inputs
    per second) measured after the first step, which also pays for one-time work (the
    tracing of vectorised transforms) and would overstate the cost."""

    #: blocks timed (after the first) before the projection is made
    BLOCKS = 2

    def __init__(self, total_units: int | None):
        self.total = total_units
        self.done = 0
        self.blocks = 0
        self.start: float | None = None
        self.warm_units = 0
        self.t0 = time.perf_counter()
        self.reported = False

    def tick(self, units: int) -> float | None:
        """Record a finished block of ``units``; return the projected total seconds once."""
        now = time.perf_counter()
        self.done += units
        self.blocks += 1
        if self.blocks == 1:
            self.start, self.warm_units = now, self.done
            return None
        if self.total is None or self.reported or self.blocks <= self.BLOCKS:
            return None
        if self.done >= self.total:
            return None
        self.reported = True
        rate = (self.done - self.warm_units) / max(now - self.start, 1e-9)
        return (now - self.t0) + (self.total - self.done) / rate


__all__ = ["POWER2", "POWER4", "BOUNDS", "SUM_ULPS", "quantities", "Sums", "CostClock"]
