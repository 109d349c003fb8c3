"""Exact Fisher diagonal, single-label variances of ``Î₁`` and ``Î₂``, bounds, and the
joint / sample-size forms (docs/theory.md §2, §3, §5) for every parameter of a network.

    res = fishsym.fisher_variances(model, inputs, "categorical")
    res.fisher, res.var1, res.var2, res.bounds, res.summary()
"""

from fishsym.variance.compute import (
    DerivativeWarning,
    fisher_variances,
    resolve_kernel,
    unit_moments,
)
from fishsym.variance.result import ESTIMATORS, FisherVariances, Summary, chebyshev_labels

__all__ = [
    "fisher_variances",
    "FisherVariances",
    "Summary",
    "ESTIMATORS",
    "DerivativeWarning",
    "chebyshev_labels",
    "resolve_kernel",
    "unit_moments",
]
