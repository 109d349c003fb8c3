"""Per-input Jacobians ``u = ∂h/∂θ`` layer by layer: the exact route of docs/theory.md §12.

The exact Fisher and ``V₁`` need, per input ``n`` and parameter entry ``i``, the vector
``u_i = ∂h_n/∂θ_i ∈ R^d``. A per-input ``vmap(jacrev)`` of the whole model holds ``n × d ×
P`` numbers at once and runs each layer's per-input weight gradient as a grouped
operation. Here the ``d`` unit cotangents ``e_c`` are the "virtual labels" of §12 and every
layer with a rule forms its own block of ``u`` from its input ``z`` and the gradient ``δ``
at its output, one layer (and one block of its rows) at a time:

* one forward pass of the chunk of inputs with forward hooks recording each ruled layer's
  ``z`` and output, then **one** batched backward pass (``is_grads_batched``) of the ``d``
  cotangents to every recorded output (``δ`` ``[d, n, …]``);
* per layer, the rules of :mod:`fishsym.engine.sumsq` (Linear with or without positions,
  Conv1d/Conv2d with the input unfolded, Embedding, the affine weights of
  LayerNorm/GroupNorm/BatchNorm): a layer on **one** position (a Linear on ``[n, in]``, a
  convolution whose output is a single pixel, as in ResNet-18's last stage on CIFAR
  inputs) keeps the outer-product form ``u = δ_c z_b`` of docs/theory.md §7 (its sums are
  matrix products, nothing per entry and input); over positions ``u = Σ_t δ_{ct} z_tᵀ`` is
  formed in blocks of output rows within the memory budget.

**Checked on every chunk of inputs.** One more backward pass gives the batch gradient of
``Σ_n rᵀh_n`` for a fixed random mix ``r`` of the cotangents; a layer's rule is used only
where ``Σ_n u_nᵀr`` equals it to rounding (``PROOF_ULPS`` of the sizes summed), on these
inputs. A parameter that also enters ``h`` outside its layer (tied, reused, read by a
hook) fails the check and takes the per-input Jacobian (``vmap(jacrev)``) from then
on, as does every parameter without a rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from fishsym.engine.derivatives import DenseDerivatives, LinearDerivatives, ParamDerivatives
from fishsym.engine.sumsq import (
    PROOF_ULPS,
    batch_axis_layers,
    delta_pieces,
    input_pieces,
    ruled_layers,
)

#: the route of ``u`` for parameters with a layer rule, and for the rest
LAYER_RULE = "layer rule"
PER_INPUT_JACOBIAN = "per-input Jacobian"
#: the seed of the fixed random mix of the cotangents that the check uses (a private
#: generator: no global random state)
MIX_SEED = 20240612


class LayerJacobians:
    """``u`` of the parameters ``names`` of a :class:`~fishsym.common.ModelView` whose layers
    have a rule (module docstring); :attr:`routes` says per parameter :data:`LAYER_RULE`
    or :data:`PER_INPUT_JACOBIAN` (the caller computes those)."""

    def __init__(self, view, names):
        self.view = view
        self.layers, self.owned = ruled_layers(view, names)
        covered = {name for own in self.owned.values() for name in own.values()}
        self.routes = {
            name: LAYER_RULE if name in covered else PER_INPUT_JACOBIAN for name in names
        }
        self._sizes: tuple | None = None

    # ------------------------------------------------------------------ memory
    def ruled(self) -> list[str]:
        """The layers whose rule is (still) used."""
        return [
            m for m in self.layers
            if any(self.routes[p] == LAYER_RULE for p in self.owned[m].values())
        ]  # fmt: skip

    def per_input_bytes(self, x: Tensor | None, d: int = 1, itemsize: int = 8) -> int:
        """Working memory per input: every ruled layer's output gradient for the ``d``
        cotangents (``δ`` and its pieces, three copies) and its input (``z``, a
        convolution's unfolded, two copies), the sizes measured once on one input of
        ``x`` (``None`` after that)."""
        if self._sizes is None:
            # only layers whose calls lead with the batch axis keep their rule (a position
            # embedding fed arange(T) takes the per-input Jacobian)
            batched, _ = batch_axis_layers(self.view, self.layers, x)
            for m in self.layers:
                if m not in batched:
                    for p in self.owned[m].values():
                        self.routes[p] = PER_INPUT_JACOBIAN
            sizes = [0, 0]

            def hook(module, args, result):
                conv = isinstance(module, nn.Conv1d | nn.Conv2d)
                k = math.prod(module.kernel_size) if conv else 1
                sizes[0] += result.numel()
                sizes[1] += args[0].numel() * k

            handles = [self.layers[m].register_forward_hook(hook) for m in self.ruled()]
            try:
                with torch.no_grad():
                    self.view.batch(None, x[:1])
            finally:
                for handle in handles:
                    handle.remove()
            self._sizes = tuple(sizes)
        outputs, inputs = self._sizes
        return (3 * max(1, d) * outputs + 2 * inputs) * itemsize

    # ------------------------------------------------------------------ the blocks
    def blocks(self, x: Tensor, d: int, budget: int) -> Iterator[list[ParamDerivatives]]:
        """Lists of blocks of ``u`` for the parameters on :data:`LAYER_RULE` (one list per
        layer block), each holding at most ``budget`` bytes of ``u``. Parameters that fail
        their check on these inputs move to :data:`PER_INPUT_JACOBIAN` before anything is
        yielded."""
        while True:
            layers = self.ruled()
            if not layers:
                return
            calls, batch_grads, mix, n = self._backward(x, d, layers)
            failed = False
            pieces = {}
            for m in layers:
                pieces[m] = self._layer_pieces(m, calls[m], n, d, mix)
                if not self._prove(m, pieces[m], batch_grads):
                    failed = True
            if not failed:
                break
        del batch_grads
        # blocks side by side in one list up to the budget: one kernel call for many small
        # layers (the variance layer concatenates a list's u)
        bundle, held = [], 0
        for m in layers:
            for blocks in self._layer_blocks(m, pieces.pop(m), n, d, budget):
                size = sum(pd.jac.numel() * pd.jac.element_size() for pd in blocks)
                if bundle and held + size > budget:
                    yield bundle
                    bundle, held = [], 0
                bundle += blocks
                held += size
        if bundle:
            yield bundle

    def _backward(self, x: Tensor, d: int, layers: list[str]):
        """The ``δ`` of every ruled layer for the ``d`` unit cotangents, and the batch
        gradients the check compares with: one forward pass with the layers' inputs and
        outputs recorded, one backward pass of ``Σ_n rᵀh_n`` for a fixed random mix ``r``
        of the cotangents to the ruled parameters (``{name: gradient}``: a rule that
        misses a use of its parameter differs there for every ``r`` but a set of measure
        zero), and one batched backward pass of the ``d`` unit cotangents to the recorded
        outputs (``{layer: [(z, δ [d, n, …]), …]}``). (Replicating the inputs ``d`` times
        for a plain backward pass instead was measured slower: ``d`` forward passes.)"""
        view = self.view
        n = x.shape[0]
        records: dict[str, list] = {m: [] for m in layers}
        anchor = torch.zeros((), dtype=view.dtype, device=view.device, requires_grad=True)

        def recorder(mname):
            def hook(module, args, result):
                out = result + anchor  # a node of its own: δ arrives here
                records[mname].append((args[0].detach(), out))
                # the model goes on with a copy: an in-place operation after the layer
                # (ReLU(inplace=True)) must not move δ past itself
                return out.clone()

            return hook

        names = [p for m in layers for p in self.owned[m].values() if self.routes[p] == LAYER_RULE]
        params = {p: self.view.params[p].detach().requires_grad_(True) for p in names}
        handles = [self.layers[m].register_forward_hook(recorder(m)) for m in layers]
        try:
            h = view.batch(params, x)
        finally:
            for handle in handles:
                handle.remove()
        outs = [out for m in layers for _, out in records[m]]
        mix = torch.randn(d, generator=torch.Generator().manual_seed(MIX_SEED), dtype=h.dtype)
        mix = mix.to(h.device)
        batch = torch.autograd.grad(
            h, list(params.values()), grad_outputs=mix.expand(n, d), retain_graph=True,
            allow_unused=True,
        )  # fmt: skip
        batch_grads = {
            p: None if g is None else g.detach() for p, g in zip(params, batch, strict=True)
        }
        cot = torch.eye(d, dtype=h.dtype, device=h.device)[:, None, :].expand(d, n, d)
        try:
            grads = torch.autograd.grad(
                h, outs, grad_outputs=cot, is_grads_batched=True, allow_unused=True
            )
        except RuntimeError:  # an operation without a batching rule: one pass per cotangent
            per = [
                torch.autograd.grad(h, outs, grad_outputs=cot[c], retain_graph=c < d - 1,
                                    allow_unused=True)
                for c in range(d)
            ]  # fmt: skip
            grads = [
                None if parts[0] is None else torch.stack(parts)
                for parts in zip(*per, strict=True)
            ]
        deltas = iter(grads)
        calls = {}
        for m in layers:
            calls[m] = []
            for z, out in records[m]:
                delta = next(deltas)
                if delta is None:  # the output did not reach h
                    delta = torch.zeros((d, *out.shape), dtype=out.dtype, device=out.device)
                calls[m].append((z, delta.detach()))
        return calls, batch_grads, mix, n

    def _layer_pieces(self, mname: str, calls: list, n: int, d: int, mix: Tensor) -> dict:
        """``{attr: (kind, left [n, d, T, o], right, mixed, scale)}`` of a layer, its calls'
        positions side by side (the kinds of :func:`fishsym.engine.sumsq._pieces`);
        ``mixed`` and ``scale`` the left side for ``Σ_c r_c δ_c`` and ``Σ_c |r_c||δ_c|``
        (``[n, T, o]``, for the check)."""
        module = self.layers[mname]
        prefix = f"{mname}." if mname else ""
        stats = tuple(self.view.constants.get(prefix + b) for b in ("running_mean", "running_var"))
        own = {a: p for a, p in self.owned[mname].items() if self.routes[p] == LAYER_RULE}
        out = {}
        per_call = []
        for z, delta in calls:
            rights = input_pieces(module, z, stats)
            # the d cotangents as d·n rows of one δ, then [n, d, T, …]
            lefts = delta_pieces(module, delta.reshape(d * n, *delta.shape[2:]), d * n, rights)
            # for the check: δ mixed by r, and its scale Σ_c |r_c||δ_c|
            mixed = delta_pieces(module, torch.tensordot(mix, delta, 1), n, rights)
            scale = delta_pieces(module, torch.tensordot(mix.abs(), delta.abs(), 1), n, rights)
            per_call.append(
                {
                    attr: (
                        rights[attr][0],
                        lefts[attr].reshape(d, n, *lefts[attr].shape[1:]).transpose(0, 1),
                        rights[attr][1],
                        mixed[attr],
                        scale[attr],
                    )
                    for attr in own
                }
            )
        for attr in own:
            parts = [p[attr] for p in per_call]
            if not parts:
                out[attr] = None
                continue
            if len(parts) == 1:  # one call: nothing to put side by side
                out[attr] = parts[0]
                continue
            left = torch.cat([q[1] for q in parts], 2)
            right = None if parts[0][2] is None else torch.cat([q[2] for q in parts], 1)
            check = tuple(torch.cat([q[k] for q in parts], 1) for k in (3, 4))
            out[attr] = (parts[0][0], left, right, *check)
        return out

    def _prove(self, mname: str, pieces: dict, batch_grads: dict) -> bool:
        """Whether ``Σ_n u_nᵀr`` of each of the layer's parameters equals the batch
        gradient of ``Σ_n rᵀh_n`` to rounding; a parameter that fails moves to the
        per-input Jacobian."""
        module = self.layers[mname]
        ok = True
        for attr, piece in pieces.items():
            name = self.owned[mname][attr]
            shape = getattr(module, attr).shape
            batch = batch_grads.get(name)
            if piece is None:
                summed = size = None
            else:
                summed, size = _summed(piece, shape)
            if summed is None:  # the layer's output never reached h
                good = batch is None or bool((batch == 0).all())
            else:
                batch = torch.zeros_like(summed) if batch is None else batch
                batch = batch.reshape(summed.shape)
                eps = torch.finfo(summed.dtype).eps
                good = bool(((summed - batch).abs() <= PROOF_ULPS * eps * size).all())
            if not good:
                self.routes[name] = PER_INPUT_JACOBIAN
                ok = False
        return ok

    def _layer_blocks(self, mname: str, pieces: dict, n: int, d: int, budget: int):
        module = self.layers[mname]
        itemsize = torch.finfo(self.view.dtype).bits // 8
        for attr, piece in pieces.items():
            name = self.owned[mname][attr]
            shape = getattr(module, attr).shape
            if piece is None:  # the layer never reached h: u = 0
                yield [DenseDerivatives(name, shape, torch.zeros(n, d, shape.numel(),
                       dtype=self.view.dtype, device=self.view.device), None)]  # fmt: skip
                continue
            kind, left, right = piece[:3]
            if kind == "outer" and left.shape[2] == 1:
                # one position: the outer-product form, u = δ_c z_b (docs/theory.md §7)
                yield [LinearDerivatives(name, shape, left[:, :, 0, :], None, right[:, 0, :])]
            elif kind == "outer":
                o, i = left.shape[3], right.shape[2]
                rows = max(1, min(o, budget // max(1, n * d * i * itemsize)))
                for r0 in range(0, o, rows):
                    r1 = min(o, r0 + rows)
                    block = left[:, :, :, r0:r1].permute(0, 1, 3, 2).reshape(n, d * (r1 - r0), -1)
                    jac = torch.bmm(block, right).reshape(n, d, (r1 - r0) * i)
                    yield [DenseDerivatives(name, shape, jac, None, slice(r0 * i, r1 * i))]
            elif kind == "rows":
                yield from _row_blocks(name, shape, left, right, n, d, budget, itemsize)
            else:
                jac = left.sum(2) if right is None else (left * right[:, None]).sum(2)
                yield [DenseDerivatives(name, shape, jac, None)]


def _summed(piece: tuple, shape: torch.Size) -> tuple[Tensor, Tensor]:
    """``Σ_n u_nᵀr`` of a layer's piece (flattened like the parameter), and the sum of the
    absolute values of the products it adds (its rounding scale)."""
    kind, _, right, left_r, left_a = piece
    if kind == "outer":
        o, i = left_r.shape[-1], right.shape[-1]
        summed = left_r.reshape(-1, o).T @ right.reshape(-1, i)
        size = left_a.reshape(-1, o).T @ right.reshape(-1, i).abs()
    elif kind == "rows":
        w = left_r.shape[-1]
        ids = right.reshape(-1)
        summed = torch.zeros(shape[0], w, dtype=left_r.dtype, device=left_r.device)
        size = torch.zeros_like(summed)
        summed.index_add_(0, ids, left_r.reshape(-1, w))
        size.index_add_(0, ids, left_a.reshape(-1, w))
    elif right is None:
        summed, size = left_r.sum((0, 1)), left_a.sum((0, 1))
    else:
        summed, size = (left_r * right).sum((0, 1)), (left_a * right.abs()).sum((0, 1))
    return summed.reshape(-1), size.reshape(-1)


def _row_blocks(name, shape, left, ids, n, d, budget, itemsize):
    """An embedding's ``u``: per input, ``δ_t`` added into the row of token ``t``. Only
    the rows some input of the chunk uses are formed (the others have ``u = 0`` and add
    nothing), in blocks of rows."""
    w = left.shape[3]
    unique, inverse = torch.unique(ids.reshape(-1), return_inverse=True)
    inverse = inverse.reshape(ids.shape)  # [n, T] → index into unique
    rows = max(1, budget // max(1, n * d * w * itemsize))
    cols = torch.arange(w, device=ids.device)
    for r0 in range(0, unique.shape[0], rows):
        r1 = min(unique.shape[0], r0 + rows)
        jac = torch.zeros(n, d, r1 - r0, w, dtype=left.dtype, device=left.device)
        inside = (inverse >= r0) & (inverse < r1)  # [n, T]
        nn_, tt = inside.nonzero(as_tuple=True)
        # input n, position t adds δ[n, :, t] into its token's row
        flat = jac.permute(0, 2, 1, 3)  # [n, r, d, w]
        flat.index_put_((nn_, inverse[nn_, tt] - r0), left[nn_, :, tt, :], accumulate=True)
        entries = (unique[r0:r1, None] * w + cols).reshape(-1)
        yield [DenseDerivatives(name, shape, jac.reshape(n, d, -1), None, entries)]


__all__ = ["LAYER_RULE", "PER_INPUT_JACOBIAN", "LayerJacobians"]
