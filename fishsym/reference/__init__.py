"""Slow, obviously correct float64 oracles: exact label expectations (docs/theory.md §6).

``exact_moments(model, inputs, family, params=None)`` gives the exact mean and variance
of the single-label squared score ``Î₁`` and negative Hessian ``Î₂`` per input and
parameter entry, by autograd on ``log p(y | h)`` for every label of an exact rule
(enumeration, Gauss–Hermite, Gauss–Laguerre, truncated sums with a certified tail).
"""

from fishsym.reference.exact import ESTIMATOR_KEYS, ExactMoments, exact_moments
from fishsym.reference.rules import LabelRule, label_rule
from fishsym.reference.selection import ParamSelection, sample_params, select_params

__all__ = [
    "exact_moments",
    "ExactMoments",
    "ESTIMATOR_KEYS",
    "LabelRule",
    "label_rule",
    "ParamSelection",
    "sample_params",
    "select_params",
]
