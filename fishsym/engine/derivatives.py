"""What the engine hands to the variance layer: per-input ``u`` and ``w`` in factored form.

For a parameter entry ``θ_p`` the engine delivers (docs/theory.md §1, §7)

    u_p = ∂h/∂θ_p ∈ R^d        (``jac``)
    w_p = ∂²h/∂θ_p² ∈ R^d      (``hess_diag``)

for every input ``n``. A Linear layer's weight ``W[a, b]`` factorises as
``u = G[:, a]·z[b]`` and ``w = S[:, a]·z[b]²`` (``G = ∂h/∂a_l``, ``S`` the diagonal of the
pre-activation Hessians, ``z`` the layer input), so the engine passes the per-unit
vectors and the input factor separately and never builds a per-parameter-per-input
tensor. The generic path has no such factor (``scale=None``) and delivers one column per
parameter entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ParamDerivatives:
    """Per-input derivatives of ``h`` with respect to one parameter tensor (or a block of it).

    Entry ``p`` of the parameter has

    * with ``scale`` given (parameter shaped ``[A, B]``, entry ``p = (a, b)``):
      ``u_p[n] = jac[n, :, a] · scale[n, b]`` and ``w_p[n] = hess_diag[n, :, a] · scale[n, b]²``;
    * with ``scale=None``: ``u_p[n] = jac[n, :, j]``, ``w_p[n] = hess_diag[n, :, j]`` for the
      ``j``-th entry of the flattened parameter inside ``entries`` (all entries when
      ``entries`` is ``None``).

    Attributes
    ----------
    name:
        The parameter's name in ``model.named_parameters()``.
    shape:
        The parameter's shape.
    jac:
        ``[n, c, a]``.
    hess_diag:
        ``[n, c, a]``, or ``None`` when ``w ≡ 0`` structurally (``h`` affine in the
        parameter along each coordinate: last layer, piecewise-linear activations).
    scale:
        ``[n, b]`` or ``None``.
    entries:
        ``slice`` of the flattened parameter covered by the ``a`` axis (``scale=None`` only).
    """

    name: str
    shape: torch.Size
    jac: Tensor
    hess_diag: Tensor | None
    scale: Tensor | None = None
    entries: slice | None = None

    def expanded(self) -> tuple[Tensor, Tensor]:
        """``u`` and ``w`` as dense ``[n, c, p]`` tensors over the covered entries (for
        tests and small models: this materialises what the factored form avoids)."""
        jac = self.jac
        hess = self.hess_diag if self.hess_diag is not None else torch.zeros_like(jac)
        if self.scale is None:
            return jac, hess
        n, c, a = jac.shape
        z = self.scale[:, None, None, :]
        u = (jac[..., None] * z).reshape(n, c, -1)
        w = (hess[..., None] * z * z).reshape(n, c, -1)
        return u, w


__all__ = ["ParamDerivatives"]
