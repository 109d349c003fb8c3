"""What the cross-checks are asked about: the output family and the parameter entries.

Shared by :mod:`fishsym.reference` and :mod:`fishsym.montecarlo`; each name here is the
shared one of :mod:`fishsym.kernels` or :mod:`fishsym.common`, re-exported:

* :func:`resolve_kernel` is :func:`fishsym.kernels.for_output`;
* :class:`ParamSelection`, :func:`select_params`, :func:`sample_params` are the one
  ``params`` vocabulary of :mod:`fishsym.common.selection`;
* :class:`FunctionalModel` evaluates ``h(x; θ)`` for one input with a replaced subset of
  parameters, the form ``torch.func`` transforms need.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from fishsym import kernels as _kernels
from fishsym.common import ModelView, as_inputs
from fishsym.common.selection import ParamSelection, sample_params, select_params

# ---------------------------------------------------------------------------------- family
#: the one family resolver of every numeric entry point (:func:`fishsym.kernels.for_output`)
resolve_kernel = _kernels.for_output


# ---------------------------------------------------------------------------------- model
class FunctionalModel(ModelView):
    """The shared :class:`~fishsym.common.ModelView` (a private copy of the model, never
    the model itself), called on ONE input: ``fmodel(replaced, x)`` is ``h`` ``[d]`` for
    an input ``x`` without batch axis, the form ``torch.func`` transforms need. Each
    input is evaluated on its own, so the model must not couple the inputs of a batch
    (the view refuses training-mode batch normalisation)."""

    def __call__(self, replaced: Mapping[str, Tensor], x: Tensor) -> Tensor:
        return self.single(replaced, x)


def check_inputs(inputs, argname: str = "inputs") -> Tensor:
    """The shared input check (:func:`fishsym.common.as_inputs`)."""
    return as_inputs(inputs, argname)


__all__ = [
    "FunctionalModel",
    "ParamSelection",
    "check_inputs",
    "resolve_kernel",
    "sample_params",
    "select_params",
]
