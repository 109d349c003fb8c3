"""Per-label derivatives of the log-likelihood by plain autograd (the reference's only tool).

For one input ``x``, one label ``y`` and one selected parameter entry ``θ_p``:

* score      ``∂_p ℓ(y)``  — ``torch.func.grad`` of ``θ ↦ log p(y | h(x; θ))``;
* curvature  ``∂²_p ℓ(y) = e_pᵀ ∇²ℓ(y) e_p`` — reverse-over-reverse ("double backward"):
  the gradient of ``θ ↦ ⟨∇ℓ(θ), e_p⟩`` is the Hessian-vector product ``∇²ℓ e_p``, of
  which entry ``p`` is kept.

Both are vectorised with ``vmap`` over labels, inputs and (for the curvature) basis
vectors ``e_p``, in blocks whose memory is bounded by :data:`BLOCK_ELEMENTS`. Nothing
here knows the family's mean, Fisher information or moments: only ``kernel.log_prob``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import grad, vmap

from fishsym.reference.selection import FunctionalModel, ParamSelection

#: upper bound on the number of float entries a vectorised block may materialise
#: (per-label gradients of a whole parameter tensor); 2^24 float64 entries = 128 MiB
BLOCK_ELEMENTS = 2**24


def _log_likelihood(fmodel: FunctionalModel, kernel):
    def ell(replaced: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return kernel.log_prob(y, fmodel(replaced, x))

    return ell


def label_scores(
    fmodel: FunctionalModel, kernel, inputs: Tensor, labels: Tensor, sel: ParamSelection
) -> dict[str, Tensor]:
    """``∂_p ℓ(y_j | x_n)`` for every input, label and selected entry.

    ``inputs`` ``[n, ...]``, ``labels`` ``[n, J, *obs_shape]``.
    Returns ``{name: [n, J, k]}`` (``k`` selected entries of ``name``, flat order).
    """
    ell = _log_likelihood(fmodel, kernel)
    per_label = vmap(vmap(grad(ell), in_dims=(None, None, 0)), in_dims=(None, 0, 0))
    primals = {name: fmodel.params[name] for name in sel.names}
    numel = sum(p.numel() for p in primals.values())
    n, J = labels.shape[:2]
    step = max(1, BLOCK_ELEMENTS // max(1, J * numel))
    out: dict[str, list[Tensor]] = {name: [] for name in sel.names}
    for start in range(0, n, step):
        g = per_label(primals, inputs[start : start + step], labels[start : start + step])
        for name in sel.names:
            flat = g[name].reshape(*g[name].shape[:2], -1)
            out[name].append(flat[..., sel.flat_indices(name)])
    return {name: torch.cat(parts) for name, parts in out.items()}


def label_curvatures(
    fmodel: FunctionalModel, kernel, inputs: Tensor, labels: Tensor, sel: ParamSelection
) -> dict[str, Tensor]:
    """``∂²_p ℓ(y_j | x_n) = e_pᵀ ∇²ℓ e_p`` by double backward, every input/label/entry.

    Returns ``{name: [n, J, k]}``.
    """
    ell = _log_likelihood(fmodel, kernel)
    n, J = labels.shape[:2]
    out: dict[str, Tensor] = {}
    for name in sel.names:
        theta = fmodel.params[name]

        def second(w: Tensor, x: Tensor, y: Tensor, e: Tensor, name=name) -> Tensor:
            def ell_w(w_):
                return ell({name: w_}, x, y)

            def directional(w_):
                return (grad(ell_w)(w_) * e).sum()

            return (grad(directional)(w) * e).sum()

        per_entry = vmap(
            vmap(vmap(second, in_dims=(None, None, None, 0)), in_dims=(None, None, 0, None)),
            in_dims=(None, 0, 0, None),
        )  # -> [n, J, k]
        idx = sel.flat_indices(name)
        k_step = max(1, BLOCK_ELEMENTS // max(1, J * theta.numel() * 4))
        n_step = max(1, BLOCK_ELEMENTS // max(1, J * min(k_step, len(idx)) * theta.numel() * 4))
        rows = []
        for n0 in range(0, n, n_step):
            cols = []
            for k0 in range(0, len(idx), k_step):
                block = idx[k0 : k0 + k_step]
                basis = torch.zeros(
                    len(block), theta.numel(), dtype=theta.dtype, device=theta.device
                )
                basis[torch.arange(len(block)), block] = 1
                basis = basis.reshape(len(block), *theta.shape)
                cols.append(
                    per_entry(theta, inputs[n0 : n0 + n_step], labels[n0 : n0 + n_step], basis)
                )
            rows.append(torch.cat(cols, dim=-1))
        out[name] = torch.cat(rows)
    return out
