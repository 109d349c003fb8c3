"""What the cross-checks are asked about: the output family and the parameter entries.

Shared by :mod:`fishsym.reference` and :mod:`fishsym.montecarlo`.

* :func:`resolve_kernel` turns the ``family`` argument (a registered name, a symbolic
  :class:`~fishsym.symbolic.family.ExponentialFamily` or a kernel) into the kernel whose
  ``log_prob`` is the log-likelihood ``ℓ(y | h)``, inferring a size argument such as
  ``C`` from the network's output dimension.
* :class:`ParamSelection` records which entries ``θ_p`` of which named parameters are
  examined: all of them, whole tensors, or flat indices into a tensor.
* :class:`FunctionalModel` evaluates ``h(x; θ)`` for one input with a replaced subset of
  parameters, the form ``torch.func`` transforms need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from fishsym.errors import ShapeError, UnknownFamilyError


# ---------------------------------------------------------------------------------- family
def resolve_kernel(family, out_dim: int):
    """The ``FamilyKernel`` of ``family`` for a network with ``out_dim`` outputs.

    ``family`` is a registered name (its size argument, e.g. ``C`` for ``"categorical"``,
    is inferred from ``out_dim``), an ``ExponentialFamily`` instance, or a kernel (an
    object with ``log_prob`` and ``d``), which is used as it is.

    Raises :class:`ShapeError` when the kernel's natural dimension ``d`` differs from
    ``out_dim``.
    """
    from fishsym import kernels
    from fishsym.symbolic import families

    if isinstance(family, str):
        entry = families.entry(family)  # raises UnknownFamilyError with the valid names
        sizes = {}
        if entry.output_size == "C_minus_1":
            sizes["C"] = out_dim + 1
        elif entry.output_size is not None:
            sizes[entry.output_size] = out_dim
        kernel = kernels.get(family, **sizes)
    elif hasattr(family, "log_prob") and hasattr(family, "d"):
        kernel = family
    elif hasattr(family, "log_partition") and hasattr(family, "suff_stat"):
        kernel = kernels.get(family)
    else:
        raise UnknownFamilyError(
            f"family must be a registered family name, an ExponentialFamily or a FamilyKernel; "
            f"got {type(family).__name__}"
        )
    if kernel.d != out_dim:
        raise ShapeError(
            f"family {kernel.name!r} has d = {kernel.d} natural parameters but the model "
            f"outputs {out_dim} numbers per input; the network's output must be the natural "
            f"parameter h of the family"
        )
    return kernel


# ---------------------------------------------------------------------------------- params
@dataclass(frozen=True)
class ParamSelection:
    """Entries ``θ_p`` selected from the model's named parameters.

    Attributes
    ----------
    shapes:
        ``{name: parameter shape}`` for every selected parameter, in model order.
    indices:
        ``{name: LongTensor [k] of flat indices into param.flatten(), or None}``; ``None``
        means every entry, reported in the parameter's own shape.
    """

    shapes: dict[str, torch.Size]
    indices: dict[str, Tensor | None]

    @property
    def names(self) -> list[str]:
        return list(self.shapes)

    def flat_indices(self, name: str) -> Tensor:
        """The selected flat indices of ``name`` (all of them when not subset)."""
        idx = self.indices[name]
        if idx is None:
            return torch.arange(self.shapes[name].numel())
        return idx

    def count(self, name: str) -> int:
        idx = self.indices[name]
        return self.shapes[name].numel() if idx is None else len(idx)

    def out_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one input's result for ``name``: the parameter's, or ``(k,)``."""
        idx = self.indices[name]
        return tuple(self.shapes[name]) if idx is None else (len(idx),)

    def reshape(self, name: str, flat: Tensor) -> Tensor:
        """``[..., k]`` flat values of the selected entries → ``[..., *out_shape(name)]``."""
        return flat.reshape(*flat.shape[:-1], *self.out_shape(name))


def select_params(model: nn.Module, params=None) -> ParamSelection:
    """Parse the ``params`` argument of the cross-checks.

    ``params`` is one of

    * ``None`` — every trainable parameter, every entry;
    * a sequence of names — those parameters, every entry;
    * a mapping ``{name: indices}`` — for each name, ``None`` (every entry) or a 1-D
      integer tensor / sequence of flat indices into ``param.flatten()``.

    Raises :class:`ShapeError` for unknown names (listing the valid ones), indices that
    are not a non-empty 1-D integer sequence, or indices outside ``[0, numel)``.
    """
    shapes = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    if not shapes:
        raise ShapeError("the model has no trainable parameters (requires_grad=True)")
    if params is None:
        return ParamSelection(dict(shapes), {n: None for n in shapes})
    if isinstance(params, str):
        params = [params]
    if isinstance(params, Mapping):
        requested = dict(params)
    elif isinstance(params, Sequence):
        requested = {n: None for n in params}
    else:
        raise ShapeError(
            f"params must be None, a sequence of parameter names or a mapping "
            f"{{name: flat indices}}; got {type(params).__name__}"
        )
    unknown = [n for n in requested if n not in shapes]
    if unknown:
        raise ShapeError(
            f"params names {unknown} are not trainable parameters of the model; valid names "
            f"are {list(shapes)}"
        )
    if not requested:
        raise ShapeError(f"params selects no parameter; name at least one of {list(shapes)}")
    out_shapes, out_idx = {}, {}
    for name in shapes:  # model order
        if name not in requested:
            continue
        out_shapes[name] = shapes[name]
        out_idx[name] = _check_indices(name, requested[name], shapes[name].numel())
    return ParamSelection(out_shapes, out_idx)


def _check_indices(name: str, idx, numel: int) -> Tensor | None:
    if idx is None:
        return None
    t = torch.as_tensor(idx)
    if t.dtype in (torch.bool,) or t.is_floating_point() or t.is_complex():
        raise ShapeError(f"params[{name!r}] must hold integer flat indices; got dtype {t.dtype}")
    if t.dim() != 1 or t.numel() == 0:
        raise ShapeError(
            f"params[{name!r}] must be a non-empty 1-D sequence of flat indices; got shape "
            f"{tuple(t.shape)}"
        )
    t = t.to(torch.long)
    bad = (t < 0) | (t >= numel)
    if bool(bad.any()):
        raise ShapeError(
            f"params[{name!r}] has flat indices {t[bad][:5].tolist()} outside the valid range "
            f"0..{numel - 1} of a parameter with {numel} entries"
        )
    return t.clone()


def parameter_group(name: str) -> str:
    """The group (layer) of a parameter: its owning module's path (``"0.weight"`` → ``"0"``).

    A parameter registered directly on the root module is its own group.
    """
    return name.rsplit(".", 1)[0] if "." in name else name


def sample_params(
    model: nn.Module, per_group: int, generator: torch.Generator
) -> dict[str, Tensor]:
    """Draw ``per_group`` distinct entries uniformly from each parameter group (layer).

    Returns a ``params`` mapping ``{name: LongTensor of flat indices}`` (sorted) for the
    cross-checks. A group with at most ``per_group`` entries is taken whole.
    """
    if int(per_group) != per_group or per_group < 1:
        raise ShapeError(f"per_group must be a positive integer; got {per_group!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator, e.g. torch.Generator().manual_seed(0)"
        )
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(parameter_group(name), []).append((name, p.numel()))
    chosen: dict[str, list[Tensor]] = {}
    for members in groups.values():
        sizes = torch.tensor([n for _, n in members])
        total = int(sizes.sum())
        k = min(int(per_group), total)
        pick = torch.randperm(total, generator=generator)[:k].sort().values
        offsets = torch.cumsum(sizes, 0) - sizes
        for (name, numel), off in zip(members, offsets.tolist(), strict=True):
            mine = pick[(pick >= off) & (pick < off + numel)] - off
            if len(mine):
                chosen[name] = mine
    return {name: chosen[name] for name, _ in model.named_parameters() if name in chosen}


# ---------------------------------------------------------------------------------- model
class FunctionalModel:
    """``h(x; θ)`` for ONE input, with some parameters replaced (for ``torch.func``).

    The module is never modified: parameters and buffers are detached copies in
    ``dtype`` (buffers that are not floating point are kept as they are). Each input is
    evaluated on its own, as a batch of one, so the model must not couple the inputs of
    a batch (e.g. batch normalisation in training mode).
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        self.model = model
        self.dtype = dtype
        self.params = {n: p.detach().to(dtype) for n, p in model.named_parameters()}
        self.buffers = {
            n: (b.detach().to(dtype) if b.is_floating_point() else b.detach())
            for n, b in model.named_buffers()
        }

    def __call__(self, replaced: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """``h`` of shape ``[d]`` for one input ``x`` (no batch dimension)."""
        h = functional_call(
            self.model, {**self.buffers, **self.params, **replaced}, (x.unsqueeze(0),)
        )
        return h.reshape(-1)

    def outputs(self, inputs: Tensor) -> Tensor:
        """``h`` for a batch, ``[n, d]``, without gradients."""
        with torch.no_grad():
            h = functional_call(self.model, {**self.buffers, **self.params}, (inputs,))
        return h.reshape(h.shape[0], -1)


def check_inputs(inputs: Tensor, argname: str = "inputs") -> None:
    """``inputs`` must be a tensor with a leading batch dimension of at least one row."""
    if not isinstance(inputs, Tensor):
        raise ShapeError(
            f"{argname} must be a torch.Tensor [n_inputs, ...]; got {type(inputs).__name__}"
        )
    if inputs.dim() < 1 or inputs.shape[0] < 1:
        raise ShapeError(
            f"{argname} must have shape [n_inputs, ...] with n_inputs ≥ 1; "
            f"got {tuple(inputs.shape)}"
        )
