"""The registry of exponential families.

Each built-in family lives in its own module and registers a factory with
:func:`register`; ``get(name, **sizes)`` builds (and caches) an instance, so a family's
derived quantities are computed once per process. Users add families the same way:

    @families.register("my_family")
    def my_family(n=3): return ExponentialFamily(...)   # keyword defaults = test sizes
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

from fishsym.errors import ArgumentTypeError, UnknownFamilyError
from fishsym.symbolic.family import ExponentialFamily


@dataclass
class _Entry:
    name: str
    factory: Callable[..., ExponentialFamily]
    defaults: dict = field(default_factory=dict)
    #: size argument inferred from a network's output dimension (e.g. "C" or "d")
    output_size: str | None = None
    doc: str = ""


_REGISTRY: dict[str, _Entry] = {}
_CACHE: dict[tuple, ExponentialFamily] = {}


def register(name: str, output_size: str | None = None):
    """Decorator registering a family factory under ``name``.

    The factory's keyword defaults are the sizes used by the generic test suite.
    ``output_size`` names the size argument a numeric caller can infer from the
    dimension of a network's output (``"C"`` for categorical, ``"d"`` for Gaussian).
    """

    def deco(factory):
        sig = inspect.signature(factory)
        defaults = {
            k: p.default for k, p in sig.parameters.items() if p.default is not inspect._empty
        }
        doc = (inspect.getdoc(factory) or "").split("\n")[0]
        _REGISTRY[name] = _Entry(name, factory, defaults, output_size, doc)
        return factory

    return deco


def names() -> list[str]:
    """Registered family names, sorted."""
    return sorted(_REGISTRY)


def entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise UnknownFamilyError(
            f"unknown family name {name!r}; registered families are: {', '.join(names())}"
        )
    return _REGISTRY[name]


def size_arguments(name: str) -> dict:
    """The size arguments of a registered family and their defaults."""
    return dict(entry(name).defaults)


def get(name: str, **sizes) -> ExponentialFamily:
    """The family ``name`` built with the given size arguments (cached per process).

    >>> get("categorical", C=3).dim
    3
    """
    ent = entry(name)
    unknown = set(sizes) - set(ent.defaults)
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in ent.defaults.items()) or "none"
        raise ArgumentTypeError(
            f"family {name!r} got unexpected size argument(s) {sorted(unknown)}; "
            f"valid size arguments (with defaults): {valid}"
        )
    for key, value in sizes.items():
        number = isinstance(value, (numbers.Real, sp.Number)) and not isinstance(value, bool)
        if not number:
            raise ArgumentTypeError(
                f"family {name!r}: size argument {key} must be a number (default "
                f"{ent.defaults[key]!r}); got {value!r} ({type(value).__name__})"
            )
    args = {**ent.defaults, **sizes}
    key = (name, tuple(sorted(args.items())))
    if key not in _CACHE:
        fam = ent.factory(**args)
        fam.registry_name = name
        _CACHE[key] = fam
    return _CACHE[key]


def instances() -> list[ExponentialFamily]:
    """One instance of every registered family at its default (test) sizes."""
    return [get(n) for n in names()]


# Built-in families: every module of this package registers its family on import, so
# adding a family is adding its file.
for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["register", "names", "get", "instances", "size_arguments", "entry"]
