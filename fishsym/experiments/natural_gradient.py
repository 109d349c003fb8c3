"""Diagonal natural gradient preconditioned by ``Î₁`` or ``Î₂`` (the paper's Figure 1).

The update is

    θ ← θ − lr · ∇L(θ) ⊘ (F̂(θ) + damping)

with ``L`` the mean negative log-likelihood of a mini-batch and ``F̂`` a diagonal Fisher
estimate from labels **sampled from the model** at the batch inputs (docs/theory.md §2):

* ``"squared_score"`` (``Î₁``): ``F̂_i = (1/(B·K)) Σ_n Σ_k (∂_i ℓ(y_nk | x_n))²``;
* ``"neg_hessian"`` (``Î₂``): ``F̂_i = −(1/(B·K)) Σ_n Σ_k ∂²_i ℓ(y_nk | x_n)``;

``B`` batch inputs, ``K`` labels per input drawn with an explicit ``torch.Generator``.
Derivatives are exact per label (autograd,
:func:`fishsym.reference.coordinates.label_derivatives`), which forms a ``P × P``
Hessian per input: meant for the small models of the toy problems (at most
``DENSE_MAX_PARAMS`` parameters), not for large networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from fishsym.common import ESTIMATORS  # noqa: E402  (the glossary's one definition)
from fishsym.experiments.toy import toy_2d_data, toy_family, toy_model
from fishsym.reference.coordinates import label_derivatives, split_flat


def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")


def _as_labels(kernel, y: torch.Tensor) -> torch.Tensor:
    dtype = getattr(kernel, "label_dtype", None)
    return y if dtype is None else y.to(dtype)


def nll(model: nn.Module, kernel, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood ``−(1/n) Σ_n log p(y_n | h(x_n))`` (a 0-dim tensor)."""
    return -kernel.log_prob(_as_labels(kernel, targets), model(inputs)).mean()


def sampled_diag_fisher_draws(
    model: nn.Module,
    inputs: torch.Tensor,
    kernel,
    estimator: str,
    n_labels: int,
    draws: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """``draws`` independent diagonal estimates, each from ``n_labels`` model labels per input.

    Returns
    -------
    dict: parameter name → ``[draws, *param.shape]``; draw ``r`` is
    ``(1/(n·K)) Σ_n Σ_k e(y_nkr | x_n)`` with ``e = (∂_iℓ)²`` or ``−∂²_iℓ``.
    """
    _check_estimator(estimator)
    if n_labels < 1 or draws < 1:
        raise ValueError(f"n_labels and draws must be positive; got {n_labels}, {draws}")
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (labels are drawn with it)")
    h = model(inputs).detach()
    labels = kernel.sample(h, n_labels * draws, generator).transpose(0, 1)  # [n, K·R, *obs]
    layout, score, curv = label_derivatives(model, inputs, kernel, labels)  # [n, K·R, P]
    values = score**2 if estimator == "squared_score" else -curv
    n, _, P = values.shape
    per_draw = values.reshape(n, draws, n_labels, P).mean(dim=(0, 2))  # [R, P]
    return split_flat(layout, per_draw)


def sampled_diag_fisher(
    model: nn.Module,
    inputs: torch.Tensor,
    kernel,
    estimator: str,
    n_labels: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """One diagonal estimate ``Î₁`` or ``Î₂`` (name → tensor shaped like the parameter)."""
    draws = sampled_diag_fisher_draws(model, inputs, kernel, estimator, n_labels, 1, generator)
    return {k: v[0] for k, v in draws.items()}


class DiagonalNaturalGradient:
    """``θ ← θ − lr · ∇L ⊘ (F̂ + damping)`` with ``F̂`` = ``Î₁`` or ``Î₂`` from model labels.

    Parameters
    ----------
    model: the network (output = natural parameter of ``kernel``'s family).
    kernel: the output family's :mod:`fishsym.kernels` kernel.
    estimator: ``"squared_score"`` (``Î₁``) or ``"neg_hessian"`` (``Î₂``).
    lr: step size.  damping: added to ``F̂`` (> 0 keeps the step finite).
    n_labels: labels drawn from the model per batch input for ``F̂``.
    generator: the ``torch.Generator`` the labels are drawn with.
    """

    def __init__(
        self,
        model: nn.Module,
        kernel,
        estimator: str,
        lr: float,
        damping: float,
        n_labels: int,
        generator: torch.Generator,
    ):
        _check_estimator(estimator)
        if not lr > 0:
            raise ValueError(f"lr must be positive; got {lr!r}")
        if not damping > 0:
            raise ValueError(
                f"damping must be positive (it keeps the step finite); got {damping!r}"
            )
        if not isinstance(generator, torch.Generator):
            raise TypeError("generator must be a torch.Generator (labels are drawn with it)")
        self.model, self.kernel, self.estimator = model, kernel, estimator
        self.lr, self.damping, self.n_labels, self.generator = lr, damping, n_labels, generator
        self.last_preconditioner: dict[str, torch.Tensor] | None = None

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        """One update on a mini-batch; returns the batch loss before the update."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        loss = nll(self.model, self.kernel, inputs, targets)
        grads = torch.autograd.grad(loss, params)
        fhat = sampled_diag_fisher(
            self.model, inputs, self.kernel, self.estimator, self.n_labels, self.generator
        )
        with torch.no_grad():
            trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            for (name, p), g in zip(trainable, grads, strict=True):
                p -= self.lr * g / (fhat[name] + self.damping)
        self.last_preconditioner = fhat
        return float(loss.detach())


@dataclass
class NaturalGradientRun:
    """One run of the toy natural gradient.

    ``test_nll[e]``/``train_nll[e]``: mean NLL after epoch ``e`` (``e = 0``: at the start);
    ``trajectory``: ``[steps + 1, 3]`` rows ``(w₁, w₂, b)`` after each step;
    ``epoch_params``: the parameters after each epoch (for exact variances later);
    ``x_train``: ``[n_train, 2]`` the training inputs.
    """

    task: str
    estimator: str
    settings: dict
    test_nll: list[float] = field(default_factory=list)
    train_nll: list[float] = field(default_factory=list)
    trajectory: torch.Tensor | None = None
    epoch_params: list[dict[str, torch.Tensor]] = field(default_factory=list)
    x_train: torch.Tensor | None = None


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def run_toy_natural_gradient(
    task: str,
    estimator: str,
    *,
    epochs: int = 30,
    lr: float = 0.5,
    damping: float = 1e-3,
    n_labels: int = 1,
    batch_size: int = 16,
    n_train: int = 256,
    n_test: int = 2048,
    data_seed: int = 0,
    shuffle_seed: int = 1,
    label_seed: int = 2,
    kernel=None,
) -> NaturalGradientRun:
    """Train ``toy_model()`` on the toy problem ``task`` by diagonal natural gradient.

    The data (``data_seed``) and mini-batch order (``shuffle_seed``) do not depend on the
    estimator, so two runs differ only by the preconditioner; ``label_seed`` seeds the
    model labels of ``F̂``.
    """
    _check_estimator(estimator)
    if kernel is None:
        from fishsym import kernels

        name, sizes = toy_family(task)
        kernel = kernels.get(name, **sizes)
    data_gen = torch.Generator().manual_seed(data_seed)
    x_train, y_train = toy_2d_data(n_train, task, data_gen)
    x_test, y_test = toy_2d_data(n_test, task, data_gen)
    model = toy_model()
    opt = DiagonalNaturalGradient(
        model, kernel, estimator, lr, damping, n_labels, torch.Generator().manual_seed(label_seed)
    )
    shuffle = torch.Generator().manual_seed(shuffle_seed)
    settings = dict(
        epochs=epochs,
        lr=lr,
        damping=damping,
        n_labels=n_labels,
        batch_size=batch_size,
        n_train=n_train,
        n_test=n_test,
        data_seed=data_seed,
        shuffle_seed=shuffle_seed,
        label_seed=label_seed,
    )
    run = NaturalGradientRun(task, estimator, settings)
    path = [flat_params(model)]

    def record():
        with torch.no_grad():
            run.test_nll.append(float(nll(model, kernel, x_test, y_test)))
            run.train_nll.append(float(nll(model, kernel, x_train, y_train)))
        run.epoch_params.append({k: v.detach().clone() for k, v in model.named_parameters()})

    record()
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=shuffle)
        for start in range(0, n_train, batch_size):
            idx = perm[start : start + batch_size]
            opt.step(x_train[idx], y_train[idx])
            path.append(flat_params(model))
        record()
    run.trajectory = torch.stack(path)
    run.x_train = x_train
    return run


__all__ = [
    "ESTIMATORS",
    "nll",
    "sampled_diag_fisher",
    "sampled_diag_fisher_draws",
    "DiagonalNaturalGradient",
    "NaturalGradientRun",
    "run_toy_natural_gradient",
    "flat_params",
]
