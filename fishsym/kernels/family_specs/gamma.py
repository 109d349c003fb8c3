"""Numeric side of the gamma family: its sampler (standard gamma / β)."""

from fishsym.kernels import samplers
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "gamma",
        sampler=samplers.gamma,
    )
)
