"""Numeric side of the multinomial family: O(C) structured kernel, sampler, stable F."""

from fishsym.kernels import samplers
from fishsym.kernels.base import stable_logsumexp
from fishsym.kernels.categorical import MultinomialKernel
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "multinomial",
        kernel=MultinomialKernel,
        sampler=samplers.multinomial,
        log_partition=lambda h, s: int(s["n"]) * stable_logsumexp(h),
    )
)
