"""The two-dimensional toy problems of the paper's Figure 1.

Inputs ``x ∈ R²`` from a correlated, anisotropic Gaussian (so that the loss surface is
badly conditioned and preconditioning matters); targets from a generalised linear model
``h = wᵀx + b`` with known ``(w*, b*)``:

* ``"linear_regression"``: ``y = h + ε``, ``ε ∼ N(0, 1)`` — the Gaussian family with unit
  variance (``t = y``, ``F = h²/2``);
* ``"logistic_regression"``: ``y ∼ Bernoulli(σ(h))`` — the Bernoulli family with logit ``h``.

The model is ``nn.Sequential(nn.Linear(2, 1))``: ``h`` is affine in ``θ = (w, b)``, so
``w_i = ∂²h/∂θ_i² = 0`` and the negative-Hessian estimator ``Î₂`` has no label variance at
all (docs/theory.md §2).
"""

from __future__ import annotations

import torch
from torch import nn

#: the generating weights and bias
TRUE_WEIGHT = (2.0, -1.5)
TRUE_BIAS = 0.5
#: inputs are ``z @ INPUT_MIX`` with ``z ∼ N(0, I₂)``: variances 2.25 and 0.97, correlation 0.91
INPUT_MIX = ((1.5, 0.0), (0.9, 0.4))
#: where training starts (away from the optimum, so the trajectories are visible)
START_WEIGHT = (-1.5, 1.5)
START_BIAS = 0.0

TASKS = {
    # task -> (registered family name, its size arguments)
    "linear_regression": ("gaussian", {"d": 1}),
    "logistic_regression": ("bernoulli", {}),
}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}; got {task!r}")


def toy_2d_data(
    n: int, task: str, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs from the toy problem ``task``.

    Returns
    -------
    x: ``[n, 2]``; y: ``[n]`` (real targets for regression, 0./1. for logistic regression).
    """
    _check_task(task)
    if n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    z = torch.randn(n, 2, generator=generator, dtype=dtype)
    x = z @ torch.tensor(INPUT_MIX, dtype=dtype)
    h = x @ torch.tensor(TRUE_WEIGHT, dtype=dtype) + TRUE_BIAS
    if task == "linear_regression":
        y = h + torch.randn(n, generator=generator, dtype=dtype)
    else:
        y = torch.bernoulli(torch.sigmoid(h), generator=generator)
    return x, y


def toy_model(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``nn.Sequential(nn.Linear(2, 1))`` at the fixed start ``(START_WEIGHT, START_BIAS)``
    (parameters ``"0.weight"`` ``[1, 2]`` and ``"0.bias"`` ``[1]``)."""
    layer = nn.Linear(2, 1, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([START_WEIGHT], dtype=dtype))
        layer.bias.fill_(START_BIAS)
    return nn.Sequential(layer)


def toy_family(task: str) -> tuple[str, dict]:
    """The registered family name and size arguments of ``task``'s output model."""
    _check_task(task)
    return TASKS[task]


__all__ = ["TASKS", "TRUE_WEIGHT", "TRUE_BIAS", "toy_2d_data", "toy_model", "toy_family"]
