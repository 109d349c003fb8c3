"""Experiments of the paper reproduction (used by ``paper_checks`` and the notebooks).

* :mod:`~fishsym.experiments.training` — training over epochs with per-epoch callbacks;
  per-layer summaries of :func:`fishsym.fisher_variances` results (docs/theory.md §8);
* :mod:`~fishsym.experiments.toy` — the 2-D linear and logistic regression problems of
  the paper's Figure 1;
* :mod:`~fishsym.experiments.natural_gradient` — diagonal natural gradient preconditioned
  by ``Î₁`` or ``Î₂`` estimated from labels sampled from the model;
* :mod:`~fishsym.experiments.empirical` — the empirical Fisher against the Fisher and its
  estimators (docs/theory.md §5): exact formulas, exact enumeration and Monte Carlo;
* :mod:`~fishsym.experiments.derivatives` — exact per-coordinate derivatives by
  forward-mode AD, the independent route the experiments check the engine with;

The z-score tests the experiments use live with the other Monte Carlo statistics, in
:mod:`fishsym.montecarlo.compare`.
"""

from fishsym.experiments.derivatives import (
    all_coordinates,
    coordinate_derivatives,
    mlp_unit_derivatives,
    sample_coordinates,
)
from fishsym.experiments.empirical import (
    EmpiricalFisherMoments,
    empirical_fisher_enumerated,
    empirical_fisher_exact,
    empirical_fisher_monte_carlo,
)
from fishsym.experiments.natural_gradient import (
    DiagonalNaturalGradient,
    run_toy_natural_gradient,
    sampled_diag_fisher,
    sampled_diag_fisher_draws,
)
from fishsym.experiments.toy import toy_2d_data, toy_model
from fishsym.experiments.training import group_summary, layer_groups, train_over_epochs

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
