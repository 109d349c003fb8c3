"""Numeric side of the independent bernoulli family: O(d) structured kernel, sampler, F = Σ
softplus."""

from fishsym.kernels import samplers
from fishsym.kernels.bernoulli import IndependentBernoulliKernel
from fishsym.kernels.generic import softplus
from fishsym.kernels.numeric import NumericFamily, declare

declare(
    NumericFamily(
        "independent_bernoulli",
        kernel=IndependentBernoulliKernel,
        sampler=samplers.independent_bernoulli,
        log_partition=lambda h, s: softplus(h).sum(-1),
    )
)
