"""``nn.Linear`` in the structured pass (docs/theory.md §7).

A layer ``a_l = W_l z_{l−1} + b_l`` contributes three rules:

* forward: ``a = z Wᵀ + b`` for a batch ``z`` of shape ``[n, in]``;
* pull-back: a row-Jacobian ``X = ∂(·)/∂a_l`` (``[n, k, out]``) becomes
  ``∂(·)/∂z_{l−1} = X W_l`` (``[n, k, in]``) — one matrix product for the whole batch,
  used both for ``G_{l−1}`` and for the inter-layer Jacobians ``∂a_m/∂a_{l−1}``;
* parameter derivatives, factored: for ``W_l[a, b]``, ``u = G_l[:, a]·z_{l−1}[b]`` and
  ``w = S_l[:, a]·z_{l−1}[b]²``; for ``b_l[a]``, ``u = G_l[:, a]`` and ``w = S_l[:, a]``
  (``z ≡ 1``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fishsym.engine.derivatives import DenseDerivatives, LinearDerivatives, ParamDerivatives
from fishsym.engine.rules import rule


class LinearLayer:
    """One ``Linear`` module, its weights cast to the working dtype, and the elementwise
    activation chain that follows it (composed into one ``σ`` by the structured pass).

    Parameters
    ----------
    name:
        The module's qualified name in the model (``"0"``, ``"block.2"``).
    module:
        The ``nn.Linear``; it is read, never modified.
    dtype:
        Working dtype.
    trainable:
        Names of the model's parameters that require gradients; the others are skipped.
    """

    def __init__(self, name: str, module: nn.Linear, dtype: torch.dtype, trainable: set[str]):
        self.name = name
        self.weight = module.weight.detach().to(dtype)
        self.weight_sq = self.weight * self.weight
        self.bias = None if module.bias is None else module.bias.detach().to(dtype)
        self.weight_name = f"{name}.weight" if name else "weight"
        self.bias_name = f"{name}.bias" if name else "bias"
        self.train_weight = self.weight_name in trainable
        self.train_bias = self.bias is not None and self.bias_name in trainable
        self.activations: list[tuple[nn.Module, object]] = []

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, z: Tensor) -> Tensor:
        """``a = z Wᵀ + b``: ``[n, in] → [n, out]``."""
        if self.bias is None:
            return z @ self.weight.T
        return torch.addmm(self.bias, z, self.weight.T)

    def pull_back(self, x: Tensor, squared: bool = False) -> Tensor:
        """``X W`` (or ``X (W ⊙ W)``): ``[n, k, out] → [n, k, in]`` as one ``(n·k) × out``
        matrix product."""
        n, k, out = x.shape
        weight = self.weight_sq if squared else self.weight
        return (x.reshape(n * k, out) @ weight).reshape(n, k, self.in_features)

    def jacobian_to_input(self, d1_below: Tensor | None, n: int) -> Tensor:
        """``∂a_l/∂a_{l−1} = W_l diag(σ'_{l−1})``: ``[n, out, in]``."""
        if d1_below is None:
            return self.weight.expand(n, -1, -1)
        return self.weight[None] * d1_below[:, None, :]

    def param_derivatives(
        self, jac: Tensor, hess_diag: Tensor | None, z_in: Tensor
    ) -> list[ParamDerivatives]:
        """Factored ``u``, ``w`` of this layer's trainable parameters.

        ``jac = G_l`` ``[n, c, out]``, ``hess_diag = S_l`` ``[n, c, out]`` (``None``: zero),
        ``z_in = z_{l−1}`` ``[n, in]``.
        """
        out = []
        if self.train_weight:
            out.append(
                LinearDerivatives(self.weight_name, self.weight.shape, jac, hess_diag, z_in)
            )
        if self.train_bias:  # z ≡ 1: one entry per unit
            out.append(DenseDerivatives(self.bias_name, self.bias.shape, jac, hess_diag))
        return out


__all__ = ["LinearLayer", "linear_rule"]


@rule(nn.Linear)
def linear_rule(walker, name: str, module: nn.Linear) -> None:
    """Structured-path rule: a new layer of the chain."""
    walker.add_linear(LinearLayer(name, module, walker.dtype, walker.trainable))
