"""Experiments of the paper reproduction (used by ``paper_checks`` and the notebooks).

* :mod:`~fishsym.experiments.training` — training over epochs with per-epoch callbacks;
  per-layer summaries of :func:`fishsym.fisher_variances` results (docs/theory.md §8);
* :mod:`~fishsym.experiments.toy` — the 2-D linear and logistic regression problems of
  the paper's Figure 1;
* :mod:`~fishsym.experiments.natural_gradient` — diagonal natural gradient preconditioned
  by ``Î₁`` or ``Î₂`` estimated from labels sampled from the model;

The experiments run on the pipeline's own stages, re-exported here for convenience:
the empirical Fisher (docs/theory.md §5) exactly in :mod:`fishsym.variance.empirical`, by
enumeration in :mod:`fishsym.reference.empirical` and by Monte Carlo in
:mod:`fishsym.montecarlo.empirical`; per-coordinate derivatives by forward-mode AD in
:mod:`fishsym.reference.coordinates`; z-score tests in :mod:`fishsym.montecarlo.compare`.
"""

from fishsym.experiments.natural_gradient import (
    DiagonalNaturalGradient,
    run_toy_natural_gradient,
    sampled_diag_fisher,
    sampled_diag_fisher_draws,
)
from fishsym.experiments.toy import toy_2d_data, toy_model
from fishsym.experiments.training import group_summary, layer_groups, train_over_epochs
from fishsym.montecarlo.empirical import empirical_fisher_monte_carlo
from fishsym.reference.coordinates import (
    all_coordinates,
    coordinate_derivatives,
    mlp_unit_derivatives,
    sample_coordinates,
)
from fishsym.reference.empirical import empirical_fisher_enumerated
from fishsym.variance.empirical import EmpiricalFisherMoments, empirical_fisher_exact

__all__ = [
    "all_coordinates",
    "coordinate_derivatives",
    "mlp_unit_derivatives",
    "sample_coordinates",
    "EmpiricalFisherMoments",
    "empirical_fisher_exact",
    "empirical_fisher_enumerated",
    "empirical_fisher_monte_carlo",
    "DiagonalNaturalGradient",
    "run_toy_natural_gradient",
    "sampled_diag_fisher",
    "sampled_diag_fisher_draws",
    "toy_2d_data",
    "toy_model",
    "group_summary",
    "layer_groups",
    "train_over_epochs",
]
