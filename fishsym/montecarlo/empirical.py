"""Monte Carlo of the empirical Fisher (docs/theory.md §5, §6): labels drawn from the
data distribution ``q``, autograd on each, sample moments with standard errors — the
sampling route beside :func:`fishsym.variance.empirical.empirical_fisher_exact` and
:func:`fishsym.reference.empirical.empirical_fisher_enumerated`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from fishsym.common import ESTIMATORS, check_count, check_generator
from fishsym.reference.coordinates import coordinate_derivatives


@dataclass
class MonteCarloMoments:
    """Sample moments of an estimator averaged over ``n_inputs`` inputs, one data label
    each, over ``replicates`` independent label draws (dicts name → ``[k]``).

    ``mean``/``var``: sample mean and (unbiased) sample variance of the replicates;
    ``se_mean`` = ``√(var/R)``; ``se_var`` = ``√((m₄ − var²)/R)`` with ``m₄`` the sample
    fourth central moment (docs/theory.md §6).
    """

    replicates: int
    mean: dict[str, torch.Tensor] = field(default_factory=dict)
    var: dict[str, torch.Tensor] = field(default_factory=dict)
    se_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    se_var: dict[str, torch.Tensor] = field(default_factory=dict)


def _sample_moments(values: torch.Tensor, out: MonteCarloMoments, name: str) -> None:
    """``values``: ``[k, R]`` replicate estimates."""
    R = values.shape[-1]
    mean = values.mean(-1)
    centred = values - mean.unsqueeze(-1)
    var = centred.pow(2).sum(-1) / (R - 1)
    m4 = centred.pow(4).mean(-1)
    out.mean[name] = mean
    out.var[name] = var
    out.se_mean[name] = (var / R).sqrt()
    out.se_var[name] = ((m4 - var**2).clamp_min(0) / R).sqrt()


def empirical_fisher_monte_carlo(
    model: nn.Module,
    inputs: torch.Tensor,
    kernel,
    params,
    teacher_h: torch.Tensor,
    replicates: int,
    generator: torch.Generator,
) -> dict[str, MonteCarloMoments]:
    """Monte Carlo of the empirical Fisher with labels drawn from the teacher ``q``.

    Each replicate draws one label per input from ``q(y|x_n) = p(y | h_q(x_n))`` with
    ``generator`` and forms both data-label estimators averaged over the inputs,
    ``(1/n) Σ_n (∂_iℓ(y_n|x_n))²`` and ``−(1/n) Σ_n ∂²_iℓ(y_n|x_n)``, by autograd.

    Returns
    -------
    ``{"squared_score": MonteCarloMoments, "neg_hessian": MonteCarloMoments}``, tensors
    ``[k]`` per selected parameter; compare ``mean`` with ``emp_mean`` and ``var`` with
    ``emp_var / n`` of :func:`empirical_fisher_exact`.
    """
    replicates = check_count(replicates, "replicates", minimum=2)
    check_generator(generator)
    draws = kernel.sample(teacher_h.detach(), replicates, generator)  # [R, n, *obs]
    labels = draws.transpose(0, 1)  # [n, R, *obs]

    def head(h, y):
        return kernel.log_prob(y, h)

    table = coordinate_derivatives(model, inputs, params, head=head, head_args=labels)
    out = {e: MonteCarloMoments(replicates) for e in ESTIMATORS}
    for name, (score, curv) in table.items():  # [n, k, R]
        _sample_moments(score.pow(2).mean(0), out["squared_score"], name)
        _sample_moments(-curv.mean(0), out["neg_hessian"], name)
    return out


__all__ = ["MonteCarloMoments", "empirical_fisher_monte_carlo"]
