"""Numeric side of the von Mises family: its structured kernel (moments in the frame of the
mean direction, stable near h = 0 and at large concentration) and its rejection sampler."""

from fishsym.kernels import samplers
from fishsym.kernels.numeric import NumericFamily, declare
from fishsym.kernels.von_mises import VonMisesKernel

declare(
    NumericFamily(
        "von_mises",
        kernel=lambda family=None: VonMisesKernel(family=family),
        sampler=samplers.von_mises,
    )
)
