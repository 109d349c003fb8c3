"""The generic exact path: ``u`` and ``w`` for any ``nn.Module`` by ``torch.func``.

For a parameter entry ``θ_p`` with basis vector ``e_p``, one input ``x`` and an output
coordinate ``c``:

    u_p[c] = ∂h_c/∂θ_p       = ⟨∇_θ h_c, e_p⟩                         (one reverse pass)
    w_p[c] = ∂²h_c/∂θ_p²     = ⟨∇_θ ⟨∇_θ h_c, e_p⟩, e_p⟩ = (∇²h_c e_p)_p   (reverse over reverse)

**Why reverse over reverse.** An autodiff mode can be wrong: PyTorch's forward-over-forward
derivative through ``layer_norm`` is (for one LayerNorm weight it gave −0.4276 where
reverse-mode autograd and finite differences both give −0.4375), and CPU fused attention
has no forward-mode rule at all. The double backward is the route the slow reference
(:mod:`fishsym.reference`) uses too, and every supported module type's ``w`` is tested
against central finite differences in float64 (tests/engine/test_generic.py). Attention is
evaluated with the math backend of ``scaled_dot_product_attention``, whose double backward
is implemented.

Both ``u`` and ``w`` come from one double-backward per (input, entry, output coordinate),
vectorised with ``vmap`` over output coordinates, a block of basis vectors and the
inputs. The cost — about ``2d`` backward passes per parameter entry and input — makes
this the exact reference for small models and slices of large ones, not the engine
(docs/theory.md §7, §10). It is exact for tied weights (a parameter used twice: ``h`` is then
not affine in it per use, and the second derivative sees both uses).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.func import grad, vjp, vmap

from fishsym.common import ModelView, cast_inputs, math_attention
from fishsym.engine.derivatives import ParamDerivatives

#: at most this many (input, basis vector, output coordinate) triples are evaluated in one
#: vectorised call: bounds the memory of the double backward to about this many copies
#: of the network's activations
GENERIC_BATCH = 2048
#: ... and at most this many elements of (triples × parameter tensor): the gradient of
#: the whole parameter tensor is materialised per triple
GENERIC_ELEMENTS = 2**23


class GenericModel:
    """Any ``nn.Module`` whose output is the natural parameter ``h``, evaluated on the
    private copy of a :class:`~fishsym.common.ModelView` (the user's module is never
    modified).

    Parameters
    ----------
    view:
        The model's functional view (working dtype, output selector, checks done), or
        an ``nn.Module`` (a view is then made in ``dtype``).
    dtype:
        Working dtype when ``view`` is a module.
    """

    def __init__(self, view: ModelView | nn.Module, dtype: torch.dtype = torch.float64):
        if isinstance(view, nn.Module):
            view = ModelView(view, dtype)
        self.view = view
        self.model = view.model
        self.dtype = view.dtype
        self.params: dict[str, Tensor] = view.params

    def param_names(self) -> list[str]:
        """Names of the trainable parameters, in model order."""
        return list(self.params)

    def n_entries(self) -> int:
        """``P``, the number of trainable parameter entries."""
        return sum(p.numel() for p in self.params.values())

    def output(self, x: Tensor) -> Tensor:
        """``h`` for a batch of inputs, ``[n, c]``."""
        with math_attention():
            return self.view.outputs(cast_inputs(x, self.dtype, self.view.device))

    def block(
        self, x: Tensor, name: str, entries: slice | Tensor, d: int | None = None
    ) -> ParamDerivatives:
        """``u`` and ``w`` of the entries ``entries`` (a slice, or a 1-D tensor of flat
        indices) of the flattened parameter ``name`` at every input of ``x``: ``jac`` and
        ``hess_diag`` of shape ``[n, c, k]``."""
        view = self.view
        theta = self.params[name]
        if d is None:
            d = self.output(x[:1]).shape[1]
        if isinstance(entries, slice):
            idx = torch.arange(entries.start, entries.stop, device=theta.device)
        else:
            idx = entries.to(device=theta.device, dtype=torch.long)
        basis = torch.zeros(len(idx), theta.numel(), dtype=self.dtype, device=theta.device)
        basis[torch.arange(len(idx), device=theta.device), idx] = 1
        basis = basis.reshape(len(idx), *theta.shape)
        coords = torch.eye(d, dtype=self.dtype, device=theta.device)

        def pair(xi: Tensor, e: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
            def directional(t: Tensor) -> tuple[Tensor, Tensor]:
                _, pull = vjp(lambda s: view.single({name: s}, xi), t)
                slope = (pull(c)[0] * e).sum()  # u_p[c] = ⟨∇h_c, e_p⟩
                return slope, slope

            g, slope = grad(directional, has_aux=True)(theta)
            return slope, (g * e).sum()  # (u_p[c], w_p[c])

        per_coord = vmap(pair, in_dims=(None, None, 0))  # over c -> [d]
        per_entry = vmap(per_coord, in_dims=(None, 0, None))  # over e -> [k, d]
        per_input = vmap(per_entry, in_dims=(0, None, None))  # over x -> [n, k, d]
        with math_attention():
            u, w = per_input(cast_inputs(x, self.dtype, self.view.device), basis, coords)
        return ParamDerivatives(
            name, theta.shape, u.transpose(1, 2), w.transpose(1, 2), None, entries
        )

    def entry_chunk(self, n_inputs: int, name: str, d: int = 1) -> int:
        """Entries of parameter ``name`` per vectorised call for ``n_inputs`` inputs and
        ``d`` outputs, within :data:`GENERIC_BATCH` triples and :data:`GENERIC_ELEMENTS`
        gradient elements."""
        n = max(1, n_inputs) * max(1, d)
        numel = self.params[name].numel()
        return max(1, min(GENERIC_BATCH // n, GENERIC_ELEMENTS // (n * numel)))

    def blocks(
        self,
        x: Tensor,
        entry_chunk: int | None = None,
        entries: dict[str, slice] | None = None,
        d: int | None = None,
    ) -> Iterator[ParamDerivatives]:
        """All parameters (or the given ``entries`` of some), ``entry_chunk`` entries at a time
        (default: :meth:`entry_chunk`)."""
        if d is None:
            d = self.output(x[:1]).shape[1]
        selection = (
            entries
            if entries is not None
            else {name: slice(0, p.numel()) for name, p in self.params.items()}
        )
        for name, span in selection.items():
            k = entry_chunk or self.entry_chunk(len(x), name, d)
            for start in range(span.start, span.stop, k):
                yield self.block(x, name, slice(start, min(start + k, span.stop)), d)


__all__ = ["GenericModel", "GENERIC_BATCH", "GENERIC_ELEMENTS", "math_attention"]
