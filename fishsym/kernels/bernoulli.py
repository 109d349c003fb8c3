"""Structured kernels of the logit families: Bernoulli, Binomial(n), independent Bernoulli.

With ``p = σ(h)``, ``q = σ(−h) = 1 − p`` (both computed without cancellation):

* Binomial(n) (Bernoulli: ``n = 1``): ``η = np``, ``I = npq``, ``μ_3 = npq(q − p)``,
  ``μ_4 = npq(1 + 3(n−2)pq)``; ``F = n·log(1 + eʰ)`` as ``n·logaddexp(h, 0)``.
* Independent Bernoulli (``d`` labels): ``I = diag(p_c q_c)``, ``μ_3 = diag(I_c(q_c − p_c))``,
  ``κ_4 = diag(I_c(1 − 6I_c))``
  and ``μ_4[v⁴] = Σ_c κ_4,c v_c⁴ + 3(Σ_c I_c v_c²)²`` in ``O(d)`` per vector.

Closed forms in ``p, q`` stay finite where the lambdified ``eʰ/(1 + eʰ)`` overflows.
"""

from __future__ import annotations

import torch

from fishsym.kernels import samplers
from fishsym.kernels.base import REAL_LINE, StructuredKernel, broadcast_batch
from fishsym.kernels.base import stable_softplus as softplus
from fishsym.kernels.spectrum import (
    FIELDS,
    Spectrum,
    certified_only,
    power_iteration,
    power_label,
    starts,
)


def _pq(h):
    return torch.sigmoid(h), torch.sigmoid(-h)


class _LogitKernel(StructuredKernel):
    def _check_label_dtype(self, y, argname):
        """Integer, bool or integral floating labels (integrality checked with the support)."""

    def _check_support(self, y, argname):
        bad = (y < 0) | (y > self._top)
        if y.is_floating_point():
            bad |= y != torch.floor(y)
        self._support_error(y, bad, argname, self._valid)


class BinomialKernel(_LogitKernel):
    """Binomial with ``n`` trials (``n = 1``: the Bernoulli family), logit ``h``; scalar labels."""

    def __init__(self, n: int = 1, bernoulli: bool = False, family=None):
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"binomial: n must be a positive integer; got {n!r}")
        self.n = int(n)
        if bernoulli and self.n != 1:
            raise ValueError("bernoulli is the binomial with n = 1")
        name, sizes = ("bernoulli", {}) if bernoulli else ("binomial", {"n": self.n})
        super().__init__(name, 1, (), True, [REAL_LINE], sizes, family)
        self._top, self._valid = self.n, f"integers 0..{self.n}"

    def _support_labels(self):
        return torch.arange(self.n + 1, dtype=torch.int64)

    def _suff_stat(self, y, dtype):
        return y.to(dtype)[..., None]

    def _log_base_measure(self, y, dtype):
        y = y.to(dtype)
        n = torch.tensor(float(self.n), dtype=dtype, device=y.device)
        return torch.lgamma(n + 1) - torch.lgamma(y + 1) - torch.lgamma(n - y + 1)

    def _log_prob(self, y, h):
        hh = h[..., 0]
        broadcast_batch(y.shape, hh.shape)
        return y.to(h.dtype) * hh - self.n * softplus(hh) + self._log_base_measure(y, h.dtype)

    def _log_partition(self, h):
        return self.n * softplus(h[..., 0])

    def _mean(self, h):
        return self.n * torch.sigmoid(h)

    def _fisher(self, h):
        p, q = _pq(h)
        return (self.n * p * q)[..., None]

    def _mu4(self, h):
        p, q = _pq(h[..., 0])
        pq = p * q
        return self.n * pq * (1 + 3 * (self.n - 2) * pq)

    def _quadratic(self, h, v):
        return self._fisher(h)[..., 0] * v[..., 0, :] ** 2

    def _cubic(self, h, v):
        p, q = _pq(h[..., 0])
        return (self.n * p * q * (q - p))[..., None] * v[..., 0, :] ** 3

    def _quartic(self, h, v):
        return self._mu4(h)[..., None] * v[..., 0, :] ** 4

    def _var_squared(self, h, v):
        # Var[((t−η)v)²] = n·pq(p − q)² + 2n(n−1)(pq)² per v⁴ (a sum of n Bernoullis,
        # whose one-trial value κ₄ + 2I² = pq(1 − 4pq) = pq(p − q)²), with
        # p − q = tanh(h/2): no cancellation at h ≈ 0, where μ₄ − I² is 0 − 0
        p, q = _pq(h[..., 0])
        pq = p * q
        gap = torch.tanh(h[..., 0] / 2)
        value = self.n * pq * gap * gap + 2 * self.n * (self.n - 1) * pq * pq
        v2 = v[..., 0, :] ** 2
        return value[..., None] * v2 * v2

    def _sample(self, h, n, generator):
        if self.name == "bernoulli":
            return samplers.bernoulli(self, h, n, generator)
        return samplers.binomial(self, h, n, generator)

    def _spectrum(self, h, local):
        fisher = self._fisher(h)[..., 0, 0]
        mu4 = self._mu4(h)
        closed = dict.fromkeys(FIELDS, "closed-form (d = 1)")
        if not local:
            return certified_only(fisher, fisher.clone(), mu4, mu4.clone(), closed)
        return Spectrum(fisher, fisher.clone(), mu4, mu4.clone(), mu4.clone(), mu4.clone(), closed)


class IndependentBernoulliKernel(_LogitKernel):
    """``d`` independent Bernoulli labels (multi-label), logits ``h``; labels ``[..., d]``."""

    def __init__(self, d: int = 2, family=None):
        if isinstance(d, bool) or int(d) != d or d < 1:
            raise ValueError(f"independent_bernoulli: d must be a positive integer; got {d!r}")
        super().__init__(
            "independent_bernoulli",
            int(d),
            (int(d),),
            True,
            [REAL_LINE] * int(d),
            {"d": int(d)},
            family,
        )
        self._top, self._valid = 1, f"binary vectors in {{0, 1}}^{self.d}"

    def _support_labels(self):
        grid = torch.cartesian_prod(*[torch.tensor([0, 1])] * self.d)
        return grid.reshape(-1, self.d)

    def _suff_stat(self, y, dtype):
        return y.to(dtype)

    def _log_prob(self, y, h):
        broadcast_batch(y.shape[:-1], h.shape[:-1])
        return (y.to(h.dtype) * h - softplus(h)).sum(-1)

    def _log_partition(self, h):
        return softplus(h).sum(-1)

    def _mean(self, h):
        return torch.sigmoid(h)

    def _var(self, h):
        p, q = _pq(h)
        return p * q

    def _fisher(self, h):
        return torch.diag_embed(self._var(h))

    def _quadratic(self, h, v):
        return torch.einsum("...c,...cK->...K", self._var(h), v * v)

    def _cubic(self, h, v):
        p, q = _pq(h)
        return torch.einsum("...c,...cK->...K", p * q * (q - p), v**3)

    def _quartic(self, h, v):
        var = self._var(h)
        kappa4 = var * (1 - 6 * var)
        v2 = v * v
        quad = torch.einsum("...c,...cK->...K", var, v2)
        return torch.einsum("...c,...cK->...K", kappa4, v2 * v2) + 3 * quad * quad

    def _var_squared(self, h, v):
        # X = Σ_c a_c v_c with independent a_c = t_c − p_c: Var[X²] = Σ_c V_c v_c⁴ +
        # 2 Σ_{c≠e} A_c A_e, V_c = I_c (p_c − q_c)², A_c = I_c v_c². The cross sum is
        # Σ_c A_c·(Σ_{e≠c} A_e) with the exclusive sums from prefix and suffix sums of
        # non-negative terms (not (ΣA)² − ΣA², which cancels when one A dominates)
        var = self._var(h)[..., :, None]
        gap = torch.tanh(h / 2)[..., :, None]
        v2 = v * v
        a = var * v2  # [..., d, K]
        prefix = torch.cumsum(a, -2) - a
        suffix = torch.flip(torch.cumsum(torch.flip(a, [-2]), -2), [-2]) - a
        cross = (a * (prefix + suffix)).sum(-2)
        return (var * gap * gap * v2 * v2).sum(-2) + 2 * cross

    def _sample(self, h, n, generator):
        return samplers.independent_bernoulli(self, h, n, generator)

    def _spectrum(self, h, local):
        var = self._var(h)
        kappa4 = var * (1 - 6 * var)
        fmin, fmax = var.amin(-1), var.amax(-1)
        # μ_4[v⁴] = Σκ_c v_c⁴ + 3(Σ I_c v_c²)² with Σ v_c⁴ ≤ ‖v‖⁴ and Σ I_c v_c² ≤ I_max‖v‖²;
        # also ≤ max_y ‖t(y) − η‖²·λ_max(I) = Σ_c max(p_c, q_c)²·I_max (bounded support)
        p, q = _pq(h)
        upper = torch.minimum(
            kappa4.amax(-1).clamp_min(0) + 3 * fmax**2, (torch.maximum(p, q) ** 2).sum(-1) * fmax
        )
        # Σκ_c v_c⁴ ≥ min(κ_min, 0)‖v‖⁴, and Jensen: μ_4[v⁴] ≥ (vᵀIv)² ≥ I_min²‖v‖⁴
        lower = torch.maximum(kappa4.amin(-1).clamp_max(0) + 3 * fmin**2, fmin**2)
        power = power_label(self.d)
        methods = {
            "fisher_min": "closed-form (diagonal I)",
            "fisher_max": "closed-form (diagonal I)",
            "mu4_max_upper": "independent-certified min(max κ₄⁺ + 3I_max², Σ max(p,q)²·I_max)",
            "mu4_max_local": power,
            "mu4_min_lower": "independent-certified max(min κ₄⁻ + 3I_min², I_min²)",
            "mu4_min_local": power,
        }
        if not local:
            return certified_only(fmin, fmax, upper, lower, methods)

        def apply3(v):
            quad = (var[..., None, :] * v * v).sum(-1, keepdim=True)
            return kappa4[..., None, :] * v**3 + 3 * quad * var[..., None, :] * v

        def form4(v):
            quad = (var[..., None, :] * v * v).sum(-1)
            return (kappa4[..., None, :] * v**4).sum(-1) + 3 * quad * quad

        def apply2(v):
            # T = diag₄(κ₄) + (I_ab I_ce + I_ac I_be + I_ae I_bc) with I diagonal
            quad = (var[..., None, :] * v * v).sum(-1)[..., None, None]
            iv = var[..., None, :] * v
            return (
                torch.diag_embed(kappa4[..., None, :] * v * v + quad[..., 0] * var[..., None, :])
                + 2 * iv[..., :, None] * iv[..., None, :]
            )

        v0 = starts(self.d, h.shape[:-1], h)
        max_local = power_iteration(apply3, form4, v0, torch.zeros_like(upper), True, apply2=apply2)
        min_local = power_iteration(apply3, form4, v0, 3 * upper, False, apply2=apply2)
        return Spectrum(fmin, fmax, upper, max_local, lower, min_local, methods)
