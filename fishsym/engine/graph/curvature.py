"""The graph path's second route: ``w`` from the curvature sources (docs/theory.md §7, §10).

Where every curved operation that depends on a parameter is an elementwise ``z = σ(a')``,

    w_i[c] = Σ_k ρ_ck (∂a'_k/∂θ_i)²,    ρ_ck = σ''(a'_k) · ∂h_c/∂z_k,

exact from one reverse pass per output, and per curved unit ``k`` and input. The same
passes give the factors ``G = ∂h/∂a``, ``S`` and ``z`` of the factorised Linear layers.
:class:`CurvatureSources` holds this route for :class:`~fishsym.engine.graph.GraphModel`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from fishsym.common import cast_inputs, math_attention
from fishsym.engine.graph.analysis import (
    CURVATURE_SOURCES,
    ELEMENTWISE_CURVED,
    _packet,
    largest_activation,
)

#: fraction of the memory budget the per-chunk Jacobians (and the passes here) may take
JACOBIAN_SHARE = 0.5


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Raised by :class:`_Run` with the input of the source it was asked to stop at."""

    def __init__(self, value):
        super().__init__("stop")
        self.value = value


class _Run(torch.fx.Interpreter):
    """Runs the traced graph with ``eps[k]`` added to the output of curved source ``k``
    (recording its input ``a'_k``) and ``lin_eps[l]`` to the output of factorised Linear
    layer ``l`` (recording its input ``z``); with ``stop``, ends at source ``stop``
    raising :class:`_Stop` with its input (so that a reverse pass covers only the graph
    above it)."""

    def __init__(self, gm, sources, eps, stop=None, linear=(), lin_eps=None):
        super().__init__(gm, garbage_collect_values=True)
        self.index = {node: k for k, node in enumerate(sources)}
        self.eps = eps
        self.stop = None if stop is None else sources[stop]
        self.pre: list[Tensor | None] = [None] * len(sources)
        self.lin = {lay.node: (i, lay.z_pos) for i, lay in enumerate(linear)}
        self.lin_eps = lin_eps
        self.z: list[Tensor | None] = [None] * len(linear)

    def run_node(self, n):
        k = self.index.get(n)
        if k is not None and n is self.stop:
            raise _Stop(self.env[n.args[0]])
        out = super().run_node(n)
        if k is not None:
            self.pre[k] = self.env[n.args[0]]
            if self.eps is not None:
                out = out + self.eps[k]
        lin = self.lin.get(n)
        if lin is not None:
            self.z[lin[0]] = self.env[n.args[lin[1]]]
            if self.lin_eps is not None and self.lin_eps[lin[0]] is not None:
                out = out + self.lin_eps[lin[0]]
        return out


def second_derivative(node, a: Tensor) -> Tensor:
    """``σ''(a)`` of the elementwise source ``node`` (its constants from the graph)."""
    packet = _packet(node.target)
    stable = ELEMENTWISE_CURVED.get(packet)
    args = tuple(node.args)
    if stable is not None:
        try:
            value = stable(args, dict(node.kwargs), a)
        except TypeError:
            value = None
        if value is not None:
            return value
    consts = args[1:]

    def sigma(t):
        return node.target(t, *consts, **node.kwargs)

    def first(t):
        return vjp(sigma, t)[1](torch.ones_like(t))[0]

    return vjp(first, a)[1](torch.ones_like(a))[0]


class CurvatureSources:
    """The curvature-source route of :class:`~fishsym.engine.graph.GraphModel` (its
    ``analysis``, ``params``, ``names``, ``dtype``, ``view``, ``budget``,
    ``second_order`` and ``_factorised()``)."""

    def second_pass(self, x: Tensor, d: int):
        """``w`` of the ``CURVATURE_SOURCES`` parameters and the factors of the factorised
        Linear layers (docs/theory.md §7, §10): ``w[c] = Σ_k ρ_ck (∂a'_k/∂θ)²`` with
        ``ρ_ck = σ''(a'_k)·∂h_c/∂z_k``.

        ``∂h/∂z`` for every curved unit and ``G = ∂h/∂a`` for every factorised layer come
        from ``d`` reverse passes per input (``eps`` added at those nodes). The Jacobian of
        each source's pre-activations ``a'`` — with respect to the parameters it depends
        on, and to the outputs ``a`` of the factorised layers above it (``S = Σ ρ
        (∂a'/∂a)²``) — by passes through the part of the graph above that source only:
        reverse over its units, or forward over the entries where those are fewer.

        Returns ``({name: w [n, d, numel]}, [(G [n, d, out], S [n, d, out], z [n, in])])``.
        """
        analysis = self.analysis
        factorised = self._factorised()
        wanted = [
            n
            for n in self.names
            if analysis.routes[n] == CURVATURE_SOURCES and n not in factorised and self.second_order
        ]
        linear = analysis.linear
        if not wanted and not linear:
            return {}, []
        gm, sources = analysis.graph, analysis.sources
        xs = cast_inputs(x, self.dtype, self.view.device)
        order = self.names
        shapes = [tuple(s.meta["val"].shape) for s in sources]
        sizes = [math.prod(s) for s in shapes]
        lin_shapes = [tuple(lay.node.meta["val"].shape) for lay in linear]
        lin_sizes = [math.prod(s) for s in lin_shapes]
        offsets, start = {}, 0
        for n in wanted:
            offsets[n] = start
            start += self.params[n].numel()
        itemsize = torch.finfo(self.dtype).bits // 8
        largest = largest_activation(gm)
        share = int(JACOBIAN_SHARE * self.budget)

        def values(xi, eps, lin_eps=None, stop=None, replaced=None):
            args = [
                replaced[n] if replaced is not None and n in replaced else self.params[n]
                for n in order
            ]
            run = _Run(gm, sources, eps, stop, linear, lin_eps)
            try:
                h = run.run(*args, xi)
            except _Stop as done:
                return done.value
            return h, run.pre, run.z

        def only(layers, tensors):
            full = [None] * len(linear)
            for i, t in zip(layers, tensors, strict=True):
                full[i] = t
            return full

        def per_input(xi: Tensor):
            dtype, device = self.dtype, xi.device
            eps0 = [torch.zeros(s, dtype=dtype, device=device) for s in shapes]
            lin0 = [torch.zeros(s, dtype=dtype, device=device) for s in lin_shapes]
            (h, pre, zs), pull = vjp(lambda e, le: values(xi, e, le), eps0, lin0)
            n_out = h.shape[0]
            eye_d = torch.eye(n_out, dtype=h.dtype, device=device)
            cot = ([torch.zeros_like(a) for a in pre], [torch.zeros_like(z) for z in zs])
            g_eps, g_lin = vmap(lambda c: pull((c, *cot)))(eye_d)
            acc: dict[str, Tensor] = {}
            s_acc: list[Tensor | None] = [None] * len(linear)

            def add(store, key, term):
                store[key] = term if store[key] is None else store[key] + term

            for s, node in enumerate(sources if self.second_order else ()):
                rho = g_eps[s].reshape(n_out, -1) * second_derivative(
                    node, pre[s].detach()
                ).reshape(1, -1)  # [d, units of s]
                mine = analysis.source_params[s]
                numel = sum(self.params[n].numel() for n in mine)
                if mine and numel < sizes[s]:
                    # fewer parameter entries than curved units: forward mode, one tangent
                    # per entry (first-order jvp only), each giving ∂a'/∂θ_i for all units
                    for n in mine:
                        term = self._forward_jacobian_sq(
                            values, xi, eps0, s, n, rho, share, len(xs), sizes[s] + 2 * largest
                        )
                        acc[n] = acc[n] + term if n in acc else term
                elif mine:
                    pc = {n: self.params[n] for n in mine}
                    a_s, pull_s = vjp(lambda p, s=s: values(xi, eps0, None, s, p), pc)
                    kc = share // max(1, len(xs) * (numel + 2 * largest) * itemsize)
                    kc = max(1, min(sizes[s], kc))
                    for k0 in range(0, sizes[s], kc):
                        k1 = min(sizes[s], k0 + kc)
                        basis = torch.zeros(k1 - k0, sizes[s], dtype=h.dtype, device=device)
                        basis[torch.arange(k1 - k0), torch.arange(k0, k1)] = 1
                        (jp,) = vmap(lambda e, f=pull_s, a=a_s: f(e.reshape(a.shape)))(basis)
                        for n in mine:
                            j = jp[n].reshape(k1 - k0, -1)
                            term = rho[:, k0:k1] @ (j * j)
                            acc[n] = acc[n] + term if n in acc else term
                ups = analysis.source_layers[s]
                if not ups:
                    continue
                if sum(lin_sizes[i] for i in ups) < sizes[s]:
                    for i in ups:
                        basis = torch.eye(lin_sizes[i], dtype=h.dtype, device=device)

                        def column(t, i=i, s=s):
                            def f(e):
                                return values(xi, eps0, only([i], [e]), s)

                            return jvp(f, (lin0[i],), (t.reshape(lin_shapes[i]),))[1]

                        cols = vmap(column)(basis).reshape(lin_sizes[i], -1)  # [units_l, k]
                        add(s_acc, i, rho @ (cols * cols).T)
                    continue
                a_s, pull_s = vjp(
                    lambda *le, s=s, ups=ups: values(xi, eps0, only(ups, le), s),
                    *[lin0[i] for i in ups],
                )
                per = sum(lin_sizes[i] for i in ups) + 2 * largest
                kc = max(1, min(sizes[s], share // max(1, len(xs) * per * itemsize)))
                for k0 in range(0, sizes[s], kc):
                    k1 = min(sizes[s], k0 + kc)
                    basis = torch.zeros(k1 - k0, sizes[s], dtype=h.dtype, device=device)
                    basis[torch.arange(k1 - k0), torch.arange(k0, k1)] = 1
                    grads = vmap(lambda e, f=pull_s, a=a_s: f(e.reshape(a.shape)))(basis)
                    for i, g in zip(ups, grads, strict=True):
                        g = g.reshape(k1 - k0, -1)
                        add(s_acc, i, rho[:, k0:k1] @ (g * g))
            w = torch.cat(
                [acc.get(n, h.new_zeros(n_out, self.params[n].numel())) for n in wanted]
                or [h.new_zeros(n_out, 0)],
                dim=1,
            )
            G = [g.reshape(n_out, -1) for g in g_lin]
            S = [
                s_acc[i] if s_acc[i] is not None else h.new_zeros(n_out, lin_sizes[i])
                for i in range(len(linear))
            ]
            Z = [z.reshape(-1) for z in zs]
            return w, G, S, Z

        with math_attention():
            w, G, S, Z = vmap(per_input)(xs)  # [n, d, P], then per layer [n, d, out], [n, in]
        hess = {
            n: w[:, :, offsets[n] : offsets[n] + self.params[n].numel()].detach() for n in wanted
        }
        layers = [(g.detach(), s.detach(), z.detach()) for g, s, z in zip(G, S, Z, strict=True)]
        return hess, layers

    def _forward_jacobian_sq(self, values, xi, eps0, s, name, rho, share, n_inputs, per):
        """``Σ_k ρ_ck (∂a'_k/∂θ_i)²`` ``[d, numel]`` for the entries of parameter ``name``
        and source ``s``, by forward-mode tangents (one per entry, in chunks)."""
        theta = self.params[name]
        itemsize = torch.finfo(self.dtype).bits // 8
        kc = max(1, min(theta.numel(), share // max(1, n_inputs * per * itemsize)))
        parts = []
        for k0 in range(0, theta.numel(), kc):
            k1 = min(theta.numel(), k0 + kc)
            basis = torch.zeros(k1 - k0, theta.numel(), dtype=theta.dtype, device=theta.device)
            basis[torch.arange(k1 - k0), torch.arange(k0, k1)] = 1
            basis = basis.reshape(k1 - k0, *theta.shape)

            def column(t, name=name):
                return jvp(lambda p: values(xi, eps0, None, s, {name: p}), (theta,), (t,))[1]

            j = vmap(column)(basis).reshape(k1 - k0, -1)  # [k, units]
            parts.append(rho @ (j * j).T)  # [d, k]
        return torch.cat(parts, dim=1)


__all__ = ["CurvatureSources", "JACOBIAN_SHARE", "second_derivative"]
