"""Any architecture: ``u`` by a per-input Jacobian, ``w`` by the cheapest sound route
(docs/theory.md §10).

The model (its private copy, :class:`~fishsym.common.ModelView`) is traced once into a
graph of ATen operations (``torch.fx`` ``make_fx`` of the functionalised single-input
call, attention in its math form). The graph decides, **per parameter tensor**, how
``w_i = ∂²h/∂θ_i²`` is obtained:

* ``"structural zero"`` — ``h`` is piecewise linear in the tensor: every operation that
  depends on it is piecewise linear in all its tensor arguments (views, sums, ReLU
  family, max/avg pooling, padding, concatenation), or multilinear (matrix products,
  convolutions, products, batch normalisation in evaluation mode, embeddings) with at
  most **one** factor depending on it. Then ``w_i = 0`` for every entry (a.e.; autograd's
  convention at kinks) and nothing is computed. A parameter used twice in one product
  (tied weights, attention's ``q·k``), a curved activation or a normalisation downstream
  all defeat the proof — an unknown operation always does.
* ``"curvature sources"`` — every curved operation that depends on the tensor is an
  elementwise function ``z = σ(a')`` (tanh, sigmoid, GELU, SiLU, softplus, ELU, exp, …).
  The chain rule then leaves (docs/theory.md §10)

      w_i[c] = Σ_k ρ_ck (∂a'_k/∂θ_i)²,    ρ_ck = σ''(a'_k) · ∂h_c/∂z_k,

  exact from one reverse pass per output and per curved unit ``k`` and input (the §7
  recursion of MLPs, generalised to convolutions, pooling, BatchNorm in evaluation mode
  and residual additions). ``σ''`` takes the stable forms of
  :mod:`fishsym.engine.activations` where the operation has one.
* ``"second-order passes"`` — otherwise (softmax attention, LayerNorm's normalisation,
  products of activations): exact per entry by the generic path's second-order passes
  (:class:`~fishsym.engine.generic.GenericModel`), whose cost is stated up front.

``u_i = ∂h/∂θ_i`` comes layer by layer (:mod:`fishsym.engine.layerwise`, docs/theory.md
§12: one batched backward pass of the ``d`` unit cotangents, each layer's block of ``u``
from its input and output gradient, checked on every chunk of inputs) for the parameters
of Linear, convolution, embedding and normalisation layers whose ``w`` is a structural zero
or not asked for; every other parameter's ``u`` from ``d`` reverse passes per input
(``vmap(jacrev)``). Inputs are processed in chunks whose Jacobians fit the memory budget.

The trace follows the operations the model ran on the first input; a model whose Python
control flow depends on input *values* is outside what the proof covers (say so with
``path="generic"``).

**Traced once per model.** The analysis is kept with the user's model (a weak reference:
it goes with the model) and reused by later calls whose fingerprint matches — the working
dtype and device, the input's shape, the parameters' names and shapes, the module tree,
each module's mode and plain attributes, the hooks, the output selector and mask layout —
and whose kept graph, run on the new call's first input with the current parameters and
buffers, gives the model's own output to rounding. A model edited between calls in any way
that changes what it computes is traced again.
"""

from __future__ import annotations

import math
import operator
import time
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functionalize, jacrev, jvp, vjp, vmap

from fishsym.common import ModelView, cast_inputs, check_memory, math_attention, memory_budget
from fishsym.engine import activations as _act
from fishsym.engine.derivatives import DenseDerivatives, LinearDerivatives, ParamDerivatives
from fishsym.engine.generic import GenericModel, GenericPathWarning
from fishsym.engine.layerwise import LAYER_RULE, PER_INPUT_JACOBIAN, LayerJacobians
from fishsym.errors import ShapeError, UnsupportedModelError

aten = torch.ops.aten

#: the three routes to ``w`` (reported per parameter as ``FisherVariances.var2_routes``)
STRUCTURAL_ZERO = "structural zero"
CURVATURE_SOURCES = "curvature sources"
SECOND_ORDER = "second-order passes"

#: operations (piecewise) linear jointly in all their tensor arguments
PIECEWISE_LINEAR = frozenset(
    {
        aten.view,
        aten._unsafe_view,
        aten.reshape,
        aten.t,
        aten.transpose,
        aten.permute,
        aten.expand,
        aten.squeeze,
        aten.unsqueeze,
        aten.clone,
        aten.contiguous,
        aten.alias,
        aten.slice,
        aten.select,
        aten.cat,
        aten.stack,
        aten.split,
        aten.split_with_sizes,
        aten.chunk,
        aten.unbind,
        aten.narrow,
        aten.flatten,
        aten.unflatten,
        aten.repeat,
        aten.roll,
        aten.flip,
        aten.constant_pad_nd,
        aten.pad,
        aten.index_select,
        aten.gather,
        aten.index,
        aten.add,
        aten.sub,
        aten.neg,
        aten.rsub,
        aten.sum,
        aten.mean,
        aten.relu,
        aten.leaky_relu,
        aten.hardtanh,
        aten.threshold,
        aten.abs,
        aten.max_pool1d_with_indices,
        aten.max_pool2d_with_indices,
        aten.max_pool3d_with_indices,
        aten.max_pool1d,
        aten.max_pool2d,
        aten.max_pool3d,
        aten.avg_pool1d,
        aten.avg_pool2d,
        aten.avg_pool3d,
        aten.adaptive_avg_pool1d,
        aten.adaptive_avg_pool2d,
        aten._adaptive_avg_pool2d,
        aten.adaptive_avg_pool3d,
        aten._adaptive_avg_pool3d,
        aten.adaptive_max_pool2d,
        aten.adaptive_max_pool1d,
        aten.amax,
        aten.amin,
        aten.where,
        aten.masked_fill,
        aten._to_copy,
        aten.copy,
        aten.lift_fresh_copy,
        aten.detach,
        aten.dropout,
        aten.squeeze_copy,
        aten.unsqueeze_copy,
        aten.view_copy,
        aten.expand_copy,
        aten.permute_copy,
        aten.t_copy,
        aten.transpose_copy,
        aten.slice_copy,
        aten.select_copy,
        aten.split_copy,
        aten.alias_copy,
    }
)

#: operations whose value does not depend on the values of their tensor arguments
CONSTANT = frozenset(
    {
        aten.zeros_like,
        aten.ones_like,
        aten.empty_like,
        aten.full_like,
        aten.new_zeros,
        aten.new_ones,
        aten.new_empty,
        aten.new_full,
        aten.scalar_tensor,
        aten.arange,
        aten.zeros,
        aten.ones,
        aten.full,
        aten.empty,
        aten.sym_size,
    }
)

#: multilinear operations: (additive argument positions, factor positions, positions in
#: which the operation is curved); at most one factor may depend on a parameter for ``h``
#: to stay linear in it
MULTILINEAR = {
    aten.mm: ((), (0, 1), ()),
    aten.bmm: ((), (0, 1), ()),
    aten.matmul: ((), (0, 1), ()),
    aten.mv: ((), (0, 1), ()),
    aten.dot: ((), (0, 1), ()),
    aten.addmm: ((0,), (1, 2), ()),
    aten.baddbmm: ((0,), (1, 2), ()),
    aten.addmv: ((0,), (1, 2), ()),
    aten.addcmul: ((0,), (1, 2), ()),
    aten.mul: ((), (0, 1), ()),
    aten.div: ((), (0,), (1,)),
    aten.linear: ((2,), (0, 1), ()),
    aten.convolution: ((2,), (0, 1), ()),
    aten.embedding: ((), (0,), ()),
    # (input − mean)/√(var + ε)·weight + bias with the running statistics as constants
    aten._native_batch_norm_legit_no_training: ((2,), (0, 1), (3, 4)),
    # the same op with its training flag (args[5]; refused unless False, see analyse)
    aten.native_batch_norm: ((2,), (0, 1), (3, 4)),
    # normalise(input)·weight + bias: curved (not elementwise) in the input only
    aten.native_layer_norm: ((3,), (2,), (0,)),
    aten.native_group_norm: ((2,), (1,), (0,)),
}


# --------------------------------------------------------------------------- σ'' per op
def _stable(module_of):
    """σ'' from the stable rule of :mod:`fishsym.engine.activations` for the module that
    ``module_of(args, kwargs)`` builds with the operation's own constants."""

    def second(args, kwargs, a: Tensor) -> Tensor:
        module, rule = module_of(args, kwargs)
        return rule(module, a)[2]

    return second


def _gelu(args, kwargs):
    approximate = args[1] if len(args) > 1 else kwargs.get("approximate", "none")
    return nn.GELU(approximate=approximate), _act.gelu


def _softplus(args, kwargs):
    beta = args[1] if len(args) > 1 else kwargs.get("beta", 1.0)
    threshold = args[2] if len(args) > 2 else kwargs.get("threshold", 20.0)
    return nn.Softplus(beta=beta, threshold=threshold), _act.softplus


#: elementwise curved operations of one tensor argument; the value is a stable σ''
#: builder or None (σ'' by autograd on the operation itself)
ELEMENTWISE_CURVED = {
    aten.tanh: _stable(lambda a, k: (None, _act.tanh)),
    aten.sigmoid: _stable(lambda a, k: (None, _act.sigmoid)),
    aten.silu: _stable(lambda a, k: (None, _act.silu)),
    aten.gelu: _stable(_gelu),
    aten.softplus: _stable(_softplus),
    aten.elu: None,
    aten.celu: None,
    aten.selu: None,
    aten.mish: None,
    aten.hardswish: None,
    aten.exp: None,
    aten.expm1: None,
    aten.log: None,
    aten.log1p: None,
    aten.sin: None,
    aten.cos: None,
    aten.erf: None,
    aten.sqrt: None,
    aten.rsqrt: None,
    aten.reciprocal: None,
    aten.pow: None,
    aten.atan: None,
}


def _packet(target):
    return getattr(target, "overloadpacket", None)


def _tensor_args(args) -> list:
    """The fx nodes among (nested) arguments, with their argument position."""
    out = []
    for pos, a in enumerate(args):
        items = a if isinstance(a, (list, tuple)) else [a]
        for item in items:
            if isinstance(item, torch.fx.Node):
                out.append((pos, item))
    return out


# --------------------------------------------------------------------------- analysis
@dataclass
class GraphAnalysis:
    """What the trace proves about each parameter tensor.

    Attributes
    ----------
    routes:
        ``{name: STRUCTURAL_ZERO | CURVATURE_SOURCES | SECOND_ORDER}``.
    sources:
        The graph's elementwise curved nodes whose input depends on a
        ``CURVATURE_SOURCES`` parameter, in graph order.
    unknown:
        Operation names that made a parameter fall to second-order passes.
    """

    graph: torch.fx.GraphModule
    routes: dict[str, str]
    sources: list = field(default_factory=list)
    unknown: set = field(default_factory=set)
    #: per source, the ``CURVATURE_SOURCES`` parameters its input depends on (model order),
    #: except those of factorised Linear layers
    source_params: list = field(default_factory=list)
    #: Linear layers on one row (``a = z Wᵀ + b`` with ``z`` ``[1, in]``) whose ``u`` and
    #: ``w`` factorise as in docs/theory.md §7: ``u = G_a z_b``, ``w = S_a z_b²``
    linear: list = field(default_factory=list)
    #: per source, the indices (into ``linear``) of the layers its input depends on
    source_layers: list = field(default_factory=list)


@dataclass(frozen=True)
class LinearNode:
    """A factorisable Linear layer of the trace: its ``addmm``/``mm`` node, parameter
    names and the argument position of its input ``z``."""

    node: object
    weight: str
    bias: str | None
    z_pos: int


def analyse(gm: torch.fx.GraphModule, names: list[str]) -> GraphAnalysis:
    """Classify every parameter (placeholders ``0..len(names)-1`` of ``gm``, then the
    input) by the route its ``w`` needs (see the module docstring)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    deps: dict = {}  # node -> parameters it depends on
    curved: dict = {}  # node -> parameters in which it may be curved
    nonelem: dict = {}  # node -> parameters with non-elementwise curvature upstream
    for i, node in enumerate(placeholders):
        deps[node] = {names[i]} if i < len(names) else set()
        curved[node], nonelem[node] = set(), set()
    sources, unknown = [], set()
    output = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            output = node
            break
        if node.op == "get_attr":  # a constant captured by the trace
            deps[node], curved[node], nonelem[node] = set(), set(), set()
            continue
        if node.op != "call_function":
            raise UnsupportedModelError(f"unexpected graph node {node.op} {node.target}")
        tensor_args = _tensor_args(node.args) + _tensor_args(list(node.kwargs.values()))
        d = set().union(*(deps[a] for _, a in tensor_args)) if tensor_args else set()
        c = set().union(*(curved[a] for _, a in tensor_args)) if tensor_args else set()
        ne = set().union(*(nonelem[a] for _, a in tensor_args)) if tensor_args else set()
        val = node.meta.get("val")
        packet = _packet(node.target)
        if isinstance(val, Tensor) and not (val.is_floating_point() or val.is_complex()):
            d, c, ne = set(), set(), set()  # integer/boolean values carry no derivative
        elif node.target is operator.getitem or packet in PIECEWISE_LINEAR:
            pass
        elif packet in CONSTANT:
            d, c, ne = set(), set(), set()
        elif packet in MULTILINEAR and not (
            packet is aten.native_batch_norm and (len(node.args) < 6 or node.args[5] is not False)
        ):
            _, factors, curved_pos = MULTILINEAR[packet]
            counts: dict[str, int] = {}
            for pos, a in tensor_args:
                if pos in factors:
                    for p in deps[a]:
                        counts[p] = counts.get(p, 0) + 1
                elif pos in curved_pos:
                    for p in deps[a]:
                        counts[p] = 2  # curved in this argument: not elementwise either
            products = {p for p, k in counts.items() if k > 1}
            if products:
                unknown.add(str(packet))
            c, ne = c | products, ne | products
        elif packet in ELEMENTWISE_CURVED and [p for p, _ in tensor_args] == [0]:
            if d:
                c = c | d
                sources.append(node)
        elif d:
            unknown.add(str(packet) if packet is not None else str(node.target))
            c, ne = c | d, ne | d
        deps[node], curved[node], nonelem[node] = d, c, ne
    out_args = _tensor_args(output.args)
    c_out = set().union(*(curved[a] for _, a in out_args))
    ne_out = set().union(*(nonelem[a] for _, a in out_args))
    routes = {}
    for name in names:
        if name not in c_out:
            routes[name] = STRUCTURAL_ZERO
        elif name in ne_out:
            routes[name] = SECOND_ORDER
        else:
            routes[name] = CURVATURE_SOURCES
    linear = _linear_layers(placeholders, names, routes, deps)
    factorised = {n for lay in linear for n in (lay.weight, lay.bias) if n is not None}
    wanted = {n for n, r in routes.items() if r == CURVATURE_SOURCES}
    used = [s for s in sources if deps[s.args[0]] & wanted]
    mine = [
        [n for n in names if n in wanted and n not in factorised and n in deps[s.args[0]]]
        for s in used
    ]
    layers = [[i for i, lay in enumerate(linear) if lay.weight in deps[s.args[0]]] for s in used]
    return GraphAnalysis(gm, routes, used, unknown, mine, linear, layers)


def _linear_layers(placeholders, names, routes, deps) -> list[LinearNode]:
    """The Linear layers whose derivatives factorise: a trainable weight used once, as
    ``t(W)`` in one ``addmm(b, z, t(W))`` / ``mm(z, t(W))`` on a single row ``z``, with
    a bias used only there (or none), neither needing second-order passes."""
    param_of = {placeholders[i]: names[i] for i in range(len(names))}
    out = []
    for ph, name in param_of.items():
        users = list(ph.users)
        if len(users) != 1 or _packet(users[0].target) is not aten.t:
            continue
        t = users[0]
        if len(t.users) != 1:
            continue
        mm = next(iter(t.users))
        packet = _packet(mm.target)
        if packet is aten.addmm:
            z_pos, w_pos = 1, 2
        elif packet is aten.mm:
            z_pos, w_pos = 0, 1
        else:
            continue
        val = mm.meta.get("val")
        if mm.args[w_pos] is not t or not isinstance(val, Tensor) or val.dim() != 2:
            continue
        if val.shape[0] != 1:
            continue
        bias = None
        if packet is aten.addmm:
            b = mm.args[0]
            if b in param_of and len(b.users) == 1:
                bias = param_of[b]
            elif deps.get(b):
                continue
        z = mm.args[z_pos]
        if not isinstance(z, torch.fx.Node) or name in deps[z] or (bias and bias in deps[z]):
            continue
        if SECOND_ORDER in (routes[name], routes.get(bias)):
            continue
        out.append(LinearNode(mm, name, bias, z_pos))
    return out


def trace(view: ModelView, x1: Tensor) -> torch.fx.GraphModule:
    """The ATen graph of ``h`` ``[d]`` for one input ``x1`` (no batch axis), parameters
    first (in ``view.params`` order), then the input."""
    names = list(view.params)

    def single(*args):
        return view.single(dict(zip(names, args[:-1], strict=True)), args[-1])

    from torch.fx.experimental.proxy_tensor import make_fx

    with math_attention():
        try:
            return make_fx(functionalize(single))(*[view.params[n] for n in names], x1)
        except ShapeError:
            raise  # the model's own output is wrong (the view says how): no other path helps
        except Exception as err:  # noqa: BLE001 - tracing can fail in many ways
            raise UnsupportedModelError(
                f"the model could not be traced into a graph of ATen operations ({err}); "
                'use path="generic"'
            ) from err


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


def _largest_activation(gm: torch.fx.GraphModule) -> int:
    """Entries of the largest value in the graph that depends on the input (the last
    placeholder): what one cotangent's reverse pass carries at most, besides the
    parameter gradients it is asked for."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    seen = {placeholders[-1]}
    largest = 1
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        if any(a in seen for _, a in _tensor_args(node.args)):
            seen.add(node)
            val = node.meta.get("val")
            if isinstance(val, Tensor):
                largest = max(largest, int(val.numel()))
    return largest


def _second_derivative(node, a: Tensor) -> Tensor:
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


# --------------------------------------------------------------------------- the engine
#: fraction of the memory budget the per-chunk Jacobians may take
JACOBIAN_SHARE = 0.5
#: most inputs one step takes (the vectorised passes gain little beyond)
MAX_INPUT_CHUNK = 512
#: cotangents (curved units) per input one curvature-source pass should carry at least
SOURCE_CHUNK = 64
#: second-order passes projected to take longer than this (seconds) warn with the estimate
SECOND_ORDER_WARN_SECONDS = 60.0


class GraphModel:
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
            key = _fingerprint(self.view, xs[0])
            kept = _KEPT.get(self.view.model, {}).get(key)
            if kept is not None and _still_computes(self.view, kept, xs[0]):
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
                    _KEPT.setdefault(self.view.model, {})[key] = self.analysis
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
        size = max(1, self.view.outputs(x1).shape[1]) * sum(
            self.params[n].numel() for n in eligible
        )
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
            per_input += SOURCE_CHUNK * 2 * _largest_activation(self.analysis.graph) * itemsize
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

    def blocks(self, x: Tensor, d: int, skip=frozenset()) -> list[ParamDerivatives]:
        """One block per parameter (per entry chunk of a second-order parameter; one
        factorised block per Linear layer weight, as on the structured path), except the
        parameters ``skip`` (those whose ``u`` comes layer by layer)."""
        analysis = self.analyse(x)
        factorised = self._factorised()
        jac = self.jacobians(x, [n for n in self.names if n not in factorised | skip])
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
        return out

    # ------------------------------------------------------------------ curvature sources
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
            if analysis.routes[n] == CURVATURE_SOURCES
            and n not in factorised
            and self.second_order
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
        largest = _largest_activation(gm)
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
                rho = g_eps[s].reshape(n_out, -1) * _second_derivative(
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


#: the layer rules take over ``u`` from ``vmap(jacrev)`` where a per-input Jacobian of the
#: eligible parameters has at least this many numbers (``d × entries``). Measured (CPU, one
#: thread, float32, ``fisher_variances`` with ``var2=False``, 32 inputs; ReLU ResNets of
#: two basic blocks, width c on s×s inputs): below it ``vmap(jacrev)`` is faster — c = 16,
#: 16² (10 k entries) 0.11 s vs 0.17 s; c = 64, 16² (151 k) 0.77 s vs 0.94 s — above it the
#: rules are — c = 128, 8² (596 k) 2.0 s vs 1.5 s; ResNet-18 on 8 CIFAR-shaped inputs
#: (11.2 M) 14.7 s vs 2.0 s (its last stage is one output pixel: the outer-product form)
LAYERWISE_MIN_NUMBERS = 2**21

#: the analyses kept per user model (``{model: {fingerprint: GraphAnalysis}}``)
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: plain attribute types a fingerprint records by value
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _fingerprint(view: ModelView, x1: Tensor) -> tuple:
    """What a kept analysis must match (module docstring); values that are not plain
    (functions, objects) by identity."""

    def plain(value):
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, (tuple, list)):
            return tuple(plain(v) for v in value)
        if isinstance(value, torch.Size):
            return tuple(value)
        return ("id", id(value))

    modules = []
    for name, m in view.model.named_modules():
        attrs = tuple(
            (k, plain(v))
            for k, v in sorted(vars(m).items())
            if not k.startswith("_") and not isinstance(v, Tensor)
        )
        hooks = tuple(
            len(getattr(m, table, {}))
            for table in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
        )
        modules.append((name, type(m).__qualname__, m.training, attrs, hooks))
    return (
        str(view.dtype),
        str(view.device),
        tuple(x1.shape),
        str(x1.dtype),
        tuple((n, tuple(p.shape)) for n, p in view.params.items()),
        tuple((n, tuple(c.shape), str(c.dtype)) for n, c in view.constants.items()),
        tuple(modules),
        id(view.output),
        repr(view.mask_layout),
        view.hooks_change_output,
    )


def _still_computes(view: ModelView, analysis: GraphAnalysis, x1: Tensor) -> bool:
    """Whether a kept graph, run with the current parameters (and the buffers it holds),
    gives the model's output on ``x1`` to rounding."""
    if analysis.graph is None:
        return False
    with torch.no_grad(), math_attention():
        try:
            kept = analysis.graph(*view.params.values(), x1)
        except Exception:  # noqa: BLE001 - any failure: trace again
            return False
        kept = kept[0] if isinstance(kept, (tuple, list)) else kept
        own = view.single(None, x1)
    if not isinstance(kept, Tensor) or kept.shape != own.shape:
        return False
    eps = torch.finfo(own.dtype).eps
    return bool(((kept - own).abs() <= 64 * eps * (1 + own.abs())).all())


def blocks_of(engine, x: Tensor, d: int) -> Iterator[ParamDerivatives]:
    """Every block of ``engine`` for inputs ``x`` (tests)."""
    _, batches = engine.batches(x, d)
    for batch in batches:
        yield from batch


__all__ = [
    "CURVATURE_SOURCES",
    "ELEMENTWISE_CURVED",
    "MULTILINEAR",
    "PIECEWISE_LINEAR",
    "SECOND_ORDER",
    "STRUCTURAL_ZERO",
    "GraphAnalysis",
    "GraphModel",
    "analyse",
    "trace",
]
