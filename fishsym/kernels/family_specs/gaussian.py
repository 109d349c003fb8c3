"""Numeric side of the gaussian family: closed-form structured kernel and sampler."""

from fishsym.kernels import samplers
from fishsym.kernels.gaussian import GaussianKernel
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "gaussian",
        kernel=GaussianKernel,
        sampler=samplers.gaussian,
    )
)
