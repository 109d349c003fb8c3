"""Symbolic parametrised maps ``h(θ; x)`` for the proofs of :mod:`fishsym.symbolic.theory`.

A model maps an input ``x`` and parameters ``θ`` to the natural parameters
``h = h(x; θ) ∈ R^d`` of the output family (docs/theory.md §1; last layer linear, no final
activation). Everything is a sympy expression, so ``u_i = ∂h/∂θ_i`` (``jac``) and
``w_i = ∂²h/∂θ_i²`` (``hess_diag``) are exact.

* ``"glm"`` — ``h = W x + b``: every parameter enters affinely (``w_i ≡ 0``).
* ``"mlp1"`` — ``h = W₂ σ(W₁ x + b₁) + b₂``, one hidden layer.
* ``"mlp2"`` — ``h = W₃ σ(W₂ σ(W₁ x + b₁) + b₂) + b₃``, two hidden layers (small sizes).

Activations (:data:`ACTIVATIONS`): ``"sigma"`` is a *placeholder* — an arbitrary smooth
function whose derivatives ``σ', σ'', …`` are opaque functions, so an identity proved with
it holds for every smooth activation; ``"sigmoid"``, ``"tanh"``, ``"softplus"`` are the
concrete functions; ``"relu"`` and ``"leaky_relu"`` are ``Piecewise`` expressions, and
:meth:`SymbolicModel.on_region` replaces them, on one fixed-sign region of the hidden
pre-activations, by the linear piece they equal there (away from the kinks).

This module is pure sympy; it never imports torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np
import sympy as sp

from fishsym.errors import UnsupportedModelError

MODELS = ("glm", "mlp1", "mlp2")
ACTIVATIONS = ("sigma", "sigmoid", "tanh", "softplus", "relu", "leaky_relu")
#: negative-side slope of the leaky ReLU (torch's default, as an exact rational)
LEAKY_SLOPE = sp.Rational(1, 100)
#: denominator of the random rational parameter and input values drawn by ``sample_point``
POINT_DENOMINATOR = 4
#: piecewise-linear activations: second derivatives vanish away from the kinks
PIECEWISE_LINEAR = ("relu", "leaky_relu")


# --------------------------------------------------------------------------- activations
class PlaceholderActivation(sp.Function):
    """``σ^{(k)}(a)`` for an arbitrary smooth activation ``σ`` (``order`` = k).

    Its derivative is the next placeholder, so sympy's chain rule produces ``σ'``, ``σ''``
    as opaque functions: nothing about a particular activation is assumed.
    """

    order = 0

    @classmethod
    def eval(cls, a):
        return None

    def fdiff(self, argindex=1):
        return placeholder_activation(self.order + 1)(self.args[0])


@cache
def placeholder_activation(order: int = 0) -> type[PlaceholderActivation]:
    """The function class ``σ^{(order)}`` (cached, so each order is one sympy class)."""
    name = "σ" + "'" * order
    return type(name, (PlaceholderActivation,), {"order": order})


def activation_function(name: str) -> Callable[[sp.Expr], sp.Expr]:
    """``a ↦ σ(a)`` for a name in :data:`ACTIVATIONS`."""
    if name == "sigma":
        return lambda a: placeholder_activation(0)(a)
    if name == "sigmoid":
        return lambda a: 1 / (1 + sp.exp(-a))
    if name == "tanh":
        return sp.tanh
    if name == "softplus":
        return lambda a: sp.log(1 + sp.exp(a))
    if name == "relu":
        return lambda a: sp.Piecewise((a, a > 0), (0, True))
    if name == "leaky_relu":
        return lambda a: sp.Piecewise((a, a > 0), (LEAKY_SLOPE * a, True))
    raise UnsupportedModelError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {name!r}")


def linear_piece(name: str, active: bool) -> Callable[[sp.Expr], sp.Expr]:
    """The linear function a piecewise-linear activation equals on one side of its kink."""
    if name == "relu":
        return (lambda a: a) if active else (lambda a: sp.Integer(0))
    if name == "leaky_relu":
        return (lambda a: a) if active else (lambda a: LEAKY_SLOPE * a)
    raise UnsupportedModelError(
        f"on_region needs a piecewise-linear activation ({', '.join(PIECEWISE_LINEAR)}); "
        f"got {name!r}"
    )


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelSpec:
    """What defines a model: kind, output size ``d``, input size, hidden widths, activation."""

    kind: str
    d: int
    n_in: int
    widths: tuple[int, ...]
    activation: str | None
    #: sign pattern of the hidden units (+1 active, −1 inactive) for a region model
    region: tuple[int, ...] | None = None


@dataclass(frozen=True, eq=False)
class SymbolicModel:
    """A symbolic map ``h(θ; x) ∈ R^d`` with its parameters grouped by tensor.

    Attributes
    ----------
    spec:           how the model was built (:class:`ModelSpec`)
    inputs:         the input symbols ``x`` (length ``n_in``)
    params:         the parameter symbols ``θ`` in a fixed flat order (length ``P``)
    groups:         tensor name (``"W1"``, ``"b1"``, …) → the indices into ``params``
    outputs:        ``h(θ; x)``, ``d`` expressions
    preactivations: the hidden pre-activations ``a_l[k]`` (kinks of ReLU lie at 0)
    last_layer:     names of the groups of the final linear layer
    """

    spec: ModelSpec
    inputs: tuple[sp.Symbol, ...]
    params: tuple[sp.Symbol, ...]
    groups: dict[str, tuple[int, ...]]
    outputs: tuple[sp.Expr, ...]
    preactivations: tuple[sp.Expr, ...]
    last_layer: tuple[str, ...]
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ basics
    @property
    def name(self) -> str:
        act = f", {self.spec.activation}" if self.spec.activation else ""
        region = ""
        if self.spec.region is not None:
            region = ", region " + "".join("+" if s > 0 else "−" for s in self.spec.region)
        return f"{self.spec.kind}(d={self.spec.d}{act}{region})"

    @property
    def d(self) -> int:
        return self.spec.d

    @property
    def n_params(self) -> int:
        return len(self.params)

    def group_of(self, i: int) -> str:
        """The tensor name that parameter ``i`` belongs to."""
        for g, idx in self.groups.items():
            if i in idx:
                return g
        raise IndexError(f"parameter index {i} out of range 0..{self.n_params - 1}")

    @cached_property
    def last_layer_indices(self) -> tuple[int, ...]:
        """Indices of the parameters of the final linear layer (all of them for a GLM)."""
        return tuple(sorted(i for g in self.last_layer for i in self.groups[g]))

    # ------------------------------------------------------------------ derivatives
    def jac(self, i: int) -> tuple[sp.Expr, ...]:
        """``u_i = ∂h/∂θ_i``, ``d`` expressions (docs/theory.md §1)."""
        key = ("jac", i)
        if key not in self._cache:
            self._cache[key] = tuple(sp.diff(hc, self.params[i]) for hc in self.outputs)
        return self._cache[key]

    def hess_diag(self, i: int) -> tuple[sp.Expr, ...]:
        """``w_i = ∂²h/∂θ_i²``, ``d`` expressions (docs/theory.md §1)."""
        key = ("hess_diag", i)
        if key not in self._cache:
            self._cache[key] = tuple(sp.diff(uc, self.params[i]) for uc in self.jac(i))
        return self._cache[key]

    def affine_params(self) -> tuple[int, ...]:
        """Indices ``i`` with ``w_i ≡ 0``: ``h`` is affine in ``θ_i`` (for fixed other θ).

        A ``Piecewise`` second derivative counts as zero when every branch is zero, i.e.
        away from the kinks of a piecewise-linear activation.
        """
        if "affine" not in self._cache:
            self._cache["affine"] = tuple(
                i
                for i in range(self.n_params)
                if all(_is_zero_expr(wc) for wc in self.hess_diag(i))
            )
        return self._cache["affine"]

    # ------------------------------------------------------------------ variants
    def at_inputs(self, x_values: Sequence) -> SymbolicModel:
        """The model with the input fixed at ``x_values`` (exact numbers)."""
        if len(x_values) != len(self.inputs):
            raise ValueError(
                f"x_values has length {len(x_values)}; the model has {len(self.inputs)} inputs"
            )
        key = ("at_inputs", tuple(sp.sympify(v) for v in x_values))
        if key not in self._cache:
            self._cache[key] = self._at_inputs(key[1])
        return self._cache[key]

    def _at_inputs(self, x_values: tuple) -> SymbolicModel:
        sub = dict(zip(self.inputs, x_values, strict=True))
        return SymbolicModel(
            self.spec,
            (),
            self.params,
            self.groups,
            tuple(h.subs(sub) for h in self.outputs),
            tuple(a.subs(sub) for a in self.preactivations),
            self.last_layer,
        )

    def regions(self) -> list[tuple[int, ...]]:
        """All sign patterns of the hidden units (``2^{#hidden}`` of them)."""
        n_hidden = sum(self.spec.widths)
        return list(itertools.product((1, -1), repeat=n_hidden))

    def on_region(self, signs: Sequence[int]) -> SymbolicModel:
        """The model on the open region where hidden unit ``k`` has sign ``signs[k]``.

        There a piecewise-linear activation *equals* its linear piece (``a`` or ``0`` for
        ReLU, ``a`` or ``slope·a`` for leaky ReLU), so ``h`` is a polynomial in ``θ``,
        affine in each single parameter. This is how "away from the kinks" is made exact.
        """
        act = self.spec.activation
        if act not in PIECEWISE_LINEAR:
            raise UnsupportedModelError(
                f"on_region needs a relu or leaky_relu model; this one uses {act!r}"
            )
        signs = tuple(int(s) for s in signs)
        if len(signs) != sum(self.spec.widths) or any(s not in (1, -1) for s in signs):
            raise ValueError(
                f"signs must be {sum(self.spec.widths)} entries of +1/−1 (one per hidden unit)"
            )
        flat = iter(signs)
        per_unit = [[linear_piece(act, next(flat) > 0) for _ in range(w)] for w in self.spec.widths]
        spec = ModelSpec(self.spec.kind, self.d, self.spec.n_in, self.spec.widths, act, signs)
        return _build(spec, per_unit)

    # ------------------------------------------------------------------ exact points
    def sample_point(
        self, rng: np.random.Generator, h0: Sequence[sp.Expr], max_tries: int = 50
    ) -> dict[sp.Symbol, sp.Expr]:
        """Exact parameter and input values with ``h(θ; x) = h0`` exactly.

        Every weight and input is a random rational (denominator
        :data:`POINT_DENOMINATOR`); the last-layer bias is *solved for*,
        ``b_L = h0 − W_L z_{L−1}``, so the natural parameter is the chosen point ``h0``
        (e.g. one inside the family's domain). ``u_i`` and ``w_i`` do not involve ``b_L``.
        Points on a kink of a piecewise-linear activation (a pre-activation equal to 0)
        are rejected.
        """
        if len(h0) != self.d:
            raise ValueError(f"h0 has length {len(h0)}; the model has d = {self.d} outputs")
        last_bias = [g for g in self.last_layer if g.startswith("b")]
        if not last_bias:
            raise UnsupportedModelError("sample_point needs a last-layer bias to solve for")
        bias_idx = self.groups[last_bias[0]]
        bias_syms = {self.params[i] for i in bias_idx}
        for _ in range(max_tries):
            values = {
                s: random_rational(rng) for s in (*self.inputs, *self.params) if s not in bias_syms
            }
            if any(sp.sympify(a).xreplace(values) == 0 for a in self.preactivations):
                continue
            for c, i in enumerate(bias_idx):
                rest = self.outputs[c].xreplace({self.params[i]: 0}).xreplace(values)
                values[self.params[i]] = sp.sympify(h0[c]) - rest
            return values
        raise RuntimeError(f"{self.name}: no point off the kinks found in {max_tries} tries")


def random_rational(rng: np.random.Generator) -> sp.Rational:
    """A random nonzero rational in [−3/2, 3/2] with denominator :data:`POINT_DENOMINATOR`."""
    k, top = 0, 3 * POINT_DENOMINATOR // 2
    while k == 0:
        k = int(rng.integers(-top, top + 1))
    return sp.Rational(k, POINT_DENOMINATOR)


def _is_zero_expr(e: sp.Expr) -> bool:
    e = sp.piecewise_fold(sp.sympify(e))
    if isinstance(e, sp.Piecewise):
        return all(_is_zero_expr(branch) for branch, _ in e.args)
    return e == 0 or sp.expand(e) == 0


# --------------------------------------------------------------------------- builders
def _symbols(prefix: str, shape: tuple[int, ...]) -> list:
    """Real symbols ``prefix_ij`` (1-based indices) laid out as nested lists."""
    if len(shape) == 1:
        return [sp.Symbol(f"{prefix}_{a + 1}", real=True) for a in range(shape[0])]
    return [
        [sp.Symbol(f"{prefix}_{a + 1}{b + 1}", real=True) for b in range(shape[1])]
        for a in range(shape[0])
    ]


def _build(spec: ModelSpec, per_unit: Sequence[Sequence[Callable]] | None = None) -> SymbolicModel:
    """Build ``h(θ; x)`` layer by layer: ``a_l = W_l z_{l−1} + b_l``, ``z_l = σ(a_l)``."""
    x = _symbols("x", (spec.n_in,))
    params: list[sp.Symbol] = []
    groups: dict[str, tuple[int, ...]] = {}
    pre: list[sp.Expr] = []
    z: list[sp.Expr] = list(x)
    sizes = (*spec.widths, spec.d)
    n_layers = len(sizes)
    for layer, width in enumerate(sizes, start=1):
        W = _symbols(f"W{layer}", (width, len(z)))
        b = _symbols(f"b{layer}", (width,))
        groups[f"W{layer}"] = tuple(range(len(params), len(params) + width * len(z)))
        params.extend(s for row in W for s in row)
        groups[f"b{layer}"] = tuple(range(len(params), len(params) + width))
        params.extend(b)
        a = [
            sum((W[k][j] * z[j] for j in range(len(z))), sp.Integer(0)) + b[k] for k in range(width)
        ]
        if layer < n_layers:
            pre.extend(a)
            if per_unit is not None:
                z = [per_unit[layer - 1][k](a[k]) for k in range(width)]
            else:
                act = activation_function(spec.activation)
                z = [act(ak) for ak in a]
        else:
            outputs = a
    last = (f"W{n_layers}", f"b{n_layers}")
    return SymbolicModel(spec, tuple(x), tuple(params), groups, tuple(outputs), tuple(pre), last)


def glm(d: int, n_in: int = 2) -> SymbolicModel:
    """``h = W x + b`` (a generalised linear model), ``W ∈ R^{d×n_in}``."""
    return _build(ModelSpec("glm", int(d), int(n_in), (), None))


def mlp1(d: int, n_in: int = 2, width: int = 2, activation: str = "sigma") -> SymbolicModel:
    """``h = W₂ σ(W₁ x + b₁) + b₂`` with one hidden layer of ``width`` units."""
    activation_function(activation)
    return _build(ModelSpec("mlp1", int(d), int(n_in), (int(width),), activation))


def mlp2(
    d: int, n_in: int = 1, widths: tuple[int, int] = (2, 2), activation: str = "sigma"
) -> SymbolicModel:
    """``h = W₃ σ(W₂ σ(W₁ x + b₁) + b₂) + b₃``, two hidden layers (keep sizes small)."""
    activation_function(activation)
    if len(widths) != 2:
        raise ValueError(f"mlp2 needs two hidden widths; got {widths!r}")
    return _build(ModelSpec("mlp2", int(d), int(n_in), tuple(int(w) for w in widths), activation))


_BUILDERS = {"glm": glm, "mlp1": mlp1, "mlp2": mlp2}
_MODEL_CACHE: dict[tuple, SymbolicModel] = {}


def build(model: str, d: int, activation: str | None = None, **sizes) -> SymbolicModel:
    """The model named ``model`` (``"glm"``, ``"mlp1"``, ``"mlp2"``) with ``d`` outputs.

    Cached per process (their derivatives are cached on the instance). ``activation``
    defaults to the placeholder ``"sigma"`` for the networks and is ignored for a GLM.
    """
    if model not in _BUILDERS:
        raise UnsupportedModelError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer; got {d!r}")
    if model == "glm":
        if activation is not None:
            raise UnsupportedModelError("a GLM has no activation; pass activation=None")
        kwargs = dict(sizes)
    else:
        kwargs = {**sizes, "activation": activation or "sigma"}
    key = (model, int(d), tuple(sorted(kwargs.items())))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = _BUILDERS[model](int(d), **kwargs)
    return _MODEL_CACHE[key]


def substitute(exprs: Sequence[sp.Expr], values: Mapping) -> tuple[sp.Expr, ...]:
    """Substitute exact values into a sequence of expressions."""
    return tuple(sp.sympify(e).xreplace(values) for e in exprs)


__all__ = [
    "ACTIVATIONS",
    "LEAKY_SLOPE",
    "MODELS",
    "ModelSpec",
    "SymbolicModel",
    "activation_function",
    "build",
    "glm",
    "mlp1",
    "mlp2",
    "placeholder_activation",
]
