"""The generic exact path: ``u`` and ``w`` for any ``nn.Module`` by ``torch.func``.

For a parameter entry ``θ_p`` with basis vector ``e_p`` and one input ``x``:

    u_p = ∂h/∂θ_p       = d/dt h(θ + t e_p) |_{t=0}      (a Jacobian-vector product)
    w_p = ∂²h/∂θ_p²     = d²/dt² h(θ + t e_p) |_{t=0}    (= e_pᵀ ∇²h_c e_p for every c)

Both come from one forward-over-forward pass, ``jvp`` of ``jvp`` (a Hessian-vector
product taken in forward mode, of which only the ``p``-th entry is kept), vectorised with
``vmap`` over a block of basis vectors and over the inputs. The cost is one such pass per
parameter entry and input — exact for any architecture (convolutions, normalisation in
evaluation mode, custom heads), but it is the reference for small models and slices of
large ones, not the engine (THEORY §7).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vmap

from fishsym.engine.derivatives import ParamDerivatives

#: at most this many (input, basis vector) pairs are evaluated in one vectorised call:
#: bounds the memory of the forward-over-forward pass to about this many copies of the
#: network's activations
GENERIC_BATCH = 2048
#: ... and at most this many elements of (input × basis vector × parameter tensor): the
#: vectorised tangents of a parameter tensor are materialised per input and basis vector
GENERIC_ELEMENTS = 2**23


class GenericModel:
    """Any ``nn.Module`` whose output is the natural parameter ``h``, evaluated
    functionally with cast copies of its parameters and buffers (the module itself is
    never modified).

    Parameters
    ----------
    model:
        The network. Its output for a batch ``[n, ...]`` must be ``[n, d]`` (or ``[n]``
        when ``d = 1``).
    dtype:
        Working dtype.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float64):
        self.model = model
        self.dtype = dtype
        self.params: dict[str, Tensor] = {}
        constants: dict[str, Tensor] = {}
        for name, p in model.named_parameters():
            target = self.params if p.requires_grad else constants
            target[name] = p.detach().to(dtype)
        for name, b in model.named_buffers():
            constants[name] = b.detach().to(dtype) if b.is_floating_point() else b.detach()
        self.constants = constants

    def param_names(self) -> list[str]:
        """Names of the trainable parameters, in model order."""
        return list(self.params)

    def n_entries(self) -> int:
        """``P``, the number of trainable parameter entries."""
        return sum(p.numel() for p in self.params.values())

    def _call(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.model, {**self.constants, **params}, (x,))

    def output(self, x: Tensor) -> Tensor:
        """``h`` for a batch of inputs, ``[n, c]``."""
        h = self._call(self.params, x.to(self.dtype))
        return h.reshape(h.shape[0], -1) if h.dim() != 1 else h[:, None]

    def block(self, x: Tensor, name: str, entries: slice) -> ParamDerivatives:
        """``u`` and ``w`` of the entries ``entries`` of the flattened parameter ``name``
        at every input of ``x``: ``jac`` and ``hess_diag`` of shape ``[n, c, k]``."""
        theta = self.params[name]
        idx = torch.arange(entries.start, entries.stop, device=theta.device)
        basis = torch.zeros(len(idx), theta.numel(), dtype=self.dtype, device=theta.device)
        basis[torch.arange(len(idx), device=theta.device), idx] = 1
        basis = basis.reshape(len(idx), *theta.shape)
        others = {k: v for k, v in self.params.items() if k != name}

        def h_single(t: Tensor, xi: Tensor) -> Tensor:
            return self._call({**others, name: t}, xi.unsqueeze(0)).reshape(-1)

        def jac_and_hess(e: Tensor, xi: Tensor) -> tuple[Tensor, Tensor]:
            def directional(t: Tensor) -> Tensor:
                return jvp(lambda s: h_single(s, xi), (t,), (e,))[1]

            return jvp(directional, (theta,), (e,))

        per_input = vmap(jac_and_hess, in_dims=(0, None))
        u, w = vmap(per_input, in_dims=(None, 0))(
            basis, x.to(device=theta.device, dtype=self.dtype)
        )  # [n, k, c]
        return ParamDerivatives(
            name, theta.shape, u.transpose(1, 2), w.transpose(1, 2), None, entries
        )

    def entry_chunk(self, n_inputs: int, name: str) -> int:
        """Entries of parameter ``name`` per vectorised call for ``n_inputs`` inputs, within
        :data:`GENERIC_BATCH` pairs and :data:`GENERIC_ELEMENTS` tangent elements."""
        n = max(1, n_inputs)
        numel = self.params[name].numel()
        return max(1, min(GENERIC_BATCH // n, GENERIC_ELEMENTS // (n * numel)))

    def blocks(
        self, x: Tensor, entry_chunk: int | None = None, entries: dict[str, slice] | None = None
    ) -> Iterator[ParamDerivatives]:
        """All parameters (or the given ``entries`` of some), ``entry_chunk`` entries at a time
        (default: :meth:`entry_chunk`)."""
        selection = (
            entries
            if entries is not None
            else {name: slice(0, p.numel()) for name, p in self.params.items()}
        )
        for name, span in selection.items():
            k = entry_chunk or self.entry_chunk(len(x), name)
            for start in range(span.start, span.stop, k):
                yield self.block(x, name, slice(start, min(start + k, span.stop)))


__all__ = ["GenericModel", "GENERIC_BATCH", "GENERIC_ELEMENTS"]
