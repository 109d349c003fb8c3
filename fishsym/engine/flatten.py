"""``nn.Flatten`` in the structured pass: a reshape, never a change of the maths.

Before the first ``Linear`` it turns an input such as ``[n, 1, 28, 28]`` into the feature
vector ``z_0``; after a ``Linear`` the features are already ``[n, width]`` and a Flatten
that keeps the batch axis is the identity. A Flatten that merges the batch axis is not
per-input and is rejected.
"""

from __future__ import annotations

from torch import Tensor, nn

from fishsym.engine.rules import rule
from fishsym.errors import UnsupportedModelError


def apply_to_inputs(module: nn.Flatten, x: Tensor, where: str) -> Tensor:
    """The module applied to a batch of inputs ``[n, ...]`` (before the first Linear).

    Raises :class:`UnsupportedModelError` when it would merge the input axis ``n``.
    """
    start = module.start_dim + x.dim() if module.start_dim < 0 else module.start_dim
    if start == 0:
        raise UnsupportedModelError(
            f"module {where!r} (Flatten(start_dim={module.start_dim})) merges the batch axis "
            "of the inputs; per-input derivatives need start_dim ≥ 1"
        )
    return x.flatten(module.start_dim, module.end_dim)


@rule(nn.Flatten)
def flatten_rule(walker, name: str, module: nn.Flatten) -> None:
    """Structured-path rule: reshapes the inputs before the first Linear; after one, only
    the identity on ``[n, width]`` features is allowed."""
    if not walker.layers:
        walker.add_input_map(name, lambda z: apply_to_inputs(module, z, name))
    elif not is_identity_on_features(module):
        raise UnsupportedModelError(
            f"module {name!r} (Flatten(start_dim={module.start_dim}, end_dim={module.end_dim})) "
            "after a Linear layer is not supported by the structured path"
        )


def is_identity_on_features(module: nn.Flatten) -> bool:
    """``True`` when the module is the identity on ``[n, width]`` feature batches: it
    flattens only axis 1 (``start_dim`` and ``end_dim`` each 1 or −1)."""
    return module.start_dim in (1, -1) and module.end_dim in (1, -1)


__all__ = ["apply_to_inputs", "flatten_rule", "is_identity_on_features"]
