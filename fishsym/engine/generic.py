"""The generic exact path: ``u`` and ``w`` for any ``nn.Module`` by ``torch.func``.

For a parameter entry ``θ_p`` with basis vector ``e_p``, one input ``x`` and an output
coordinate ``c``:

    u_p[c] = ∂h_c/∂θ_p       = ⟨∇_θ h_c, e_p⟩                         (one reverse pass)
    w_p[c] = ∂²h_c/∂θ_p²     = ⟨∇_θ ⟨∇_θ h_c, e_p⟩, e_p⟩ = (∇²h_c e_p)_p   (reverse over reverse)

**Two routes, chosen per model.** An autodiff mode can be wrong: PyTorch's
forward-over-forward derivative through ``layer_norm`` is (for one LayerNorm weight it gave
−0.4276 where reverse-mode autograd and finite differences both give −0.4375), and CPU
fused attention has no forward-mode rule at all. So:

* **forward over forward** — ``jvp`` of ``jvp`` along ``e_p``, which yields ``u_p`` and
  ``w_p`` for all ``d`` outputs in one pass — only when every module of the model is of a
  type in :data:`FORWARD_VERIFIED` (plain containers, Linear, convolutions, pooling,
  elementwise activations, Flatten, eval-mode Dropout and BatchNorm, Embedding), whose
  forward-over-forward rules tests/engine/test_generic_second_derivatives.py holds to
  finite differences;
* **reverse over reverse** otherwise (LayerNorm, GroupNorm, attention, any module with
  its own ``forward`` code, whose operations are unknown): ``u_p[c] = ⟨∇h_c, e_p⟩`` by one
  reverse pass and ``w_p[c] = ⟨∇⟨∇h_c, e_p⟩, e_p⟩`` by a second — the route of the slow
  reference (:mod:`fishsym.reference`) — at about ``2d`` backward passes per entry and
  input. Attention runs on the math backend of ``scaled_dot_product_attention``, whose
  double backward is implemented.

Either is vectorised with ``vmap`` over a block of basis vectors and the inputs (and the
output coordinates). This is the exact reference for small models and slices of large
ones, not the engine (docs/theory.md §7, §10). It is exact for tied weights (a parameter
used twice: ``h`` is then not affine in it per use, and the second derivative sees both
uses).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.func import grad, jacrev, jvp, vjp, vmap

from fishsym.common import ModelView, cast_inputs, math_attention
from fishsym.engine.derivatives import DenseDerivatives, ParamDerivatives

#: inputs per step of :meth:`GenericModel.batches` (each is paired with a block of basis
#: vectors within GENERIC_BATCH)
GENERIC_INPUT_CHUNK = 32
#: at most this many (input, basis vector, output coordinate) triples are evaluated in one
#: vectorised call: bounds the memory of the double backward to about this many copies
#: of the network's activations
GENERIC_BATCH = 2048
#: ... and at most this many elements of (triples × parameter tensor): the gradient of
#: the whole parameter tensor is materialised per triple
GENERIC_ELEMENTS = 2**23


#: module types whose forward-over-forward derivative rules are verified against finite
#: differences (tests/engine/test_generic_second_derivatives.py); exact types only, since
#: a subclass may override ``forward``
FORWARD_VERIFIED = frozenset(
    {
        nn.Sequential,
        nn.Linear,
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.MaxPool1d,
        nn.MaxPool2d,
        nn.AvgPool1d,
        nn.AvgPool2d,
        nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d,
        nn.Flatten,
        nn.Identity,
        nn.Dropout,
        nn.Dropout1d,
        nn.Dropout2d,
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.Embedding,
        nn.ReLU,
        nn.LeakyReLU,
        nn.Tanh,
        nn.Sigmoid,
        nn.Softplus,
        nn.ELU,
        nn.GELU,
        nn.SiLU,
    }
)


def second_order_route(model: nn.Module) -> str:
    """``"forward-over-forward"`` when every module of ``model`` has a type in
    :data:`FORWARD_VERIFIED`, else ``"reverse-over-reverse"``."""
    verified = all(type(m) in FORWARD_VERIFIED for m in model.modules())
    return "forward-over-forward" if verified else "reverse-over-reverse"


class GenericPathWarning(UserWarning):
    """The model is handled by the (exact but slow) generic path."""


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

    #: the name of this engine in results (``FisherVariances.path``)
    path = "generic"
    #: the derivatives are taken by torch.func transforms: autograd must stay on
    no_grad = False
    #: why the structured path did not apply (set by :func:`fishsym.engine.select`)
    fallback_reason = None
    #: compute ``w`` (``False``: ``u`` only, by per-input Jacobians — no second-order pass)
    second_order = True

    def __init__(self, view: ModelView | nn.Module, dtype: torch.dtype = torch.float64):
        if isinstance(view, nn.Module):
            view = ModelView(view, dtype)
        self.view = view
        self.model = view.model
        self.dtype = view.dtype
        self.params: dict[str, Tensor] = view.params
        #: how ``w`` is computed (:func:`second_order_route`); an output selector may run
        #: arbitrary code, so it forces the reverse-over-reverse route
        self.route = (
            "reverse-over-reverse" if view.output is not None else second_order_route(view.model)
        )

    @property
    def cost_note(self) -> str:
        """What a block costs (for progress and time warnings)."""
        if self.route == "forward-over-forward":
            return "one forward-over-forward pass per parameter entry and input"
        return "about 2d backward passes per parameter entry and input (reverse over reverse)"

    def param_names(self) -> list[str]:
        """Names of the trainable parameters, in model order."""
        return list(self.params)

    # ------------------------------------------------------------------ engine protocol
    @property
    def var2_route(self) -> str:
        """How this engine obtains ``w`` (reported per parameter)."""
        return f"second-order passes ({self.route})"

    def prepare(self, x: Tensor) -> None:
        """Nothing to prepare: every entry gets its own second-order pass."""

    def default_chunk(self, dtype: torch.dtype, budget: int, d: int = 1) -> int:
        """Inputs per step (each is paired with a block of basis vectors, see
        :data:`GENERIC_BATCH`)."""
        return GENERIC_INPUT_CHUNK

    def steps(self, n_inputs: int, chunk: int, d: int) -> int:
        """Blocks :meth:`batches` yields for ``n_inputs`` inputs in chunks of ``chunk``."""
        per_chunk = sum(
            -(-p.numel() // self.entry_chunk(chunk, name, d)) for name, p in self.params.items()
        )
        return -(-n_inputs // chunk) * per_chunk

    def batches(self, x: Tensor, d: int):
        """``h`` ``[n, c]`` and an iterator of one-block lists, computed lazily."""
        return self.output(x), ([block] for block in self.blocks(x, d=d))

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
        xs = cast_inputs(x, self.dtype, self.view.device)
        if not self.second_order:
            # u alone: one Jacobian per input (d reverse passes), no second derivative
            with math_attention():
                jac = vmap(jacrev(lambda t, xi: view.single({name: t}, xi)), in_dims=(None, 0))(
                    theta, xs
                )
            u = jac.reshape(xs.shape[0], -1, theta.numel())[:, :, idx]
            return DenseDerivatives(name, theta.shape, u.detach(), None, entries)
        if self.route == "forward-over-forward":

            def jet(xi: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
                def directional(t: Tensor) -> Tensor:
                    return jvp(lambda s: view.single({name: s}, xi), (t,), (e,))[1]

                return jvp(directional, (theta,), (e,))  # (u_p, w_p), each [d]

            with math_attention():
                u, w = vmap(vmap(jet, in_dims=(None, 0)), in_dims=(0, None))(xs, basis)
            return DenseDerivatives(
                name, theta.shape, u.transpose(1, 2), w.transpose(1, 2), entries
            )
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
            u, w = per_input(xs, basis, coords)
        return DenseDerivatives(name, theta.shape, u.transpose(1, 2), w.transpose(1, 2), entries)

    def entry_chunk(self, n_inputs: int, name: str, d: int = 1) -> int:
        """Entries of parameter ``name`` per vectorised call for ``n_inputs`` inputs and
        ``d`` outputs, within :data:`GENERIC_BATCH` triples and :data:`GENERIC_ELEMENTS`
        gradient elements."""
        numel = self.params[name].numel()
        if not self.second_order:
            return numel  # one Jacobian gives every entry
        n = max(1, n_inputs) * (max(1, d) if self.route == "reverse-over-reverse" else 1)
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


__all__ = [
    "FORWARD_VERIFIED",
    "GENERIC_BATCH",
    "GENERIC_ELEMENTS",
    "GenericModel",
    "GenericPathWarning",
    "second_order_route",
]
