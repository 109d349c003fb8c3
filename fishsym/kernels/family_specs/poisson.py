"""Numeric side of the poisson family: its sampler and the deviance form of log p (no
cancellation of ~10¹⁹ terms)."""

from fishsym.kernels import samplers
from fishsym.kernels.generic import _poisson_log_prob
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "poisson",
        sampler=samplers.poisson,
        log_prob=_poisson_log_prob,
    )
)
