"""The derivative engine: per-input ``u_i = ∂h/∂θ_i`` and ``w_i = ∂²h/∂θ_i²``
(docs/theory.md §1, §7).

**The engine protocol.** Every engine has ``path``, ``no_grad``, ``cost_note``,
``param_names()``, ``default_chunk(dtype, budget)``, ``steps(n_inputs, chunk, d)`` and
``batches(x, d) -> (h, iterator of lists of blocks)``; each block is a
:class:`ParamDerivatives` (dense per entry, or the Linear outer product) that reduces its
own moments. :func:`fishsym.fisher_variances` uses nothing else, so a new engine or block
kind needs no change there. The structured engine walks a registry of per-module rules
(:mod:`fishsym.engine.rules`, one file per module type).

Three engines deliver blocks:

* :class:`StructuredMLP` (:mod:`fishsym.engine.sequential`) — the fast structured pass
  for ``nn.Sequential`` stacks of ``Linear`` layers and elementwise activations, one file
  per layer type (:mod:`~fishsym.engine.linear`, :mod:`~fishsym.engine.activations`,
  :mod:`~fishsym.engine.flatten`, :mod:`~fishsym.engine.dropout`);
* :class:`GraphModel` (:mod:`fishsym.engine.graph`) — any ``torch.func``-traceable model
  (convolutions, pooling, normalisation in evaluation mode, residual connections,
  embeddings, attention): ``u`` from per-input Jacobians, ``w`` by the cheapest sound
  route per parameter (structural zero, curvature sources, second-order passes;
  docs/theory.md §10);
* :class:`GenericModel` (:mod:`fishsym.engine.generic`) — exact for any ``nn.Module`` via
  ``torch.func``, at one second-order pass per parameter entry and input.

:func:`select` picks the structured path when it applies, otherwise the graph path; the
engine's ``var2_route`` (or a block's ``route``) says how each ``w`` was obtained.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch
from torch import nn

from fishsym.common import ModelView, check_choice
from fishsym.common.model import global_forward_hooks
from fishsym.engine.derivatives import DenseDerivatives, LinearDerivatives, ParamDerivatives
from fishsym.engine.dropout import check_deterministic
from fishsym.engine.generic import GenericModel, GenericPathWarning
from fishsym.engine.graph import GraphModel
from fishsym.engine.sequential import StructuredMLP
from fishsym.errors import UnsupportedModelError

PATHS = ("auto", "structured", "graph", "generic")

# every module of this package registers its structured-path rules on import
# (:mod:`fishsym.engine.rules`): adding a module type is adding its rule file
for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")


def select(
    view: ModelView | nn.Module, dtype: torch.dtype | str | None = None, path: str = "auto"
) -> StructuredMLP | GraphModel | GenericModel:
    """The engine for the model of ``view``: ``"structured"``, ``"graph"``, ``"generic"``,
    or ``"auto"`` (structured when supported, else the graph path; the reason the
    structured path did not apply is kept as the engine's ``fallback_reason``).

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
    if path == "graph":
        return GraphModel(view)
    try:
        if view.output is not None:
            raise UnsupportedModelError("an output selector is given")
        if view.mask_layout is not None:
            raise UnsupportedModelError("a padding mask is given (an output with factor axes)")
        if view.hooks_change_output is not False:
            raise UnsupportedModelError(
                f"forward hooks change the model's output ({'; '.join(view.hooks)}); the "
                "structured path computes from the modules alone and would ignore them"
                if view.hooks_change_output
                else "the model has forward hooks not yet checked (call view.probe(x) first)"
            )
        if global_forward_hooks():
            raise UnsupportedModelError(
                "global module forward hooks are registered (torch.nn.modules.module."
                "register_module_forward_hook); the structured path would ignore them"
            )
        if view.shared:
            raise UnsupportedModelError(
                f"parameters {sorted(view.shared)} are shared by several modules (tied weights)"
            )
        return StructuredMLP(view.model, view.dtype)
    except UnsupportedModelError as err:
        if path == "structured":
            raise
        engine = GraphModel(view)
        engine.fallback_reason = str(err)
        return engine


__all__ = [
    "GenericModel",
    "GraphModel",
    "GenericPathWarning",
    "DenseDerivatives",
    "LinearDerivatives",
    "ParamDerivatives",
    "StructuredMLP",
    "check_deterministic",
    "select",
    "PATHS",
]
