"""Elementwise activations: the value ``σ(a)`` and the derivatives ``σ'(a)``, ``σ''(a)``.

The structured pass of docs/theory.md §7 needs, at every hidden layer, the pre-activation ``a``,
``σ'(a)`` (to chain Jacobians) and ``σ''(a)`` (the only source of curvature in an MLP:
``ρ = σ''(a) ⊙ ∂h/∂z``). Each rule reads the module's own parameters (``negative_slope``,
``beta``/``threshold``, ``alpha``, ``approximate``) so it agrees with the module's
``forward`` exactly, and follows autograd's convention at kinks (``ReLU'(0) = 0``,
``LeakyReLU'(0) = negative_slope``).

A rule returns ``(z, d1, d2)`` with tensors shaped like ``a``; ``d1 = None`` means
``σ' ≡ 1`` and ``d2 = None`` means ``σ'' ≡ 0`` identically (piecewise-linear
activations), which lets the engine report ``V₂ = 0`` as an exact structural zero instead
of a sum of zeros.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from fishsym.engine import rules as _rules

Derivs = tuple[Tensor, Tensor | None, Tensor | None]

#: √(2/π) and the cubic coefficient of the tanh approximation of GELU (as in PyTorch)
_GELU_TANH_K = math.sqrt(2.0 / math.pi)
_GELU_TANH_C = 0.044715


def sigmoid(module: nn.Module, a: Tensor) -> Derivs:
    """``σ = 1/(1+e^{−a})``, ``σ' = σ(a)σ(−a)``, ``σ'' = σ'·(σ(−a) − σ(a)) = −σ'·tanh(a/2)``.

    Stable forms: ``σ(1 − σ)`` is ``1·(1 − 1) = 0`` at ``a = 40`` (exact ``4.2e−18``), and
    ``1 − 2σ`` loses every digit near ``a = 0``.
    """
    s, s_neg = torch.sigmoid(a), torch.sigmoid(-a)
    d1 = s * s_neg
    return s, d1, -d1 * torch.tanh(a / 2)


def _sech2(a: Tensor) -> Tensor:
    """``1 − tanh² a = 4e^{−2|a|}/(1 + e^{−2|a|})²`` without cancellation (``1 − t²`` is 0
    for ``|a| ≳ 19`` in float64)."""
    e = torch.exp(-2 * a.abs())
    return 4 * e / (1 + e) ** 2


def tanh(module: nn.Module, a: Tensor) -> Derivs:
    """``σ = tanh a``, ``σ' = sech² a``, ``σ'' = −2 tanh(a)·sech² a`` (``sech²`` from
    :func:`_sech2`, never ``1 − σ²``)."""
    t = torch.tanh(a)
    d1 = _sech2(a)
    return t, d1, -2 * t * d1


def relu(module: nn.Module, a: Tensor) -> Derivs:
    """``σ = max(a, 0)``, ``σ' = 1[a > 0]``, ``σ'' ≡ 0``."""
    return torch.relu(a), (a > 0).to(a.dtype), None


def leaky_relu(module: nn.LeakyReLU, a: Tensor) -> Derivs:
    """``σ = a`` for ``a > 0`` else ``s·a`` (``s = negative_slope``); ``σ'' ≡ 0``."""
    slope = float(module.negative_slope)
    positive = a > 0
    z = torch.where(positive, a, slope * a)
    d1 = torch.where(positive, torch.ones_like(a), torch.full_like(a, slope))
    return z, d1, None


def softplus(module: nn.Softplus, a: Tensor) -> Derivs:
    """``σ = log(1 + e^{βa})/β`` (``= a`` where ``βa > threshold``, as PyTorch does).

    ``σ' = sigmoid(βa)`` and ``σ'' = β·sigmoid(βa)·sigmoid(−βa)`` on the smooth
    branch; ``1`` and ``0`` on the linear branch.
    """
    beta, threshold = float(module.beta), float(module.threshold)
    ba = beta * a
    linear = ba > threshold
    s = torch.sigmoid(ba)
    z = torch.where(linear, a, torch.nn.functional.softplus(a, beta=beta, threshold=threshold))
    d1 = torch.where(linear, torch.ones_like(a), s)
    # β·σ(βa)σ(−βa): no 1 − σ cancellation as βa approaches the threshold
    d2 = torch.where(linear, torch.zeros_like(a), beta * s * torch.sigmoid(-ba))
    return z, d1, d2


def elu(module: nn.ELU, a: Tensor) -> Derivs:
    """``σ = a`` for ``a > 0`` else ``α(eᵃ − 1)``: ``σ' = 1`` resp. ``αeᵃ`` and
    ``σ'' = 0`` resp. ``αeᵃ``."""
    alpha = float(module.alpha)
    positive = a > 0
    ae = alpha * torch.exp(torch.clamp(a, max=0))
    z = torch.where(positive, a, alpha * torch.expm1(torch.clamp(a, max=0)))
    d1 = torch.where(positive, torch.ones_like(a), ae)
    d2 = torch.where(positive, torch.zeros_like(a), ae)
    return z, d1, d2


def gelu(module: nn.GELU, a: Tensor) -> Derivs:
    """GELU, exact (``approximate="none"``) or tanh form (``approximate="tanh"``).

    Exact: ``σ = aΦ(a)``, ``σ' = Φ(a) + aφ(a)``, ``σ'' = φ(a)(2 − a²)``, with
    ``Φ(a) = ½erfc(−a/√2)`` (``½(1 + erf)`` cancels for ``a ≪ 0``).
    Tanh: ``σ = ½a(1 + tanh u)``, ``u = k(a + c a³)``. With ``s = σ(2u)``, ``s̄ = σ(−2u)``:
    ``½(1 + tanh u) = s``, ``1 − tanh² u = 4ss̄``, ``tanh u = s − s̄`` (no ``1 + tanh u``
    cancellation for ``a ≪ 0``), so ``σ = a·s``, ``σ' = s + 2a·ss̄·u'`` and
    ``σ'' = 4ss̄(u' + ½a(u'' − 2(s − s̄)u'²))``.
    """
    if module.approximate == "tanh":
        k, c = _GELU_TANH_K, _GELU_TANH_C
        u = k * (a + c * a**3)
        du = k * (1 + 3 * c * a * a)
        ddu = 6 * k * c * a
        s, s_neg = torch.sigmoid(2 * u), torch.sigmoid(-2 * u)
        sech2 = 4 * s * s_neg
        z = a * s
        d1 = s + 0.5 * a * sech2 * du
        d2 = sech2 * (du + 0.5 * a * (ddu - 2 * (s - s_neg) * du * du))
        return z, d1, d2
    if module.approximate != "none":
        raise ValueError(f"GELU approximate must be 'none' or 'tanh'; got {module.approximate!r}")
    cdf = 0.5 * torch.erfc(-a / math.sqrt(2.0))
    pdf = torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    return a * cdf, cdf + a * pdf, pdf * (2 - a * a)


def silu(module: nn.Module, a: Tensor) -> Derivs:
    """``σ = a·s`` with ``s = sigmoid(a)``, ``s̄ = sigmoid(−a) = 1 − s``;
    ``σ' = s + a·ss̄``, ``σ'' = ss̄(2 − a·tanh(a/2))`` (stable: ``1 − 2s = −tanh(a/2)``, and
    ``ss̄`` never forms ``1 − s``)."""
    s, s_neg = torch.sigmoid(a), torch.sigmoid(-a)
    ss = s * s_neg
    return a * s, s + a * ss, ss * (2 - a * torch.tanh(a / 2))


def logsigmoid(module: nn.Module, a: Tensor) -> Derivs:
    """``σ = log sigmoid(a) = −softplus(−a)``, ``σ' = sigmoid(−a)``,
    ``σ'' = −sigmoid(a)·sigmoid(−a)`` (both factors formed directly: ``1 − sigmoid`` would
    lose the tail). The 5-layer network of the paper's appendix uses it."""
    s, s_neg = torch.sigmoid(a), torch.sigmoid(-a)
    return nn.functional.logsigmoid(a), s_neg, -s * s_neg


def identity(module: nn.Module, a: Tensor) -> Derivs:
    """``σ = a``: ``σ' ≡ 1``, ``σ'' ≡ 0``."""
    return a, None, None


#: exact module type -> rule. Subclasses are not matched: they may override ``forward``.
RULES: dict[type, Callable[[nn.Module, Tensor], Derivs]] = {
    nn.Sigmoid: sigmoid,
    nn.Tanh: tanh,
    nn.ReLU: relu,
    nn.LeakyReLU: leaky_relu,
    nn.Softplus: softplus,
    nn.ELU: elu,
    nn.GELU: gelu,
    nn.SiLU: silu,
    nn.LogSigmoid: logsigmoid,
    nn.Identity: identity,
}


@_rules.rule(*RULES)
def elementwise_rule(walker, name: str, module: nn.Module) -> None:
    """Structured-path rule of every activation above: composed into the ``σ`` of the
    preceding Linear layer (or applied to the inputs before the first one)."""
    walker.add_elementwise(name, module, RULES[type(module)])


def compose(
    first: Derivs, rule: Callable[[nn.Module, Tensor], Derivs], module: nn.Module
) -> Derivs:
    """Chain rule for ``g ∘ f`` applied elementwise: given ``(f, f', f'')`` at ``a``,
    return ``(g(f), g'(f)·f', g''(f)·f'² + g'(f)·f'')``. ``None`` keeps its meaning
    (``f' ≡ 1``, ``f'' ≡ 0``)."""
    z, d1, d2 = first
    gz, g1, g2 = rule(module, z)
    new_d1 = _mul(g1, d1)
    curv_from_g = None if g2 is None else (g2 if d1 is None else g2 * d1 * d1)
    curv_from_f = None if d2 is None else (d2 if g1 is None else g1 * d2)
    if curv_from_g is None:
        new_d2 = curv_from_f
    elif curv_from_f is None:
        new_d2 = curv_from_g
    else:
        new_d2 = curv_from_g + curv_from_f
    return gz, new_d1, new_d2


def _mul(x: Tensor | None, y: Tensor | None) -> Tensor | None:
    if x is None:
        return y
    if y is None:
        return x
    return x * y


__all__ = ["RULES", "compose", "Derivs"]
