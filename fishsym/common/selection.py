"""Which parameter entries ``θ_p`` an entry point is asked about: one ``params``
vocabulary for every numeric entry point, and the parameter-group (layer) convention.

``params`` is ``None`` (every trainable entry), a sequence of parameter names (those
tensors, every entry) or a mapping ``{name: flat indices}``; :func:`select_params` parses
it into a :class:`ParamSelection`. :func:`sample_params` draws entries per group,
:func:`all_entries` lists every entry in the mapping form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fishsym.common.inputs import check_count, check_generator
from fishsym.errors import ShapeError


def parameter_group(name: str) -> str:
    """The group (layer) of a parameter: its owning module's path (``"0.weight"`` →
    ``"0"``); a parameter registered on the root module is its own group's name ``""``."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def parameter_groups(names) -> dict[str, list[str]]:
    """Module path → the names of its parameters, in the order given (one convention for
    every per-layer summary)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(parameter_group(name), []).append(name)
    return groups


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


def sample_params(
    model: nn.Module, per_group: int, generator: torch.Generator
) -> dict[str, Tensor]:
    """Draw ``per_group`` distinct entries uniformly from each parameter group (layer).

    Returns a ``params`` mapping ``{name: LongTensor of flat indices}`` (sorted) for the
    cross-checks. A group with at most ``per_group`` entries is taken whole.
    """
    per_group = check_count(per_group, "per_group")
    check_generator(generator)
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


def all_entries(model: nn.Module) -> dict[str, Tensor]:
    """``params`` naming every entry of every trainable parameter, as flat indices."""
    return {
        name: torch.arange(p.numel()) for name, p in model.named_parameters() if p.requires_grad
    }


def sample_entries(
    model: nn.Module, per_tensor: int, generator: torch.Generator
) -> dict[str, Tensor]:
    """``params`` with up to ``per_tensor`` distinct entries of each trainable parameter
    tensor, drawn uniformly without replacement with ``generator`` (every entry of a
    smaller tensor), sorted. (:func:`sample_params` draws per group instead.)"""
    per_tensor = check_count(per_tensor, "per_tensor")
    check_generator(generator)
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        n = p.numel()
        if n <= per_tensor:
            out[name] = torch.arange(n)
        else:
            out[name] = torch.randperm(n, generator=generator)[:per_tensor].sort().values
    return out


__all__ = [
    "ParamSelection",
    "all_entries",
    "parameter_group",
    "parameter_groups",
    "sample_entries",
    "sample_params",
    "select_params",
]
