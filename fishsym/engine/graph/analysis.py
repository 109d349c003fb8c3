"""The proof of the graph path: which route each parameter tensor's ``w = ∂²h/∂θ²`` needs,
read off the model's ATen graph (docs/theory.md §10; the routes in
:mod:`fishsym.engine.graph`).

:func:`trace` makes the graph of the single-input call (``make_fx`` of the functionalised
model, attention in its math form); :func:`analyse` walks it once, tracking per node the
parameters it depends on, those in which it may be curved, and those with a curvature
that is not elementwise, and classifies every parameter as a ``"structural zero"``,
``"curvature sources"`` or ``"second-order passes"``; it also finds the Linear layers
whose derivatives factorise (§7).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functionalize

from fishsym.common import ModelView, math_attention
from fishsym.engine import activations as _act
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


def largest_activation(gm: torch.fx.GraphModule) -> int:
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


__all__ = [
    "CURVATURE_SOURCES",
    "ELEMENTWISE_CURVED",
    "MULTILINEAR",
    "PIECEWISE_LINEAR",
    "SECOND_ORDER",
    "STRUCTURAL_ZERO",
    "GraphAnalysis",
    "LinearNode",
    "analyse",
    "trace",
]
