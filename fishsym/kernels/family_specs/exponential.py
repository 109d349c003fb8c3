"""Numeric side of the exponential family: its sampler (−log U / λ)."""

from fishsym.kernels import samplers
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "exponential",
        sampler=samplers.exponential,
    )
)
