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


#: user-registered samplers, keyed by family name (:func:`register_sampler`)
_USER_SAMPLERS: dict[str, Callable] = {}


def register_sampler(family, sampler: Callable) -> None:
    """Give a user-defined family a label sampler, so that Monte Carlo
    (:func:`fishsym.montecarlo.estimate`, :func:`fishsym.diagonal_fisher`) can cross-check
    it — the only route for a family on an infinite support, which cannot be enumerated.
    A family that already has a sampler (a registered family's dedicated one, or an
    earlier registration) is refused: unregister with ``register_sampler(name, None)``.

    Parameters
    ----------
    family:
        The family's name, or the :class:`~fishsym.symbolic.ExponentialFamily` itself.
    sampler:
        ``sampler(h, n, generator) -> labels``: ``n`` i.i.d. draws from ``p(y|h)`` for
        natural parameters ``h`` ``[..., d]``, shaped ``[n, ..., *obs_shape]`` (integer
        dtype for discrete supports), drawn with ``generator`` only (never global random
        state). fishsym checks the shape and finiteness of what it returns; ``None``
        removes a registration.
    """
    from fishsym.errors import ArgumentTypeError, InvalidArgumentError

    name = family if isinstance(family, str) else getattr(family, "name", None)
    if not isinstance(name, str) or not name:
        raise ArgumentTypeError(
            f"family must be a family name or an ExponentialFamily; got {family!r}"
        )
    if sampler is None:
        _USER_SAMPLERS.pop(name, None)
        return
    if not callable(sampler):
        raise ArgumentTypeError(
            f"sampler must be a callable (h, n, generator) -> labels; got {sampler!r}"
        )
    if name in _DECLARED and _DECLARED[name].sampler is not None:
        raise InvalidArgumentError(
            f"family {name!r} has a dedicated sampler already; register a user family under "
            "its own name"
        )
    if name in _USER_SAMPLERS:
        raise InvalidArgumentError(
            f"a sampler for {name!r} is registered already; call register_sampler({name!r}, "
            "None) first to replace it"
        )
    _USER_SAMPLERS[name] = sampler


def user_sampler(name: str) -> Callable | None:
    """The sampler registered for family ``name`` with :func:`register_sampler`."""
    return _USER_SAMPLERS.get(name)


def numeric_of(name: str | None) -> NumericFamily:
    """The declaration of registered family ``name`` (an empty one for others)."""
    return _DECLARED.get(name, NumericFamily(str(name))) if name else NumericFamily("")


def declared() -> dict[str, NumericFamily]:
    """Every declared family."""
    return dict(_DECLARED)


__all__ = [
    "NumericFamily",
    "declare",
    "declared",
    "numeric_of",
    "register_sampler",
    "user_sampler",
]
