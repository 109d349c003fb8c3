"""Numeric side of the gaussian meanvar family: its sampler."""

from fishsym.kernels import samplers
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "gaussian_meanvar",
        sampler=samplers.gaussian_meanvar,
    )
)
