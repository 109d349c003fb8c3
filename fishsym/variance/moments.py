"""Family moments: per input and unit, the factors of docs/theory.md §2–§3 that the sums
over inputs are made of.

For the engine's ``g = u`` (``jac``, ``[n, c, a]``) and ``s = w`` (``hess_diag``) of a
block of units and the family kernel at ``h``:

    f = gᵀ I(h) g,   q = Var[((t−η)ᵀg)²] = μ₄[g⁴] − f²,   r = sᵀ I(h) s            (§2)

and with a certified spectrum the per-input bounds of §3, ``‖g‖⁴λ(μ₄) − f²`` and
``‖s‖²λ(I)``, each rounded outward. A parameter ``θ = (a, b)`` with layer input ``z``
then has ``I = f z_b²`` and every other quantity ``· z_b⁴`` (:mod:`fishsym.variance.sums`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fishsym.engine import ParamDerivatives
from fishsym.errors import DomainError, NonFiniteError, ShapeError
from fishsym.variance import estimators as _est

#: per-input bounds are rounded outward by ``(BOUND_ULPS + d)·eps`` times the size of the
#: terms they are formed from (``‖g‖⁴λ``, ``f²`` and ``‖g‖²f``, which bounds the error of
#: ``f²`` from the rounding of the centred residuals): a sum of ``d`` products has relative
#: error ``≤ d·eps/2``, and the few operations around it are covered by ``BOUND_ULPS``
BOUND_ULPS = 16


def unit_moments(
    kernel, h: Tensor, jac: Tensor, hess_diag: Tensor | None, spectrum=None
) -> dict[str, Tensor | None]:
    """Per input and unit (or parameter entry), the factors of §2–§3 before the layer input.

    Parameters: ``h`` ``[n, c]``; ``jac`` (``g``) and ``hess_diag`` (``s``) ``[n, c, a]``;
    ``spectrum`` the kernel's spectrum at ``h`` (``None``: no bounds).

    Returns ``[n, a]`` tensors: ``fisher`` ``f = gᵀIg``, ``var1`` ``q = μ_4[g⁴] − f²``,
    ``fisher_sq`` ``f²``, and with a spectrum ``var1_lower/upper`` ``‖g‖⁴λ(μ_4) − f²``;
    when ``hess_diag`` is given also ``var2`` ``r = sᵀIs`` and with a spectrum
    ``var2_lower/upper`` ``‖s‖²λ(I)``. A parameter ``θ = (a, b)`` with layer input ``z``
    then has ``I = f z_b²`` and every other quantity ``· z_b⁴``.

    Where the spectral value of a lower bound is exactly zero for every input
    (``λ_min(μ_4) = 0``, ``λ_min(I) = 0`` for over-complete categorical heads), the entry
    is ``None``: the bound is then ``−f²`` resp. ``0`` and costs nothing to reduce.
    """
    out = jac_moments(kernel, h, jac, spectrum)
    if hess_diag is not None:
        out.update(hess_moments(kernel, h, hess_diag, spectrum))
    return out


def jac_moments(kernel, h, jac, spectrum) -> dict[str, Tensor | None]:
    # V₁ = Var[((t−η)ᵀg)²] in the kernel's cancellation-free form (μ₄ − f² is not), with f
    # from the same pass where the kernel shares it
    f, var1 = kernel.quadratic_and_var_squared(h, jac)
    f_sq = f * f
    out: dict[str, Tensor | None] = {"fisher": f, "fisher_sq": f_sq, "var1": var1}
    if spectrum is not None:
        # ‖g‖² as a batched dot product: no jac-sized temporary (4× faster than squaring)
        g2 = torch.einsum("nca,nca->na", jac, jac)
        g4 = g2 * g2
        margin = (BOUND_ULPS + jac.shape[1]) * torch.finfo(jac.dtype).eps
        slack = g2 * f + f_sq
        hi = spectrum.mu4_max_upper[:, None]
        # a variance is never negative, so max(0, ·) keeps a valid bound on either side
        out["var1_upper"] = (g4 * hi - f_sq + margin * (g4 * hi.abs() + slack)).clamp_min(0)
        lo = spectrum.mu4_min_lower
        if bool((lo <= 0).all()):
            out["var1_lower"] = None  # ‖g‖⁴λ_min − f² ≤ 0: the bound is the zero bound
        else:
            lo = lo[:, None]
            out["var1_lower"] = (g4 * lo - f_sq - margin * (g4 * lo.abs() + slack)).clamp_min(0)
        # Theorem 4.1 as stated: eq. (7) ‖u‖²λ(I) brackets I(θ|x), eq. (8) ‖u‖⁴λ̃(M), M =
        # μ₄ − I⊗I, brackets V₁ (certified λ̃(M) values of :func:`paper_spectrum`)
        out["fisher_upper"] = g2 * spectrum.fisher_max[:, None] * (1 + margin)
        out["fisher_lower"] = lower_bound(g2, spectrum.fisher_min, margin)
        out["pvar1_upper"] = g4 * spectrum.m_max_upper[:, None] * (1 + 2 * margin)
        out["pvar1_lower"] = lower_bound(g4, spectrum.m_min_lower, 2 * margin)
    return out


def lower_bound(norm: Tensor, value: Tensor, margin: float) -> Tensor | None:
    """``max(0, norm·value)`` rounded down, per input and unit — or ``None`` (the zero
    bound, nothing to reduce) where ``value ≤ 0`` for every input (``λ_min(I) = 0`` and
    ``λ̃_min(M) = 0`` for over-complete categorical heads)."""
    if bool((value <= 0).all()):
        return None
    return (norm * value[:, None] * (1 - margin)).clamp_min(0)


def paper_spectrum(kernel, h: Tensor, spectrum) -> dict[str, str]:
    """The methods of the certified ``m_min_lower ≤ λ̃_min(M)`` and ``m_max_upper ≥
    λ̃_max(M)``, ``M = μ₄ − I⊗I`` (docs/theory.md §3), which every kernel spectrum carries
    (:mod:`fishsym.kernels.moment_spectrum`: Cor. 4.2, Thm. 5.2 for categorical heads, and
    with ``local=True`` the matricisation), attaching them first to a spectrum without."""
    if getattr(spectrum, "m_max_upper", None) is None:
        from fishsym.kernels.moment_spectrum import attach_m_spectrum

        attach_m_spectrum(kernel, h, spectrum, local=False)
    return {k: spectrum.methods[k] for k in ("m_min_lower", "m_max_upper")}


def hess_moments(kernel, h, hess_diag, spectrum) -> dict[str, Tensor | None]:
    out: dict[str, Tensor | None] = {"var2": kernel.quadratic(h, hess_diag)}
    if spectrum is not None:
        s2 = torch.einsum("nca,nca->na", hess_diag, hess_diag)
        margin = (BOUND_ULPS + hess_diag.shape[1]) * torch.finfo(hess_diag.dtype).eps
        out["var2_upper"] = s2 * spectrum.fisher_max[:, None] * (1 + margin)
        out["var2_lower"] = lower_bound(s2, spectrum.fisher_min, margin)
    return out


def batched_moments(
    kernel, h: Tensor, blocks: list[ParamDerivatives], spectrum, extra=(), data_t=None
) -> list[dict]:
    """:func:`unit_moments` of every block, with one kernel call for all the distinct
    ``jac`` tensors (concatenated along the unit axis) and one for all ``hess_diag``."""

    def concatenated(tensors):
        # [n, c, Σa] in the engine's own layout (units innermost): the kernels' passes over
        # it run 1.3–2× faster than over a c-innermost copy (measured, categorical with
        # C = 10 to 1000, Gaussian, token products), and one tensor is not copied at all
        return tensors[0] if len(tensors) == 1 else torch.cat(tensors, 2)

    def split(moments, tensors):
        parts, start = [], 0
        for t in tensors:
            stop = start + t.shape[2]
            parts.append({q: None if m is None else m[:, start:stop] for q, m in moments.items()})
            start = stop
        return parts

    jacs = list({id(pd.jac): pd.jac for pd in blocks}.values())
    hesses = list(
        {id(pd.hess_diag): pd.hess_diag for pd in blocks if pd.hess_diag is not None}.values()
    )
    all_jac = concatenated(jacs)
    by_unit = jac_moments(kernel, h, all_jac, spectrum)
    by_unit.update(_est.extra_unit_moments(kernel, h, all_jac, extra, data_t))
    jac_parts = split(by_unit, jacs)
    by_jac = dict(zip(map(id, jacs), jac_parts, strict=True))
    by_hess = {}
    if hesses:
        hm = hess_moments(kernel, h, concatenated(hesses), spectrum)
        by_hess = dict(zip(map(id, hesses), split(hm, hesses), strict=True))
    return [
        {**by_jac[id(pd.jac)], **(by_hess[id(pd.hess_diag)] if pd.hess_diag is not None else {})}
        for pd in blocks
    ]


def check_h(kernel, h: Tensor, rows: slice) -> None:
    """Refuse natural parameters ``h`` of inputs ``rows`` that are not ``[n, d]`` of the
    family or lie outside its domain (NaN/inf included), naming the inputs."""
    if h.dim() != 2 or h.shape[1] != kernel.d:
        raise ShapeError(
            f"the model output for inputs {rows.start}..{rows.stop - 1} has shape "
            f"{tuple(h.shape)}; family {kernel.name!r} needs [n_inputs, {kernel.d}]"
        )
    try:
        kernel.check_h(h)
    except (DomainError, NonFiniteError, ShapeError) as err:
        raise type(err)(
            f"the model output (natural parameters h) for inputs {rows.start}..{rows.stop - 1} "
            f"is not valid for family {kernel.name!r}: {err}"
        ) from err


__all__ = [
    "BOUND_ULPS",
    "unit_moments",
    "jac_moments",
    "hess_moments",
    "batched_moments",
    "paper_spectrum",
    "lower_bound",
    "check_h",
]
