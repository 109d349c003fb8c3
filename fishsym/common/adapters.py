"""Output adapters: from the parametrisation a network emits to the family's natural
parameters ``h`` (docs/theory.md §1).

Networks rarely emit natural parameters for anything but logits: a regression head
gives ``(mean, log-variance)``, a count head a rate through ``softplus``. An adapter is a
differentiable map ``z ↦ h(z)`` applied to the model's output inside the engine — pass it
as ``output=`` to any entry point (``fisher_variances``, ``diagonal_fisher``,
``montecarlo.estimate``, ``reference.exact_moments``) — so the Fisher information and
the estimators are those of the **network's real output**: ``u_i = ∂h/∂θ_i`` and
``w_i = ∂²h/∂θ_i²`` carry the chain rule through the adapter (its curvature included),
exactly as if the adapter were the network's last layer. The Fisher of ``θ`` does not
depend on how the output is parametrised; ``V₂`` does (``w_i`` gains the adapter's
curvature), which is why the adapter must be part of the model and not an afterthought.

Adapters (each a :class:`Adapter`, composable with a selector via ``select=``):

* :func:`mean_logvar` — ``(μ, s = log σ²)`` → ``gaussian_meanvar``'s
  ``h = (μ e^{−s}, −½ e^{−s})``;
* :func:`mean_softplus_std` — ``(μ, ρ)``, ``σ = softplus(ρ)`` → ``(μ/σ², −1/(2σ²))``;
* :func:`rate` — a rate ``λ = exp(z)`` or ``softplus(z)`` → the natural parameter of
  ``poisson`` (``log λ``) or ``exponential`` (``−λ``), formed without ``log(exp(·))``
  round trips (``log softplus(z) = z + log1p(… )`` stably for ``z ≪ 0``);
* :func:`angle_concentration` — a mean angle ``μ`` and a concentration ``κ = exp(z)`` or
  ``softplus(z)`` → ``von_mises``'s ``h = (κ cos μ, κ sin μ)`` (a network that emits
  ``h`` itself — two unconstrained outputs — needs no adapter).

Any callable ``z ↦ h`` works too (``output=lambda z: ...``); these named ones are stable
forms, and they say what they are in results.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from fishsym.errors import InvalidArgumentError, ShapeError

#: below this ``z``, ``log softplus(z) = z + log(1 − e^z/2 + e^{2z}/3 − …)``: the series
#: to the e^{2z} term has error below e^{3z}/4 < 1e−39 here
_LOG_SOFTPLUS_SERIES = -30.0


class Adapter:
    """A named output map ``z ↦ h`` (optionally after a selector of the model's output).

    Calling it applies ``select`` (if any), checks the last axis has ``width`` entries,
    and maps them to natural parameters.
    """

    def __init__(self, name: str, fn: Callable[[Tensor], Tensor], width: int, select=None):
        if select is not None and not callable(select):
            raise InvalidArgumentError(
                f"select must be a callable on the model's output (e.g. lambda out: out.logits); "
                f"got {select!r}"
            )
        self.name, self.fn, self.width, self.select = name, fn, width, select

    def __call__(self, out) -> Tensor:
        z = self.select(out) if self.select is not None else out
        if not isinstance(z, Tensor) or z.dim() < 1 or z.shape[-1] != self.width:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ShapeError(
                f"adapter {self.name!r} maps [..., {self.width}] network outputs to natural "
                f"parameters; got {shape}"
            )
        return self.fn(z)

    def __repr__(self) -> str:
        return f"Adapter({self.name!r})"


def log_softplus(z: Tensor) -> Tensor:
    """``log(softplus(z))`` without underflow for ``z ≪ 0`` (where ``softplus(z) ≈ e^z``)."""
    far = z < _LOG_SOFTPLUS_SERIES
    # each branch sees only arguments where it is finite, so that no NaN gradient of the
    # branch not taken leaks through torch.where
    zs = torch.where(far, z, torch.full_like(z, _LOG_SOFTPLUS_SERIES))
    zd = torch.where(far, torch.zeros_like(z), z)
    series = zs + torch.log1p(-torch.exp(zs) / 2 + torch.exp(2 * zs) / 3)
    direct = torch.log(F.softplus(zd))
    return torch.where(far, series, direct)


def _mean_logvar(z: Tensor) -> Tensor:
    mu, s = z[..., 0], z[..., 1]
    precision = torch.exp(-s)
    return torch.stack((mu * precision, -0.5 * precision), -1)


def _mean_softplus_std(z: Tensor) -> Tensor:
    mu, sigma = z[..., 0], F.softplus(z[..., 1])
    precision = sigma.pow(-2)
    return torch.stack((mu * precision, -0.5 * precision), -1)


def mean_logvar(select=None) -> Adapter:
    """``(μ, log σ²)`` → ``gaussian_meanvar``'s ``h = (μ/σ², −1/(2σ²))``."""
    return Adapter("mean_logvar", _mean_logvar, 2, select)


def mean_softplus_std(select=None) -> Adapter:
    """``(μ, ρ)`` with ``σ = softplus(ρ)`` → ``h = (μ/σ², −1/(2σ²))`` (``gaussian_meanvar``)."""
    return Adapter("mean_softplus_std", _mean_softplus_std, 2, select)


#: family → (link → natural parameter of the rate's family from the raw output z)
_RATES = {
    "poisson": {"exp": lambda z: z, "softplus": log_softplus},  # h = log λ
    "exponential": {"exp": lambda z: -torch.exp(z), "softplus": lambda z: -F.softplus(z)},  # h = −λ
}


def rate(family: str, link: str = "softplus", select=None) -> Adapter:
    """A rate ``λ = link(z)`` (``"exp"`` or ``"softplus"``, one output) → the natural
    parameter of ``family`` (``"poisson"``: ``log λ``; ``"exponential"``: ``−λ``)."""
    if family not in _RATES:
        raise InvalidArgumentError(
            f"rate adapters exist for families {sorted(_RATES)}; got {family!r}"
        )
    if link not in _RATES[family]:
        raise InvalidArgumentError(f"link must be one of {sorted(_RATES[family])}; got {link!r}")
    return Adapter(f"{family}_{link}_rate", _RATES[family][link], 1, select)


_CONCENTRATIONS = {"exp": torch.exp, "softplus": F.softplus}


def angle_concentration(link: str = "softplus", select=None) -> Adapter:
    """``(μ, z)``: a mean angle ``μ`` (radians) and a concentration ``κ = link(z)``
    (``"exp"`` or ``"softplus"``) → ``von_mises``'s ``h = (κ cos μ, κ sin μ)``."""
    if link not in _CONCENTRATIONS:
        raise InvalidArgumentError(f"link must be one of {sorted(_CONCENTRATIONS)}; got {link!r}")
    to_kappa = _CONCENTRATIONS[link]

    def fn(z: Tensor) -> Tensor:
        mu, kappa = z[..., 0], to_kappa(z[..., 1])
        return torch.stack((kappa * torch.cos(mu), kappa * torch.sin(mu)), -1)

    return Adapter(f"angle_{link}_concentration", fn, 2, select)


__all__ = [
    "Adapter",
    "angle_concentration",
    "log_softplus",
    "mean_logvar",
    "mean_softplus_std",
    "rate",
]
