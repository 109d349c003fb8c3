"""Claim: the paper's Corollary 4.2 — for ``M = μ₄ − I ⊗ I``,

    λ̃_min(M) ≥ max{0, λ̃_min(μ₄) − λ_max(I)²}   and   λ̃_max(M) ≤ λ̃_max(μ₄) − λ_min(I)²,

checked at random natural parameters of every family with a dense ``μ₄`` (``d ≤ 16``):
the attained local values of ``M[v⁴]`` (multi-start search; an attained value is ``≥ λ̃_min``
and ``≤ λ̃_max``) against the right-hand sides formed with the certified ``μ₄`` and ``I``
values (a lower bound of ``λ̃_min(μ₄)``, an upper bound of ``λ̃_max(μ₄)``), so a violation
of the corollary would show. The report also says how loose the corollary is against the
certified matricisation value.
"""

from __future__ import annotations

import torch

from paper_checks._core import need

NAME = "cor_4_2_m_spectrum"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 45
CLAIM = "Cor. 4.2: max{0, λ̃_min(μ₄) − λ_max(I)²} ≤ λ̃_min(M), λ̃_max(M) ≤ λ̃_max(μ₄) − λ_min(I)²"
WHERE = "paper Cor. 4.2 (docs/theory.md §3)"
METHOD = (
    "kernel spectrum (local=True): attained M[v⁴] extremes vs the corollary's right-hand sides "
    "from certified μ₄, I values; float64, relative slack 1e-12"
)

SETTINGS = {
    "tiny": dict(cases=(("categorical", {"C": 3}),), n_points=4),
    "quick": dict(
        cases=(
            ("categorical", {"C": 3}),
            ("categorical", {"C": 10}),
            ("categorical_minimal", {"C": 4}),
            ("bernoulli", {}),
            ("independent_bernoulli", {"d": 3}),
            ("poisson", {}),
            ("gaussian", {"d": 3, "sigma2": 2}),
            ("gaussian_meanvar", {}),
            ("multinomial", {"n": 3, "C": 3}),
        ),
        n_points=16,
    ),
    "full": dict(
        cases=(
            ("categorical", {"C": 3}),
            ("categorical", {"C": 10}),
            ("categorical", {"C": 16}),
            ("categorical_minimal", {"C": 4}),
            ("bernoulli", {}),
            ("independent_bernoulli", {"d": 5}),
            ("poisson", {}),
            ("gaussian", {"d": 3, "sigma2": 2}),
            ("gaussian_meanvar", {}),
            ("multinomial", {"n": 3, "C": 3}),
        ),
        n_points=64,
    ),
}
SLACK = 1e-12


def _h(kernel, n, seed):
    """Random natural parameters inside the family's domain."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, kernel.d, generator=gen, dtype=torch.float64)
    if kernel.name == "gaussian_meanvar":  # h₂ = −1/(2σ²) < 0
        h[:, 1] = -torch.exp(h[:, 1]) / 2
    return h * (1.0 if kernel.name.startswith("gaussian") else 2.0)


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    kernels = need("fishsym", "kernels")
    with ctx.part("Cor. 4.2 holds", "random natural parameters", "kernel spectrum"):
        for i, (name, sizes) in enumerate(s["cases"]):
            kernel = kernels.get(name, **sizes)
            h = _h(kernel, s["n_points"], 40 + i)
            spec = kernel.spectrum(h, local=True)
            label = f"{name}({', '.join(f'{k}={v}' for k, v in sizes.items())})"
            if spec.m_max_local is None:
                ctx.check(
                    "attained M values available",
                    label,
                    "dense μ₄",
                    False,
                    spec.methods["m_max_local"],
                )
                continue
            upper_rhs = spec.mu4_max_upper - spec.fisher_min**2
            lower_rhs = (spec.mu4_min_lower - spec.fisher_max**2).clamp_min(0)
            scale = spec.mu4_max_upper.abs()
            ok_hi = bool((spec.m_max_local <= upper_rhs + SLACK * scale).all())
            ok_lo = bool((spec.m_min_local >= lower_rhs - SLACK * scale).all())
            ok_zero = bool((spec.m_min_local >= 0).all())
            loose = float((upper_rhs / spec.m_max_upper.clamp_min(1e-300)).median())
            ctx.check(
                "λ̃_max(M) ≤ λ̃_max(μ₄) − λ_min(I)²",
                label,
                "attained max vs certified right-hand side",
                ok_hi,
                f"median (λ̃_max(μ₄)⁺ − λ_min(I)²) / matricisation λ̃_max(M) = {loose:.3g}",
            )
            ctx.check(
                "λ̃_min(M) ≥ max{0, λ̃_min(μ₄) − λ_max(I)²} ≥ 0",
                label,
                "attained min vs certified right-hand side",
                ok_lo and ok_zero,
                f"min attained M = {float(spec.m_min_local.min()):.3g}",
            )
            ctx.number(f"{label}: corollary / matricisation upper (median)", f"{loose:.3g}")
        ctx.note(
            "A ratio of 1 means the corollary's upper value is as tight as the certified "
            "matricisation value; above 1 it is looser (res.paper_bounds uses the smaller)."
        )
