"""The spectrum of ``M = μ₄ − I ⊗ I`` behind the paper's Theorem 4.1 (docs/theory.md §3).

``M[v⁴] = μ₄[v⁴] − (vᵀIv)² = Var_y(((t−η)ᵀv)²) ≥ 0`` and ``λ̃_min/λ̃_max(M)`` are its inf/sup
over the unit sphere. :func:`attach_m_spectrum` puts on a kernel :class:`Spectrum`

* ``m_max_upper ≥ λ̃_max(M)`` and ``m_min_lower ≤ λ̃_min(M)``, **certified**: the best of
  the candidates available, each in exact arithmetic a bound, evaluated with its
  floating-point error and rounded outward —

  - Cor. 4.2: ``λ̃_max(M) ≤ λ̃_max(μ₄) − λ_min(I)²``, ``λ̃_min(M) ≥ max{0, λ̃_min(μ₄) −
    λ_max(I)²}`` from the kernel's certified ``μ₄`` and ``I`` values (always);
  - Thm. 5.2 (categorical): ``λ̃_max(M) ≤ 2·min(p_max, 1 − ‖p‖²)`` (always);
  - the matricisation ``T[(a,b),(c,e)] = μ₄[a,b,c,e] − I_ab I_ce``:
    ``M[v⁴] = (v⊗v)ᵀ T (v⊗v)`` with ``‖v⊗v‖ = 1``, so ``λ_min(T) ≤ M[v⁴] ≤ λ_max(T)``
    (with ``local=True`` and ``d ≤ MATRICISATION_MAX_D``; ``T`` also bounds the
    off-diagonal quantity ``γ̃_max(M) = sup M[a,b,a,b]`` of App. C, field
    ``gamma_max_upper``);

* ``m_max_local ≤ λ̃_max(M)`` and ``m_min_local ≥ λ̃_min(M)``: values **attained** at unit
  vectors found by multi-start SS-HOPM with Newton polish on the symmetrised ``M`` (with
  ``local=True``, same ``d`` limit) — how tight the certified values are, never a bound.

:attr:`Spectrum.methods` says, per field, which candidates were available and which won.
"""

from __future__ import annotations

import torch

from fishsym.kernels.spectrum import power_iteration, power_label, starts

#: the matricisation and the local search need the dense μ₄ ``[..., d, d, d, d]`` and a
#: ``d² × d²`` eigenproblem per input: done for ``d`` up to this
MATRICISATION_MAX_D = 16
#: outward rounding of the matricisation's eigenvalues, in units of ``eps·(‖Mat μ₄‖_F +
#: ‖I‖_F²)``: ``d²`` for the symmetric eigensolver (backward stable, error ≤ c·d²·eps‖T‖),
#: the support size for the enumerated ``μ₄`` sums, and a margin for forming ``T``
MATRICISATION_ULPS = 32

#: the local searches also start from the best SCREEN_KEEP of SCREEN_DIRECTIONS random
#: unit vectors (a private generator: no global random state)
SCREEN_DIRECTIONS = 512
SCREEN_KEEP = 4
SCREEN_SEED = 20241210

M_FIELDS = ("m_min_lower", "m_max_upper", "m_min_local", "m_max_local", "gamma_max_upper")
NOT_AVAILABLE = "not computed"


def dense_mu4(kernel, h: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """``μ₄(h)`` ``[..., d, d, d, d]`` and the number of terms summed per entry, or ``None``
    where the kernel offers no dense form (a finite support is enumerated:
    ``Σ_y p(y) (t(y)−η)^{⊗4}``)."""
    if hasattr(kernel, "_mu4_dense"):
        return kernel._mu4_dense(h), 0
    try:
        labels = kernel.support_labels()
    except Exception:  # an infinite support without a dense form
        return None
    labels = labels.to(h.device)
    t = kernel.suff_stat(labels, h.dtype)  # [S, d]
    batch = h.shape[:-1]
    y = labels.reshape(labels.shape[0], *(1,) * len(batch), *labels.shape[1:])
    logp = kernel.log_prob(y, h)  # [S, ...]
    p = torch.exp(logp).movedim(0, -1)  # [..., S]
    eta = kernel.mean(h)  # [..., d]
    g = t - eta[..., None, :]  # [..., S, d]
    return torch.einsum("...s,...sa,...sb,...sc,...se->...abce", p, g, g, g, g), labels.shape[0]


def attach_m_spectrum(kernel, h: torch.Tensor, spectrum, local: bool) -> None:
    """Attach the ``M`` fields (module docstring) and their methods to ``spectrum``."""
    eps = torch.finfo(h.dtype).eps
    methods = spectrum.methods
    lo = spectrum.mu4_min_lower - spectrum.fisher_max**2
    lo = (lo - 4 * eps * (spectrum.mu4_min_lower.abs() + spectrum.fisher_max**2)).clamp_min(0)
    hi = spectrum.mu4_max_upper - spectrum.fisher_min**2
    hi = (hi + 4 * eps * (spectrum.mu4_max_upper.abs() + spectrum.fisher_min**2)).clamp_min(0)
    hi_from = ["Cor. 4.2 λ̃_max(μ₄) − λ_min(I)²"]
    lo_from = ["Cor. 4.2 max{0, λ̃_min(μ₄) − λ_max(I)²}"]
    if kernel.name == "categorical":
        from fishsym.kernels.stable import softmax_complement

        p, q = softmax_complement(h)
        # 1 − ‖p‖² = Σ p(1 − p), formed without cancellation
        m = torch.minimum(p.amax(-1), (p * q).sum(-1))
        hi = torch.minimum(hi, 2 * m * (1 + (h.shape[-1] + 4) * eps))
        hi_from.append("Thm. 5.2 2·min(p_max, 1 − ‖p‖²)")
    spectrum.m_min_local = spectrum.m_max_local = spectrum.gamma_max_upper = None
    local_how = gamma_how = f"{NOT_AVAILABLE} (local=False)"
    d = h.shape[-1]
    dense = None
    if local and d <= MATRICISATION_MAX_D:
        dense = dense_mu4(kernel, h)
    elif local:
        local_how = gamma_how = f"{NOT_AVAILABLE} (d = {d} > {MATRICISATION_MAX_D})"
    if local and dense is None and d <= MATRICISATION_MAX_D:
        local_how = gamma_how = f"{NOT_AVAILABLE} (no dense μ₄ for this family)"
    if dense is not None:
        mu4, terms = dense
        fisher = kernel.fisher(h)
        batch = h.shape[:-1]
        mat = mu4.reshape(*batch, d * d, d * d)
        vec = fisher.reshape(*batch, d * d)
        T = mat - vec[..., :, None] * vec[..., None, :]
        T = (T + T.transpose(-1, -2)) / 2
        eig = torch.linalg.eigvalsh(T)
        scale = torch.linalg.matrix_norm(mat) + torch.linalg.matrix_norm(fisher) ** 2
        margin = (d * d + terms + MATRICISATION_ULPS) * eps * scale
        t_hi, t_lo = eig[..., -1] + margin, (eig[..., 0] - margin).clamp_min(0)
        hi = torch.minimum(hi, t_hi)
        lo = torch.maximum(lo, t_lo)
        hi_from.append("λ_max of the matricisation μ₄ − vec(I)vec(I)ᵀ")
        lo_from.append("λ_min of the matricisation")
        spectrum.gamma_max_upper = t_hi
        gamma_how = "λ_max of the matricisation (App. C: M[a,b,a,b] = (a⊗b)ᵀT(a⊗b))"

        iv = fisher

        def apply3(v):  # M_sym[·, v, v, v] = μ₄[·, v³] − (vᵀIv)·Iv
            Iv = torch.einsum("...ab,...sb->...sa", iv, v)
            vIv = (Iv * v).sum(-1, keepdim=True)
            return torch.einsum("...abce,...sa,...sb,...sc->...se", mu4, v, v, v) - vIv * Iv

        def form4(v):
            return (apply3(v) * v).sum(-1)

        def apply2(v):  # M_sym[v, v, ·, ·] = μ₄[v, v, ·, ·] − ((vᵀIv)·I + 2·Iv(Iv)ᵀ)/3
            Iv = torch.einsum("...ab,...sb->...sa", iv, v)
            vIv = (Iv * v).sum(-1)[..., None, None]
            sym = (vIv * iv[..., None, :, :] + 2 * Iv[..., :, None] * Iv[..., None, :]) / 3
            return torch.einsum("...abce,...sa,...sb->...sce", mu4, v, v) - sym

        # besides the generic starts, the eigenvectors of I (the null direction of an
        # over-complete family, where M[v⁴] = 0, and the directions of extreme variance)
        # and the best of SCREEN_DIRECTIONS random directions for each search
        eigvecs = torch.linalg.eigh(fisher)[1].transpose(-1, -2)
        gen = torch.Generator().manual_seed(SCREEN_SEED)
        screen = torch.randn(SCREEN_DIRECTIONS, d, generator=gen, dtype=torch.float64)
        screen = (screen / screen.norm(dim=-1, keepdim=True)).to(h)
        screen = screen.expand(*batch, *screen.shape)
        order = form4(screen).argsort(-1)
        pick = order[..., :SCREEN_KEEP], order[..., -SCREEN_KEEP:]
        best_low, best_high = (torch.take_along_dim(screen, idx[..., None], dim=-2) for idx in pick)
        v_max = starts(d, batch, h, extra=torch.cat([eigvecs, best_high], -2))
        v_min = starts(d, batch, h, extra=torch.cat([eigvecs, best_low], -2))
        # shifts that make ±M[v⁴] + α‖v‖⁴ convex (spectrum.power_iteration): the Hessian of
        # (vᵀIv)² is ⪯ 12λ_max(I)²‖v‖², that of μ₄[v⁴] ⪯ 12λ̃_max(μ₄)‖v‖²
        up_shift = 3 * spectrum.fisher_max**2
        down_shift = 3 * spectrum.mu4_max_upper.abs()
        # M[v⁴] is a variance: an attained value below 0 is round-off
        spectrum.m_max_local = power_iteration(
            apply3, form4, v_max, up_shift, True, apply2=apply2
        ).clamp_min(0)
        spectrum.m_min_local = power_iteration(
            apply3, form4, v_min, down_shift, False, apply2=apply2
        ).clamp_min(0)
        local_how = (
            f"attained, {power_label(d, extra_starts=d + SCREEN_KEEP)} from the generic "
            f"starts, the eigenvectors of I and the best {SCREEN_KEEP} of "
            f"{SCREEN_DIRECTIONS} random directions, on the symmetrised M (not a bound)"
        )
    spectrum.m_max_upper, spectrum.m_min_lower = hi, lo
    methods["m_max_upper"] = "the smallest of: " + "; ".join(hi_from)
    methods["m_min_lower"] = "the largest of: " + "; ".join(lo_from)
    methods["m_max_local"] = methods["m_min_local"] = local_how
    methods["gamma_max_upper"] = gamma_how


__all__ = ["MATRICISATION_MAX_D", "M_FIELDS", "attach_m_spectrum", "dense_mu4"]
