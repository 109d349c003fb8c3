"""The fast structured pass for ``nn.Sequential`` MLPs (docs/theory.md §7).

Network: ``a_l = W_l z_{l−1} + b_l``, ``z_l = σ_l(a_l)`` for ``l = 1..L``, ``h = z_L``
(``σ_L`` is the identity unless the model ends with an activation). For a batch of
inputs the pass computes, per layer,

* ``G_l = ∂h/∂a_l`` (``[n, c, units]``) by one backward sweep
  ``G_l = (G_{l+1} W_{l+1}) ⊙ σ'_l(a_l)``, ``G_L = diag σ'_L(a_L)``;
* the diagonal of the pre-activation Hessians (``[n, c, units]``)

      S_l[c, a] = ∂²h_c/∂a_l[a]² = Σ_{m ≥ l} Σ_k ρ_m[c, k] · (∂a_m[k]/∂a_l[a])²,
      ρ_m = σ''_m(a_m) ⊙ ∂h/∂z_m,

  with the inter-layer Jacobians ``∂a_m/∂a_l = (∂a_m/∂a_{l+1}) W_{l+1} diag σ'_l`` built
  one layer at a time (no ``d × units × units`` Hessian tensors). Only layers whose
  activation is curved (``σ'' ≢ 0``) contribute a ``ρ_m``; with none, ``S_l`` is the
  structural zero ``None``.

The parameters' ``u`` and ``w`` then factorise (see :mod:`fishsym.engine.linear`).
Supported modules: ``Linear``, the activations of :mod:`fishsym.engine.activations`,
``Identity``, ``Flatten`` (keeping the batch axis), dropout in evaluation mode, and
nested ``Sequential`` containers. Anything else raises :class:`UnsupportedModelError`
naming the module (``fisher_variances`` then falls back to the generic path).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fishsym.engine import activations, dropout, flatten, rules  # noqa: F401 (rules register)
from fishsym.engine.derivatives import ParamDerivatives
from fishsym.engine.linear import LinearLayer
from fishsym.errors import ShapeError, UnsupportedModelError


def _leaves(module: nn.Sequential, prefix: str):
    """``(qualified name, module)`` of a Sequential, nested Sequentials unrolled."""
    for key, child in module._modules.items():
        if child is None:
            continue
        name = f"{prefix}.{key}" if prefix else key
        if type(child) is nn.Sequential:
            yield from _leaves(child, name)
        else:
            yield name, child


class StructuredMLP:
    """The structured pass over an ``nn.Sequential`` of Linear layers and elementwise
    activations, in a working dtype.

    Parameters
    ----------
    model:
        The network (read, never modified). Its output is ``h``, the natural parameters.
    dtype:
        Working dtype of every computation (weights are cast copies).

    Raises
    ------
    UnsupportedModelError
        Naming the first module the structured path cannot handle.
    """

    #: the name of this engine in results (``FisherVariances.path``)
    path = "structured"
    #: the pass builds no autograd graph: run it under ``torch.no_grad``
    no_grad = True
    #: what one step of :meth:`batches` costs, for progress and time warnings
    cost_note = "one structured pass per chunk of inputs"
    #: how ``w`` is obtained where it is not a structural zero (reported per parameter)
    var2_route = "structured recursion (docs/theory.md §7)"
    #: the structured path applies: nothing forced a fallback
    fallback_reason = None
    #: compute ``w`` (``False``: the Fisher and ``V₁`` only, ``fisher_variances(var2=False)``)
    second_order = True

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float64):
        if type(model) is not nn.Sequential:
            raise UnsupportedModelError(
                f"the structured path needs an nn.Sequential; got {type(model).__name__}"
            )
        self.dtype = dtype
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self.preprocess: list[tuple[str, object]] = []
        self.layers: list[LinearLayer] = []
        seen: set[int] = set()
        for name, module in _leaves(model, ""):
            if id(module) in seen and any(True for _ in module.parameters()):
                raise UnsupportedModelError(
                    f"module {name!r} ({type(module).__name__}) appears twice in the model; "
                    "shared parameters are not supported by the structured path"
                )
            seen.add(id(module))
            apply_rule = rules.lookup(module)
            if apply_rule is None:
                raise UnsupportedModelError(
                    f"module {name!r} ({type(module).__name__}) is not supported by the "
                    f"structured path (it handles {rules.supported()})"
                )
            apply_rule(self, name, module)
        if not self.layers:
            raise UnsupportedModelError("the structured path needs at least one nn.Linear layer")

    # ------------------------------------------------------------------ the walker's API
    def add_linear(self, layer: LinearLayer) -> None:
        """A new Linear layer of the chain (rule of :mod:`fishsym.engine.linear`)."""
        self.layers.append(layer)

    def add_elementwise(self, name: str, module: nn.Module, fn) -> None:
        """An elementwise map with derivatives ``fn(module, a) -> (σ, σ', σ'')``: part of
        the last layer's ``σ``, or applied to the inputs before the first layer."""
        if self.layers:
            self.layers[-1].activations.append((module, fn))
        else:
            self.add_input_map(name, lambda z: fn(module, z)[0])

    def add_input_map(self, name: str, fn) -> None:
        """A parameter-free map ``z ↦ fn(z)`` of the inputs before the first Linear layer."""
        self.preprocess.append((name, fn))

    # ------------------------------------------------------------------ shapes
    @property
    def output_dim(self) -> int:
        """``d``, the number of outputs (natural parameters) of the network."""
        return self.layers[-1].out_features

    def param_names(self) -> list[str]:
        """Names of the trainable parameters the pass differentiates, in model order."""
        names = []
        for layer in self.layers:
            if layer.train_weight:
                names.append(layer.weight_name)
            if layer.train_bias:
                names.append(layer.bias_name)
        return names

    def features(self, x: Tensor) -> Tensor:
        """``z_0``: the inputs after the parameter-free modules in front of the first Linear,
        ``[n, in_features]``."""
        z = x.to(self.dtype)
        for _, fn in self.preprocess:
            z = fn(z)
        width = self.layers[0].in_features
        if z.dim() != 2 or z.shape[1] != width:
            raise ShapeError(
                f"inputs of shape {tuple(x.shape)} give first-layer features of shape "
                f"{tuple(z.shape)}; the first Linear layer {self.layers[0].name!r} expects "
                f"[n_inputs, {width}]"
            )
        return z

    # ------------------------------------------------------------------ the pass
    def output(self, x: Tensor) -> Tensor:
        """``h`` for a batch of inputs, ``[n, c]`` (forward pass only)."""
        z = self.features(x)
        for layer in self.layers:
            z = self._activate(layer, layer.forward(z))[0]
        return z

    @staticmethod
    def _activate(layer: LinearLayer, a: Tensor) -> activations.Derivs:
        out: activations.Derivs = (a, None, None)
        for module, rule in layer.activations:
            out = activations.compose(out, rule, module)
        return out

    def derivatives(self, x: Tensor) -> tuple[Tensor, list[ParamDerivatives]]:
        """``h`` ``[n, c]`` and the factored ``u``, ``w`` of every trainable parameter.

        Costs one forward sweep, one backward sweep with ``d`` rows (``G``), and for each
        curved layer ``m`` a sweep of its inter-layer Jacobians down to layer 1.
        """
        layers = self.layers
        z = self.features(x)
        z_in, d1, d2 = [], [], []
        for layer in layers:
            z_in.append(z)
            z, s1, s2 = self._activate(layer, layer.forward(z))
            d1.append(s1)
            d2.append(s2)
        h = z
        n, d = h.shape
        n_layers = len(layers)

        # backward sweep: D = ∂h/∂z_l, G_l = D ⊙ σ'_l, ρ_l = D ⊙ σ''_l
        dh_dz = torch.eye(d, dtype=self.dtype, device=h.device).expand(n, d, d)
        jac: list[Tensor] = [None] * n_layers  # type: ignore[list-item]
        rho: list[Tensor | None] = [None] * n_layers
        for l in reversed(range(n_layers)):
            jac[l] = dh_dz if d1[l] is None else dh_dz * d1[l][:, None, :]
            if d2[l] is not None and self.second_order:
                rho[l] = dh_dz * d2[l][:, None, :]
            if l > 0:
                dh_dz = layers[l].pull_back(jac[l])

        # S_l = Σ_{m ≥ l} ρ_m (∂a_m/∂a_l)^∘2, one curved layer m at a time. With
        # ∂a_m/∂a_l = (∂a_m/∂z_l) diag σ'_l the square factorises as (∂a_m/∂z_l)^∘2 ⊙ σ'_l²,
        # and for l = m − 1 as (W_m ⊙ W_m) ⊙ σ'²: one matrix product, no [n, units, units]
        # tensor. Deeper layers need ∂a_m/∂z_l = (∂a_m/∂a_{l+1}) W_{l+1} per input.
        hess: list[Tensor | None] = [None] * n_layers
        for m in range(n_layers):
            if rho[m] is None:
                continue
            hess[m] = rho[m] if hess[m] is None else hess[m] + rho[m]
            da_dz = None  # ∂a_m/∂z_l, [n, units_m, units_l]
            for l in range(m - 1, -1, -1):
                if l == m - 1:
                    term = layers[m].pull_back(rho[m], squared=True)
                else:
                    if da_dz is None:
                        da_da = layers[m].jacobian_to_input(d1[m - 1], n)
                    else:
                        da_da = da_dz if d1[l + 1] is None else da_dz * d1[l + 1][:, None, :]
                    da_dz = layers[l + 1].pull_back(da_da)
                    term = torch.bmm(rho[m], da_dz * da_dz)
                if d1[l] is not None:
                    term = term * (d1[l] * d1[l])[:, None, :]
                hess[l] = term if hess[l] is None else hess[l] + term

        # jac and hess_diag stay [n, c, a] as computed: fishsym.variance concatenates the
        # layers into one [n, c, Σa] tensor for the kernels (one copy)
        out: list[ParamDerivatives] = []
        for l, layer in enumerate(layers):
            out.extend(layer.param_derivatives(jac[l], hess[l], z_in[l]))
        return h, out

    # ------------------------------------------------------------------ engine protocol
    def prepare(self, x: Tensor) -> None:
        """The chain is known from the modules; check that the inputs reach the first
        Linear layer as ``[n, in_features]`` (:meth:`features` raises ShapeError where a
        Linear would act per position — a case for the graph path)."""
        self.features(x[:1])

    def default_chunk(self, dtype: torch.dtype, budget: int, d: int = 1) -> int:
        """Inputs per step so that the pass's working floats stay within ``budget`` bytes."""
        itemsize = torch.finfo(dtype).bits // 8
        return max(1, budget // (self.floats_per_input() * itemsize))

    def steps(self, n_inputs: int, chunk: int, d: int) -> int:
        """Steps (batches of blocks) :meth:`batches` yields for ``n_inputs`` inputs."""
        return -(-n_inputs // chunk)

    def batches(self, x: Tensor, d: int):
        """``h`` ``[n, c]`` and an iterator of lists of blocks whose moments are reduced
        together (here: one list with every parameter, from one pass)."""
        h, blocks = self.derivatives(x)
        return h, iter([blocks])

    def floats_per_input(self) -> int:
        """Rough count of working floats one input needs in :meth:`derivatives` (for
        choosing a chunk size that bounds peak memory)."""
        widths = [self.layers[0].in_features] + [layer.out_features for layer in self.layers]
        d = self.output_dim
        total = sum(widths) * 3 + 2 * d * sum(widths[1:])
        largest_jacobian = 0
        for m in range(1, len(widths)):
            for l in range(1, m - 1):
                largest_jacobian = max(largest_jacobian, widths[m] * widths[l])
        return total + 3 * largest_jacobian


__all__ = ["StructuredMLP"]
