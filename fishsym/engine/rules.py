"""The registry of per-module rules of the structured chain walker.

One file per module type registers its rule with :func:`rule`; the walker
(:class:`fishsym.engine.sequential.StructuredMLP`) looks each module up by its exact type
(a subclass may override ``forward``, so it is not matched) and lets the rule add itself
to the chain. Adding a module type to the structured path is one rule file (imported by
``fishsym/engine/__init__.py``) plus its test:

    @rule(nn.MyLayer)
    def my_layer(walker, name, module):
        walker.add_linear(...)        # or walker.add_elementwise(...), walker.add_reshape(...)
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

#: exact module type → rule ``(walker, qualified name, module) -> None``
RULES: dict[type, Callable] = {}


def rule(*types: type):
    """Register the decorated function as the rule of each of ``types``."""

    def deco(fn):
        for t in types:
            RULES[t] = fn
        return fn

    return deco


def lookup(module: nn.Module) -> Callable | None:
    """The rule of ``module``'s exact type, or ``None``."""
    return RULES.get(type(module))


def supported() -> str:
    """The registered module types, for error messages."""
    return ", ".join(sorted(t.__name__ for t in RULES))


__all__ = ["RULES", "lookup", "rule", "supported"]
