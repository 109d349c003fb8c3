"""Inputs as a stream of batches: tensors, arrays, datasets and data loaders alike.

Every numeric entry point takes ``inputs`` as one of

* a tensor, a numpy array or nested lists ``[n_inputs, ...]`` (held in memory; one batch);
* a ``torch.utils.data.Dataset`` (map-style, one example per index, read in order in
  batches of ``DATASET_BATCH``);
* a ``torch.utils.data.DataLoader`` or any other iterable of batches — each batch a
  tensor ``x`` or a tuple/list ``(x, y, ...)`` whose second element ``y`` holds the data
  labels (used only by estimators that need them, e.g. the empirical Fisher).

:class:`DataSource` checks every batch as :func:`~fishsym.common.inputs.as_tensor_inputs`
checks a tensor, keeps one batch in memory at a time, and stops after ``max_inputs``
inputs. A sum over the batches of a stream equals the sum over the concatenated tensor
(the tests hold the two to each other), so the result does not depend on how the data
were batched — only round-off in the last bits does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from fishsym.common.inputs import as_tensor_inputs, check_count
from fishsym.errors import ArgumentTypeError, InvalidArgumentError, NonFiniteError, ShapeError

#: examples per batch when a map-style ``Dataset`` is read
DATASET_BATCH = 256


def _is_array_like(data) -> bool:
    if isinstance(data, (list, tuple)) and data and _is_batch_pair(data[0]):
        return False  # a list of (x, y) batches: a stream
    return isinstance(data, (Tensor, np.ndarray, list, tuple)) or np.isscalar(data)


def _is_batch_pair(item) -> bool:
    """An ``(x, y, ...)`` batch: a tuple/list whose first element is a tensor or array."""
    return (
        isinstance(item, (tuple, list))
        and len(item) >= 2
        and isinstance(item[0], (Tensor, np.ndarray))
    )


class DataSource:
    """``inputs`` (and, where given, data labels) as checked batches ``(x, y)``.

    Parameters
    ----------
    data:
        A tensor/array/nested list, a map-style ``Dataset``, or an iterable of batches.
    argname:
        The argument's name in error messages.
    max_inputs:
        Read at most this many inputs (``None``: all).
    labels:
        Data labels for in-memory ``data`` (one per input); a stream brings its own as
        the second element of each batch and must not be given ``labels`` as well.
    """

    def __init__(self, data, *, argname: str = "inputs", max_inputs=None, labels=None):
        self.argname = argname
        self.max_inputs = None if max_inputs is None else check_count(max_inputs, "max_inputs")
        self._first: tuple[Tensor, Tensor | None] | None = None
        self._consumed = False
        self.tensor: Tensor | None = None
        self.labels = None
        if _is_array_like(data):
            x = as_tensor_inputs(data, argname)
            if labels is not None:
                labels = _one_label_per_input(labels, x, "labels")
            if self.max_inputs is not None:
                x = x[: self.max_inputs]
                labels = None if labels is None else labels[: self.max_inputs]
            self.tensor, self.labels = x, labels
            self._iterable = None
            self.one_shot = False
            return
        if labels is not None:
            raise InvalidArgumentError(
                f"labels= goes with in-memory {argname} only; a dataset or data loader "
                "brings its labels as the second element of each batch, (x, y)"
            )
        if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__getitem__"):
            if not hasattr(data, "__len__"):
                raise ArgumentTypeError(
                    f"{argname}: a map-style Dataset needs __len__; wrap it in a DataLoader"
                )
            data = torch.utils.data.DataLoader(data, batch_size=DATASET_BATCH, shuffle=False)
        if not isinstance(data, Iterable):
            raise ArgumentTypeError(
                f"{argname} must be a tensor, an array, nested lists of numbers, a "
                "torch Dataset, or an iterable / DataLoader of batches (x or (x, y)); got "
                f"{type(data).__name__}"
            )
        self._iterable = data
        # an iterator is consumed by reading it: it can be read once only
        self.one_shot = iter(data) is data

    # ------------------------------------------------------------------ what is known
    @property
    def in_memory(self) -> bool:
        return self.tensor is not None

    def known_length(self) -> int | None:
        """The number of inputs, where it is known before reading (tensors, datasets and
        loaders with a sized sampler); ``None`` otherwise."""
        if self.tensor is not None:
            return self.tensor.shape[0]
        n = None
        loader = self._iterable
        if isinstance(loader, torch.utils.data.DataLoader):
            try:
                if loader.batch_size is not None and not loader.drop_last:
                    n = len(loader.sampler)
                elif loader.batch_size is not None:
                    n = len(loader) * loader.batch_size
            except TypeError:
                n = None
        if n is not None and self.max_inputs is not None:
            n = min(n, self.max_inputs)
        return n

    # ------------------------------------------------------------------ reading
    def _split(self, batch, index: int) -> tuple[Tensor, Tensor | None]:
        if isinstance(batch, (tuple, list)) and batch and not _numbers(batch):
            x, y = batch[0], (batch[1] if len(batch) > 1 else None)
        elif isinstance(batch, dict):
            raise ArgumentTypeError(
                f"{self.argname}: batch {index} is a dict; give batches as x or (x, y) "
                "(e.g. a collate_fn returning (batch['pixel_values'], batch['label']))"
            )
        else:
            x, y = batch, None
        x = as_tensor_inputs(x, f"{self.argname} (batch {index})")
        if y is not None:
            y = _one_label_per_input(y, x, f"{self.argname}: the labels of batch {index}")
        return x, y

    def batches(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        """The checked batches ``(x, y)`` (``y``: ``None`` without labels), at most
        ``max_inputs`` inputs in all; every batch's trailing shape and dtype kind match
        the first's."""
        if self.tensor is not None:
            yield self.tensor, self.labels
            return
        if self._consumed:
            raise InvalidArgumentError(
                f"{self.argname} is an iterator that has been read already; pass a "
                "DataLoader, a Dataset or a tensor to read the data more than once"
            )
        self._consumed = self.one_shot
        seen, ref = 0, None
        for index, batch in enumerate(self._iterable):
            x, y = self._split(batch, index)
            if ref is None:
                ref = (x.shape[1:], x.is_floating_point())
            elif (x.shape[1:], x.is_floating_point()) != ref:
                raise ShapeError(
                    f"{self.argname}: batch {index} has inputs of shape {tuple(x.shape[1:])} "
                    f"({x.dtype}); the first batch's are {tuple(ref[0])} — every batch must "
                    "hold inputs of one shape and kind"
                )
            if self.max_inputs is not None and seen + x.shape[0] > self.max_inputs:
                keep = self.max_inputs - seen
                x, y = x[:keep], (None if y is None else y[:keep])
            seen += x.shape[0]
            if x.shape[0]:
                yield x, y
            if self.max_inputs is not None and seen >= self.max_inputs:
                return
        if ref is None:
            raise ShapeError(f"{self.argname} yielded no batch; at least one input is needed")

    def materialise(self, max_bytes: int | None = None) -> tuple[Tensor, Tensor | None]:
        """All inputs (and labels, if every batch had them) as one tensor each — for
        routes that need the inputs together (label sampling rounds, the oracles).

        With ``max_bytes``, a stream whose inputs would not fit is refused with a
        :class:`~fishsym.errors.MemoryBudgetError`: after its first batch where its length
        is known (nothing more is read), else as soon as what was read passes it."""
        if self.tensor is not None:
            return self.tensor, self.labels
        from fishsym.common.model import check_memory

        advice = (
            "Pass max_inputs= (the mean Fisher over fewer inputs), or max_memory= if the "
            "machine has the room."
        )
        xs, ys = [], []
        held = 0
        for x, y in self.batches():
            per_input = (x[0].numel() * x.element_size()) + (
                0 if y is None else y[0].numel() * y.element_size()
            )
            if max_bytes is not None and not xs and self.known_length() is not None:
                n = self.known_length()
                check_memory(
                    n * per_input,
                    max_bytes,
                    f"holding {self.argname} ({n:,} inputs) in memory",
                    advice,
                )
            held += x.shape[0] * per_input
            if max_bytes is not None:
                check_memory(held, max_bytes, f"holding {self.argname} in memory", advice)
            xs.append(x)
            ys.append(y)
        labels = None if any(y is None for y in ys) else torch.cat(ys)
        return torch.cat(xs), labels


def _one_label_per_input(labels, x: Tensor, what: str) -> Tensor:
    """``labels`` as a tensor with one entry per row of ``x``, or a ShapeError naming them."""
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ArgumentTypeError(
            f"{what} must be a tensor or array of numbers, one per input; got "
            f"{type(labels).__name__} ({err})"
        ) from err
    if labels.is_floating_point() and not bool(torch.isfinite(labels).all()):
        raise NonFiniteError(f"{what} contain NaN or inf; every data label must be finite")
    if labels.dim() < 1 or labels.shape[0] != x.shape[0]:
        raise ShapeError(
            f"{what} must hold one data label per input ({x.shape[0]} inputs); got labels of "
            f"shape {tuple(labels.shape)}"
        )
    return labels


def _numbers(batch) -> bool:
    """Whether a list/tuple batch is itself numeric data (nested lists of numbers)."""
    first = batch[0]
    return isinstance(first, (int, float, np.number)) or (
        isinstance(first, (list, tuple)) and bool(first) and _numbers(first)
    )


def materialise(data, argname: str = "inputs", max_inputs=None, labels=None, max_bytes=None):
    """``(x, labels)`` of any accepted ``data``, concatenated (:meth:`DataSource.materialise`)."""
    source = DataSource(data, argname=argname, max_inputs=max_inputs, labels=labels)
    return source.materialise(max_bytes)


def as_inputs(inputs, argname: str = "inputs") -> Tensor:
    """``inputs`` ``[n_inputs, ...]`` as a tensor, checked
    (:func:`~fishsym.common.inputs.as_tensor_inputs`). A ``Dataset`` or an iterable of
    batches (``DataLoader``) is read and concatenated (:class:`DataSource`); the streaming
    entry points read it batch by batch instead."""
    array_like = isinstance(inputs, (Tensor, np.ndarray, list, tuple)) or np.isscalar(inputs)
    if not array_like and (
        isinstance(inputs, torch.utils.data.Dataset) or hasattr(inputs, "__iter__")
    ):
        return DataSource(inputs, argname=argname).materialise()[0]
    return as_tensor_inputs(inputs, argname)


__all__ = ["DATASET_BATCH", "DataSource", "as_inputs", "materialise"]
