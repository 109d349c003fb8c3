"""Many processes, the DDP way: each rank passes its own inputs, fishsym sums across ranks.

When ``torch.distributed`` is initialised (``torchrun``; gloo on CPU, NCCL on GPU) and an
entry point is called with ``distributed=None`` (the default) or ``True``, each rank
computes its sums over **its own** inputs (e.g. read through a ``DistributedSampler``)
and the sums and input counts are all-reduced, so every rank returns the result over all
ranks' inputs. ``distributed=False`` keeps every rank to its own inputs.

Random draws (Monte Carlo labels, probes) come from :func:`rank_generator`: one seed is
drawn from the user's generator — the same on every rank when the user seeds them alike —
and each rank offsets it by its rank, so the streams are independent across ranks and
the run is reproducible for a given world size.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from fishsym.errors import ArgumentTypeError, InvalidArgumentError

#: odd 63-bit constant (the golden-ratio increment) spacing the ranks' seeds
_SEED_STRIDE = 0x1E3779B97F4A7C15


def use_distributed(distributed) -> bool:
    """Whether to reduce across processes: ``None`` when ``torch.distributed`` is
    initialised with more than one rank, ``True`` (required to be), ``False`` never."""
    if distributed is not None and not isinstance(distributed, bool):
        raise ArgumentTypeError(
            f"distributed must be True, False or None (use torch.distributed when it is "
            f"initialised); got {distributed!r}"
        )
    ready = dist.is_available() and dist.is_initialized()
    if distributed is True and not ready:
        raise InvalidArgumentError(
            "distributed=True needs an initialised torch.distributed process group "
            "(torch.distributed.init_process_group, e.g. under torchrun)"
        )
    if distributed is False or not ready:
        return False
    return dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(tensors: list[Tensor]) -> None:
    """Sum ``tensors`` in place across ranks, in one collective per dtype and device
    (flattened into one buffer: one message, not one per parameter)."""
    groups: dict[tuple, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        start = 0
        for t in group:
            t.copy_(flat[start : start + t.numel()].view_as(t))
            start += t.numel()


def all_reduce_count(n: int, device) -> int:
    """The sum of ``n`` over ranks."""
    t = torch.tensor([n], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())


def all_agree(flag: bool, device) -> bool:
    """``True`` when ``flag`` is true on every rank: a decision that changes which
    collectives run (the closed-form head) must be the same everywhere."""
    t = torch.tensor([int(bool(flag))], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def all_gather_rows(t: Tensor) -> Tensor:
    """``t`` ``[n_r, ...]`` of every rank concatenated in rank order ``[Σ n_r, ...]``
    (ranks may hold different numbers of rows)."""
    counts = [torch.zeros(1, dtype=torch.int64, device=t.device) for _ in range(world_size())]
    dist.all_gather(counts, torch.tensor([t.shape[0]], dtype=torch.int64, device=t.device))
    counts = [int(c.item()) for c in counts]
    top = max(counts)
    padded = torch.zeros(top, *t.shape[1:], dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])


def union_of_sets(sets: dict[str, set[str]]) -> dict[str, set[str]]:
    """Per key, the union over ranks of small sets of strings (route and method names)."""
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, {k: sorted(v) for k, v in sets.items()})
    out: dict[str, set[str]] = {}
    for part in gathered:
        for k, v in part.items():
            out.setdefault(k, set()).update(v)
    return out


def rank_generator(generator: torch.Generator) -> torch.Generator:
    """A generator for this rank's draws: a seed drawn from ``generator`` (advancing it),
    offset by ``rank × _SEED_STRIDE`` (mod 2⁶³)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    out = torch.Generator(device=generator.device)
    out.manual_seed((seed + rank() * _SEED_STRIDE) % 2**63)
    return out


__all__ = [
    "all_agree",
    "all_gather_rows",
    "all_reduce_count",
    "all_reduce_sum",
    "rank",
    "rank_generator",
    "union_of_sets",
    "use_distributed",
    "world_size",
]
