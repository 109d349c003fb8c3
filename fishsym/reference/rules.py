"""Label rules: how an expectation over ``y ∼ p(y | h)`` is taken exactly (docs/theory.md §6).

A rule is a set of labels ``y_j`` and weights ``ω_j`` per input with

    E_{y∼p(·|h)}[f(y)] = Σ_j ω_j f(y_j)

for every ``f`` the reference needs. Those ``f`` are polynomials in the sufficient
statistic ``t(y)``: the single-label score ``∂_iℓ = (t − η)ᵀu_i`` is affine in ``t``, so
``Î₁ = (∂_iℓ)²`` has degree 2, its variance degree 4 and its fourth central moment
(which :mod:`fishsym.montecarlo` uses for exact standard errors) degree
:data:`MOMENT_DEGREE` = 8; ``Î₂`` is affine in ``t`` and needs at most degree 4. The rules
are exact for these degrees (or, for countable supports, exact up to a certified tail):

* **finite supports** — enumerate ``kernel.support_labels()``, ``ω_j = p(y_j | h)``;
* **real line, log-density quadratic in y** (Gaussian heads: ``gaussian``,
  ``gaussian_meanvar``) — Gauss–Hermite with ``4·deg_t + 1`` nodes per coordinate (exact
  for polynomials of degree ``8·deg_t + 1`` in ``y``, ``deg_t`` the degree of ``t`` in
  ``y``: 5 nodes for ``t = y``, 9 for ``t = (y, y²)``), centred and scaled by the
  mean and covariance read off ``log p`` by autograd in ``y`` (for a quadratic
  log-density the Newton step from ``y = 0`` lands on the mean exactly);
* **positive reals, log-density affine in y** (``exponential``) — Gauss–Laguerre with
  ``4·deg_t + 1`` nodes at the rate ``λ = −∂_y log p`` read off by autograd;
* **non-negative integers with t = y** (``poisson``, ``geometric``,
  ``negative_binomial``) — the sum over ``0..K`` with ``K`` chosen so that the certified
  tail bound of :func:`countable_tail_bound` is below :data:`TAIL_TOL`;
* **the circle with t = (cos y, sin y)** (``von_mises``) — the ``N``-point periodic
  midpoint rule, with ``N`` chosen so that the certified aliasing bound of
  :func:`circle_aliasing_bound` is below :data:`TAIL_TOL` (the quantities integrated are
  trigonometric polynomials of degree ≤ 8 in ``y``, and the density's Fourier
  coefficients ``A_k(r)/2π`` decay faster than ``(r/2)^k/k!``).

Every continuous rule takes its weights from the kernel's own ``log_prob``:
``ω_j = (quadrature weight) × p(y_j | h) / (the quadrature's weight function at y_j)``,
and the weights are checked to sum to one within :data:`NORMALISATION_TOL`, so a kernel
whose density is not of the assumed shape is detected rather than integrated wrongly.
Families with no exact rule (``gamma``, ``beta``: ``t`` contains ``log y``) raise
:class:`~fishsym.errors.UnsupportedModelError`; use Monte Carlo there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp
import torch
from torch import Tensor
from torch.func import grad, hessian, vmap

from fishsym.errors import DomainError, FamilyDefinitionError, UnsupportedModelError
from fishsym.symbolic.support import (
    Circle,
    NonNegativeIntegers,
    PositiveReals,
    ProductSupport,
    RealLine,
)

#: degree in t of the highest-order quantity the reference integrates: the fourth
#: central moment of the single-label squared score, ((t−η)ᵀu)⁸ after expansion
MOMENT_DEGREE = 8
#: |Σ_j ω_j − 1| allowed for a rule's weights. The weights are probabilities from a
#: float64 log_prob (finite supports) or quadrature weights times a density ratio that is
#: 1 in exact arithmetic (continuous rules): both are exact to a few hundred ulps, so a
#: larger deviation means the kernel's density is not what the rule assumes.
NORMALISATION_TOL = 1e-12
#: certified bound on Σ_{k>K} p(k)(1+k)^MOMENT_DEGREE for truncated sums: every moment
#: E[y^j], j ≤ 8, and the total mass lose less than this (absolute, and relative since
#: E[(1+y)^8] ≥ 1), far below the 1e-10 agreement the reference is held to
TAIL_TOL = 1e-17
#: the truncation K never exceeds this (a heavier tail is refused, not integrated)
MAX_TRUNCATION = 200_000
#: the largest Gauss–Hermite product grid (nodes per coordinate ** coordinates) allowed
MAX_GRID = 100_000
#: the most nodes of the periodic rule on the circle (enough for concentrations ‖h‖ ≲ 10⁴)
MAX_CIRCLE_NODES = 40_000


@dataclass(frozen=True)
class LabelRule:
    """Labels and weights for exact expectations at each of ``n`` inputs.

    Attributes
    ----------
    kind:
        ``"enumeration"``, ``"gauss-hermite"``, ``"gauss-laguerre"``, ``"truncated-sum"`` or
        ``"circle-midpoint"``.
    labels:
        ``[n, J, *obs_shape]`` labels ``y_j`` (per input; continuous rules move with ``h``).
    weights:
        ``[n, J]`` float64 weights ``ω_j``.
    tail_bound:
        Certified bound on ``Σ_{y ∉ labels} p(y)(1+y)^8`` (0.0 for exact rules); for the
        circle, on the aliasing error per unit ``‖f̂‖₁`` (:func:`circle_aliasing_bound`).
    detail:
        One line saying what was done (nodes, exactness degree, truncation point).
    """

    kind: str
    labels: Tensor
    weights: Tensor
    tail_bound: float
    detail: str

    @property
    def n_labels(self) -> int:
        return self.labels.shape[1]


def label_rule(kernel, h: Tensor) -> LabelRule:
    """The exact label rule for ``kernel`` at natural parameters ``h`` ``[n, d]`` (float64).

    Raises :class:`UnsupportedModelError` when the family has no exact rule, and
    :class:`DomainError` when a countable family's tail is too heavy to truncate.
    """
    fam = kernel.family
    support = fam.support
    if support.finite:
        return _enumeration(kernel, h)
    if _is_real_space(support):
        if _log_density_degree(fam) == 2:
            return _gauss_hermite(kernel, h)
    elif isinstance(support, PositiveReals):
        if _log_density_degree(fam) == 1:
            return _gauss_laguerre(kernel, h)
    elif isinstance(support, NonNegativeIntegers):
        if fam.dim == 1 and sp.simplify(fam.suff_stat[0] - fam.y) == 0:
            return _truncated_sum(kernel, h)
    elif isinstance(support, Circle):
        if _is_first_harmonic(fam):
            return _circle_midpoint(kernel, h)
    raise UnsupportedModelError(
        f"exact_moments: family {kernel.name!r} (support {support!r}, t(y) = "
        f"{list(fam.suff_stat)}) has no exact label rule. Exact rules exist for finite "
        f"supports, Gaussian heads (log-density quadratic in y), exponential heads "
        f"(log-density affine in y on y > 0), countable supports with t(y) = y and the "
        f"circle with t(y) = (cos y, sin y). Use "
        f"fishsym.montecarlo.estimate for this family."
    )


# ---------------------------------------------------------------------------------- helpers
def _is_real_space(support) -> bool:
    if isinstance(support, RealLine):
        return True
    return isinstance(support, ProductSupport) and all(
        isinstance(f, RealLine) for f in support.factors
    )


def _polynomial_degree(expr, symbols) -> int | None:
    """Total degree of ``expr`` as a polynomial in ``symbols`` (None if not polynomial)."""
    try:
        return sp.Poly(sp.expand(expr), *symbols).total_degree()
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return None


def _log_density_degree(fam) -> int | None:
    return _polynomial_degree(fam.log_density, fam.obs_symbols)


def _suff_stat_degree(fam) -> int:
    degrees = [_polynomial_degree(t, fam.obs_symbols) for t in fam.suff_stat]
    if any(d is None for d in degrees):
        raise UnsupportedModelError(
            f"exact_moments: family {fam.name!r} has a sufficient statistic {list(fam.suff_stat)} "
            f"that is not polynomial in y, so no Gauss rule is exact for it"
        )
    return max(max(degrees), 1)


def nodes_needed(suff_stat_degree: int) -> int:
    """Gauss nodes per coordinate for exactness on polynomials of degree
    ``MOMENT_DEGREE · deg_t`` in ``y``: an ``n``-node Gauss rule is exact up to degree
    ``2n − 1``."""
    return (MOMENT_DEGREE * suff_stat_degree) // 2 + 1


def _check_normalisation(kernel, weights: Tensor, rule: str) -> None:
    total = weights.sum(-1)
    err = float((total - 1).abs().max())
    if not math.isfinite(err) or err > NORMALISATION_TOL:
        raise FamilyDefinitionError(
            f"exact_moments: the {rule} weights of family {kernel.name!r} sum to "
            f"{total.min().item():.17g}..{total.max().item():.17g}, not 1 within "
            f"{NORMALISATION_TOL:g}; the kernel's log_prob is not a normalised density of the "
            f"shape this rule assumes"
        )


def _log_prob_at(kernel, labels: Tensor, h: Tensor) -> Tensor:
    """``log p(labels[n, j] | h[n])`` → ``[n, J]``."""
    obs_dims = len(kernel.obs_shape)
    hh = h.reshape(h.shape[0], *([1] * (labels.dim() - 1 - obs_dims)), h.shape[-1])
    return kernel.log_prob(labels, hh)


# ---------------------------------------------------------------------------------- rules
def _enumeration(kernel, h: Tensor) -> LabelRule:
    support = kernel.support_labels()
    n = h.shape[0]
    labels = support.unsqueeze(0).expand(n, *support.shape)
    weights = _log_prob_at(kernel, labels, h).exp()
    _check_normalisation(kernel, weights, "enumeration")
    return LabelRule(
        "enumeration",
        labels,
        weights,
        0.0,
        f"enumeration of all {support.shape[0]} labels, weights exp(log_prob)",
    )


def _gauss_hermite(kernel, h: Tensor) -> LabelRule:
    fam = kernel.family
    m = len(fam.obs_symbols)
    n_nodes = nodes_needed(_suff_stat_degree(fam))
    if n_nodes**m > MAX_GRID:
        raise UnsupportedModelError(
            f"exact_moments: a Gauss–Hermite grid for family {kernel.name!r} would have "
            f"{n_nodes}^{m} nodes (more than {MAX_GRID}); use fishsym.montecarlo.estimate"
        )
    scalar = kernel.obs_shape == ()

    def logp(y, hn):
        return kernel.log_prob(y[0] if scalar else y, hn)

    y0 = torch.zeros(h.shape[0], m, dtype=h.dtype)
    g = vmap(grad(logp))(y0, h)  # [n, m]
    H = vmap(hessian(logp))(y0, h)  # [n, m, m]
    cov = torch.linalg.inv(-H)
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise DomainError(
            f"exact_moments: the log-density of family {kernel.name!r} is not concave in y at "
            f"some inputs (its Hessian in y is not negative definite); no Gaussian rule applies"
        )
    mu = (cov @ g.unsqueeze(-1)).squeeze(-1)
    x1, w1 = np.polynomial.hermite.hermgauss(n_nodes)
    grid = torch.cartesian_prod(*[torch.as_tensor(x1, dtype=h.dtype)] * m).reshape(-1, m)
    wgrid = torch.cartesian_prod(*[torch.as_tensor(w1, dtype=h.dtype)] * m).reshape(-1, m).prod(-1)
    # ∫ f(y) p(y) dy with y = μ + √2 L x:  Σ_k w_k e^{‖x_k‖²} 2^{m/2} det L p(y_k) f(y_k)
    labels = mu.unsqueeze(1) + math.sqrt(2.0) * torch.einsum("nab,jb->nja", chol, grid)
    log_jac = 0.5 * m * math.log(2.0) + torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
    if scalar:
        labels = labels.squeeze(-1)
    log_w = (
        wgrid.log() + (grid**2).sum(-1) + log_jac.unsqueeze(-1) + _log_prob_at(kernel, labels, h)
    )
    weights = log_w.exp()
    _check_normalisation(kernel, weights, "Gauss–Hermite")
    return LabelRule(
        "gauss-hermite",
        labels,
        weights,
        0.0,
        f"Gauss–Hermite, {n_nodes} nodes per coordinate ({n_nodes**m} in all), exact for "
        f"polynomials in y of degree ≤ {2 * n_nodes - 1}",
    )


def _gauss_laguerre(kernel, h: Tensor) -> LabelRule:
    fam = kernel.family
    n_nodes = nodes_needed(_suff_stat_degree(fam))

    def logp(y, hn):
        return kernel.log_prob(y, hn)

    one = torch.ones(h.shape[0], dtype=h.dtype)
    rate = -vmap(grad(logp))(one, h)  # [n]; log p is affine in y, so this is −(slope)
    if bool((rate <= 0).any()) or not bool(torch.isfinite(rate).all()):
        raise DomainError(
            f"exact_moments: family {kernel.name!r} has a log-density that does not decrease "
            f"in y at some inputs; no Gauss–Laguerre rule applies"
        )
    x1, w1 = np.polynomial.laguerre.laggauss(n_nodes)
    x = torch.as_tensor(x1, dtype=h.dtype)
    w = torch.as_tensor(w1, dtype=h.dtype)
    labels = x.unsqueeze(0) / rate.unsqueeze(1)  # [n, J]
    # ∫_0^∞ f(y) p(y) dy with y = x/λ:  Σ_k w_k e^{x_k} p(x_k/λ) f(x_k/λ) / λ
    log_w = (w.log() + x).unsqueeze(0) - rate.log().unsqueeze(1) + _log_prob_at(kernel, labels, h)
    weights = log_w.exp()
    _check_normalisation(kernel, weights, "Gauss–Laguerre")
    return LabelRule(
        "gauss-laguerre",
        labels,
        weights,
        0.0,
        f"Gauss–Laguerre, {n_nodes} nodes at the rate read off log_prob, exact for "
        f"polynomials in y of degree ≤ {2 * n_nodes - 1}",
    )


@cache
def _ratio_sup_function(log_base_measure: sp.Expr, y: sp.Symbol):
    """``K ↦ sup_{y ≥ K} k(y+1)/k(y)`` for a base measure ``k`` on the integers.

    The supremum over the reals ``y ≥ K`` bounds the one over the integers. It is taken
    over the candidates a differentiable function allows: ``y = K``, the limit
    ``y → ∞`` and the real critical points above ``K``, found by sympy.
    """
    q = sp.simplify(
        sp.gammasimp(sp.combsimp(sp.exp(log_base_measure.subs(y, y + 1) - log_base_measure)))
    )
    yr = sp.Symbol("y_real", positive=True)
    qr = q.subs(y, yr)
    q_inf = sp.limit(qr, yr, sp.oo)
    dq = sp.simplify(sp.diff(qr, yr))
    crit = sp.S.EmptySet if dq == 0 else sp.solveset(dq, yr, sp.Interval(0, sp.oo))
    if not isinstance(crit, (sp.FiniteSet, type(sp.S.EmptySet))) or not q_inf.is_finite:
        raise UnsupportedModelError(
            f"exact_moments: cannot bound the ratio k(y+1)/k(y) = {q} of the base measure "
            f"(limit {q_inf}, critical points {crit}); no certified tail bound"
        )
    crit_values = [(float(c), float(qr.subs(yr, c))) for c in list(crit) if c.is_real]
    q_num = sp.lambdify(yr, qr, "math")
    q_inf = float(q_inf)

    def sup(K: int) -> float:
        cands = [q_num(float(K)), q_inf] + [v for c, v in crit_values if c >= K]
        return max(cands)

    return sup


def countable_tail_bound(log_pK: Tensor, h: Tensor, K: int, ratio_sup: float) -> Tensor:
    """Certified bound on ``Σ_{k>K} p(k)(1+k)^D`` (``D`` = :data:`MOMENT_DEGREE`), per input.

    With ``t = y`` the ratio ``p(k+1)/p(k) = e^h k(k+1)/k(k) ≤ ρ := e^h sup_{y≥K} k(y+1)/k(y)``
    for every ``k ≥ K``, so ``p(K+m) ≤ p(K)ρ^m``; and ``(1+K+m)^D ≤ (1+K)^D e^{Dm/(1+K)}``.
    Summing the geometric series with ratio ``r = ρ e^{D/(1+K)}``:

        Σ_{k>K} p(k)(1+k)^D ≤ p(K) (1+K)^D r / (1 − r)      (r < 1; +∞ otherwise).

    ``log_pK`` and ``h`` are ``[n]``; returns ``[n]`` float64 bounds.
    """
    D = MOMENT_DEGREE
    log_r = (
        h + math.log(ratio_sup) + D / (1 + K) if ratio_sup > 0 else torch.full_like(h, -math.inf)
    )
    r = log_r.exp()
    bound = torch.exp(log_pK + D * math.log(1 + K) + log_r - torch.log1p(-r.clamp(max=1.0)))
    return torch.where(r < 1, bound, torch.full_like(bound, math.inf))


def _truncated_sum(kernel, h: Tensor) -> LabelRule:
    fam = kernel.family
    sup_fn = _ratio_sup_function(fam.log_base_measure, fam.y)
    hh = h[:, 0]
    K = 32
    while True:
        k_label = torch.full((h.shape[0], 1), K, dtype=kernel.label_dtype)
        log_pK = _log_prob_at(kernel, k_label, h)[:, 0]
        bound = countable_tail_bound(log_pK, hh, K, sup_fn(K))
        worst = float(bound.max())
        if worst < TAIL_TOL:
            break
        if K >= MAX_TRUNCATION:
            raise DomainError(
                f"exact_moments: family {kernel.name!r} at h ∈ [{hh.min().item():.4g}, "
                f"{hh.max().item():.4g}] needs more than {MAX_TRUNCATION} terms for a tail "
                f"below {TAIL_TOL:g} (bound at K = {K}: {worst:.3g}); the distribution is too "
                f"heavy-tailed for exact summation"
            )
        K = min(int(math.ceil(K * 1.5)), MAX_TRUNCATION)
    support = torch.arange(K + 1).to(kernel.label_dtype)
    labels = support.unsqueeze(0).expand(h.shape[0], K + 1)
    weights = _log_prob_at(kernel, labels, h).exp()
    # the truncated mass is ≤ TAIL_TOL, inside NORMALISATION_TOL
    _check_normalisation(kernel, weights, "truncated-sum")
    return LabelRule(
        "truncated-sum",
        labels,
        weights,
        worst,
        f"sum over y = 0..{K}; certified tail Σ_(y>{K}) p(y)(1+y)^{MOMENT_DEGREE} ≤ {worst:.2e}",
    )


# ---------------------------------------------------------------------------------- circle
def _is_first_harmonic(fam) -> bool:
    """``t(y) = (cos y, sin y)`` and a constant base measure: the von Mises form."""
    if fam.dim != 2 or fam.log_base_measure.has(fam.y):
        return False
    want = (sp.cos(fam.y), sp.sin(fam.y))
    return all(sp.simplify(t - w) == 0 for t, w in zip(fam.suff_stat, want, strict=True))


def circle_aliasing_bound(r: float, n_nodes: int) -> float:
    """Certified bound on the error of the ``N``-point periodic rule for ``E[f(y)]`` under
    ``p(y) ∝ e^{r cos(y − μ)}``, per unit of ``‖f̂‖₁`` (the sum of ``|f|``'s Fourier
    coefficients), for trigonometric polynomials ``f`` of degree ≤ :data:`MOMENT_DEGREE`.

    The rule integrates ``e^{ikθ}`` exactly unless ``N | k``; ``p``'s Fourier coefficients
    are ``A_k(r)/2π`` with ``A_k = I_k/I₀``, and ``I_k(r) = Σ_m (r/2)^{2m+k}/(m!(m+k)!)``
    ``≤ (r/2)^k/k! · I₀(r)`` (as ``(m+k)! ≥ m!k!``). So the error is at most
    ``2 Σ_{k ≥ N−D} A_k ≤ 2 (r/2)^K/K! / (1 − r/(2(K+1)))`` with ``K = N − D``
    (``+∞`` unless ``K + 1 > r/2``).
    """
    K = n_nodes - MOMENT_DEGREE
    x = r / 2
    if K < 1 or K + 1 <= x:
        return math.inf
    if x == 0:
        return 0.0
    log_term = K * math.log(x) - math.lgamma(K + 1)
    return 2 * math.exp(log_term) / (1 - x / (K + 1))


def _circle_midpoint(kernel, h: Tensor) -> LabelRule:
    r = float(torch.linalg.vector_norm(h, dim=-1).max()) if h.numel() else 0.0
    n_nodes = 32
    while circle_aliasing_bound(r, n_nodes) >= TAIL_TOL:
        if n_nodes >= MAX_CIRCLE_NODES:
            raise DomainError(
                f"exact_moments: family {kernel.name!r} at concentration ‖h‖ = {r:.4g} needs "
                f"more than {MAX_CIRCLE_NODES} nodes on the circle for an aliasing error below "
                f"{TAIL_TOL:g}; use fishsym.montecarlo.estimate"
            )
        n_nodes = min(int(math.ceil(n_nodes * 1.5)), MAX_CIRCLE_NODES)
    bound = circle_aliasing_bound(r, n_nodes)
    grid = -math.pi + 2 * math.pi * (torch.arange(n_nodes, dtype=h.dtype) + 0.5) / n_nodes
    labels = grid.unsqueeze(0).expand(h.shape[0], n_nodes)
    weights = (2 * math.pi / n_nodes) * _log_prob_at(kernel, labels, h).exp()
    _check_normalisation(kernel, weights, "periodic midpoint")
    return LabelRule(
        "circle-midpoint",
        labels,
        weights,
        bound,
        f"periodic midpoint rule, {n_nodes} nodes on [−π, π); certified aliasing error ≤ "
        f"{bound:.2e}·‖f̂‖₁ for trigonometric polynomials of degree ≤ {MOMENT_DEGREE}",
    )


__all__ = [
    "LabelRule",
    "circle_aliasing_bound",
    "label_rule",
    "countable_tail_bound",
    "nodes_needed",
    "MOMENT_DEGREE",
    "TAIL_TOL",
    "NORMALISATION_TOL",
    "MAX_TRUNCATION",
    "MAX_GRID",
]
