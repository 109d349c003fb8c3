"""Outputs with independent factors: tokens, pixels, several heads (docs/theory.md §11).

A network whose output is ``h`` ``[*factors, d]`` (``T = Π factors`` positions with ``d``
natural parameters each) and whose model is ``p(y|x) = Π_t p(y_t | h_t)`` is itself an
exponential family, the **product** of ``T`` copies of one family:

    t(y) = (t(y_1), …, t(y_T)),   F(h) = Σ_t F(h_t),   I(h) = blockdiag_t I(h_t),

and every cumulant of order ≥ 2 is block-diagonal. :class:`ProductKernel` is that family
as a kernel with ``d' = T·d`` natural parameters over the flattened ``h`` (factor-major,
the family on the last axis): every numeric path of fishsym (exact Fisher, ``V₁``, ``V₂``,
bounds, estimators, sampling, the enumeration oracles) treats it like any other family,
and it never forms a ``d' × d'`` matrix. With ``v_t`` the block of ``v`` on factor ``t``
and ``q_t = v_tᵀ I(h_t) v_t``, the per-factor scores ``s_t = (t(y_t) − η_t)ᵀv_t`` are
independent with mean 0, so

* ``vᵀ I v = Σ_t q_t``, ``μ_3[v³] = Σ_t μ_3,t[v_t³]``;
* ``μ_4[v⁴] = E[(Σ_t s_t)⁴] = Σ_t μ_4,t[v_t⁴] + 6 Σ_{s<t} q_s q_t``;
* ``Var[(Σ_t s_t)²] = Σ_t Var[s_t²] + 4 Σ_{s<t} q_s q_t`` — the single joint label's
  ``V₁``: **not** ``Σ_t V₁,t``, the cross terms count. Formed as
  ``Σ_t Var[s_t²] + 2 Σ_t q_t·(Σ_{s≠t} q_s)`` from non-negative terms (the exclusive sums
  by prefix and suffix sums), never ``(Σq)² − Σq²``, which cancels when one factor
  dominates;
* the per-position squared score ``Σ_t s_t²`` has variance ``Σ_t Var[s_t²]``
  (:meth:`ProductKernel.var_squared_per_factor`).

Certified spectral values: ``λ(I)`` is the union of the blocks' spectra; with
``a_t = ‖v_t‖²`` (``Σ a_t = 1``) the quartic form above lies between
``min(min_t λ_min(μ_4,t), 3 min_t λ_min(I_t)²)`` and
``max(max_t λ_max(μ_4,t), 3 max_t λ_max(I_t)²)`` (``6 a_s a_t`` is ``3`` times the cross
part of ``(Σ a)²``). The local values are attained on one factor (``v`` supported on a
single block, where the form is that block's).
"""

from __future__ import annotations

import itertools
import math

import torch

from fishsym.errors import ShapeError
from fishsym.kernels.base import FamilyKernel, broadcast_batch
from fishsym.kernels.spectrum import LOCAL_FIELDS, Spectrum, certified_only, round_outward

#: a product support is enumerated (``S^T`` label tuples) up to this many tuples
MAX_SUPPORT = 10**6


def exclusive_sums(a: torch.Tensor, dim: int) -> torch.Tensor:
    """``Σ_{s≠t} a_s`` for every ``t`` along ``dim``, from prefix and suffix sums (no
    subtraction of a total: exact in sign and accurate for non-negative ``a``)."""
    a = a.movedim(dim, -1)
    zero = torch.zeros_like(a[..., :1])
    prefix = torch.cat([zero, torch.cumsum(a, -1)[..., :-1]], -1)
    suffix = torch.cat([torch.flip(torch.cumsum(torch.flip(a, [-1]), -1), [-1])[..., 1:], zero], -1)
    return (prefix + suffix).movedim(-1, dim)


class ProductKernel(FamilyKernel):
    """``T`` independent copies of ``base``, one per factor position (docs/theory.md §11).

    ``h`` is ``[..., T·d]`` (the model's ``[*factors, d]`` output flattened, factor-major);
    labels are ``[..., *factors, *base.obs_shape]``.

    Attributes
    ----------
    base : FamilyKernel
        The family of one factor (``d`` natural parameters).
    factor_shape : tuple of int
        The factor axes (e.g. ``(T,)`` tokens, ``(H, W)`` pixels); ``T`` their product.
    """

    def __init__(self, base: FamilyKernel, factor_shape):
        if isinstance(base, ProductKernel):
            raise TypeError("ProductKernel: base must be the family of one factor, not a product")
        factor_shape = tuple(int(t) for t in factor_shape)
        if not factor_shape or any(t < 1 for t in factor_shape):
            raise ShapeError(
                f"ProductKernel: factor_shape must be a non-empty tuple of positive sizes; "
                f"got {factor_shape}"
            )
        self.base = base
        self.factor_shape = factor_shape
        self.T = math.prod(factor_shape)
        super().__init__(
            base.name,
            self.T * base.d,
            factor_shape + tuple(base.obs_shape),
            base.discrete,
            list(base.intervals) * self.T,
            {**base.sizes, "factors": list(factor_shape)},
        )
        self.label_dtype = base.label_dtype

    @property
    def family(self):
        """The symbolic family of **one factor** (the product adds no new expression)."""
        return self.base.family

    def _describe(self) -> str:
        return f"{self.base._describe()} × {self.T} factors {list(self.factor_shape)}"

    def __repr__(self) -> str:
        return f"<ProductKernel {self._describe()} d={self.d}>"

    # ------------------------------------------------------------------ reshaping
    def _split(self, h: torch.Tensor) -> torch.Tensor:
        """``[..., T·d]`` → ``[..., T, d]``."""
        return h.reshape(*h.shape[:-1], self.T, self.base.d)

    def _split_v(self, v: torch.Tensor) -> torch.Tensor:
        """``[..., T·d, K]`` → ``[..., T, d, K]``."""
        return v.reshape(*v.shape[:-2], self.T, self.base.d, v.shape[-1])

    def _flat_labels(self, y: torch.Tensor) -> torch.Tensor:
        """``[..., *factors, *obs]`` → ``[..., T, *obs]``."""
        k = len(self.base.obs_shape)
        lead = y.shape[: y.ndim - k - len(self.factor_shape)]
        return y.reshape(*lead, self.T, *self.base.obs_shape)

    def _h(self, h, argname: str = "h") -> torch.Tensor:
        if isinstance(h, torch.Tensor) and h.ndim >= 1 and h.shape[-1] == self.d:
            # the domain is checked per factor, d columns at a time
            self.base._h(self._split(h), argname)
            return h
        return super()._h(h, argname)

    def _labels(self, y, argname: str = "y") -> torch.Tensor:
        if not isinstance(y, torch.Tensor):
            raise TypeError(
                f"{self._describe()}: {argname} must be a torch.Tensor of labels "
                f"[..., {', '.join(map(str, self.obs_shape))}]; got {type(y).__name__}"
            )
        k = len(self.obs_shape)
        if y.ndim < k or tuple(y.shape[y.ndim - k :]) != self.obs_shape:
            raise ShapeError(
                f"{self._describe()}: {argname} must have shape [..., *factors, *obs_shape] = "
                f"[..., {', '.join(map(str, self.obs_shape))}]; got shape {tuple(y.shape)}"
            )
        return self.base._labels(y, argname)

    # ------------------------------------------------------------------ the family
    def _suff_stat(self, y, dtype):
        t = self.base._suff_stat(self._flat_labels(y), dtype)  # [..., T, d]
        return t.reshape(*t.shape[:-2], self.d)

    def _log_prob(self, y, h):
        hf = self._split(h)
        yf = self._flat_labels(y)
        broadcast_batch(yf.shape[: yf.ndim - len(self.base.obs_shape) - 1], h.shape[:-1])
        return self.base._log_prob(yf, hf).sum(-1)

    def _log_partition(self, h):
        return self.base._log_partition(self._split(h)).sum(-1)

    def _mean(self, h):
        return self.base._mean(self._split(h)).reshape(h.shape)

    def _fisher(self, h):
        blocks = self.base._fisher(self._split(h))  # [..., T, d, d]
        out = h.new_zeros(*h.shape[:-1], self.d, self.d)
        d = self.base.d
        for t in range(self.T):
            out[..., t * d : (t + 1) * d, t * d : (t + 1) * d] = blocks[..., t, :, :]
        return out

    def _fisher_diagonal(self, h):
        return self.base._fisher_diagonal(self._split(h)).reshape(h.shape)

    def _per_factor(self, h, v):
        """``h`` ``[..., T, d]`` and ``v`` ``[..., T, d, K]`` broadcast to one batch shape."""
        hf, vf = self._split(h), self._split_v(v)
        broadcast_batch(hf.shape[:-2], vf.shape[:-3], names=("h", "v"))
        return hf, vf

    def _quadratic(self, h, v):
        hf, vf = self._per_factor(h, v)
        return self.base._quadratic(hf, vf).sum(-2)

    def _cubic(self, h, v):
        hf, vf = self._per_factor(h, v)
        return self.base._cubic(hf, vf).sum(-2)

    def _quartic(self, h, v):
        hf, vf = self._per_factor(h, v)
        q = self.base._quadratic(hf, vf)  # [..., T, K]
        return self.base._quartic(hf, vf).sum(-2) + 3 * (q * exclusive_sums(q, -2)).sum(-2)

    def _quadratic_and_var_squared(self, h, v):
        hf, vf = self._per_factor(h, v)
        q, var = self.base._quadratic_and_var_squared(hf, vf)  # [..., T, K] each
        return q.sum(-2), var.sum(-2) + 2 * (q * exclusive_sums(q, -2)).sum(-2)

    def _var_squared(self, h, v):
        return self._quadratic_and_var_squared(h, v)[1]

    def var_squared_per_factor(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``Σ_t Var[s_t²]``: the variance of the **per-position** squared score
        ``Σ_t ((t(y_t) − η_t)ᵀv_t)²`` (per-token gradients squared, then summed; an unbiased
        estimator of ``vᵀIv`` of its own, docs/theory.md §11). ``h`` ``[..., T·d]``, ``v``
        ``[..., T·d, K]`` → ``[..., K]``."""
        h = self._h(h)
        v = self._v(v, h)
        hf, vf = self._per_factor(h, v)
        out = self.base._var_squared(hf, vf).sum(-2)
        return self._finite(out, "the per-position variance Σ_t Var[s_t²]", h)

    def _root_t(self, h, v):
        hf, vf = self._per_factor(h, v)
        r = self.base._root_t(hf, vf)  # [..., T, r, K]
        return r.reshape(*r.shape[:-3], -1, r.shape[-1])

    def _sample(self, h, n, generator):
        y = self.base._sample(self._split(h), n, generator)  # [n, ..., T, *obs]
        k = len(self.base.obs_shape)
        lead = y.shape[: y.ndim - k - 1]
        return y.reshape(*lead, *self.factor_shape, *self.base.obs_shape)

    def _support_labels(self):
        support = self.base._support_labels()  # [S, *obs]; raises for infinite supports
        size = support.shape[0] ** self.T
        if size > MAX_SUPPORT:
            raise ShapeError(
                f"{self._describe()}: the product support has {support.shape[0]}^{self.T} = "
                f"{size:.3g} label tuples, more than {MAX_SUPPORT:g} to enumerate; use fewer "
                "positions (or a Monte Carlo estimate)"
            )
        idx = torch.tensor(list(itertools.product(range(support.shape[0]), repeat=self.T)))
        labels = support[idx.reshape(-1)]  # [S^T·T, *obs]
        return labels.reshape(size, *self.factor_shape, *self.base.obs_shape)

    def _spectrum(self, h, local):
        # the base's certified values, rounded outward for its d (fields [..., T])
        spec = round_outward(self.base._spectrum(self._split(h), local), self.base.d)
        fmin, fmax = spec.fisher_min.amin(-1), spec.fisher_max.amax(-1)
        upper = torch.maximum(spec.mu4_max_upper.amax(-1), 3 * fmax**2)
        lower = torch.minimum(spec.mu4_min_lower.amin(-1), 3 * fmin**2)
        base = spec.methods
        methods = {
            "fisher_min": f"min over factors of: {base['fisher_min']}",
            "fisher_max": f"max over factors of: {base['fisher_max']}",
            "mu4_max_upper": "product-certified max(max_t λ̄(μ₄,t), 3·max_t λ_max(I_t)²), "
            f"per factor: {base['mu4_max_upper']}",
            "mu4_min_lower": "product-certified min(min_t λ̲(μ₄,t), 3·min_t λ_min(I_t)²), "
            f"per factor: {base['mu4_min_lower']}",
        }
        if not local:
            return certified_only(fmin, fmax, upper, lower, methods)
        for name in LOCAL_FIELDS:
            methods[name] = f"attained on one factor: {base[name]}"
        return Spectrum(
            fmin,
            fmax,
            upper,
            spec.mu4_max_local.amax(-1),
            lower,
            spec.mu4_min_local.amin(-1),
            methods,
        )


def factor_shape_of(kernel) -> tuple[int, ...]:
    """The factor axes of ``kernel`` (``()`` for a kernel of one factor)."""
    return kernel.factor_shape if isinstance(kernel, ProductKernel) else ()


__all__ = ["MAX_SUPPORT", "ProductKernel", "exclusive_sums", "factor_shape_of"]
