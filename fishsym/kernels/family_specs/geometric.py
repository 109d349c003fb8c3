"""Numeric side of the geometric family: its sampler and F = −log(−expm1(h)) without
cancellation."""

from fishsym.kernels import samplers
from fishsym.kernels.generic import _log1mexp
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "geometric",
        sampler=samplers.geometric,
        log_partition=lambda h, s: -_log1mexp(h[..., 0]),
    )
)
