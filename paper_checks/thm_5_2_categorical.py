"""Claim: the paper's Theorem 5.2 for categorical heads, with ``m(x) = min(p_max, 1 − ‖p‖²)``:

    λ_max(I) ≤ m(x)     and     λ̃_max(M) ≤ 2·m(x),   M = μ₄ − I ⊗ I,

checked at random natural parameters (peaked and flat): ``λ_max(I)`` by the kernel's
certified secular-equation value, and ``λ̃_max(M)`` from below by the largest ``M[v⁴]``
on many random unit vectors and on the vertices ``(e_a − e_b)/√2``.
"""

from __future__ import annotations

import torch

from paper_checks._core import need

NAME = "thm_5_2_categorical"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 42
CLAIM = "Thm. 5.2: λ_max(I) ≤ m(x) and λ̃_max(M) ≤ 2m(x), m = min(p_max, 1 − ‖p‖²)"
WHERE = "paper Thm. 5.2 (docs/theory.md §3)"
METHOD = (
    "kernel spectrum (certified λ_max(I)) and M[v⁴] on random unit vectors and on "
    "(e_a − e_b)/√2 vs m(x), float64, relative slack 1e-12 for rounding"
)

SETTINGS = {
    "tiny": dict(classes=(3,), n_points=8, n_vectors=500),
    "quick": dict(classes=(2, 3, 5, 10), n_points=64, n_vectors=4000),
    "full": dict(classes=(2, 3, 5, 10, 50), n_points=256, n_vectors=20000),
}
SLACK = 1e-12


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    kernels = need("fishsym", "kernels")
    with ctx.part("Thm. 5.2 holds", "categorical heads", "certified spectrum + sampling"):
        for C in s["classes"]:
            kernel = kernels.get("categorical", C=C)
            gen = torch.Generator().manual_seed(C)
            scale = torch.tensor([0.3, 1.0, 4.0], dtype=torch.float64).repeat_interleave(
                -(-s["n_points"] // 3)
            )[: s["n_points"]]
            h = torch.randn(s["n_points"], C, generator=gen, dtype=torch.float64) * scale[:, None]
            p = torch.softmax(h, -1)
            m = torch.minimum(p.amax(-1), 1 - (p * p).sum(-1))
            fisher_max = kernel.spectrum(h, local=False).fisher_max
            ok1 = bool((fisher_max <= m * (1 + SLACK)).all())
            v = torch.randn(s["n_points"], C, s["n_vectors"], generator=gen, dtype=torch.float64)
            pairs = [(a, b) for a in range(C) for b in range(C) if a < b]
            vertex = torch.zeros(s["n_points"], C, len(pairs), dtype=torch.float64)
            for k, (a, b) in enumerate(pairs):
                vertex[:, a, k], vertex[:, b, k] = 1.0, -1.0
            v = torch.cat([v, vertex], dim=2)
            v = v / v.norm(dim=1, keepdim=True)
            best = kernel.var_squared(h, v).amax(-1)
            ok2 = bool((best <= 2 * m * (1 + SLACK)).all())
            ctx.check(
                "λ_max(I) ≤ m(x)",
                f"C = {C}",
                "certified secular value",
                ok1,
                f"max λ_max(I)/m = {float((fisher_max / m).max()):.4f}",
            )
            ctx.check(
                "λ̃_max(M) ≤ 2m(x)",
                f"C = {C}",
                "largest sampled M[v⁴]",
                ok2,
                f"max sampled M/(2m) = {float((best / (2 * m)).max()):.4f}",
            )
            ctx.number(
                f"C = {C}: max λ_max(I)/m, max M/(2m)",
                f"{float((fisher_max / m).max()):.3f}, {float((best / (2 * m)).max()):.3f}",
            )
        ctx.note("The ratios show how tight the theorem is on these points (1 = equality).")
