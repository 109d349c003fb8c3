"""The graph path's engine: ``u`` per input (layer rules or ``vmap(jacrev)``) and ``w`` by
the route the analysis proved for each parameter (:mod:`fishsym.engine.graph`)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

from fishsym.common import ModelView, cast_inputs, check_memory, math_attention, memory_budget
from fishsym.engine.derivatives import DenseDerivatives, LinearDerivatives, ParamDerivatives
from fishsym.engine.generic import GenericModel, GenericPathWarning
from fishsym.engine.graph.analysis import (
    CURVATURE_SOURCES,
    SECOND_ORDER,
    STRUCTURAL_ZERO,
    GraphAnalysis,
    analyse,
    largest_activation,
    trace,
)
from fishsym.engine.graph.cache import KEPT, fingerprint, still_computes
from fishsym.engine.graph.curvature import JACOBIAN_SHARE, CurvatureSources, _Run
from fishsym.engine.layerwise import LAYER_RULE, PER_INPUT_JACOBIAN, LayerJacobians
from fishsym.errors import UnsupportedModelError

#: most inputs one step takes (the vectorised passes gain little beyond)
MAX_INPUT_CHUNK = 512
#: cotangents (curved units) per input one curvature-source pass should carry at least
SOURCE_CHUNK = 64
#: second-order passes projected to take longer than this (seconds) warn with the estimate
SECOND_ORDER_WARN_SECONDS = 60.0


class GraphModel(CurvatureSources):
    """The graph path: per-input Jacobians for ``u`` and the routes of the module
    docstring for ``w``, on the private copy of a :class:`~fishsym.common.ModelView`.

    Parameters
    ----------
    view:
        The model's functional view (an ``nn.Module`` is wrapped in one, in ``dtype``).
    dtype:
        Working dtype when ``view`` is a module.
    """

    #: the name of this engine in results (``FisherVariances.path``)
    path = "graph"
    #: derivatives by torch.func transforms: autograd must stay on
    no_grad = False
    #: why the structured path did not apply (set by :func:`fishsym.engine.select`)
    fallback_reason = None
    #: compute ``w`` (``False``: ``u`` only — no curvature source, no second-order pass)
    second_order = True
    #: the route of blocks that carry none (every block here carries its own)
    var2_route = SECOND_ORDER

    def __init__(self, view: ModelView | nn.Module, dtype: torch.dtype = torch.float64):
        if isinstance(view, nn.Module):
            view = ModelView(view, dtype)
        self.view = view
        self.model = view.model
        self.dtype = view.dtype
        self.params: dict[str, Tensor] = view.params
        self.names = list(self.params)
        self.analysis: GraphAnalysis | None = None
        self._generic: GenericModel | None = None
        self._warned = False
        self.budget = 256 * 2**20
        self.layerwise: LayerJacobians | None = None
        self._layerwise_checked = False

    # ------------------------------------------------------------------ analysis
    def analyse(self, x: Tensor) -> GraphAnalysis:
        """Trace on the first input of ``x`` and classify the parameters (once per model:
        module docstring)."""
        if self.analysis is None:
            xs = cast_inputs(x[:1], self.dtype, self.view.device)
            key = fingerprint(self.view, xs[0])
            kept = KEPT.get(self.view.model, {}).get(key)
            if kept is not None and still_computes(self.view, kept, xs[0]):
                self.analysis = kept
                self.retraced = False
                return kept
            self.retraced = True
            try:
                gm = trace(self.view, xs[0])
            except UnsupportedModelError as err:
                warnings.warn(
                    f"{err}; every w falls to second-order passes ({self._second().cost_note})",
                    GenericPathWarning,
                    stacklevel=4,
                )
                routes = dict.fromkeys(self.names, SECOND_ORDER)
                self.analysis = GraphAnalysis(None, routes, [], {"trace failed"})
            else:
                self.analysis = analyse(gm, self.names)
                try:
                    KEPT.setdefault(self.view.model, {})[key] = self.analysis
                except TypeError:  # a model that cannot be weakly referenced: not kept
                    pass
        return self.analysis

    @property
    def routes(self) -> dict[str, str]:
        """``{name: route of w}`` (after :meth:`analyse`)."""
        return dict(self.analysis.routes) if self.analysis is not None else {}

    @property
    def cost_note(self) -> str:
        """What a step costs (for progress and time warnings)."""
        note = "d reverse passes per input for u"
        if self.layerwise is not None:
            note = "one batched backward pass of d cotangents per chunk for u (layer rules)"
            if PER_INPUT_JACOBIAN in self.layerwise.routes.values():
                note += ", d reverse passes per input for the rest of u"
        if self.analysis is not None:
            kinds = set(self.analysis.routes.values())
            if CURVATURE_SOURCES in kinds:
                note += ", one reverse pass per curved unit and input for w"
            if SECOND_ORDER in kinds:
                note += f", {self._second().cost_note} for the rest of w"
        return note

    def _project(self, elapsed: float, done: int, total: int, n_inputs: int) -> None:
        """Warn once when the second-order passes of this step, projected from the entries
        done so far, will take longer than :data:`SECOND_ORDER_WARN_SECONDS`."""
        if self._warned or done >= total:
            return
        projected = elapsed * total / done
        if projected > SECOND_ORDER_WARN_SECONDS:
            self._warned = True
            warnings.warn(
                f"graph path: second-order passes for {total:,} parameter entries × "
                f"{n_inputs} inputs (softmax attention, normalisation or products of "
                f"activations need them: {sorted(self.analysis.unknown)}) will take about "
                f"{projected:.0f} s for this chunk of inputs ({self._second().cost_note}); "
                "pass fewer inputs for a quicker answer",
                GenericPathWarning,
                stacklevel=5,
            )

    def _second(self) -> GenericModel:
        if self._generic is None:
            self._generic = GenericModel(self.view)
        return self._generic

    def param_names(self) -> list[str]:
        """Names of the trainable parameters, in model order."""
        return list(self.names)

    def n_entries(self) -> int:
        """``P``, the number of trainable parameter entries."""
        return sum(p.numel() for p in self.params.values())

    # ------------------------------------------------------------------ engine protocol
    def prepare(self, x: Tensor) -> None:
        """Trace and classify the parameters on the first input of ``x``, and find the
        layers whose ``u`` comes layer by layer."""
        analysis = self.analyse(x)
        if self.layerwise is not None or self._layerwise_checked:
            return
        self._layerwise_checked = True
        factorised = self._factorised()
        eligible = [
            n
            for n in self.names
            if n not in factorised
            and (not self.second_order or analysis.routes[n] == STRUCTURAL_ZERO)
        ]
        x1 = cast_inputs(x[:1], self.dtype, self.view.device)
        # d from the view's probe where it ran (no forward pass for it)
        shape = getattr(self.view, "out_shape", None)
        d = math.prod(shape) if shape is not None else self.view.outputs(x1).shape[1]
        size = max(1, d) * sum(self.params[n].numel() for n in eligible)
        if eligible and size >= LAYERWISE_MIN_NUMBERS:
            layerwise = LayerJacobians(self.view, eligible)
            if layerwise.ruled():
                layerwise.per_input_bytes(x1)
            if layerwise.ruled():
                self.layerwise = layerwise

    @property
    def uniform_batches(self) -> bool:
        """Whether every list of blocks costs about the same (not with layer rules: their
        lists follow one backward pass for the whole chunk); the cost clock then times
        whole chunks."""
        return self.layerwise is None

    @property
    def jacobian_routes(self) -> dict[str, str]:
        """``{name: how u is formed}``: ``"layer rule"``, ``"per-input Jacobian"``, or
        ``"factorised Linear"`` (the reverse passes of the curvature sources)."""
        factorised = self._factorised() if self.analysis is not None else set()
        lw = self.layerwise.routes if self.layerwise is not None else {}
        return {
            n: "factorised Linear" if n in factorised else lw.get(n, PER_INPUT_JACOBIAN)
            for n in self.names
        }

    def _on_rule(self) -> set[str]:
        if self.layerwise is None:
            return set()
        return {n for n, r in self.layerwise.routes.items() if r == LAYER_RULE}

    def default_chunk(self, dtype: torch.dtype, budget: int, d: int = 1) -> int:
        """Inputs per step: the per-parameter Jacobians (``d × P`` each, a few copies; the
        factorised Linear layers need ``d × units`` and their inputs) within
        :data:`JACOBIAN_SHARE` of ``budget``."""
        self.budget = budget
        itemsize = torch.finfo(dtype).bits // 8
        factorised = self._factorised() if self.analysis is not None else set()
        skip = factorised | self._on_rule()
        dense = sum(p.numel() for n, p in self.params.items() if n not in skip)
        layers = self.analysis.linear if self.analysis is not None else []
        per_layer = sum(
            3 * max(1, d) * lay.node.meta["val"].numel() + self.params[lay.weight].shape[1]
            for lay in layers
        )
        per_input = (4 * max(1, d) * dense + per_layer + 1) * itemsize
        if self.layerwise is not None:
            per_input += self.layerwise.per_input_bytes(None, d, itemsize)
        if self.analysis is not None and self.analysis.sources:
            # the curvature-source passes carry SOURCE_CHUNK cotangents per input at a time
            per_input += SOURCE_CHUNK * 2 * largest_activation(self.analysis.graph) * itemsize
        # one input is the least a step takes: refuse what cannot fit this machine at all
        # (a language model's exact route has d = T·V cotangents per input) before allocating
        check_memory(
            per_input,
            memory_budget(None, self.view.device),
            f"the graph path's per-input Jacobians ({max(1, d):,} outputs × "
            f"{self.n_entries():,} parameter entries, one input)",
            "Sample instead: fishsym.diagonal_fisher (per-token labels for a language model), "
            "or select fewer outputs (output=) or parameters.",
        )
        return max(1, min(MAX_INPUT_CHUNK, int(JACOBIAN_SHARE * budget) // per_input))

    def steps(self, n_inputs: int, chunk: int, d: int) -> int:
        """Steps :meth:`batches` yields: one per chunk of inputs."""
        return -(-n_inputs // chunk)

    def output(self, x: Tensor) -> Tensor:
        """``h`` for a batch of inputs, ``[n, c]``."""
        with math_attention():
            return self.view.outputs(cast_inputs(x, self.dtype, self.view.device))

    def batches(self, x: Tensor, d: int):
        """``h`` ``[n, c]`` and an iterator of lists of blocks: the layer-rule blocks
        (one list per layer block), then one list with every other parameter."""
        self.prepare(x)
        if self.layerwise is None:
            # one list, formed now: its reverse passes give h as well
            h, rest = self._blocks(x, d)
            return (self.output(x) if h is None else h), iter([rest] if rest else [])
        return self.output(x), self._lists(x, d)

    def _lists(self, x: Tensor, d: int):
        if self.layerwise is not None:
            xs = cast_inputs(x, self.dtype, self.view.device)
            # a layer that fails its check moves to the per-input Jacobian before any
            # block is yielded, so the last list below covers it
            yield from self.layerwise.blocks(xs, d, max(2**20, self.budget // 8))
        rest = self.blocks(x, d, skip=self._on_rule())
        if rest:
            yield rest

    def _factorised(self) -> set[str]:
        """Parameters of the factorised Linear layers (their ``u`` never goes through a
        per-parameter Jacobian)."""
        return {n for lay in self.analysis.linear for n in (lay.weight, lay.bias) if n}

    def jacobians(self, x: Tensor, names: list[str] | None = None) -> dict[str, Tensor]:
        """``u`` of the parameters ``names`` (default: all) at every input of ``x``:
        ``{name: [n, d, numel]}``, from ``d`` reverse passes per input."""
        names = self.names if names is None else names
        if not names:
            return {}
        view = self.view
        xs = cast_inputs(x, self.dtype, view.device)

        def single(params, xi):
            return view.single(params, xi)

        primals = {n: self.params[n] for n in names}
        with math_attention():
            jac = vmap(jacrev(single), in_dims=(None, 0))(primals, xs)
        return {
            name: jac[name].reshape(xs.shape[0], -1, self.params[name].numel()).detach()
            for name in names
        }

    def _needs_curvature(self) -> bool:
        """Whether any ``w`` comes from the curvature sources (else the reverse passes of
        :meth:`_first_order` give everything: ``u``, and ``G``, ``z`` of the factorised
        Linear layers)."""
        if not self.second_order:
            return False
        routes = self.analysis.routes
        factorised = self._factorised()
        return any(
            routes[n] == CURVATURE_SOURCES for n in self.names if n not in factorised
        ) or any(routes[lay.weight] == CURVATURE_SOURCES for lay in self.analysis.linear)

    def _first_order(self, x: Tensor, names: list[str]):
        """``u`` of the parameters ``names`` (``{name: [n, d, numel]}``) and ``(G, None,
        z)`` of every factorised Linear layer, from the same ``d`` reverse passes per
        input through the traced graph: ``G = ∂h/∂a`` is the derivative along a zero added
        to the layer's output ``a``, and ``z`` its input, recorded on the way. Also returns
        ``h`` ``[n, d]`` of the same passes."""
        analysis = self.analysis
        gm, linear = analysis.graph, analysis.linear
        xs = cast_inputs(x, self.dtype, self.view.device)
        lin0 = [
            torch.zeros(lay.node.meta["val"].shape, dtype=self.dtype, device=xs.device)
            for lay in linear
        ]

        def single(primals, lin_eps, xi):
            args = [primals.get(n, self.params[n]) for n in self.names]
            run = _Run(gm, [], None, None, linear, lin_eps)
            h = run.run(*args, xi)
            return h, (h, [z.reshape(-1) for z in run.z])

        primals = {n: self.params[n] for n in names}
        with math_attention():
            (jac, g_lin), (h, zs) = vmap(
                jacrev(single, argnums=(0, 1), has_aux=True), in_dims=(None, None, 0)
            )(primals, lin0, xs)
        n = xs.shape[0]
        jac = {
            name: jac[name].reshape(n, -1, self.params[name].numel()).detach() for name in names
        }
        layers = [
            (g.reshape(n, g.shape[1], -1).detach(), None, z.detach())
            for g, z in zip(g_lin, zs, strict=True)
        ]
        return h.detach(), jac, layers

    def blocks(self, x: Tensor, d: int, skip=frozenset()) -> list[ParamDerivatives]:
        """One block per parameter (per entry chunk of a second-order parameter; one
        factorised block per Linear layer weight, as on the structured path), except the
        parameters ``skip`` (those whose ``u`` comes layer by layer)."""
        return self._blocks(x, d, skip)[1]

    def _blocks(self, x: Tensor, d: int, skip=frozenset()):
        """:meth:`blocks`, and ``h`` where their passes gave it (else ``None``)."""
        analysis = self.analyse(x)
        factorised = self._factorised()
        dense = [n for n in self.names if n not in factorised | skip]
        h = None
        if analysis.linear and not self._needs_curvature():
            # one set of reverse passes for u, h and the Linear layers' factors
            h, jac, layers = self._first_order(x, dense)
            hess = {}
        else:
            jac = self.jacobians(x, dense)
            hess, layers = self.second_pass(x, d)
        out: list[ParamDerivatives] = []
        second = sum(
            self.params[n].numel()
            for n in self.names
            if analysis.routes[n] == SECOND_ORDER and self.second_order
        )
        done = 0
        clock = time.perf_counter()
        for name in self.names:
            if name in factorised or name in skip:
                continue
            shape = self.params[name].shape
            route = analysis.routes[name]
            if not self.second_order:
                block = DenseDerivatives(name, shape, jac[name], None)
                out.append(block)
                continue
            if route == SECOND_ORDER:
                generic = self._second()
                k = generic.entry_chunk(len(x), name, d)
                for start in range(0, shape.numel(), k):
                    entries = slice(start, min(start + k, shape.numel()))
                    w = generic.block(x, name, entries, d).hess_diag
                    done += entries.stop - entries.start
                    self._project(time.perf_counter() - clock, done, second, len(x))
                    block = DenseDerivatives(name, shape, jac[name][:, :, entries], w, entries)
                    block.route = f"{SECOND_ORDER} ({generic.route})"
                    out.append(block)
                continue
            block = DenseDerivatives(name, shape, jac[name], hess.get(name))
            block.route = route
            out.append(block)
        for lay, (g, s, z) in zip(analysis.linear, layers, strict=True):
            route = analysis.routes[lay.weight]
            s = s if route == CURVATURE_SOURCES and self.second_order else None
            block = LinearDerivatives(lay.weight, self.params[lay.weight].shape, g, s, z)
            block.route = route
            out.append(block)
            if lay.bias is not None:
                block = DenseDerivatives(lay.bias, self.params[lay.bias].shape, g, s)
                block.route = route
                out.append(block)
        return h, out


#: the layer rules take over ``u`` from ``vmap(jacrev)`` where a per-input Jacobian of the
#: eligible parameters has at least this many numbers (``d × entries``). Measured (CPU, one
#: thread, float32, ``fisher_variances`` with ``var2=False``, 32 inputs; ReLU ResNets of
#: two basic blocks, width c on s×s inputs): below it ``vmap(jacrev)`` is faster — c = 16,
#: 16² (10 k entries) 0.11 s vs 0.17 s; c = 64, 16² (151 k) 0.77 s vs 0.94 s — above it the
#: rules are — c = 128, 8² (596 k) 2.0 s vs 1.5 s; ResNet-18 on 8 CIFAR-shaped inputs
#: (11.2 M) 14.7 s vs 2.0 s (its last stage is one output pixel: the outer-product form)
LAYERWISE_MIN_NUMBERS = 2**21


def blocks_of(engine, x: Tensor, d: int) -> Iterator[ParamDerivatives]:
    """Every block of ``engine`` for inputs ``x`` (tests)."""
    _, batches = engine.batches(x, d)
    for batch in batches:
        yield from batch


__all__ = ["GraphModel", "LAYERWISE_MIN_NUMBERS", "blocks_of"]
