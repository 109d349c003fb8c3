"""The closed forms under test (docs/theory.md §2, §5): V₁, V₂, covariances, joint and
empirical forms.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp


def _fisher_diag(m, u):
    """``I(θ_i|x) = u_iᵀ I u_i`` (docs/theory.md §1)."""
    return m.quadratic(u)


def _var1(m, u):
    """``V₁ = μ₄[u⁴] − I(θ_i|x)²`` (docs/theory.md §2, N = 1)."""
    return m.quartic(u) - m.quadratic(u) ** 2


def _var1_cumulant(m, u):
    """``V₁ = κ₄[u⁴] + 2 I(θ_i|x)²`` (docs/theory.md §2)."""
    return m.cumulant4(u) + 2 * m.quadratic(u) ** 2


def _var2(m, w):
    """``V₂ = wᵀ I w`` (docs/theory.md §2)."""
    return m.quadratic(w)


def _cov1(m, u, v):
    """``Cov(Î₁(θ_i), Î₁(θ_j)) = μ₄[u_i,u_i,u_j,u_j] − I_ii I_jj`` (docs/theory.md §2)."""
    return m.form4(u, u, v, v) - m.quadratic(u) * m.quadratic(v)


def _cov2(m, w, x):
    """``Cov(Î₂(θ_i), Î₂(θ_j)) = w_iᵀ I w_j`` (docs/theory.md §2)."""
    return m.bilinear(w, x)


def _joint_var(v_cond, fisher_cond, weights, n_x=1, n_y=1):
    """``(1/N_x)(E_x[v_a]/N_y + Var_x[I(θ_i|x)])`` over a finite input law (docs/theory.md §5)."""
    e_v = sum(q * v for q, v in zip(weights, v_cond, strict=True))
    e_i = sum(q * f for q, f in zip(weights, fisher_cond, strict=True))
    var_i = sum(q * f**2 for q, f in zip(weights, fisher_cond, strict=True)) - e_i**2
    return (e_v * sp.Rational(1, n_y) + var_i) * sp.Rational(1, n_x)


def _delta_dot(mq, mp, u):
    """``δᵀu`` with ``δ = E_q[t] − η(h)``: data mean minus model mean."""
    return sum((a - b) * c for a, b, c in zip(mq.eta, mp.eta, u, strict=True))


def _empirical_mean(mq, mp, u):
    """``E_q[(∂_iℓ)²] = uᵀ(Cov_q[t] + δδᵀ)u`` with ``δ = E_q[t] − η(h)`` (docs/theory.md §5).

    ``mq``: moments of the data labels' law; ``mp``: the model's (``η(h)``, ``I(h)``).
    """
    return mq.quadratic(u) + _delta_dot(mq, mp, u) ** 2


def _empirical_bias(mq, mp, u):
    """``E_q[(∂_iℓ)²] − I(θ_i|x) = uᵀ(Cov_q[t] − I(h) + δδᵀ)u`` (docs/theory.md §5)."""
    return mq.quadratic(u) - mp.quadratic(u) + _delta_dot(mq, mp, u) ** 2


def _shifted_fourth(mq, mp, u):
    """``E_q[(uᵀ(t−η))⁴] = μ₄^q[u⁴] + 4μ₃^q[u³](δᵀu) + 6μ₂^q[u²](δᵀu)² + (δᵀu)⁴``
    (docs/theory.md §5)."""
    du = _delta_dot(mq, mp, u)
    return mq.quartic(u) + 4 * mq.cubic(u) * du + 6 * mq.quadratic(u) * du**2 + du**4


def _empirical_var(mq, mp, u):
    """``E_q[(uᵀ(t−η))⁴] − (E_q[(uᵀ(t−η))²])²`` with the shift formula (docs/theory.md §5)."""
    return _shifted_fourth(mq, mp, u) - _empirical_mean(mq, mp, u) ** 2


def _empirical_hessian_mean(mq, mp, u, w):
    """``E_q[−∂²_iℓ] = I(θ_i|x) − δᵀw_i`` (docs/theory.md §5)."""
    return mp.quadratic(u) - _delta_dot(mq, mp, w)


def _empirical_hessian_var(mq, mp, w):
    """``Var_q[∂²_iℓ] = w_iᵀ Cov_q[t] w_i`` (docs/theory.md §5)."""
    return mq.quadratic(w)


@dataclass(frozen=True)
class ClosedForms:
    """The closed forms under test (docs/theory.md §1–§5). Replace one (``dataclasses.replace``)
    to see that a wrong formula is refuted: every check compares the exact expectation
    against these functions."""

    fisher_diag: Callable = _fisher_diag
    var1: Callable = _var1
    var1_cumulant: Callable = _var1_cumulant
    var2: Callable = _var2
    cov1: Callable = _cov1
    cov2: Callable = _cov2
    joint_var: Callable = _joint_var
    empirical_mean: Callable = _empirical_mean
    empirical_bias: Callable = _empirical_bias
    empirical_var: Callable = _empirical_var
    empirical_hessian_mean: Callable = _empirical_hessian_mean
    empirical_hessian_var: Callable = _empirical_hessian_var


CLOSED_FORMS = ClosedForms()
