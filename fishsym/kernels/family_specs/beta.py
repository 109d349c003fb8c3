"""Numeric side of the beta family: its sampler (G₁/(G₁+G₂) from two standard gammas)."""

from fishsym.kernels import samplers
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "beta",
        sampler=samplers.beta,
    )
)
