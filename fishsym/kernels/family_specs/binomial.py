"""Numeric side of the binomial family: structured kernel, sampler, F = n·softplus."""

from fishsym.kernels import samplers
from fishsym.kernels.bernoulli import BinomialKernel
from fishsym.kernels.generic import softplus
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "binomial",
        kernel=BinomialKernel,
        sampler=samplers.binomial,
        log_partition=lambda h, s: int(s["n"]) * softplus(h[..., 0]),
    )
)
