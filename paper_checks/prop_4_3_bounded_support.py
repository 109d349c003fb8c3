"""Claim: the paper's Proposition 4.3 — if ``‖t(y) − η‖² ≤ B`` for every label ``y``, then

    λ̃_max(μ₄) ≤ B·λ_max(I) ≤ B²,

checked for categorical heads (``B = max_c ‖e_c − p‖² ≤ 2``) and the Bernoulli family
(``B = max(p, 1 − p)²``) at random natural parameters, with ``λ̃_max(μ₄)`` from below by
the kernel's attained multi-start power-iteration value (``mu4_max_local``).
"""

from __future__ import annotations

import torch

from paper_checks._core import need

NAME = "prop_4_3_bounded_support"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 43
CLAIM = "Prop. 4.3: ‖t − η‖² ≤ B ⇒ λ̃_max(μ₄) ≤ B·λ_max(I) ≤ B²"
WHERE = "paper Prop. 4.3 (docs/theory.md §3)"
METHOD = "kernel spectrum: attained local λ̃_max(μ₄), certified λ_max(I), exact B; float64"

SETTINGS = {
    "tiny": dict(classes=(3,), n_points=8),
    "quick": dict(classes=(2, 3, 5, 10), n_points=32),
    "full": dict(classes=(2, 3, 5, 10, 30), n_points=128),
}
SLACK = 1e-12


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    kernels = need("fishsym", "kernels")
    with ctx.part("Prop. 4.3 holds", "bounded sufficient statistics", "spectrum"):
        cases = [("categorical", {"C": C}) for C in s["classes"]] + [("bernoulli", {})]
        for name, sizes in cases:
            kernel = kernels.get(name, **sizes)
            gen = torch.Generator().manual_seed(len(name) + sum(sizes.values()))
            h = torch.randn(s["n_points"], kernel.d, generator=gen, dtype=torch.float64) * 2
            spec = kernel.spectrum(h)
            if name == "bernoulli":
                p = torch.sigmoid(h[:, 0])
                B = torch.maximum(p, 1 - p) ** 2
            else:
                p = torch.softmax(h, -1)
                B = (1 - 2 * p + (p * p).sum(-1, keepdim=True)).amax(-1)  # max_c ‖e_c − p‖²
            first = bool((spec.mu4_max_local <= B * spec.fisher_max * (1 + SLACK)).all())
            second = bool((B * spec.fisher_max <= B * B * (1 + SLACK)).all()) and bool(
                (B <= 2 + SLACK).all()
            )
            label = f"{name}({', '.join(f'{k}={v}' for k, v in sizes.items())})"
            ctx.check(
                "λ̃_max(μ₄) ≤ B·λ_max(I) ≤ B²",
                label,
                "attained local value, certified λ_max",
                first and second,
                f"max λ̃_max(μ₄)/(Bλ_max) = "
                f"{float((spec.mu4_max_local / (B * spec.fisher_max)).max()):.4f}",
            )
