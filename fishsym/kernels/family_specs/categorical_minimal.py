"""Numeric side of the categorical minimal family: structured kernel, sampler, stable F,
class-index labels."""

from fishsym.kernels import samplers
from fishsym.kernels.categorical import CategoricalMinimalKernel
from fishsym.kernels.generic import _logsumexp_with_zero
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "categorical_minimal",
        kernel=CategoricalMinimalKernel,
        sampler=samplers.categorical_minimal,
        log_partition=lambda h, s: _logsumexp_with_zero(h),
        class_index=True,
    )
)
