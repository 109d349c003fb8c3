"""Claim: the spectrum facts of the categorical head (docs/theory.md §4).

* ``max_c p_c(1−p_c) ≤ λ_max(I) ≤ min(max_c p_c, 2·max_c p_c(1−p_c), 1 − ‖p‖²) ≤ 1/2``, with
  ``I = diag(p) − ppᵀ`` and ``λ_min(I) = 0`` (the all-ones vector is in its kernel);
* the certified quartic bound ``λ_max(μ₄) ≤ (1 − 2·p_min + ‖p‖²)·λ_max(I)``, and the kernel's
  own certified ``λ_max(μ₄)`` upper bound lies above every value ``μ₄[v⁴]`` (``‖v‖ = 1``) and
  above its local (power-iteration) value;
* in the last layer the single-label ``V₁`` of ``W[a, b]`` is ``z_b⁴ p_a(1−p_a)(1−2p_a)²`` —
  relative standard deviation ``|1−2p_a|/√(p_a(1−p_a))``, exploding for confident outputs —
  while ``V₂ = 0``.
"""

from __future__ import annotations

import torch

from paper_checks._common import (
    as_float64,
    legend_below,
    max_rel_err,
    mnist_split,
    trained_mnist_mlp,
)
from paper_checks._core import matplotlib, need

NAME = "categorical_spectrum"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 50
CLAIM = "Categorical spectrum bounds; last-layer V₁ = z⁴p(1−p)(1−2p)², V₂ = 0"
WHERE = "paper's classification case (docs/theory.md §4)"
METHOD = (
    "independent eigvalsh of diag(p)−ppᵀ and O(C) quartic forms at random logits vs the "
    "inequalities and the kernels' certified spectra; engine last-layer V₁ vs the formula"
)

#: float64 rounding slack for inequalities between quantities of size ≤ 1
INEQ_ATOL = 1e-12
#: kernel spectra / quartic forms vs the independent float64 computation
RTOL = 1e-9

SETTINGS = {
    "tiny": dict(classes=(3,), n_logits=16, n_dirs=32, mnist=None),
    "quick": dict(
        classes=(2, 3, 10, 100),
        n_logits=256,
        n_dirs=256,
        mnist=dict(widths=(784, 256, 128, 64, 10), epochs=2, n_train=4000, n_inputs=128),
    ),
    "full": dict(
        classes=(2, 3, 5, 10, 100, 1000),
        n_logits=1024,
        n_dirs=2048,
        mnist=dict(widths=(784, 256, 128, 64, 10), epochs=5, n_train=8000, n_inputs=1000),
    ),
}


#: floats in the largest dense tensor of a check step (C×C Fisher matrices, C × directions
#: quartic arguments): large C uses fewer logit vectors so that memory stays ~32 MB
MAX_FLOATS = 4_000_000


def _n_logits(s: dict, C: int) -> int:
    """Logit vectors tried for ``C`` classes: the tier's number, fewer for large ``C``."""
    return min(s["n_logits"], max(8, MAX_FLOATS // (C * max(C, s["n_dirs"]))))


def _random_logits(n: int, C: int, gen: torch.Generator) -> torch.Tensor:
    """Logits at temperatures from 0.1 to 10 (from near-uniform to near-one-hot outputs)."""
    scale = torch.logspace(-1, 1, n, dtype=torch.float64)[torch.randperm(n, generator=gen)]
    return torch.randn(n, C, generator=gen, dtype=torch.float64) * scale[:, None] * 3


def _quartic_direct(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``Σ_c p_c (v_c − pᵀv)⁴`` for ``p [n, C]``, ``v [n, C, K]`` → ``[n, K]`` (O(C) per vector)."""
    mean = torch.einsum("nc,nck->nk", p, v)
    return torch.einsum("nc,nck->nk", p, (v - mean[:, None, :]) ** 4)


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    plt = matplotlib()
    gen = torch.Generator().manual_seed(0)
    scatter = None
    with ctx.part("λ_max(I) bounds", "categorical", "eigvalsh"):
        for C in s["classes"]:
            h = _random_logits(_n_logits(s, C), C, gen)
            p = torch.softmax(h, -1)
            fisher = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
            eig = torch.linalg.eigvalsh(fisher)
            lam_max, lam_min = eig[:, -1], eig[:, 0]
            pq = p * (1 - p)
            lower = pq.max(-1).values
            upper = (
                torch.stack([p.max(-1).values, 2 * pq.max(-1).values, 1 - (p * p).sum(-1)])
                .min(0)
                .values
            )
            ok = bool(
                (lower <= lam_max + INEQ_ATOL).all()
                and (lam_max <= upper + INEQ_ATOL).all()
                and (upper <= 0.5 + INEQ_ATOL).all()
                and (lam_min.abs() <= INEQ_ATOL).all()
            )
            ones = torch.ones(C, dtype=torch.float64)
            kernel_null = float((fisher @ ones).abs().max())
            ctx.check(
                "max p(1−p) ≤ λ_max(I) ≤ min(max p, 2max p(1−p), 1−‖p‖²) ≤ ½; λ_min = 0",
                f"C={C}, {_n_logits(s, C)} logits",
                "eigvalsh (independent)",
                ok and kernel_null <= INEQ_ATOL,
                f"max slack used {float((lam_max - upper).clamp_min(0).max()):.1e}; "
                f"|I·1| ≤ {kernel_null:.1e}; mean λ_max/upper "
                f"{float((lam_max / upper).mean()):.3f}",
            )
            if C == 10 or scatter is None:
                scatter = (C, p.max(-1).values, lam_max, lower, upper)

    with ctx.part("kernel spectra are certified", "categorical", "kernels.spectrum"):
        kernels = need("fishsym.kernels")
        for C in s["classes"]:
            kern = kernels.get("categorical", C=C)
            h = _random_logits(_n_logits(s, C), C, gen)
            p = torch.softmax(h, -1)
            spec = kern.spectrum(h)
            fisher = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
            lam_max = torch.linalg.eigvalsh(fisher)[:, -1]
            err_fmax = max_rel_err(spec.fisher_max, lam_max)
            v = torch.randn(h.shape[0], C, s["n_dirs"], generator=gen, dtype=torch.float64)
            v = v / v.norm(dim=1, keepdim=True)
            q_kernel = kern.quartic(h, v)
            q_direct = _quartic_direct(p, v)
            err_q = max_rel_err(q_kernel, q_direct)
            theory_bound = (1 - 2 * p.min(-1).values + (p * p).sum(-1)) * lam_max
            best_dir = q_direct.max(-1).values
            ok_upper = bool(
                (best_dir <= spec.mu4_max_upper + INEQ_ATOL).all()
                and (spec.mu4_max_local <= spec.mu4_max_upper + INEQ_ATOL).all()
            )
            ok_theory = bool(
                (best_dir <= theory_bound + INEQ_ATOL).all()
                and (spec.mu4_max_local <= theory_bound + INEQ_ATOL).all()
            )
            ok_lower = bool((spec.mu4_min_lower <= q_direct.min(-1).values + INEQ_ATOL).all())
            ctx.check(
                "kernel λ_max(I) = eigvalsh; kernel μ₄ = Σ p(v−pᵀv)⁴",
                f"C={C}",
                "kernels vs direct",
                err_fmax <= RTOL and err_q <= RTOL,
                f"rel err λ_max {err_fmax:.1e}, quartic {err_q:.1e}",
            )
            ctx.check(
                "certified λ_max(μ₄) bound ≥ local ≥ μ₄[v⁴] (random unit v)",
                f"C={C}",
                f"kernels.spectrum ({spec.methods.get('mu4_max_upper', '?')})",
                ok_upper and ok_lower,
                f"mean local/upper {float((spec.mu4_max_local / spec.mu4_max_upper).mean()):.3f}",
            )
            ctx.check(
                "λ_max(μ₄) ≤ (1 − 2p_min + ‖p‖²)·λ_max(I)",
                f"C={C}",
                "docs/theory.md §4 bound vs local & random v",
                ok_theory,
                f"mean local/bound {float((spec.mu4_max_local / theory_bound).mean()):.3f}",
            )

    curve = None
    if s["mnist"]:
        m = s["mnist"]
        with ctx.part(
            "last layer: V₁ = z⁴p(1−p)(1−2p)², V₂ = 0", "trained MNIST MLP", "engine per input"
        ):
            fisher_variances = need("fishsym", "fisher_variances")
            model = as_float64(
                trained_mnist_mlp(
                    tuple(m["widths"]), "sigmoid", "categorical", m["epochs"], m["n_train"], seed=0
                )
            )
            x = mnist_split(m["n_train"], 2000)[2][: m["n_inputs"]].to(torch.float64)
            res = fisher_variances(model, x, "categorical", per_sample=True, bounds=False)
            last = list(model.children())[-1]
            with torch.no_grad():
                z = model[:-1](x)
                p = torch.softmax(model(x), -1)
            coef = p * (1 - p) * (1 - 2 * p) ** 2  # [n, C]
            w_name, b_name = f"{len(model) - 1}.weight", f"{len(model) - 1}.bias"
            formula_w = coef[:, :, None] * z[:, None, :] ** 4
            err_w = max_rel_err(res.var1[w_name], formula_w)
            err_b = max_rel_err(res.var1[b_name], coef)
            zero2 = bool((res.var2[w_name] == 0).all() and (res.var2[b_name] == 0).all())
            ctx.check(
                "last layer: V₁ = z⁴p(1−p)(1−2p)²",
                f"MNIST {'-'.join(map(str, m['widths']))}",
                "engine vs formula",
                max(err_w, err_b) <= RTOL,
                f"rel err weight {err_w:.1e}, bias {err_b:.1e} "
                f"({last.weight.numel() + last.bias.numel()} "
                f"params × {m['n_inputs']} inputs)",
            )
            ctx.check("last layer: V₂ = 0 exactly", "MNIST", "engine", zero2, "every entry is 0.0")
            rel = res.var1[b_name].sqrt() / res.fisher[b_name]
            curve = (p.reshape(-1), rel.reshape(-1))
            ctx.number(
                "last-layer relative std of Î₁: median, max",
                f"{float(rel.median()):.3g}, {float(rel.max()):.3g}",
            )

    if scatter is not None:
        C, pmax, lam, lo, up = scatter
        fig, axes = plt.subplots(
            1, 2 if curve else 1, figsize=(11 if curve else 5.5, 4), squeeze=False
        )
        ax = axes[0, 0]
        order = torch.argsort(pmax)
        ax.plot(
            pmax[order],
            up[order],
            ".",
            ms=3,
            color="tab:red",
            label="upper: min(max p, 2max p(1−p), 1−‖p‖²)",
        )
        ax.plot(pmax[order], lam[order], ".", ms=3, color="k", label="λ_max(I) (eigvalsh)")
        ax.plot(pmax[order], lo[order], ".", ms=3, color="tab:blue", label="lower: max p(1−p)")
        ax.axhline(0.5, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("largest class probability max_c p_c")
        ax.set_ylabel("eigenvalue")
        ax.set_title(f"Categorical Fisher, C = {C}: λ_max(I) and its bounds")
        legend_below(ax, ncol=1)
        if curve:
            ax = axes[0, 1]
            grid = torch.linspace(1e-4, 1 - 1e-4, 400, dtype=torch.float64)
            ax.semilogy(
                grid,
                (1 - 2 * grid).abs() / (grid * (1 - grid)).sqrt(),
                color="k",
                label="|1−2p|/√(p(1−p))",
            )
            ax.semilogy(
                curve[0],
                curve[1],
                ".",
                ms=3,
                alpha=0.5,
                color="tab:orange",
                label="engine, MNIST last-layer biases",
            )
            ax.set_xlabel("class probability p_a")
            ax.set_ylabel("std(Î₁) / I  (one label), log₁₀ scale")
            ax.set_title("Last layer: relative std of Î₁ (Î₂ has none)")
            legend_below(ax, ncol=1)
        ctx.save_figure(fig, "categorical_spectrum.png")
