"""What the engine hands to the variance layer: per-input ``u`` and ``w`` in factored form.

For a parameter entry ``θ_p`` the engine delivers (docs/theory.md §1, §7)

    u_p = ∂h/∂θ_p ∈ R^d        (``jac``)
    w_p = ∂²h/∂θ_p² ∈ R^d      (``hess_diag``)

for every input ``n``. A Linear layer's weight ``W[a, b]`` factorises as
``u = G[:, a]·z[b]`` and ``w = S[:, a]·z[b]²`` (``G = ∂h/∂a_l``, ``S`` the diagonal of the
pre-activation Hessians, ``z`` the layer input), so the engine passes the per-unit
vectors and the input factor separately and never builds a per-parameter-per-input
tensor. The generic path has no such factor and delivers one column per parameter entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: the per-input quantity that carries the layer input squared (``I = f·z²``); every other
#: quantity of docs/theory.md §2–§3 carries it to the fourth power (``V₁ = q·z⁴``, …)
POWER2 = ("fisher",)


@dataclass
class ParamDerivatives:
    """Per-input derivatives of ``h`` with respect to one parameter tensor (or a block of
    it) — the unit of the engine protocol. Each kind of block knows how to reduce the
    per-unit moments computed from its ``jac`` / ``hess_diag`` into per-parameter sums
    (:meth:`reduce`), so the variance layer never asks which engine produced it:

    * :class:`DenseDerivatives` — one column per parameter entry (the generic path);
    * :class:`LinearDerivatives` — the outer-product factorisation ``u = g_a·z_b`` of a
      Linear weight (docs/theory.md §7);
    * further kinds (a convolution's unfolded input) add their own :meth:`reduce`.

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
    """

    name: str
    shape: torch.Size
    jac: Tensor
    hess_diag: Tensor | None

    #: the layer-input factor of the outer-product form (``None``: no factor)
    scale = None
    #: the covered entries of the flattened parameter (``None``: all of them)
    entries = None

    def expanded(self) -> tuple[Tensor, Tensor]:
        """``u`` and ``w`` as dense ``[n, c, p]`` tensors over the covered entries (for
        tests and small models: this materialises what a factored form avoids)."""
        raise NotImplementedError

    def n_units(self) -> int:
        """(inputs × parameter entries) covered: the work the block stands for."""
        raise NotImplementedError

    def reduce(self, store: dict[str, Tensor], moments: dict[str, Tensor | None], rows: slice,
               per_sample: bool, power2=POWER2, power1=()) -> None:
        """Add the block's per-input quantities, from per-unit ``moments`` ``[n, a]``, into
        ``store`` (``{quantity: tensor shaped like the parameter}``), or write them per
        input at ``rows`` (``store`` tensors ``[n_inputs, *shape]``) with ``per_sample``.
        Quantities missing from ``store`` or given as ``None`` (the zero bound) are
        skipped. ``power2`` names the quantities quadratic in ``u`` (they carry the layer
        input squared in a factorised block), ``power1`` those linear in ``u`` (the layer
        input itself); every other one is quartic in ``u`` or quadratic in ``w`` (the
        fourth power)."""
        raise NotImplementedError


@dataclass
class DenseDerivatives(ParamDerivatives):
    """``u_p[n] = jac[n, :, j]``, ``w_p[n] = hess_diag[n, :, j]`` for the ``j``-th covered
    entry ``p`` of the flattened parameter (``entries``: a slice or a 1-D index tensor;
    ``None`` for all entries)."""

    entries: slice | Tensor | None = None

    def expanded(self) -> tuple[Tensor, Tensor]:
        hess = self.hess_diag if self.hess_diag is not None else torch.zeros_like(self.jac)
        return self.jac, hess

    def n_units(self) -> int:
        return self.jac.shape[0] * self.jac.shape[2]

    def reduce(self, store, moments, rows, per_sample, power2=POWER2, power1=()) -> None:
        entries = slice(None) if self.entries is None else self.entries
        for q, x in moments.items():  # x: [n, k]
            if x is None or q not in store:
                continue
            if per_sample:
                store[q][rows].view(x.shape[0], -1)[:, entries] = x
            else:
                store[q].view(-1)[entries] += x.sum(0)


@dataclass
class LinearDerivatives(ParamDerivatives):
    """A Linear weight ``W[a, b]`` (or a convolution's ``[O, C, k…]`` on one output pixel,
    ``b`` its unfolded patch): ``u = jac[n, :, a]·z[n, b]`` and ``w = hess_diag[n, :, a]·
    z[n, b]²`` with ``z = scale`` the layer input ``[n, b]`` (docs/theory.md §7). Its sums over
    inputs are matrix products ``Fᵀ Z²`` and ``[Q | R | …]ᵀ Z⁴``: no per-parameter-per-input
    tensor unless ``per_sample``."""

    scale: Tensor | None = None

    def expanded(self) -> tuple[Tensor, Tensor]:
        jac = self.jac
        hess = self.hess_diag if self.hess_diag is not None else torch.zeros_like(jac)
        n, c, a = jac.shape
        z = self.scale[:, None, None, :]
        u = (jac[..., None] * z).reshape(n, c, -1)
        w = (hess[..., None] * z * z).reshape(n, c, -1)
        return u, w

    def n_units(self) -> int:
        return self.jac.shape[0] * self.jac.shape[2] * self.scale.shape[1]

    def reduce(self, store, moments, rows, per_sample, power2=POWER2, power1=()) -> None:
        z2 = self.scale * self.scale
        z4 = z2 * z2
        present = [q for q, x in moments.items() if x is not None and q in store]
        names1 = [q for q in present if q in power1]
        names2 = [q for q in present if q in power2]
        names4 = [q for q in present if q not in power2 and q not in power1]
        groups = ((names1, self.scale), (names2, z2), (names4, z4))
        if per_sample:
            for names, z in groups:
                for q in names:
                    n = moments[q].shape[0]
                    store[q][rows].view(n, *moments[q].shape[1:], -1)[:] = (
                        moments[q][:, :, None] * z[:, None, :]
                    )
            return
        # every quantity of one power in one matrix product [K·a, n] @ [n, b]
        for names, z in groups:
            if not names:
                continue
            n, a = moments[names[0]].shape
            stacked = torch.stack([moments[q] for q in names], dim=1).reshape(n, -1)
            sums = (stacked.T @ z).reshape(len(names), a, -1)
            for q, total in zip(names, sums, strict=True):
                store[q].view(total.shape).add_(total)  # a convolution's [O, C, k…] too


__all__ = ["POWER2", "DenseDerivatives", "LinearDerivatives", "ParamDerivatives"]
