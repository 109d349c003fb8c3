"""Structured kernel of the Gaussian with known isotropic covariance ``σ²·Id`` (docs/theory.md §4).

``h = μ/σ²``, ``t(y) = y``, ``F(h) = σ²‖h‖²/2``. Then ``η = σ²h``, ``I = σ²·Id``,
``κ_k = 0`` for ``k ≥ 3`` and ``μ_4[v⁴] = 3σ⁴‖v‖⁴`` exactly, so every spectral quantity is
closed-form: ``λ_min(I) = λ_max(I) = σ²`` and ``λ_min(μ_4) = λ_max(μ_4) = 3σ⁴``.
"""

from __future__ import annotations

import math

import sympy as sp
import torch

from fishsym.kernels import samplers
from fishsym.kernels.base import REAL_LINE, StructuredKernel, broadcast_batch
from fishsym.kernels.spectrum import FIELDS, Spectrum, certified_only


class GaussianKernel(StructuredKernel):
    """Gaussian ``N(σ²h, σ²·Id)`` in ``d`` dimensions; labels ``[...]`` (``d = 1``) or
    ``[..., d]``."""

    def __init__(self, d: int = 1, sigma2=1, family=None):
        if isinstance(d, bool) or int(d) != d or d < 1:
            raise ValueError(f"gaussian: d must be a positive integer; got {d!r}")
        s2 = sp.nsimplify(sigma2)
        if not (s2.is_real and s2.is_positive):
            raise ValueError(f"gaussian: sigma2 must be a positive number; got {sigma2!r}")
        self.sigma2 = float(s2)
        obs_shape = () if d == 1 else (int(d),)
        super().__init__(
            "gaussian",
            int(d),
            obs_shape,
            False,
            [REAL_LINE] * int(d),
            {"d": int(d), "sigma2": sigma2},
            family,
        )

    def _check_label_dtype(self, y, argname):
        if y.dtype == torch.bool:
            raise TypeError(f"{self._describe()}: {argname} must be real-valued; got {y.dtype}")

    def _check_support(self, y, argname):
        if y.is_floating_point():
            self._support_error(y, ~torch.isfinite(y), argname, "finite reals")

    def _support_labels(self):
        from fishsym.errors import InfiniteSupportError

        raise InfiniteSupportError(
            f"{self._describe()}: the support R^{self.d} is infinite, so its labels cannot be "
            "enumerated; support_labels() needs a finite support"
        )

    def _vec(self, y, dtype):
        y = y.to(dtype)
        return y[..., None] if self.obs_shape == () else y

    def _suff_stat(self, y, dtype):
        return self._vec(y, dtype)

    def _log_prob(self, y, h):
        yv = self._vec(y, h.dtype)
        broadcast_batch(yv.shape[:-1], h.shape[:-1])
        s2 = self.sigma2
        # completed square: t·h − F(h) + log k(y) = −‖y − σ²h‖²/(2σ²) − (d/2)·log(2πσ²)
        return -((yv - s2 * h) ** 2).sum(-1) / (2 * s2) - self.d / 2 * math.log(2 * math.pi * s2)

    def _log_partition(self, h):
        return self.sigma2 * (h * h).sum(-1) / 2

    def _mean(self, h):
        return self.sigma2 * h

    def _fisher(self, h):
        eye = torch.eye(self.d, dtype=h.dtype, device=h.device)
        return (self.sigma2 * eye).expand(*h.shape[:-1], self.d, self.d)

    def _quadratic(self, h, v):
        batch = broadcast_batch(h.shape[:-1], v.shape[:-2], names=("h", "v"))
        return (self.sigma2 * (v * v).sum(-2)).expand(*batch, v.shape[-1])

    def _cubic(self, h, v):
        batch = broadcast_batch(h.shape[:-1], v.shape[:-2], names=("h", "v"))
        return torch.zeros((*batch, v.shape[-1]), dtype=h.dtype, device=h.device)

    def _quartic(self, h, v):
        batch = broadcast_batch(h.shape[:-1], v.shape[:-2], names=("h", "v"))
        sq = (v * v).sum(-2)
        return (3 * self.sigma2**2 * sq * sq).expand(*batch, v.shape[-1])

    def _mu4_dense(self, h):
        """``μ₄ = σ⁴(δ_ab δ_ce + δ_ac δ_be + δ_ae δ_bc)`` ``[..., d, d, d, d]`` (Isserlis)."""
        eye = torch.eye(self.d, dtype=h.dtype, device=h.device)
        t = (
            torch.einsum("ab,ce->abce", eye, eye)
            + torch.einsum("ac,be->abce", eye, eye)
            + torch.einsum("ae,bc->abce", eye, eye)
        )
        return (self.sigma2**2 * t).expand(*h.shape[:-1], *t.shape)

    def _var_squared(self, h, v):
        batch = broadcast_batch(h.shape[:-1], v.shape[:-2], names=("h", "v"))
        sq = self.sigma2 * (v * v).sum(-2)
        return (2 * sq * sq).expand(*batch, v.shape[-1])

    def _sample(self, h, n, generator):
        return samplers.gaussian(self, h, n, generator)

    def _spectrum(self, h, local):
        fisher = torch.full(h.shape[:-1], self.sigma2, dtype=h.dtype, device=h.device)
        mu4 = torch.full_like(fisher, 3 * self.sigma2**2)
        closed = dict.fromkeys(FIELDS, "closed-form (I = σ²·Id, μ_4[v⁴] = 3σ⁴‖v‖⁴)")
        if not local:
            return certified_only(fisher, fisher.clone(), mu4, mu4.clone(), closed)
        return Spectrum(fisher, fisher.clone(), mu4, mu4.clone(), mu4.clone(), mu4.clone(), closed)
