"""Numeric side of the categorical family: O(C) structured kernel, sampler, stable log-sum-exp,
class-index labels."""

from fishsym.kernels import samplers
from fishsym.kernels.base import stable_logsumexp
from fishsym.kernels.categorical import CategoricalKernel
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "categorical",
        kernel=CategoricalKernel,
        sampler=samplers.categorical,
        log_partition=lambda h, s: stable_logsumexp(h),
        class_index=True,
    )
)
