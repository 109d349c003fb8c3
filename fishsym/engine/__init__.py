"""The derivative engine: per-input ``u_i = ∂h/∂θ_i`` and ``w_i = ∂²h/∂θ_i²`` (docs/theory.md §1, §7).

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

from fishsym.common import ModelView, check_choice
from fishsym.engine.derivatives import ParamDerivatives
from fishsym.engine.dropout import check_deterministic
from fishsym.engine.generic import GenericModel
from fishsym.engine.sequential import StructuredMLP
from fishsym.errors import UnsupportedModelError

PATHS = ("auto", "structured", "generic")


class GenericPathWarning(UserWarning):
    """The model is handled by the (exact but slow) generic path."""


def select(
    view: ModelView | nn.Module, dtype: torch.dtype | str | None = None, path: str = "auto"
) -> StructuredMLP | GenericModel:
    """The engine for the model of ``view``: ``"structured"``, ``"generic"``, or ``"auto"``
    (structured when supported, else generic with a :class:`GenericPathWarning`).

    ``select(view, path)`` with a :class:`~fishsym.common.ModelView`, or
    ``select(model, dtype, path)`` with a module (a view is made in ``dtype``).
    Raises :class:`UnsupportedModelError` for ``path="structured"`` on a model it cannot
    handle (the view refuses stochastic models).
    """
    if isinstance(dtype, str):
        dtype, path = None, dtype
    if not isinstance(view, ModelView):
        view = ModelView(view, dtype or torch.float64)
    check_choice(path, PATHS, "path")
    if path == "generic":
        return GenericModel(view)
    try:
        if view.output is not None:
            raise UnsupportedModelError("an output selector is given")
        if view.shared:
            raise UnsupportedModelError(
                f"parameters {sorted(view.shared)} are shared by several modules (tied weights)"
            )
        return StructuredMLP(view.model, view.dtype)
    except UnsupportedModelError as err:
        if path == "structured":
            raise
        warnings.warn(
            f"using the generic (torch.func) path: {err}. It is exact but costs about 2d "
            "backward passes per parameter entry and input.",
            GenericPathWarning,
            stacklevel=3,
        )
        return GenericModel(view)


__all__ = [
    "GenericModel",
    "GenericPathWarning",
    "ParamDerivatives",
    "StructuredMLP",
    "check_deterministic",
    "select",
    "PATHS",
]
