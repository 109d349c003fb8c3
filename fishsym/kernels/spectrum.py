"""Spectral quantities of ``I(h)`` and ``μ_4(h)`` (docs/theory.md §3).

For a symmetric matrix ``A``: ``λ_min(A)``, ``λ_max(A)`` are its extreme eigenvalues. For
the symmetric 4-tensor ``T = μ_4``: ``λ_max(T) = max_{‖v‖=1} T[v,v,v,v]`` and ``λ_min``
likewise with min. ``λ_max(μ_4)`` is a non-convex maximisation, so every kernel reports

* a **certified** upper bound ``mu4_max_upper ≥ λ_max(μ_4)`` and a certified lower bound
  ``mu4_min_lower ≤ λ_min(μ_4)`` (closed forms, or the ``d² × d²`` matricisation), and
* **local** values ``mu4_max_local ≤ λ_max(μ_4)`` and ``mu4_min_local ≥ λ_min(μ_4)``
  attained at explicit unit vectors found by multi-start shifted symmetric higher-order
  power iteration (SS-HOPM, Kolda & Mayo 2011),

and says in :attr:`Spectrum.methods` how each number was obtained. "Certified" means: a
bound in exact arithmetic, evaluated with the floating-point error of one eigenvalue
solver or closed form (relative ``O(eps)``), never a value found by search.

The local values cost most of a spectrum (hundreds of power-iteration steps per start)
and no bound uses them, so ``spectrum(h, local=False)`` skips them: the two local fields
are then ``None`` (never NaN) and their :attr:`Spectrum.methods` entries say
:data:`NOT_COMPUTED`; the certified fields are the same as with ``local=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

#: seed of the internal generator that draws the power-iteration starts: fixed so that
#: spectra are reproducible, and private so that no global random state is touched
POWER_SEED = 20240205
#: random starts of the multi-start power iteration (besides the structured starts)
POWER_STARTS = 8
#: iterations of the power iteration. SS-HOPM converges linearly, at a rate set by the
#: shift over the eigen-gap, so it can be slow on badly scaled tensors; a non-converged
#: run still returns an attained (hence valid) local value, and the Newton polish below
#: finishes the job where ``T[v, v, ·, ·]`` is available
POWER_ITERS = 200
#: Riemannian Newton steps after the power iteration (quadratic convergence near a
#: critical point; a step is kept only when it improves the value, so the result stays
#: attained and monotone); used for d ≤ NEWTON_MAX_D
NEWTON_STEPS = 12
NEWTON_MAX_D = 64

#: every field of a :class:`Spectrum`, in order
FIELDS = (
    "fisher_min",
    "fisher_max",
    "mu4_max_upper",
    "mu4_max_local",
    "mu4_min_lower",
    "mu4_min_local",
)
#: the fields found by search (power iteration), left out with ``local=False``
LOCAL_FIELDS = ("mu4_max_local", "mu4_min_local")
#: the :attr:`Spectrum.methods` entry of a local field that was not computed
NOT_COMPUTED = "not computed (local=False)"


@dataclass
class Spectrum:
    """Extreme eigenvalues of ``I(h)`` and bounds/local values for ``μ_4(h)``.

    Every tensor field has the batch shape ``[...]`` of ``h``. Ordering guarantees (up to
    rounding): ``mu4_min_lower ≤ λ_min(μ_4) ≤ mu4_min_local ≤ mu4_max_local ≤
    λ_max(μ_4) ≤ mu4_max_upper``. The local fields are ``None`` when the spectrum was
    computed with ``local=False`` (their methods then say :data:`NOT_COMPUTED`).
    """

    fisher_min: torch.Tensor
    fisher_max: torch.Tensor
    mu4_max_upper: torch.Tensor
    mu4_max_local: torch.Tensor | None
    mu4_min_lower: torch.Tensor
    mu4_min_local: torch.Tensor | None
    methods: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        def fmt(t):
            if t is None:
                return "None"
            return f"{t.item():.6g}" if t.numel() == 1 else f"tensor{tuple(t.shape)}"

        fields = ", ".join(f"{k}={fmt(getattr(self, k))}" for k in FIELDS)
        return f"Spectrum({fields})"


#: certified spectral values are rounded outward by ``(OUTWARD_ULPS + 4d)·eps``: relative
#: to the value for closed forms and bisections (each a few dozen correctly rounded
#: operations, or sums of ``d`` terms), relative to the largest value of the pair for
#: eigenvalue solvers (LAPACK's ``eigvalsh`` has backward error ``O(d·eps·‖A‖)``)
OUTWARD_ULPS = 16


def round_outward(spec: Spectrum, d: int) -> Spectrum:
    """``spec`` with its certified fields moved outward by their floating-point error
    bound: ``fisher_min``, ``mu4_min_lower`` down, ``fisher_max``, ``mu4_max_upper`` up, so
    that a bound which is tight in exact arithmetic (Gaussian heads, ``d = 1``) does not
    land on the wrong side by a rounding error. Exact zeros of closed forms stay zero."""

    def moved(value, scale, method, up):
        if value is None:
            return value
        eps = torch.finfo(value.dtype).eps
        margin = (OUTWARD_ULPS + 4 * d) * eps
        if "eigvalsh" in method:
            step = margin * scale
        else:
            step = margin * value.abs()
        return value + step if up else value - step

    m = spec.methods
    scale_i = torch.maximum(spec.fisher_min.abs(), spec.fisher_max.abs())
    scale_4 = torch.maximum(spec.mu4_min_lower.abs(), spec.mu4_max_upper.abs())
    return Spectrum(
        moved(spec.fisher_min, scale_i, m.get("fisher_min", ""), False),
        moved(spec.fisher_max, scale_i, m.get("fisher_max", ""), True),
        moved(spec.mu4_max_upper, scale_4, m.get("mu4_max_upper", ""), True),
        spec.mu4_max_local,
        moved(spec.mu4_min_lower, scale_4, m.get("mu4_min_lower", ""), False),
        spec.mu4_min_local,
        dict(spec.methods),
    )


def certified_only(
    fisher_min: torch.Tensor,
    fisher_max: torch.Tensor,
    mu4_max_upper: torch.Tensor,
    mu4_min_lower: torch.Tensor,
    methods: dict[str, str],
) -> Spectrum:
    """The :class:`Spectrum` of ``spectrum(h, local=False)``: the certified fields, the
    local ones ``None`` and their ``methods`` entries :data:`NOT_COMPUTED`."""
    methods = {k: NOT_COMPUTED if k in LOCAL_FIELDS else methods[k] for k in FIELDS}
    return Spectrum(fisher_min, fisher_max, mu4_max_upper, None, mu4_min_lower, None, methods)


def power_label(d: int, extra_starts: int = 0) -> str:
    """The :attr:`Spectrum.methods` label of a multi-start power iteration in dimension d."""
    n_starts = POWER_STARTS + (d if d <= 8 else 0) + extra_starts
    newton = f", newton={NEWTON_STEPS}" if d <= NEWTON_MAX_D else ""
    return f"power-iteration(starts={n_starts}, iters={POWER_ITERS}{newton})"


def starts(d: int, batch_shape, like: torch.Tensor, extra: torch.Tensor | None = None):
    """Unit start vectors ``[..., S, d]`` for the power iteration.

    ``POWER_STARTS`` Gaussian directions from a private generator seeded with
    ``POWER_SEED`` (drawn on the CPU in float64, so that the starts do not depend on the
    device or dtype), the coordinate vectors when ``d ≤ 8``, and optional structured
    starts ``extra`` ``[..., S', d]``.
    """
    gen = torch.Generator().manual_seed(POWER_SEED)
    rand = torch.randn(POWER_STARTS, d, generator=gen, dtype=torch.float64)
    parts = [rand]
    if d <= 8:
        parts.append(torch.eye(d, dtype=torch.float64))
    fixed = torch.cat(parts, 0).to(dtype=like.dtype, device=like.device)
    v = fixed.expand(*batch_shape, *fixed.shape)
    if extra is not None:
        v = torch.cat([v, extra.to(like.dtype).expand(*batch_shape, *extra.shape[-2:])], -2)
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def power_iteration(
    apply3: Callable[[torch.Tensor], torch.Tensor],
    form4: Callable[[torch.Tensor], torch.Tensor],
    v0: torch.Tensor,
    shift: torch.Tensor,
    maximise: bool,
    iters: int = POWER_ITERS,
    apply2: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Multi-start SS-HOPM: best attained ``T[v⁴]`` over the starts.

    ``apply3(v)`` gives ``T[v, v, v, ·]`` for ``v`` ``[..., S, d]``; ``form4(v)`` gives
    ``T[v, v, v, v]`` ``[..., S]``. The update ``v ← normalise(±T[v,v,v,·] + α v)`` with
    ``α = shift`` ``[...]`` increases ``±T[v⁴]`` monotonically once ``±T[v⁴] + α‖v‖⁴`` is
    convex (Kolda & Mayo 2011, Thm 4.4). For the maximisation ``T[v⁴] = E[((t−η)ᵀv)⁴]``
    is already convex in ``v`` (a fourth power of a linear function, averaged), so
    ``α = 0`` works; for the minimisation ``α ≥ 3·λ_max(μ_4)`` makes ``α‖v‖⁴ − T[v⁴]``
    convex (its Hessian is ``α(4‖v‖²Id + 8vvᵀ) − 12·T[v,v,·,·] ⪰ 0``), so pass the
    certified upper bound times 3.

    With ``apply2(v)`` = ``T[v, v, ·, ·]`` ``[..., S, d, d]`` given and ``d ≤
    NEWTON_MAX_D``, :data:`NEWTON_STEPS` Riemannian Newton steps polish each start
    (:func:`newton_polish`).

    Returns ``[...]``: ``max`` (or ``min``) over starts of ``T[v⁴]`` at the final unit
    vectors — a value attained on the unit sphere, hence ``≤ λ_max`` (``≥ λ_min``).
    """
    sign = 1.0 if maximise else -1.0
    alpha = shift[..., None, None]
    v = v0
    for _ in range(iters):
        g = sign * apply3(v) + alpha * v
        norm = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
        # a start on which the gradient vanishes is a critical point already: keep it
        v = torch.where(norm > 0, g / norm.clamp_min(torch.finfo(g.dtype).tiny), v)
    values = form4(v)
    if apply2 is not None and v.shape[-1] <= NEWTON_MAX_D:
        values = newton_polish(apply3, apply2, form4, v, values, maximise)
    return values.amax(-1) if maximise else values.amin(-1)


def newton_polish(apply3, apply2, form4, v, values, maximise: bool, steps: int = NEWTON_STEPS):
    """Riemannian Newton steps for ``f(v) = T[v⁴]`` on the unit sphere, per start.

    With ``g = T[v,v,v,·]``, ``f = vᵀg``, ``B = T[v,v,·,·]`` and ``P = Id − vvᵀ``: the
    Riemannian gradient is ``4(g − f v)`` and the Hessian ``P(12B − 4f·Id)P``. The step
    ``ξ`` solves ``(Hess + vvᵀ) ξ = −grad`` and ``v ← (v + ξ)/‖v + ξ‖``; it is accepted only
    where it improves ``f`` in the wanted direction, so the values stay attained.
    Returns the polished values ``[..., S]``.
    """
    d = v.shape[-1]
    eye = torch.eye(d, dtype=v.dtype, device=v.device)
    for _ in range(steps):
        g = apply3(v)
        f = (g * v).sum(-1)
        proj = eye - v[..., :, None] * v[..., None, :]
        hess = proj @ (12 * apply2(v) - 4 * f[..., None, None] * eye) @ proj
        system = hess + v[..., :, None] * v[..., None, :]
        grad = 4 * (g - f[..., None] * v)
        step, info = torch.linalg.solve_ex(system, -grad)
        cand = v + step
        cand = cand / torch.linalg.vector_norm(cand, dim=-1, keepdim=True).clamp_min(
            torch.finfo(v.dtype).tiny
        )
        new = form4(cand)
        better = (new > values) if maximise else (new < values)
        ok = better & (info == 0) & torch.isfinite(new)
        v = torch.where(ok[..., None], cand, v)
        values = torch.where(ok, new, values)
    return values


def dense_mu4_spectrum(
    mu4: torch.Tensor, fisher_min: torch.Tensor, iters: int = POWER_ITERS, local: bool = True
):
    """Certified bounds and local values from a dense ``μ_4`` ``[..., d, d, d, d]``.

    The matricisation ``M[(a,b),(c,e)] = μ_4[a,b,c,e]`` is symmetric, and
    ``μ_4[v⁴] = (v⊗v)ᵀ M (v⊗v)`` with ``‖v⊗v‖ = ‖v‖²``, so
    ``λ_min(M) ≤ μ_4[v⁴]/‖v‖⁴ ≤ λ_max(M)``. Jensen (``E[X⁴] ≥ (E X²)²``) gives the second
    lower bound ``μ_4[v⁴] ≥ (vᵀIv)² ≥ λ_min(I)²‖v‖⁴``.

    Returns ``(upper, max_local, lower, min_local)``, each ``[...]``; with
    ``local=False`` the power iteration is skipped and both local values are ``None``.
    """
    d = mu4.shape[-1]
    batch = mu4.shape[:-4]
    mat = mu4.reshape(*batch, d * d, d * d)
    mat = (mat + mat.transpose(-1, -2)) / 2
    eig = torch.linalg.eigvalsh(mat)
    upper = eig[..., -1]
    lower = torch.maximum(eig[..., 0], fisher_min.clamp_min(0) ** 2)
    if not local:
        return upper, None, lower, None

    def apply3(v):
        return torch.einsum("...abce,...sa,...sb,...sc->...se", mu4, v, v, v)

    def form4(v):
        return torch.einsum("...se,...se->...s", apply3(v), v)

    def apply2(v):
        return torch.einsum("...abce,...sa,...sb->...sce", mu4, v, v)

    v0 = starts(d, batch, mu4)
    max_local = power_iteration(apply3, form4, v0, torch.zeros_like(upper), True, iters, apply2)
    min_local = power_iteration(apply3, form4, v0, 3 * upper.abs(), False, iters, apply2)
    return upper, max_local, lower, min_local
