"""Symmetric tensors stored by distinct index multiset.

A symmetric tensor ``T`` of order ``k`` on ``R^d`` has ``C(d+k-1, k)`` distinct entries,
one per multiset of indices. We store and compute only those (a dict keyed by the sorted
index tuple) and expand to a full :class:`sympy.Array` on request. Index letters follow
the house convention: ``c``/``e`` for output coordinates.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache

import sympy as sp

Multiset = tuple[int, ...]


def multisets(d: int, k: int) -> Iterator[Multiset]:
    """All sorted index tuples of length ``k`` over ``range(d)`` (each multiset once)."""
    return itertools.combinations_with_replacement(range(d), k)


def multiplicity(ms: Multiset) -> int:
    """Number of ordered index tuples that sort to ``ms`` (the multinomial coefficient)."""
    out = math.factorial(len(ms))
    for count in Counter(ms).values():
        out //= math.factorial(count)
    return out


@lru_cache(maxsize=None)
def set_partitions(k: int, min_block: int = 1) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """All set partitions of ``{0..k-1}`` whose blocks have at least ``min_block`` elements.

    Used for the moment–cumulant formula: ``μ_k`` is the sum over partitions into blocks of
    size ≥ 2 of the product of cumulants of the blocks (docs/theory.md §1).
    """

    def rec(items: tuple[int, ...]) -> Iterator[list[tuple[int, ...]]]:
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        # choose the other members of the block containing ``first``
        for r in range(len(rest) + 1):
            for others in itertools.combinations(rest, r):
                block = (first, *others)
                remaining = tuple(i for i in rest if i not in others)
                for tail in rec(remaining):
                    yield [block, *tail]

    parts = [tuple(p) for p in rec(tuple(range(k))) if all(len(b) >= min_block for b in p)]
    return tuple(parts)


def to_array(entries: Mapping[Multiset, sp.Expr], d: int, k: int) -> sp.Array:
    """Expand a multiset-keyed symmetric tensor to a full ``(d,)*k`` sympy Array."""
    if k == 0:
        return sp.Array(entries[()])
    flat = [entries[tuple(sorted(idx))] for idx in itertools.product(range(d), repeat=k)]
    return sp.Array(flat, (d,) * k)


def symmetric_form(
    entries: Mapping[Multiset, sp.Expr], d: int, k: int, v: Sequence[sp.Expr]
) -> sp.Expr:
    """``T[v, …, v]`` (``k`` copies of ``v``) from the distinct entries of a symmetric ``T``."""
    if len(v) != d:
        raise ValueError(f"v has length {len(v)}; the tensor acts on vectors of length {d}")
    total = sp.Integer(0)
    for ms in multisets(d, k):
        term = entries[ms]
        if term == 0:
            continue
        prod = sp.Integer(multiplicity(ms))
        for idx in ms:
            prod *= v[idx]
        total += prod * term
    return total


def multilinear_form(
    entries: Mapping[Multiset, sp.Expr], vectors: Sequence[Sequence[sp.Expr]]
) -> sp.Expr:
    """``T[v¹, …, vᵏ]`` for a symmetric ``T`` given by its distinct entries (full sum)."""
    d = len(vectors[0])
    total = sp.Integer(0)
    for idx in itertools.product(range(d), repeat=len(vectors)):
        term = entries[tuple(sorted(idx))]
        if term == 0:
            continue
        prod = term
        for vec, i in zip(vectors, idx):
            prod *= vec[i]
        total += prod
    return total


def positions_subsets(k: int) -> Iterable[tuple[int, ...]]:
    """All subsets of ``range(k)``, as sorted tuples, smallest first."""
    for r in range(k + 1):
        yield from itertools.combinations(range(k), r)
