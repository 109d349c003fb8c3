"""The model step: symbolic derivatives of ℓ through a network (score, curvature) and their
expectations over the label.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import sympy as sp

from fishsym.symbolic.models import SymbolicModel
from fishsym.symbolic.theory.constants import POINTS, SOS, SYMBOLIC
from fishsym.symbolic.theory.moments import FreeCumulants
from fishsym.symbolic.theory.zero import prove_zero


class _LogPartitionDerivative(sp.Function):
    """``∂^{ms} F`` applied to ``h``: an abstract function whose derivative in argument
    ``c`` is ``∂^{ms+c} F`` — sympy's chain rule then leaves the cumulants unevaluated."""

    ms: tuple[int, ...] = ()

    @classmethod
    def eval(cls, *args):
        return None

    def fdiff(self, argindex=1):
        return log_partition_function(tuple(sorted((*self.ms, argindex - 1))))(*self.args)


@cache
def log_partition_function(ms: tuple[int, ...] = ()) -> type[_LogPartitionDerivative]:
    """The function class ``∂^{ms}F`` (``F`` itself for ``ms = ()``)."""
    name = "F" if not ms else "F_" + "".join(str(c + 1) for c in ms)
    return type(name, (_LogPartitionDerivative,), {"ms": tuple(ms)})


@dataclass(frozen=True, eq=False)
class Derivation:
    """ℓ, score and curvature of a model with an abstract log-partition ``F``.

    ``score[i] = ∂ℓ/∂θ_i`` and ``curvature[i] = ∂²ℓ/∂θ_i²`` as computed by sympy, with the
    derivatives of ``F`` at ``h(θ; x)`` replaced by the cumulant symbols of ``cumulants``.
    """

    model: SymbolicModel
    T: tuple[sp.Symbol, ...]
    cumulants: FreeCumulants
    loglik: sp.Expr
    score: tuple[sp.Expr, ...]
    curvature: tuple[sp.Expr, ...]


def suff_stat_symbols(d: int, tag: str = "") -> tuple[sp.Symbol, ...]:
    """``T_1..T_d``: the sufficient statistic as symbols (ℓ is linear in them)."""
    return tuple(sp.Symbol(f"T_{c + 1}{tag}", real=True) for c in range(d))


def derive(model: SymbolicModel) -> Derivation:
    """Differentiate ``ℓ = Tᵀh − F(h) + log k(y)`` through the model (cached per model)."""
    if "derivation" in model._cache:
        return model._cache["derivation"]
    d = model.d
    T = suff_stat_symbols(d)
    cum = FreeCumulants(d)
    F = log_partition_function(())(*model.outputs)
    loglik = (
        sum((t * h for t, h in zip(T, model.outputs, strict=True)), sp.Integer(0))
        - F
        + sp.Symbol("log_k_y")
    )
    score, curvature = [], []
    for theta in model.params:
        s = sp.diff(loglik, theta)
        score.append(s)
        curvature.append(sp.diff(s, theta))
    der = Derivation(
        model,
        T,
        cum,
        loglik,
        tuple(_to_cumulant_symbols(s, model, cum) for s in score),
        tuple(_to_cumulant_symbols(c, model, cum) for c in curvature),
    )
    model._cache["derivation"] = der
    return der


def _to_cumulant_symbols(expr: sp.Expr, model: SymbolicModel, cum: FreeCumulants) -> sp.Expr:
    mapping = {}
    for a in expr.atoms(_LogPartitionDerivative):
        if a.args != model.outputs:  # pragma: no cover - guards the construction above
            raise AssertionError(f"{a} is not evaluated at the model's h")
        mapping[a] = cum.kappa(a.ms)
    return expr.xreplace(mapping)


def expected_score(der: Derivation, i: int) -> sp.Expr:
    """``(T − η)ᵀ u_i`` (docs/theory.md §1) with ``u_i`` from the model."""
    u = der.model.jac(i)
    return sum(
        ((t - e) * uc for t, e, uc in zip(der.T, der.cumulants.eta, u, strict=True)), sp.Integer(0)
    )


def expected_curvature(der: Derivation, i: int) -> sp.Expr:
    """``(T − η)ᵀ w_i − u_iᵀ I u_i`` (docs/theory.md §1)."""
    w = der.model.hess_diag(i)
    lin = sum(
        ((t - e) * wc for t, e, wc in zip(der.T, der.cumulants.eta, w, strict=True)), sp.Integer(0)
    )
    return lin - der.cumulants.quadratic(der.model.jac(i))


@dataclass(frozen=True)
class StepResult:
    passed: bool
    method: str
    detail: str


def model_step(model: SymbolicModel) -> StepResult:
    """Prove ``∂_iℓ = (T−η)ᵀu_i`` and ``∂²_iℓ = (T−η)ᵀw_i − u_iᵀIu_i`` for every parameter."""
    if "model_step" in model._cache:
        return model._cache["model_step"]
    der = derive(model)
    methods, failures = set(), []
    for i in range(model.n_params):
        for what, got, want in (
            ("score", der.score[i], expected_score(der, i)),
            ("curvature", der.curvature[i], expected_curvature(der, i)),
        ):
            z = prove_zero(got - want)
            methods.add(z.method)
            if z.zero is not True:
                failures.append(f"{what} of {model.params[i]}: {z.note}")
    res = StepResult(
        not failures,
        _combine_methods(methods),
        f"{model.name}: ∂ℓ, ∂²ℓ by sympy's chain rule = docs/theory.md §1 forms for all "
        f"{model.n_params} parameters"
        if not failures
        else "; ".join(failures[:3]),
    )
    model._cache["model_step"] = res
    return res


def _combine_methods(methods: Iterable[str]) -> str:
    methods = set(methods)
    return POINTS if POINTS in methods else (SOS if SOS in methods else SYMBOLIC)
