"""Sampled diagonal Fishers as a product: ``diagonal_fisher`` estimates the mean Fisher
diagonal over a set of inputs from rounds of sampled labels (or probes), with a standard
error and a confidence interval per entry, at any scale (docs/theory.md §5, §9, §12).

This stage is the estimator people use, run well; :mod:`fishsym.montecarlo` is the
cross-check that holds sampled estimates to the exact values.

    est = fishsym.diagonal_fisher(model, inputs, "categorical", rel_error=0.1)
    est.fisher, est.stderr, est.interval(), est.summary()
"""

from fishsym.sampling.diagonal import DiagonalFisher, diagonal_fisher

__all__ = ["diagonal_fisher", "DiagonalFisher"]
