"""The derivative engine: per-input ``u_i = ∂h/∂θ_i`` and ``w_i = ∂²h/∂θ_i²`` (THEORY §1, §7).

Two paths deliver the same :class:`ParamDerivatives`:

* :class:`StructuredMLP` (:mod:`fishsym.engine.sequential`) — the fast structured pass
  for ``nn.Sequential`` stacks of ``Linear`` layers and elementwise activations, one file
  per layer type (:mod:`~fishsym.engine.linear`, :mod:`~fishsym.engine.activations`,
  :mod:`~fishsym.engine.flatten`, :mod:`~fishsym.engine.dropout`);
* :class:`GenericModel` (:mod:`fishsym.engine.generic`) — exact for any ``nn.Module`` via
  ``torch.func``, at one forward-over-forward pass per parameter entry and input.

:func:`select` picks the structured path when it applies and otherwise falls back to the
generic one with a :class:`GenericPathWarning` naming the module that forced it.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from fishsym.engine.derivatives import ParamDerivatives
from fishsym.engine.dropout import check_deterministic
from fishsym.engine.generic import GenericModel
from fishsym.engine.sequential import StructuredMLP
from fishsym.errors import UnsupportedModelError

PATHS = ("auto", "structured", "generic")


class GenericPathWarning(UserWarning):
    """The model is handled by the (exact but slow) generic path."""


def select(
    model: nn.Module, dtype: torch.dtype, path: str = "auto"
) -> StructuredMLP | GenericModel:
    """The engine for ``model``: ``"structured"``, ``"generic"``, or ``"auto"`` (structured
    when supported, else generic with a :class:`GenericPathWarning`).

    Raises :class:`UnsupportedModelError` for models with training-mode Dropout, BatchNorm
    or RReLU (any path), and for ``path="structured"`` on a model it cannot handle.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}; got {path!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_deterministic(model)
    if path == "generic":
        return GenericModel(model, dtype)
    try:
        return StructuredMLP(model, dtype)
    except UnsupportedModelError as err:
        if path == "structured":
            raise
        warnings.warn(
            f"using the generic (torch.func) path: {err}. It is exact but costs one "
            "second-order forward pass per parameter entry and input.",
            GenericPathWarning,
            stacklevel=3,
        )
        return GenericModel(model, dtype)


__all__ = [
    "GenericModel",
    "GenericPathWarning",
    "ParamDerivatives",
    "StructuredMLP",
    "check_deterministic",
    "select",
    "PATHS",
]
