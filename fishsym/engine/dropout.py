"""Dropout and other stochastic modules.

In evaluation mode (or with ``p = 0``) every dropout variant is the identity, and the
structured pass skips it. In training mode it makes ``h`` random, so ``I(θ|x)``, ``V₁``
and ``V₂`` are not functions of the input any more: :func:`check_deterministic` rejects
such models (and BatchNorm in training mode, which couples the inputs of a batch through
its batch statistics, and RReLU in training mode, whose slope is random).
"""

from __future__ import annotations

from fishsym.common.model import check_deterministic
from fishsym.common.model import is_identity_dropout as is_identity

__all__ = ["check_deterministic", "is_identity"]
