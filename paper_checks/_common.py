"""Networks, data and trained models shared by several claim checks.

Trained networks are cached for the life of the process, so checks run together by
``python -m paper_checks`` train each one once.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from fishsym.experiments.training import nll_loss, one_hot_targets, train_over_epochs

#: families whose natural parameters range over all of R^d, so any network output is a
#: valid h; used for checks across families on random networks
UNCONSTRAINED_FAMILIES = (
    "categorical",
    "gaussian",
    "bernoulli",
    "poisson",
    "independent_bernoulli",
)
#: the network output width each of those families is exercised with
FAMILY_OUTPUTS = {
    "categorical": 3,
    "gaussian": 2,
    "bernoulli": 1,
    "poisson": 1,
    "independent_bernoulli": 2,
}


def kernel_for(family: str, d: int):
    """The :mod:`fishsym.kernels` kernel of a registered family for a network with ``d``
    outputs: the one family resolver, :func:`fishsym.kernels.for_output`."""
    from paper_checks._core import need

    return need("fishsym.kernels").for_output(family, d)


def random_mlp(
    widths, activation: str, seed: int, dtype=torch.float64, scale: float = 1.0
) -> nn.Sequential:
    """``fishsym.nets.mlp`` with weights drawn from ``torch.Generator().manual_seed(seed)``;
    ``scale`` multiplies every weight (larger values push sigmoids into their curved range
    and outputs towards confident predictions)."""
    from fishsym.nets import mlp

    model = mlp(widths, activation, torch.Generator().manual_seed(seed), dtype)
    if scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
    return model


def random_inputs(n: int, width: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def random_cases(ctx, s: dict):
    """The random-network grid of the bound checks: for each family (with a progress bar),
    activation and weight scale, ``(family, activation, scale, widths, model, inputs)``;
    ``s`` holds ``families``, ``activations``, ``scales``, ``widths`` (``None`` = the
    family's output size) and ``n_inputs``. The seeds are those of ``bounds_hold``."""
    for i, fam in enumerate(ctx.progress(s["families"], "families")):
        widths = tuple(w if w is not None else FAMILY_OUTPUTS[fam] for w in s["widths"])
        for j, act in enumerate(s["activations"]):
            for scale in s["scales"]:
                model = random_mlp(widths, act, seed=100 * i + j, scale=scale)
                x = random_inputs(s["n_inputs"], widths[0], seed=5)
                yield fam, act, scale, widths, model, x


@lru_cache(maxsize=4)
def mnist_split(n_train: int, n_test: int):
    """Bundled MNIST (float32): ``(x_train, y_train, x_test, y_test)``."""
    from fishsym.data import mnist_tensors

    return mnist_tensors(n_train, n_test)


@lru_cache(maxsize=8)
def trained_mnist_mlp(
    widths: tuple[int, ...],
    activation: str,
    head: str,
    epochs: int,
    n_train: int,
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 64,
) -> nn.Sequential:
    """An MLP trained on the bundled digits with Adam (cached per process).

    ``head``: ``"categorical"`` (cross-entropy) or ``"gaussian"`` (regression onto one-hot
    targets, unit variance). Returns the float32 model.
    """
    x, y, _, _ = mnist_split(n_train, 2000)
    model = random_mlp(widths, activation, seed, dtype=torch.float32)
    targets = y if head == "categorical" else one_hot_targets(y, widths[-1])
    train_over_epochs(
        model,
        x,
        targets,
        nll_loss(head),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    return model


def as_float64(model: nn.Module) -> nn.Module:
    """A float64 copy (the exact computations and autograd references run in float64)."""
    import copy

    return copy.deepcopy(model).to(torch.float64)


def linear_names(model: nn.Module) -> list[tuple[str, str, str]]:
    """``(layer label, weight name, bias name)`` for each ``nn.Linear``, input to output."""
    out = []
    for modname, module in model.named_modules():
        if isinstance(module, nn.Linear):
            out.append((f"layer {len(out) + 1}", f"{modname}.weight", f"{modname}.bias"))
    return out


def max_rel_err(a: torch.Tensor, b: torch.Tensor, scale: float | None = None) -> float:
    """``max |a − b| / scale`` over all entries, ``scale`` defaulting to ``max |b|``.

    Quantities that are (nearly) zero where theory says zero need an outside scale: a
    variance is compared relative to ``max I(θ|x)²``, a mean relative to ``max I(θ|x)``,
    so that rounding of order 1e-20 next to an exact 0 is not a 100% error.
    """
    a, b = a.detach().to(torch.float64), b.detach().to(torch.float64)
    if scale is None:
        scale = float(b.abs().max())
    diff = float((a - b).abs().max())
    if scale == 0:
        return diff
    return diff / scale


def annotate_exact_zeros(ax, zeros, factor: float) -> None:
    """Mark bars of exactly zero height on a log axis (where they would not show), as
    ``(x position, colour)`` pairs, with the text "0 (exact)" just above the axis floor."""
    for pos, color in zeros:
        ax.text(
            pos,
            ax.get_ylim()[0] * factor,
            "0 (exact)",
            rotation=90,
            va="bottom",
            ha="center",
            fontsize=7,
            color=color,
        )


def legend_below(ax, ncol: int = 2, fontsize: int = 7) -> None:
    """The panel's legend under its x-axis label, outside the plotting area, so that it
    never covers a curve; lists only what the panel draws (labelled artists). The figure
    is saved with ``bbox_inches="tight"``, which keeps it in the image."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
    )
