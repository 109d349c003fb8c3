"""Obviously correct float64 oracles for the variance tests (no closed forms of the engine).

* :func:`label_nodes`: the label distribution ``p(y|h)`` as weighted sufficient
  statistics ``(t_j, p_j)`` — exact enumeration for finite supports, Gauss–Hermite
  quadrature for Gaussian heads (exact for the polynomials of degree ≤ 8 used here),
  truncated summation with a negligible tail for Poisson. Moments of ``t`` follow from
  their definitions ``E[f(t)] = Σ_j p_j f(t_j)``.
* :func:`brute_derivatives`: ``u_i = ∂h/∂θ_i`` by autograd on ``h`` and
  ``w_i = ∂²h/∂θ_i²`` by double backward, one parameter entry at a time.
* :func:`reference`: ``I(θ_i|x)``, ``V₁``, ``V₂`` per input from those two, by docs/theory.md §2.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

#: Poisson labels summed up to this count; with log-rates ≤ 2 (rate ≤ 7.4) the tail mass
#: beyond it is below 1e-40, far under float64 resolution
POISSON_TRUNCATION = 80


def label_nodes(name: str, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``t_j`` ``[J, d]`` and ``p_j`` ``[J]`` with ``E f(t) = Σ_j p_j f(t_j)`` under ``p(y|h)``."""
    h = h.double()
    d = h.shape[0]
    if name == "categorical":
        return torch.eye(d, dtype=torch.float64), torch.softmax(h, 0)
    if name == "bernoulli":
        s = torch.sigmoid(h[0])
        return torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.stack([1 - s, s])
    if name == "poisson":
        y = torch.arange(POISSON_TRUNCATION, dtype=torch.float64)
        logp = y * h[0] - torch.exp(h[0]) - torch.lgamma(y + 1)
        return y[:, None], torch.exp(logp)
    if name == "gaussian":
        x, w = np.polynomial.hermite_e.hermegauss(3)
        grids = np.meshgrid(*([x] * d), indexing="ij")
        nodes = torch.tensor(np.stack([g.ravel() for g in grids], 1), dtype=torch.float64)
        wgrid = np.meshgrid(*([w / math.sqrt(2 * math.pi)] * d), indexing="ij")
        weights = torch.tensor(
            np.prod(np.stack([g.ravel() for g in wgrid], 1), 1), dtype=torch.float64
        )
        return h + nodes, weights
    if name == "gaussian_meanvar":
        var = -1 / (2 * h[1])
        mu = h[0] * var
        x, w = np.polynomial.hermite_e.hermegauss(5)
        y = mu + torch.sqrt(var) * torch.tensor(x, dtype=torch.float64)
        return torch.stack([y, y * y], 1), torch.tensor(
            w / math.sqrt(2 * math.pi), dtype=torch.float64
        )
    raise KeyError(name)


def moments(name: str, h: torch.Tensor):
    """``(I, m4)`` at ``h`` from the label nodes: ``I = Cov t`` ``[d, d]`` and the function
    ``m4(v) = E[((t−η)ᵀv)⁴]`` for ``v`` ``[d, K]``."""
    t, p = label_nodes(name, h)
    dt = t - p @ t
    fisher = dt.T @ (p[:, None] * dt)

    def m4(v):
        return p @ (dt @ v) ** 4

    return fisher, m4


def brute_derivatives(model: nn.Module, x: torch.Tensor):
    """``h`` ``[d]`` and ``{name: (u [d, P], w [d, P])}`` for one input ``x`` by autograd:
    ``u`` from one backward pass per output, ``w`` by a second backward pass per entry."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    h = model(x[None]).reshape(-1)
    d = h.shape[0]
    out = {}
    for name, p in params:
        u = torch.zeros(d, p.numel(), dtype=torch.float64)
        w = torch.zeros(d, p.numel(), dtype=torch.float64)
        for c in range(d):
            (g,) = torch.autograd.grad(h[c], p, create_graph=True, allow_unused=True)
            if g is None:
                continue
            g = g.reshape(-1)
            u[c] = g.detach()
            if not g.requires_grad:
                continue
            for i in range(p.numel()):
                (gg,) = torch.autograd.grad(g[i], p, retain_graph=True, allow_unused=True)
                if gg is not None:
                    w[c, i] = gg.reshape(-1)[i]
        out[name] = (u, w)
    return h.detach(), out


def reference(model: nn.Module, inputs: torch.Tensor, family: str):
    """Per-input ``fisher``, ``var1``, ``var2`` ``{name: [n, *shape]}`` and per-input
    spectral values, from :func:`brute_derivatives` and :func:`moments` (docs/theory.md §2)."""
    res = {"fisher": {}, "var1": {}, "var2": {}, "g_norm4": {}, "w_norm2": {}}
    shapes = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    rows = {k: {n: [] for n in shapes} for k in res}
    for x in inputs:
        h, uw = brute_derivatives(model, x)
        fisher, m4 = moments(family, h)
        for name, (u, w) in uw.items():
            f = ((fisher @ u) * u).sum(0)
            rows["fisher"][name].append(f)
            rows["var1"][name].append(m4(u) - f * f)
            rows["var2"][name].append(((fisher @ w) * w).sum(0))
            rows["g_norm4"][name].append((u * u).sum(0) ** 2)
            rows["w_norm2"][name].append((w * w).sum(0))
    for k in res:
        for name, shape in shapes.items():
            res[k][name] = torch.stack(rows[k][name]).reshape(len(inputs), *shape)
    return res


@pytest.fixture(scope="session")
def oracle():
    """The oracles of this module, for tests (and hypothesis tests) to call."""
    return SimpleNamespace(
        label_nodes=label_nodes,
        moments=moments,
        brute_derivatives=brute_derivatives,
        reference=reference,
    )
