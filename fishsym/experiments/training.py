"""Training loops with per-epoch callbacks, and per-layer summaries of engine results.

The paper's main experiment (docs/theory.md §8) follows the Fisher information and the
variances of its two estimators layer by layer over training. :func:`train_over_epochs`
trains with Adam and calls a callback before training and after every epoch;
:func:`group_summary` condenses a :func:`fishsym.fisher_variances` result into one row
per ``Linear`` layer (weights and biases as one group).

Per group of ``P`` parameter entries the summary reports **averages over the entries**
(so that groups of different sizes compare): ``FI = (1/P) Σ_i I(θ_i)``, ``V_a = (1/P) Σ_i
V_a(θ_i)`` and ``std_a = √V_a`` (the root-mean-square standard deviation of one
single-label estimate), the bounds likewise, and ``log(Σ_i upper_i / Σ_i V_a(θ_i))``
(≥ 0; 0 means the bound is tight). All quantities are single-label (``N = 1``) and
averaged over the held-out inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

#: slack when checking ``lower ≤ V ≤ upper`` per parameter: none. The certified bounds
#: are rounded outward by their floating-point error bound (fishsym.variance.compute
#: BOUND_ULPS, SUM_ULPS), so even a tight bound (Gaussian heads, d = 1) cannot land on the
#: wrong side of the variance computed from the same derivatives: any miss is a defect.
BOUND_RTOL = 0.0


def nll_loss(family: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The mean negative log-likelihood (up to a constant) of a network head.

    ``"categorical"``: cross-entropy on logits with class-index targets;
    ``"gaussian"``: ``½‖h − y‖²`` (unit-variance Gaussian) with real targets ``[n, d]``.
    """
    if family == "categorical":
        return nn.functional.cross_entropy
    if family == "gaussian":
        return lambda h, y: 0.5 * (h - y).pow(2).sum(-1).mean()
    raise ValueError(f"family must be 'categorical' or 'gaussian'; got {family!r}")


def one_hot_targets(
    y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Class indices ``[n]`` → one-hot regression targets ``[n, num_classes]``."""
    return nn.functional.one_hot(y.to(torch.int64), num_classes).to(dtype)


@dataclass
class TrainingHistory:
    """``loss[e]``: mean training loss over epoch ``e`` (``loss[0]`` at initialisation);
    ``records[e]``: what the callback returned after epoch ``e`` (``e = 0`` before training)."""

    loss: list[float] = field(default_factory=list)
    records: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def train_over_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    callback: Callable[[int, nn.Module], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingHistory:
    """Train with Adam (default betas) on mini-batches shuffled with ``generator``.

    ``callback(epoch, model)`` runs at epoch 0 (before any step) and after each epoch;
    its return values are collected in ``history.records``. ``progress(epoch, epochs)``
    is called after each epoch (e.g. to advance a progress bar).
    """
    if epochs < 0 or batch_size < 1 or not lr > 0:
        raise ValueError(
            f"need epochs ≥ 0, batch_size ≥ 1 and lr > 0; got {epochs}, {batch_size}, {lr}"
        )
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (it shuffles the mini-batches)")
    history = TrainingHistory(
        settings=dict(optimizer="Adam", epochs=epochs, batch_size=batch_size, lr=lr)
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.no_grad():
        history.loss.append(float(loss_fn(model(x), y)))
    if callback is not None:
        history.records.append(callback(0, model))
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.loss.append(total / len(x))
        if callback is not None:
            history.records.append(callback(epoch, model))
        if progress is not None:
            progress(epoch, epochs)
    return history


# ---------------------------------------------------------------------- layer summaries
@dataclass(frozen=True)
class LayerGroup:
    """One ``Linear`` layer: its display name and its parameter names."""

    name: str
    module: str
    params: tuple[str, ...]


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """One group per ``nn.Linear`` (weights and bias together), input to output."""
    groups = []
    for modname, module in model.named_modules():
        if isinstance(module, nn.Linear):
            names = [f"{modname}.{p}" for p, _ in module.named_parameters(recurse=False)]
            groups.append(LayerGroup(f"layer {len(groups) + 1}", modname, tuple(names)))
    if not groups:
        raise ValueError("the model has no nn.Linear layer to group parameters by")
    return groups


def _cat(values: dict, names) -> torch.Tensor:
    return torch.cat([values[n].detach().reshape(-1).to(torch.float64) for n in names])


def bracket_violations(var: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> int:
    """Entries with ``var < lower`` or ``var > upper`` beyond the rounding slack
    ``BOUND_RTOL``; a non-finite variance, a NaN bound or an infinite upper bound (which
    brackets nothing) counts as a violation too."""
    slack_lo = BOUND_RTOL * (var.abs() + lower.abs())
    slack_hi = BOUND_RTOL * (var.abs() + upper.abs())
    bad = (var < lower - slack_lo) | (var > upper + slack_hi)
    bad |= ~torch.isfinite(var) | ~torch.isfinite(upper) | torch.isnan(lower)
    return int(bad.sum())


def group_summary(res, groups: list[LayerGroup]) -> list[dict]:
    """Per-layer rows from a :func:`fishsym.fisher_variances` result.

    Returns
    -------
    One dict per group with: ``layer``, ``n_params``, ``fisher``, ``var1``, ``var2`` (means
    over entries), ``std1``/``std2`` (their square roots), ``rel_std1``/``rel_std2``
    (``std/FI``), ``median_rel_std1``/``median_rel_std2`` (median over entries of
    ``√V_a(θ_i)/I(θ_i)``), ``lower1``/``upper1``/``lower2``/``upper2`` (mean bounds),
    ``log_ratio1``/``log_ratio2`` (``log Σ upper / Σ V``; NaN when both are zero),
    ``violations1``/``violations2`` (entries outside their bounds), ``var2_zero`` (every
    entry's ``V₂`` exactly 0), ``lower_var`` (which estimator has the smaller mean variance).
    """
    rows = []
    for g in groups:
        fisher = _cat(res.fisher, g.params)
        row = {"layer": g.name, "n_params": int(fisher.numel()), "fisher": float(fisher.mean())}
        for a, key, est in ((1, "var1", "squared_score"), (2, "var2", "neg_hessian")):
            var = _cat(getattr(res, key), g.params)
            lower = _cat(res.bounds[est]["lower"], g.params)
            upper = _cat(res.bounds[est]["upper"], g.params)
            row[f"var{a}"] = float(var.mean())
            row[f"std{a}"] = math.sqrt(max(float(var.mean()), 0.0))
            row[f"rel_std{a}"] = row[f"std{a}"] / row["fisher"] if row["fisher"] > 0 else math.nan
            positive = fisher > 0
            rel = var[positive].clamp_min(0).sqrt() / fisher[positive]
            row[f"median_rel_std{a}"] = float(rel.median()) if rel.numel() else math.nan
            row[f"lower{a}"] = float(lower.mean())
            row[f"upper{a}"] = float(upper.mean())
            vs, us = float(var.sum()), float(upper.sum())
            row[f"log_ratio{a}"] = math.log(us / vs) if vs > 0 and us > 0 else math.nan
            row[f"violations{a}"] = bracket_violations(var, lower, upper)
        row["var2_zero"] = bool((_cat(res.var2, g.params) == 0).all())
        row["lower_var"] = "neg_hessian" if row["var2"] < row["var1"] else "squared_score"
        rows.append(row)
    return rows


__all__ = [
    "BOUND_RTOL",
    "nll_loss",
    "one_hot_targets",
    "TrainingHistory",
    "train_over_epochs",
    "LayerGroup",
    "layer_groups",
    "bracket_violations",
    "group_summary",
]
