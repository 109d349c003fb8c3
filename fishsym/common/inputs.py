"""Argument checks shared by every numeric entry point.

Inputs may be a tensor, a numpy array or (nested) Python lists of numbers. Floating
data keep their precision (a list of Python floats becomes float64, never float32),
integer data stay integer (token ids for an ``nn.Embedding``), and bad data raise a
:class:`~fishsym.errors.FishsymError` naming the argument and what is valid.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import Tensor

from fishsym.errors import ArgumentTypeError, InvalidArgumentError, NonFiniteError, ShapeError

#: the working dtypes fishsym computes in
WORKING_DTYPES = (torch.float64, torch.float32)


def as_tensor_inputs(inputs, argname: str = "inputs") -> Tensor:
    """``inputs`` ``[n_inputs, ...]`` — a tensor, an array or nested lists — as a tensor,
    checked (:func:`fishsym.common.data.as_inputs` also reads datasets and loaders).

    Tensors are used as they are; numpy arrays keep their dtype; nested lists go through
    numpy (Python floats → float64, Python ints → int64). Raises
    :class:`~fishsym.errors.ArgumentTypeError` for non-numeric, boolean or complex data,
    :class:`~fishsym.errors.ShapeError` without a leading input axis holding at least
    one input, :class:`~fishsym.errors.NonFiniteError` for NaN or inf.
    """
    x = inputs
    if not isinstance(x, Tensor):
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise ArgumentTypeError(
                f"{argname} must be a tensor, an array or nested lists of numbers "
                f"[n_inputs, ...]; got {type(inputs).__name__} ({err})"
            ) from None
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ArgumentTypeError(
                f"{argname} must hold real numbers [n_inputs, ...]; got {type(inputs).__name__} "
                f"of numpy dtype {arr.dtype}"
            )
        x = torch.from_numpy(np.ascontiguousarray(arr))
    if x.is_complex() or x.dtype == torch.bool:
        raise ArgumentTypeError(f"{argname} must hold real numbers; got dtype {x.dtype}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ShapeError(
            f"{argname} must have a leading input axis with at least one input "
            f"[n_inputs, ...]; got shape {tuple(x.shape)}"
        )
    if x.is_floating_point() and not all_finite(x):
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
        if bool(bad.any()):
            rows = bad.nonzero().flatten()[:5].tolist()
            more = " …" if int(bad.sum()) > 5 else ""
            raise NonFiniteError(
                f"{argname} contain NaN or inf (rows {rows}{more}); every input must be finite"
            )
    return x


def all_finite(t: Tensor) -> bool:
    """Whether every entry of the floating tensor ``t`` is finite, in one pass where it is:
    NaN and ±inf propagate into the sum; only a sum that overflows from finite terms needs
    the elementwise check."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def cast_inputs(x: Tensor, dtype: torch.dtype, device) -> Tensor:
    """Floating inputs in the working ``dtype`` on ``device``; integer inputs (token ids,
    class indices) keep their dtype."""
    if x.is_floating_point():
        return x.to(device=device, dtype=dtype)
    return x.to(device=device)


def check_dtype(dtype, argname: str = "dtype", default: torch.dtype = torch.float64):
    """A working dtype: ``torch.float64`` or ``torch.float32`` (``None``: ``default``)."""
    if dtype is None:
        return default
    if not isinstance(dtype, torch.dtype) or dtype not in WORKING_DTYPES:
        raise ArgumentTypeError(
            f"{argname} must be torch.float64 or torch.float32 (or None for {default}); "
            f"got {dtype!r}"
        )
    return dtype


def check_count(value, argname: str, minimum: int = 1) -> int:
    """A whole number ``≥ minimum`` (ints, numpy integers, integral floats; not bools)."""
    ok = (
        not isinstance(value, (bool, np.bool_))
        and isinstance(value, numbers.Real)
        and float(value).is_integer()
    )
    if not ok:
        raise ArgumentTypeError(
            f"{argname} must be an integer ≥ {minimum}; got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise InvalidArgumentError(f"{argname} must be an integer ≥ {minimum}; got {value!r}")
    return int(value)


def check_real(value, argname: str) -> float:
    """A finite real number (Python or numpy; not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            f"{argname} must be a real number; got {value!r} ({type(value).__name__})"
        )
    value = float(value)
    if not np.isfinite(value):
        raise InvalidArgumentError(f"{argname} must be finite; got {value!r}")
    return value


def check_positive(value, argname: str) -> float:
    """A finite real number ``> 0``."""
    value = check_real(value, argname)
    if value <= 0:
        raise InvalidArgumentError(f"{argname} must be a positive number; got {value!r}")
    return value


def check_probability(value, argname: str) -> float:
    """A real number strictly between 0 and 1."""
    value = check_real(value, argname)
    if not 0 < value < 1:
        raise InvalidArgumentError(f"{argname} must lie strictly between 0 and 1; got {value!r}")
    return value


def check_choice(value, choices, argname: str):
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidArgumentError(f"{argname} must be one of {tuple(choices)}; got {value!r}")
    return value


def check_generator(generator, argname: str = "generator") -> torch.Generator:
    """An explicit ``torch.Generator`` (fishsym never touches global random state)."""
    if not isinstance(generator, torch.Generator):
        raise ArgumentTypeError(
            f"{argname} must be a torch.Generator (fishsym never uses global random state), "
            f"e.g. torch.Generator().manual_seed(0); got {generator!r}"
        )
    return generator


__all__ = [
    "WORKING_DTYPES",
    "all_finite",
    "as_tensor_inputs",
    "cast_inputs",
    "check_choice",
    "check_count",
    "check_dtype",
    "check_generator",
    "check_positive",
    "check_probability",
    "check_real",
]
