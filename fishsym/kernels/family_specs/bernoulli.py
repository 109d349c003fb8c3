"""Numeric side of the bernoulli family: structured Bernoulli kernel (closed forms in σ(±h)),
its sampler, F = softplus."""

from fishsym.kernels import samplers
from fishsym.kernels.bernoulli import BinomialKernel
from fishsym.kernels.generic import softplus
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "bernoulli",
        kernel=lambda family=None: BinomialKernel(1, bernoulli=True, family=family),
        sampler=samplers.bernoulli,
        log_partition=lambda h, s: softplus(h[..., 0]),
    )
)
