"""Numeric side of the negative binomial family: its sampler (Poisson–gamma mixture) and F =
−r·log(−expm1(h))."""

from fishsym.kernels import samplers
from fishsym.kernels.generic import _log1mexp
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "negative_binomial",
        sampler=samplers.negative_binomial,
        log_partition=lambda h, s: -float(s["r"]) * _log1mexp(h[..., 0]),
    )
)
