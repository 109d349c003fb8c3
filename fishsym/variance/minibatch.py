"""The mini-batch squared gradient, as training code writes it (docs/theory.md §13).

Code that reuses a training loop for the Fisher computes, for consecutive mini-batches
``β`` of ``b_β`` inputs, the gradient of the **mean** (or **sum**) loss over the batch,
squares it, and averages the squares over the ``B`` batches:

    Ĝ_i = (1/B) Σ_β (c_β Σ_{n∈β} ∂_iℓ(y_n|x_n))²,     c_β = 1/b_β (mean) or 1 (sum).

With labels drawn from the model (independently per input), the scores of a batch are
independent with mean zero, so ``E[(Σ_{n∈β} s_n)²] = Σ_{n∈β} I_n`` and

    E[Ĝ_i] = (1/B) Σ_β c_β² Σ_{n∈β} I(θ_i|x_n),

which is ``F̄/b`` for the mean form with equal batches: such code needs an EWC strength
``b×`` larger than the Fisher's. The variance of one batch's square is that of
``batched_score`` (§9): ``Var[(Σ s)²] = Σ (V₁ − 2I²) + 2(Σ I)²`` over the batch; batches
are independent, so ``Var[Ĝ_i] = (1/B²) Σ_β c_β⁴ Var[(Σ_{n∈β} s_n)²]``. With the data
labels (``labels=``) ``Ĝ`` is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fishsym.common import check_choice, check_count
from fishsym.errors import ArgumentTypeError, ShapeError

REDUCTIONS = ("mean", "sum")


@dataclass
class MinibatchMoments:
    """Exact moments of the mini-batch squared gradient :math:`Ĝ` (module docstring), as an
    estimate of the mean Fisher ``F̄`` over the inputs.

    Attributes
    ----------
    mean, var, bias:
        ``{name: tensor}`` shaped like the parameters: ``E[Ĝ]``, ``Var[Ĝ]`` (0 with data
        labels) and ``E[Ĝ] − F̄``.
    fisher:
        ``F̄``, the mean Fisher over the inputs.
    batch_sizes:
        The size of each mini-batch, in order.
    reduction:
        ``"mean"`` or ``"sum"``.
    data_labels:
        Whether the data labels were used (else labels drawn from the model).
    """

    mean: dict[str, Tensor]
    var: dict[str, Tensor]
    bias: dict[str, Tensor]
    fisher: dict[str, Tensor]
    batch_sizes: list[int]
    reduction: str
    data_labels: bool

    @property
    def scale(self) -> float:
        """``E[Ĝ]/F̄`` with model labels for batches of equal size ``b``: ``1/b`` (mean)
        or ``b`` (sum) — the factor by which an EWC strength tuned on the Fisher must be
        divided (a smaller last batch moves the exact mean slightly: see :attr:`mean`)."""
        b = self.batch_sizes[0]
        return 1 / b if self.reduction == "mean" else float(b)


def minibatch_fisher(
    model: nn.Module,
    inputs: Tensor,
    family,
    batch_size: int,
    *,
    reduction: str = "mean",
    labels: Tensor | None = None,
    dtype: torch.dtype | None = None,
    output=None,
) -> MinibatchMoments:
    """Exact mean, variance and bias of the mini-batch squared gradient (module docstring)
    over consecutive batches of ``batch_size`` inputs of ``inputs`` (the last one smaller
    when ``batch_size`` does not divide them; shuffle the inputs first to match a shuffling
    loader: the moments are those of this partition).

    ``reduction`` is the training loss's: ``"mean"`` (``c = 1/b``) or ``"sum"``. With
    ``labels`` (one per input) the squares use the data labels and are deterministic;
    otherwise labels are drawn from the model. Each batch's moments come from
    :func:`fishsym.fisher_variances` (``batched_score`` / ``batched_score_data``)."""
    from fishsym.variance.compute import fisher_variances

    if not isinstance(inputs, Tensor):
        raise ArgumentTypeError(
            f"inputs must be a tensor [n_inputs, ...]; got {type(inputs).__name__}"
        )
    batch_size = check_count(batch_size, "batch_size")
    check_choice(reduction, REDUCTIONS, "reduction")
    n = inputs.shape[0]
    if labels is not None and (not isinstance(labels, Tensor) or labels.shape[0] != n):
        raise ShapeError(f"labels must be a tensor with one label per input ({n})")
    estimator = "batched_score" if labels is None else "batched_score_data"
    sizes, means, variances, fishers = [], [], [], []
    for start in range(0, n, batch_size):
        rows = slice(start, min(n, start + batch_size))
        res = fisher_variances(
            model, inputs[rows], family, var2=False, bounds=False, dtype=dtype, output=output,
            estimators=(estimator,), labels=None if labels is None else labels[rows],
            progress=False,
        )  # fmt: skip
        b = rows.stop - rows.start
        # one batch's square (c Σ s)² is c²·b times batched_score's (1/b)(Σ s)²
        c2b = (1 / b**2 if reduction == "mean" else 1.0) * b
        sizes.append(b)
        means.append({k: c2b * v for k, v in res.mean[estimator].items()})
        variances.append({k: c2b**2 * v for k, v in res.var[estimator].items()})
        fishers.append({k: b * v for k, v in res.fisher.items()})
    count = len(sizes)
    names = list(means[0])
    mean = {k: sum(m[k] for m in means) / count for k in names}
    var = {k: sum(v[k] for v in variances) / count**2 for k in names}
    fisher = {k: sum(f[k] for f in fishers) / n for k in names}
    bias = {k: mean[k] - fisher[k] for k in names}
    return MinibatchMoments(mean, var, bias, fisher, sizes, reduction, labels is not None)


__all__ = ["MinibatchMoments", "REDUCTIONS", "minibatch_fisher"]
