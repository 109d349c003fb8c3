"""The numeric side of each registered family, declared in one place per family.

A family's symbolic declaration (``fishsym/symbolic/families/<name>.py``) defines what it
*is*; its numeric specialisations — a structured kernel, a sampler, a numerically stable
log-partition or log-probability, the label encoding — are declared next to nothing
else in ``fishsym/kernels/family_specs/<name>.py`` as one :class:`NumericFamily`, and
discovered when :mod:`fishsym.kernels` is imported. The kernels consult
:func:`numeric_of` (no name-keyed tables spread over modules). A family without a
declaration (a user's) gets the lambdified :class:`~fishsym.kernels.GenericKernel`,
enumeration sampling on a finite support, and a clear error otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class NumericFamily:
    """Numeric specialisations of the registered family ``name``.

    Attributes
    ----------
    kernel:
        Constructor of a structured kernel, called with the family's size arguments and
        ``family=`` (the symbolic family or ``None``); ``None``: the generic kernel.
    sampler:
        ``(kernel, h, n, generator) -> labels [n, ..., *obs_shape]``; ``None``: sample by
        enumeration (finite supports) or refuse.
    log_partition:
        ``(h, sizes) -> F(h)``, stable where the symbolic ``F`` overflows or cancels.
    log_prob:
        ``(y, h, sizes) -> log p(y|h)``, stable where the direct form cancels.
    class_index:
        Labels are class indices although the symbolic ``y`` is one-hot.
    """

    name: str
    kernel: Callable | None = None
    sampler: Callable | None = None
    log_partition: Callable | None = None
    log_prob: Callable | None = None
    class_index: bool = False


_DECLARED: dict[str, NumericFamily] = {}


def declare(spec: NumericFamily) -> NumericFamily:
    """Register ``spec`` (one call per family file)."""
    _DECLARED[spec.name] = spec
    return spec


def numeric_of(name: str | None) -> NumericFamily:
    """The declaration of registered family ``name`` (an empty one for others)."""
    return _DECLARED.get(name, NumericFamily(str(name))) if name else NumericFamily("")


def declared() -> dict[str, NumericFamily]:
    """Every declared family."""
    return dict(_DECLARED)


__all__ = ["NumericFamily", "declare", "declared", "numeric_of"]
