"""Structured kernel of the von Mises family on the circle (docs/theory.md §1).

``h = (κ cos μ, κ sin μ)``, ``t(y) = (cos y, sin y)``, ``F(h) = log(2π I₀(r))`` with
``r = ‖h‖ = κ``. The symbolic ``F`` has no torch form (``I₀`` of a norm, whose derivatives
bring ``I₁ … I₄`` and a removable singularity at ``h = 0``), so the moments are computed
here, in the frame of the mean direction ``e = h/r``:

* write ``y = μ + θ``; then ``θ ∼ VM(0, r)`` and ``t − η = R (c, s)ᵀ`` with
  ``R = [e, e⊥]``, ``c = cos θ − A₁(r)``, ``s = sin θ``, ``A_k = I_k/I₀``. By the symmetry
  ``θ → −θ`` every moment odd in ``s`` vanishes, so ``I = R diag(E c², E s²) Rᵀ`` and
  ``μ₃``, ``μ₄`` have 2 and 3 non-zero entries in that frame;
* those expectations are taken by a midpoint rule in ``θ`` with
  :data:`QUADRATURE_NODES` nodes (:func:`frame_moments`): over the whole period for
  ``r ≤`` :data:`FULL_PERIOD_UP_TO` (the periodic rule, whose error is the aliasing
  ``≤ 2^8 · A_{N−8}(r) ≤ 2^8 (r/2)^{N−8}/(N−8)!`` — below 1e−28 there), else over the
  window ``2r sin²(θ/2) ≤`` :data:`WINDOW_EXPONENT` outside which the density is below
  ``e^{−50}`` of its peak (a Gaussian-like peak of width ``1/√r`` sampled at about six
  nodes per width: the discretisation error is below ``e^{−200}``);
* centring is done in the variable ``u = 1 − cos θ = 2 sin²(θ/2)``, which is small and
  exact in relative terms where ``θ`` is: ``c = E[u] − u`` is the difference of two
  accurate small numbers, never of two numbers near 1 (for ``κ = 10⁴``,
  ``cos θ − A₁`` would lose 4 digits, and ``E c⁴ ≈ 3/(4r⁴)`` computed from the ``A_k``
  by the binomial expansion would lose all of them). Variances of squares are taken
  about their own means (two passes), so ``Var_y[((t−η)ᵀv)²]`` never subtracts
  ``(vᵀIv)²`` from ``μ₄[v⁴]``.

The mean ``η = A₁(r)·e`` and ``F`` use torch's exponentially scaled Bessel functions
``i0e``/``i1e`` (no overflow at any ``r``), and power series for ``r <``
:data:`SERIES_BELOW`, which keeps autograd finite at ``h = 0`` (where ``‖h‖`` is not
differentiable).
"""

from __future__ import annotations

import math

import torch

from fishsym.errors import InfiniteSupportError
from fishsym.kernels.base import REAL_LINE, StructuredKernel, broadcast_batch
from fishsym.kernels.spectrum import FIELDS, Spectrum, certified_only

#: nodes of the midpoint rule in θ (per input)
QUADRATURE_NODES = 128
#: concentrations up to which the rule covers the whole period
FULL_PERIOD_UP_TO = 50.0
#: above FULL_PERIOD_UP_TO the rule covers 2r·sin²(θ/2) ≤ WINDOW_EXPONENT
WINDOW_EXPONENT = 50.0
#: below this r = ‖h‖, F(h) and η(h)/‖h‖ are taken by their power series in x = r²/4
#: (truncation error below x⁶/518400 ≈ 5e−34)
SERIES_BELOW = 1e-2


def _series_x(h: torch.Tensor) -> torch.Tensor:
    return (h * h).sum(-1) / 4


def log_i0_of_norm(h: torch.Tensor) -> torch.Tensor:
    """``log I₀(‖h‖)`` ``[..., 2] → [...]``: ``r + log i0e(r)``, or the series
    ``log Σ_m x^m/(m!)²`` (``x = r²/4``) for ``r <`` :data:`SERIES_BELOW`."""
    r2 = (h * h).sum(-1)
    small = r2 < SERIES_BELOW**2
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))  # never √0: finite autograd
    big = r + torch.log(torch.special.i0e(r))
    x = r2 / 4
    series = torch.log1p(x * (1 + x * (1 / 4 + x * (1 / 36 + x * (1 / 576 + x / 14400)))))
    return torch.where(small, series, big)


def mean_ratio(h: torch.Tensor) -> torch.Tensor:
    """``A₁(r)/r`` ``[..., 2] → [...]``, so that ``η = (A₁/r)·h`` (→ ½ at ``h = 0``)."""
    r2 = (h * h).sum(-1)
    small = r2 < SERIES_BELOW**2
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))
    big = torch.special.i1e(r) / torch.special.i0e(r) / r
    x = r2 / 4
    # I₁(r)/r = ½ Σ x^m/(m!(m+1)!),  I₀(r) = Σ x^m/(m!)²
    num = 0.5 * (1 + x * (1 / 2 + x * (1 / 12 + x * (1 / 144 + x / 2880))))
    den = 1 + x * (1 + x * (1 / 4 + x * (1 / 36 + x / 576)))
    return torch.where(small, num / den, big)


def frame(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r, R)``: ``r = ‖h‖`` ``[...]`` and ``R = [e, e⊥]`` ``[..., 2, 2]`` with ``e = h/r``
    (``e = (1, 0)`` at ``h = 0``, where the law is isotropic and any frame serves)."""
    r = torch.linalg.vector_norm(h, dim=-1)
    zero = r == 0
    safe = torch.where(zero, torch.ones_like(r), r)
    e1 = torch.where(zero, torch.ones_like(r), h[..., 0] / safe)
    e2 = torch.where(zero, torch.zeros_like(r), h[..., 1] / safe)
    R = torch.stack([torch.stack([e1, -e2], -1), torch.stack([e2, e1], -1)], -2)
    return r, R


def frame_moments(r: torch.Tensor) -> dict[str, torch.Tensor]:
    """Central moments of ``(c, s)`` for ``θ ∼ VM(0, r)``, ``r`` ``[...]`` (float64).

    Keys ``cc, ss`` (``E c²``, ``E s²``), ``ccc, css`` (``E c³``, ``E c s²``), ``cccc, ccss,
    ssss`` (``E c⁴``, ``E c²s²``, ``E s⁴``), ``var_cc, var_ss, cov_cc_ss``
    (``Var c²``, ``Var s²``, ``Cov(c², s²)``), each ``[...]``.
    """
    r = r.to(torch.float64)
    N = QUADRATURE_NODES
    base = (2 * torch.arange(N, dtype=torch.float64, device=r.device) + 1 - N) / N  # (−1, 1)
    half = torch.sqrt(WINDOW_EXPONENT / (2 * r.clamp_min(FULL_PERIOD_UP_TO))).clamp_max(1.0)
    width = torch.where(r <= FULL_PERIOD_UP_TO, torch.full_like(r, math.pi), 2 * torch.asin(half))
    theta = width[..., None] * base  # [..., N]
    u = 2 * torch.sin(theta / 2) ** 2  # 1 − cos θ, exact in relative terms
    w = torch.exp(-r[..., None] * u)  # ∝ the density, peak 1 at θ = 0
    w = w / w.sum(-1, keepdim=True)

    def mean(x):
        return (w * x).sum(-1)

    c = mean(u)[..., None] - u  # cos θ − E cos θ, without cancellation
    s = torch.sin(theta)
    c2, s2 = c * c, s * s
    cc, ss = mean(c2), mean(s2)
    dc2, ds2 = c2 - cc[..., None], s2 - ss[..., None]
    return {
        "cc": cc,
        "ss": ss,
        "ccc": mean(c2 * c),
        "css": mean(c * s2),
        "cccc": mean(c2 * c2),
        "ccss": mean(c2 * s2),
        "ssss": mean(s2 * s2),
        "var_cc": mean(dc2 * dc2),
        "var_ss": mean(ds2 * ds2),
        "cov_cc_ss": mean(dc2 * ds2),
    }


def _in_frame(R: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b) = Rᵀv``: the components of ``v`` ``[..., 2, K]`` along ``e`` and ``e⊥``."""
    rv = torch.einsum("...ab,...aK->...bK", R, v)
    return rv[..., 0, :], rv[..., 1, :]


class VonMisesKernel(StructuredKernel):
    """Von Mises ``VM(μ, κ)`` with ``h = κ(cos μ, sin μ)``; labels are angles ``[...]`` in
    radians (any representative: the density is 2π-periodic)."""

    def __init__(self, family=None):
        super().__init__("von_mises", 2, (), False, [REAL_LINE, REAL_LINE], {}, family)

    # ------------------------------------------------------------------ labels
    def _check_label_dtype(self, y, argname):
        if not y.is_floating_point():
            raise TypeError(
                f"{self._describe()}: {argname} must hold angles in radians as a floating "
                f"tensor; got {y.dtype}"
            )

    def _check_support(self, y, argname):
        self._support_error(y, ~torch.isfinite(y), argname, "finite angles in radians")

    def _support_labels(self):
        raise InfiniteSupportError(
            f"{self._describe()}: the support (the circle) is a continuum, so its labels cannot "
            "be enumerated; support_labels() needs a finite support"
        )

    # ------------------------------------------------------------------ closed forms
    def _suff_stat(self, y, dtype):
        y = y.to(dtype)
        return torch.stack([torch.cos(y), torch.sin(y)], -1)

    def _log_partition(self, h):
        return math.log(2 * math.pi) + log_i0_of_norm(h)

    def _log_prob(self, y, h):
        t = self._suff_stat(y, h.dtype)
        broadcast_batch(t.shape[:-1], h.shape[:-1])
        return (t * h).sum(-1) - self._log_partition(h)

    def _mean(self, h):
        return mean_ratio(h)[..., None] * h

    # ------------------------------------------------------------------ moments
    def _moments(self, h):
        r, R = frame(h.to(torch.float64))
        return frame_moments(r), R

    def _fisher(self, h):
        m, R = self._moments(h)
        diag = torch.stack([m["cc"], m["ss"]], -1)
        return torch.einsum("...ak,...k,...bk->...ab", R, diag, R).to(h.dtype)

    def _quadratic(self, h, v):
        m, R = self._moments(h)
        a, b = _in_frame(R, v.to(torch.float64))
        q = m["cc"][..., None] * a * a + m["ss"][..., None] * b * b
        return q.to(h.dtype)

    def _cubic(self, h, v):
        m, R = self._moments(h)
        a, b = _in_frame(R, v.to(torch.float64))
        out = m["ccc"][..., None] * a**3 + 3 * m["css"][..., None] * a * b * b
        return out.to(h.dtype)

    def _quartic(self, h, v):
        m, R = self._moments(h)
        a, b = _in_frame(R, v.to(torch.float64))
        a2, b2 = a * a, b * b
        out = m["cccc"][..., None] * a2 * a2 + 6 * m["ccss"][..., None] * a2 * b2
        return (out + m["ssss"][..., None] * b2 * b2).to(h.dtype)

    def _var_squared(self, h, v):
        # Var[(ca + sb)²] = Var(c²)a⁴ + (4E[c²s²] + 2Cov(c², s²))a²b² + Var(s²)b⁴:
        # the odd-in-s covariances vanish, each coefficient is taken about its own mean
        m, R = self._moments(h)
        a, b = _in_frame(R, v.to(torch.float64))
        a2, b2 = a * a, b * b
        mixed = 4 * m["ccss"] + 2 * m["cov_cc_ss"]
        out = m["var_cc"][..., None] * a2 * a2 + mixed[..., None] * a2 * b2
        out = out + m["var_ss"][..., None] * b2 * b2
        return out.clamp_min(0).to(h.dtype)

    def _frame_mu4(self, m) -> torch.Tensor:
        """``μ₄`` in the frame ``(e, e⊥)``: ``[..., 2, 2, 2, 2]``, entries by the number of
        ``e⊥`` indices (0: ``E c⁴``, 2: ``E c²s²``, 4: ``E s⁴``, odd: 0)."""
        batch = m["cc"].shape
        out = torch.zeros(*batch, 2, 2, 2, 2, dtype=torch.float64, device=m["cc"].device)
        by_count = {0: m["cccc"], 2: m["ccss"], 4: m["ssss"]}
        for idx in torch.cartesian_prod(*[torch.arange(2)] * 4).tolist():
            k = sum(idx)
            if k in by_count:
                out[(..., *idx)] = by_count[k]
        return out

    def _mu4_dense(self, h):
        m, R = self._moments(h)
        local = self._frame_mu4(m)
        out = torch.einsum("...ai,...bj,...ck,...dl,...ijkl->...abcd", R, R, R, R, local)
        return out.to(h.dtype)

    def mu4_tensor(self, h: torch.Tensor) -> torch.Tensor:
        """The dense ``μ₄(h)``, ``[..., 2, 2, 2, 2]``."""
        h = self._h(h)
        return self._mu4_dense(h)

    def _sample(self, h, n, generator):
        from fishsym.kernels import samplers

        return samplers.von_mises(self, h, n, generator)

    def _spectrum(self, h, local):
        # I = R diag(E c², E s²) Rᵀ: its eigenvalues are the two frame variances. On the
        # unit circle (a, b) = (cos φ, sin φ), μ₄[v⁴] = α x² + β x(1 − x) + γ (1 − x)² with
        # x = a² ∈ [0, 1], α = E c⁴, β = 6E[c²s²], γ = E s⁴: a quadratic in x, whose
        # extremes over [0, 1] are at the ends or at its stationary point — exact values
        m, _ = self._moments(h)
        cc, ss = m["cc"], m["ss"]
        alpha, beta, gamma = m["cccc"], 6 * m["ccss"], m["ssss"]
        curvature = alpha - beta + gamma  # f(x) = curvature·x² + (beta − 2γ)x + γ
        safe = torch.where(curvature == 0, torch.ones_like(curvature), curvature)
        x_star = ((2 * gamma - beta) / (2 * safe)).clamp(0, 1)
        inner = torch.where(
            curvature == 0, gamma, curvature * x_star**2 + (beta - 2 * gamma) * x_star + gamma
        )
        ends_max, ends_min = torch.maximum(alpha, gamma), torch.minimum(alpha, gamma)
        mu4_max = torch.maximum(ends_max, inner)
        mu4_min = torch.minimum(ends_min, inner)
        dtype = h.dtype
        fisher_min = torch.minimum(cc, ss).to(dtype)
        fisher_max = torch.maximum(cc, ss).to(dtype)
        mu4_max, mu4_min = mu4_max.to(dtype), mu4_min.to(dtype)
        methods = {
            "fisher_min": "closed-form (I = R diag(E c², E s²) Rᵀ)",
            "fisher_max": "closed-form (I = R diag(E c², E s²) Rᵀ)",
        }
        closed = "closed-form (μ₄[v⁴] on the unit circle is a quadratic in a², exact extremes)"
        for name in FIELDS:
            methods.setdefault(name, closed)
        if not local:
            return certified_only(fisher_min, fisher_max, mu4_max, mu4_min, methods)
        return Spectrum(
            fisher_min, fisher_max, mu4_max, mu4_max.clone(), mu4_min, mu4_min.clone(), methods
        )
