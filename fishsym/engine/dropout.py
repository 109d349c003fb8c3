"""Dropout and other stochastic modules.

In evaluation mode (or with ``p = 0``) every dropout variant is the identity, and the
structured pass skips it. In training mode it makes ``h`` random, so ``I(θ|x)``, ``V₁``
and ``V₂`` are not functions of the input any more: :func:`check_deterministic` rejects
such models (and BatchNorm in training mode, which couples the inputs of a batch through
its batch statistics, and RReLU in training mode, whose slope is random).
"""

from __future__ import annotations

from torch import nn

from fishsym.common.model import check_deterministic
from fishsym.common.model import is_identity_dropout as is_identity
from fishsym.engine.rules import rule

#: every dropout variant (all subclasses of torch's _DropoutNd)
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.FeatureAlphaDropout)


@rule(*DROPOUT_TYPES)
def dropout_rule(walker, name: str, module: nn.Module) -> None:
    """Structured-path rule: the identity in evaluation mode (training mode is refused by
    :func:`check_deterministic` before any engine is built)."""
    if not is_identity(module):  # pragma: no cover - refused earlier
        raise ValueError(f"module {name!r} is a dropout in training mode")


__all__ = ["DROPOUT_TYPES", "check_deterministic", "dropout_rule", "is_identity"]
