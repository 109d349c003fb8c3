"""Dropout and other stochastic modules.

In evaluation mode (or with ``p = 0``) every dropout variant is the identity, and the
structured pass skips it. In training mode it makes ``h`` random, so ``I(θ|x)``, ``V₁``
and ``V₂`` are not functions of the input any more: :func:`check_deterministic` rejects
such models (and BatchNorm in training mode, which couples the inputs of a batch through
its batch statistics, and RReLU in training mode, whose slope is random).
"""

from __future__ import annotations

from torch import nn

from fishsym.errors import UnsupportedModelError


def is_identity(module: nn.Module) -> bool:
    """``True`` for a dropout module that currently passes its input through unchanged."""
    return isinstance(module, nn.modules.dropout._DropoutNd) and (
        not module.training or float(module.p) == 0.0
    )


def check_deterministic(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` naming the first module that makes the model's
    output random or batch-dependent (training-mode Dropout, BatchNorm, RReLU)."""
    for name, module in model.named_modules():
        where = name or type(model).__name__
        if isinstance(module, nn.modules.dropout._DropoutNd) and not is_identity(module):
            raise UnsupportedModelError(
                f"module {where!r} ({type(module).__name__}, p={module.p}) is in training mode: "
                "its output is random, so the Fisher information and the estimator variances "
                "are not defined per input. Call model.eval() first."
            )
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise UnsupportedModelError(
                f"module {where!r} ({type(module).__name__}) is in training mode: it normalises "
                "with batch statistics, which couples the inputs of a batch. Call model.eval() "
                "first (it then uses its running statistics)."
            )
        if isinstance(module, nn.RReLU) and module.training:
            raise UnsupportedModelError(
                f"module {where!r} (RReLU) is in training mode: its negative slope is random. "
                "Call model.eval() first."
            )


__all__ = ["check_deterministic", "is_identity"]
