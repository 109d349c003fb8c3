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
(``vmap(jacrev)``). Where no ``w`` comes from the curvature sources (``var2=False``, or
piecewise-linear networks), the same reverse passes, through the traced graph, also give
``h`` and the factors ``G = ∂h/∂a`` and ``z`` of the factorised Linear layers (a zero
added to each layer's output is differentiated along with the parameters): no second set
of passes. Inputs are processed in chunks whose Jacobians fit the memory budget.

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

from fishsym.engine.graph.analysis import (
    CURVATURE_SOURCES,
    ELEMENTWISE_CURVED,
    MULTILINEAR,
    PIECEWISE_LINEAR,
    SECOND_ORDER,
    STRUCTURAL_ZERO,
    GraphAnalysis,
    LinearNode,
    analyse,
    trace,
)
from fishsym.engine.graph.model import LAYERWISE_MIN_NUMBERS, GraphModel, blocks_of

__all__ = [
    "CURVATURE_SOURCES",
    "ELEMENTWISE_CURVED",
    "MULTILINEAR",
    "PIECEWISE_LINEAR",
    "SECOND_ORDER",
    "STRUCTURAL_ZERO",
    "LAYERWISE_MIN_NUMBERS",
    "GraphAnalysis",
    "GraphModel",
    "LinearNode",
    "analyse",
    "blocks_of",
    "trace",
]
