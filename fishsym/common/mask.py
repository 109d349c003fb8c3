"""Padding masks for outputs with factor axes (docs/theory.md §11).

A masked position (padding in a batch of sequences of unequal length) is an **absent
factor**: it contributes nothing to the Fisher, to any estimator or to its variance. It
is made absent in the derivatives themselves, ``h_t ← h_t`` where the mask is true and
``h_t ← detach(h_t)`` where it is false, so that ``u_t = ∂h_t/∂θ = 0`` and ``w_t = 0``
there: every path (structured, graph, per-input Jacobians, sampling, the enumeration
oracles) then sees the masked model without knowing of the mask.

The mask travels with the inputs: :func:`pack_mask` appends it to each input's flattened
values (one tensor, so that every batching, chunking and ``vmap`` of the inputs keeps
input and mask together), and the model view splits them again
(:meth:`MaskLayout.split`) before calling the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fishsym.errors import ArgumentTypeError, ShapeError


@dataclass(frozen=True)
class MaskLayout:
    """How inputs and mask were packed: ``x_shape`` (one input) and ``factor_shape``."""

    x_shape: tuple[int, ...]
    factor_shape: tuple[int, ...]

    def split(self, packed: Tensor) -> tuple[Tensor, Tensor]:
        """``[n, k + T]`` → the inputs ``[n, *x_shape]`` and the bool mask ``[n, *factors]``."""
        n, k = packed.shape[0], math.prod(self.x_shape)
        x = packed[:, :k].reshape(n, *self.x_shape)
        mask = packed[:, k:].reshape(n, *self.factor_shape) != 0
        return x, mask

    def apply(self, h: Tensor, mask: Tensor) -> Tensor:
        """``h`` ``[n, *factors, d]`` with the masked positions detached."""
        if tuple(h.shape[1:-1]) != self.factor_shape:
            raise ShapeError(
                f"mask has factor axes {list(self.factor_shape)} (shape [n, "
                f"{', '.join(map(str, self.factor_shape))}]) but the model's output has shape "
                f"{list(h.shape)}: the mask must have one entry per position, the output's "
                "shape without its batch and last (family) axes"
            )
        return torch.where(mask[..., None], h, h.detach())


def pack_mask(x: Tensor, mask, argname: str = "mask") -> tuple[Tensor, MaskLayout]:
    """Inputs ``x`` ``[n, ...]`` and ``mask`` ``[n, *factors]`` (true: the position counts;
    bool, or integers/floats 0 and 1) as one tensor ``[n, k + T]`` and its layout."""
    if not isinstance(mask, Tensor):
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ArgumentTypeError(
                f"{argname} must be a tensor [n_inputs, *factors] of booleans (true where the "
                f"position counts); got {type(mask).__name__} ({err})"
            ) from None
    if mask.is_complex():
        raise ArgumentTypeError(f"{argname} must be boolean (or 0/1); got dtype {mask.dtype}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ArgumentTypeError(
                f"{argname} must be boolean, or hold only 0 and 1; got values outside {{0, 1}}"
            )
        mask = mask != 0
    if mask.dim() < 2 or mask.shape[0] != x.shape[0]:
        raise ShapeError(
            f"{argname} must have shape [n_inputs, *factors] with n_inputs = {x.shape[0]} and "
            f"at least one factor axis (e.g. [n, T] for T tokens); got {list(mask.shape)}"
        )
    n = x.shape[0]
    layout = MaskLayout(tuple(x.shape[1:]), tuple(mask.shape[1:]))
    values = mask.reshape(n, -1).to(device=x.device, dtype=x.dtype)
    return torch.cat([x.reshape(n, -1), values], 1), layout


def masked_inputs(inputs, mask, model=None, argname: str = "mask"):
    """``(inputs, None)`` without a mask; with one, the inputs (read into memory: a mask
    is one entry per in-memory input) packed with it, and the layout for the model view.
    A ready :class:`~fishsym.common.ModelView` cannot take a mask (its layout is fixed)."""
    if mask is None:
        return inputs, None
    from fishsym.common.data import as_inputs
    from fishsym.common.model import ModelView
    from fishsym.errors import InvalidArgumentError

    if isinstance(model, ModelView) and model.mask_layout is None:
        raise InvalidArgumentError(
            f"{argname}= cannot be added to a ready ModelView; pass the nn.Module"
        )
    return pack_mask(as_inputs(inputs), mask, argname)


__all__ = ["MaskLayout", "masked_inputs", "pack_mask"]
