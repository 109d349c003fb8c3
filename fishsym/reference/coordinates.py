"""Derivatives along single coordinates, by forward-mode automatic differentiation — an
independent route to ``u``/``w`` and to per-label scores and curvatures that uses none of
the engine's closed forms.

The cross-checks and paper experiments need, for chosen coordinates, exact first and
second derivatives that do not go through the engine's closed forms:

* along a parameter entry ``θ_p``: ``u_p = ∂h/∂θ_p`` and ``w_p = ∂²h/∂θ_p²`` (docs/theory.md §1), or
  the score ``∂_p ℓ`` and curvature ``∂²_p ℓ`` of the log-likelihood of given labels;
* along a pre-activation unit ``a_l[a]`` of an MLP: ``G_l[:, a] = ∂h/∂a_l[a]`` and
  ``S_l[:, a] = ∂²h/∂a_l[a]²`` (docs/theory.md §7), from which every ``u`` and ``w`` of the layer
  follows: for ``W_l[a, b]``, ``u = G_l[:, a]·z_{l−1}[b]`` and ``w = S_l[:, a]·z_{l−1}[b]²``.

Both are second directional derivatives ``d²/dε² g(x + ε·e)`` at ``ε = 0``, computed as a
forward-mode derivative of a forward-mode derivative (``torch.func.jvp`` of ``jvp``):
one pass costs a few forward evaluations and never forms a Hessian. ``torch.func.vmap``
batches it over coordinates and inputs.

Every route evaluates the shared :class:`~fishsym.common.ModelView` (a private copy of
the model), never the user's model itself, and takes the one ``params`` vocabulary of
:mod:`fishsym.common.selection` (``None``, names, or ``{name: flat indices}``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import jacrev, jvp, vmap

from fishsym.common import ModelView, all_entries, sample_entries, select_params
from fishsym.engine.generic import FORWARD_VERIFIED, second_order_route
from fishsym.errors import ShapeError, UnsupportedModelError

#: coordinates processed in one vectorised pass (bounds the memory of a pass to about
#: this many copies of the largest parameter tensor)
COORD_CHUNK = 16

#: ``params`` of every entry / of sampled entries per tensor (the shared vocabulary)
all_coordinates = all_entries
sample_coordinates = sample_entries


def _view(model: nn.Module) -> ModelView:
    """The model's functional view in its own floating dtype."""
    first = next(iter(model.parameters()), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float64
    return ModelView(model, dtype)


def _second_directional(f: Callable[[torch.Tensor], torch.Tensor], eps: torch.Tensor):
    """``(f'(0), f''(0))`` of a function of the scalar ``eps`` (jvp of jvp)."""
    one = torch.ones_like(eps)

    def first(e):
        return jvp(f, (e,), (one,))[1]

    return jvp(first, (eps,), (one,))


def coordinate_derivatives(
    model: nn.Module,
    inputs: torch.Tensor,
    params=None,
    head: Callable | None = None,
    head_args: torch.Tensor | None = None,
    chunk_size: int = COORD_CHUNK,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """First and second derivatives of ``g_n(θ) = head(h(x_n; θ), a_n)`` along selected
    parameter entries.

    For each selected entry ``θ_p`` of parameter ``name`` and input ``x_n``:
    ``∂g_n/∂θ_p`` and ``∂²g_n/∂θ_p²`` (pure second derivative, one coordinate at a time).
    Without ``head``, ``g = h`` and these are ``u_p = ∂h/∂θ_p`` and ``w_p = ∂²h/∂θ_p²``.
    With ``head(h, a) = log p(a | h)`` for labels ``a`` they are the score ``∂_pℓ`` and the
    curvature ``∂²_pℓ`` of each label (docs/theory.md §1).

    Parameters
    ----------
    model: the network; its output for one input is ``h`` (shape ``[d]``).
    inputs: ``[n, *input_shape]``.
    params: the entries (``None``: all; names; or ``{name: flat indices}``, e.g. from
        :func:`sample_coordinates`).
    head: optional ``head(h [d], a) → tensor``, differentiable in ``h``.
    head_args: optional ``[n, …]``, row ``n`` passed to ``head`` as ``a`` for input ``n``.

    Returns
    -------
    dict: name → ``(first, second)``, each ``[n, k, *out]`` with ``k`` the number of
    selected entries and ``out`` the shape of ``head``'s result (``[d]`` without head).
    """
    if inputs.ndim < 1:
        raise ShapeError(
            f"inputs must have a leading input dimension; got shape {tuple(inputs.shape)}"
        )
    if head_args is not None and head_args.shape[0] != inputs.shape[0]:
        raise ShapeError(
            f"head_args must have one row per input ({inputs.shape[0]}); got shape "
            f"{tuple(head_args.shape)}"
        )
    sel = select_params(model, params)
    if second_order_route(model) != "forward-over-forward":
        unverified = sorted(
            {type(m).__name__ for m in model.modules()} - {"Sequential"}
            - {t.__name__ for t in FORWARD_VERIFIED}
        )
        raise UnsupportedModelError(
            f"coordinate_derivatives differentiates twice in forward mode, which is verified "
            f"only for the module types of fishsym.engine.generic.FORWARD_VERIFIED; this "
            f"model also has {unverified} — use fishsym.reference.exact_moments (double "
            "backward) instead"
        )
    view = _view(model)
    out = {}
    for name in sel.names:
        idx = sel.flat_indices(name)
        base = view.params[name]
        flat = base.reshape(-1)
        positions = torch.arange(flat.numel(), device=flat.device)

        def g(eps, i, x, a, name=name, base=base, flat=flat, positions=positions):
            mask = (positions == i).to(flat.dtype)
            h = view.single({name: (flat + eps * mask).reshape(base.shape)}, x)
            return h if head is None else head(h, a)

        def per_pair(i, x, a, g=g, dtype=flat.dtype):
            eps = torch.zeros((), dtype=dtype)
            return _second_directional(lambda e: g(e, i, x, a), eps)

        # without head_args, a placeholder row per input keeps one vmap signature
        args = head_args if head_args is not None else torch.zeros(inputs.shape[0])
        over_inputs = vmap(per_pair, in_dims=(None, 0, 0))
        first, second = vmap(over_inputs, in_dims=(0, None, None), chunk_size=chunk_size)(
            idx, inputs, args
        )
        # vmap stacked coordinates first: [k, n, ...] → [n, k, ...]
        out[name] = (first.transpose(0, 1).detach(), second.transpose(0, 1).detach())
    return out


#: largest parameter count the dense route accepts: it forms a P × P Hessian per input
#: and output (allowed for small models only)
DENSE_MAX_PARAMS = 4096


def dense_derivatives(
    model: nn.Module, inputs: torch.Tensor
) -> tuple[list[tuple[str, torch.Size]], torch.Tensor, torch.Tensor]:
    """``u`` and ``w`` of **every** parameter entry, for small models (reverse-over-reverse AD).

    Returns
    -------
    ``(layout, jac, hess_diag)``: ``layout`` lists ``(name, shape)`` in the order of the
    flattened parameter vector; ``jac[n, c, p] = ∂h_c/∂θ_p`` and
    ``hess_diag[n, c, p] = ∂²h_c/∂θ_p²``, each ``[n, d, P]``.

    Raises :class:`UnsupportedModelError` above ``DENSE_MAX_PARAMS`` parameters (it forms
    the ``P × P`` Hessian of each output per input); use :func:`coordinate_derivatives`.
    """
    view = _view(model)
    params = view.params
    layout = [(name, p.shape) for name, p in params.items()]
    total = sum(p.numel() for p in params.values())
    if total > DENSE_MAX_PARAMS:
        raise UnsupportedModelError(
            f"dense_derivatives forms a {total} × {total} Hessian per input; it accepts at most "
            f"{DENSE_MAX_PARAMS} parameters — use coordinate_derivatives for larger models"
        )
    flat = torch.cat([p.reshape(-1) for p in params.values()])

    def h_of(vec, x):
        out, start = {}, 0
        for name, shape in layout:
            k = int(torch.Size(shape).numel())
            out[name] = vec[start : start + k].reshape(shape)
            start += k
        return view.single(out, x)

    jac = vmap(jacrev(h_of), in_dims=(None, 0))(flat, inputs)  # [n, d, P]
    hess = vmap(jacrev(jacrev(h_of)), in_dims=(None, 0))(flat, inputs)  # [n, d, P, P]
    return layout, jac, hess.diagonal(dim1=-2, dim2=-1)


def label_derivatives(model: nn.Module, inputs: torch.Tensor, kernel, labels: torch.Tensor):
    """Score ``∂_pℓ`` and curvature ``∂²_pℓ`` of given labels, every entry of a small model.

    ``ℓ(y, h(θ))`` is differentiated by the chain rule with each factor from autograd:
    ``u``, ``w`` of the network (:func:`dense_derivatives`) and the gradient ``g`` and
    Hessian ``H`` of ``kernel.log_prob`` in ``h``:
    ``∂_pℓ = gᵀu_p``, ``∂²_pℓ = u_pᵀH u_p + gᵀw_p``.

    Parameters
    ----------
    labels: ``[n, K, *obs_shape]`` — ``K`` labels per input.

    Returns
    -------
    ``(layout, score, curv)`` with ``score``/``curv`` ``[n, K, P]`` (``layout`` as in
    :func:`dense_derivatives`).
    """
    layout, jac, hess_diag = dense_derivatives(model, inputs)
    n, d, _ = jac.shape
    K = labels.shape[1]
    h = _view(model).outputs(inputs)
    h_rep = h[:, None, :].expand(n, K, d).clone().requires_grad_(True)
    log_p = kernel.log_prob(labels, h_rep)
    (g,) = torch.autograd.grad(log_p.sum(), h_rep, create_graph=True)
    rows = [
        torch.autograd.grad(g[..., c].sum(), h_rep, retain_graph=c < d - 1)[0] for c in range(d)
    ]
    H = torch.stack(rows, dim=-2).detach()  # [n, K, d, d]
    g = g.detach()
    score = torch.einsum("ncp,nkc->nkp", jac, g)
    curv = torch.einsum("ncp,nkce,nep->nkp", jac, H, jac) + torch.einsum(
        "ncp,nkc->nkp", hess_diag, g
    )
    return layout, score, curv


def split_flat(layout, values: torch.Tensor) -> dict[str, torch.Tensor]:
    """``[..., P]`` values over the flattened parameters → name → ``[..., *shape]``."""
    out, start = {}, 0
    for name, shape in layout:
        k = int(torch.Size(shape).numel())
        out[name] = values[..., start : start + k].reshape(values.shape[:-1] + tuple(shape))
        start += k
    return out


# ---------------------------------------------------------------------- MLP unit view
@dataclass
class LinearLayerUnits:
    """Per-unit derivatives of one ``Linear`` layer of an MLP, for a batch of inputs.

    With ``a = W z + b`` the layer's pre-activation and ``h`` the network output:

    * ``z_in``: ``[n, n_in]``, the layer input ``z_{l−1}``;
    * ``jac``: ``[n, d, n_out]``, ``G[n, c, a] = ∂h_c/∂a[a]``;
    * ``hess_diag``: ``[n, d, n_out]``, ``S[n, c, a] = ∂²h_c/∂a[a]²``.

    For ``W[a, b]``: ``u = G[:, :, a]·z_in[:, b]``, ``w = S[:, :, a]·z_in[:, b]²``; for
    ``b[a]``: ``u = G[:, :, a]``, ``w = S[:, :, a]`` (docs/theory.md §7).
    """

    name: str
    weight: str
    bias: str | None
    z_in: torch.Tensor
    jac: torch.Tensor
    hess_diag: torch.Tensor


def linear_layers(model: nn.Module) -> list[tuple[int, str]]:
    """``(position, name)`` of each ``nn.Linear`` in an ``nn.Sequential`` whose only
    parametrised modules are ``nn.Linear``; raises :class:`UnsupportedModelError` otherwise."""
    if not isinstance(model, nn.Sequential):
        raise UnsupportedModelError(
            f"the MLP unit view needs an nn.Sequential of Linear layers and elementwise "
            f"activations; got {type(model).__name__}"
        )
    out = []
    for pos, (name, module) in enumerate(model.named_children()):
        if isinstance(module, nn.Linear):
            out.append((pos, name))
        elif any(True for _ in module.parameters()):
            raise UnsupportedModelError(
                f"module {name!r} ({type(module).__name__}) has parameters but is not "
                "nn.Linear; the MLP unit view handles Linear layers and parameter-free "
                "elementwise modules only"
            )
    if not out:
        raise UnsupportedModelError("the model has no nn.Linear layer")
    return out


def mlp_unit_derivatives(
    model: nn.Sequential, inputs: torch.Tensor, chunk_size: int = 64
) -> list[LinearLayerUnits]:
    """:class:`LinearLayerUnits` of every ``Linear`` layer of an ``nn.Sequential`` MLP.

    ``G`` and ``S`` are second directional derivatives of the rest of the network along
    each unit's pre-activation, by forward-mode AD (no Hessian is formed).

    Returns
    -------
    list (one entry per ``Linear``, input to output) of :class:`LinearLayerUnits`, with
    tensors shaped ``[n, n_in]``, ``[n, d, n_out]``, ``[n, d, n_out]``.
    """
    layers = linear_layers(model)
    # a private copy: the unit view calls the layers directly, never the user's modules
    modules = [copy.deepcopy(m) for m in model.children()]
    result = []
    z = inputs
    start = 0
    for pos, name in layers:
        for module in modules[start:pos]:
            z = module(z)
        z = z.reshape(z.shape[0], -1) if z.ndim > 2 else z
        lin = modules[pos]
        pre = lin(z).detach()
        rest = nn.Sequential(*modules[pos + 1 :])
        n_out = pre.shape[1]
        units = torch.arange(n_out)

        def per_pair(i, a_row, rest=rest, units=units):
            mask = (units == i).to(a_row.dtype)
            eps = torch.zeros((), dtype=a_row.dtype)
            return _second_directional(
                lambda e: rest((a_row + e * mask).unsqueeze(0)).squeeze(0), eps
            )

        over_inputs = vmap(per_pair, in_dims=(None, 0))
        first, second = vmap(over_inputs, in_dims=(0, None), chunk_size=chunk_size)(units, pre)
        # [n_out, n, d] → [n, d, n_out]
        result.append(
            LinearLayerUnits(
                name=name,
                weight=f"{name}.weight",
                bias=f"{name}.bias" if lin.bias is not None else None,
                z_in=z.detach(),
                jac=first.permute(1, 2, 0).detach().contiguous(),
                hess_diag=second.permute(1, 2, 0).detach().contiguous(),
            )
        )
        z = pre
        start = pos + 1
    return result


__all__ = [
    "DENSE_MAX_PARAMS",
    "dense_derivatives",
    "label_derivatives",
    "split_flat",
    "COORD_CHUNK",
    "all_coordinates",
    "sample_coordinates",
    "coordinate_derivatives",
    "LinearLayerUnits",
    "linear_layers",
    "mlp_unit_derivatives",
]
