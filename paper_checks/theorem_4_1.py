"""Claim: the paper's Theorem 4.1 as stated (its eqs. 7–9; docs/theory.md §3) holds for every
parameter and input:

    (7)  ‖u‖² λ_min(I) ≤ I(θ|x) ≤ ‖u‖² λ_max(I),
    (8)  ‖u‖⁴ λ̃_min(M) ≤ V₁ ≤ ‖u‖⁴ λ̃_max(M),   M = μ₄ − I ⊗ I,
    (9)  ‖w‖² λ_min(I) ≤ V₂ ≤ ‖w‖² λ_max(I),

with certified values of ``λ̃(M)`` (Cor. 4.2 from the certified ``μ₄`` and ``I`` values,
and Thm. 5.2's ``2·min(p_max, 1 − ‖p‖²)`` for categorical heads), ``N = 1``.
"""

from __future__ import annotations

from fishsym.experiments.training import bracket_violations
from paper_checks._common import random_cases
from paper_checks._core import need

NAME = "theorem_4_1"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 41
CLAIM = "Theorem 4.1 as stated: eqs. (7)–(9) bracket I, V₁, V₂ for every parameter"
WHERE = "paper Thm. 4.1 (eqs. 7–9), Cor. 4.2, Thm. 5.2 (docs/theory.md §3)"
METHOD = (
    "engine's res.paper_bounds vs the engine's exact values per input and parameter "
    "(slack: rounding only), random MLPs, several families and activations"
)

SETTINGS = {
    "tiny": dict(
        families=("categorical", "gaussian"),
        activations=("sigmoid",),
        widths=(3, 5, None),
        n_inputs=4,
        scales=(1.0,),
    ),
    "quick": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("sigmoid", "tanh", "relu"),
        widths=(3, 8, 6, None),
        n_inputs=16,
        scales=(0.5, 2.0),
    ),
    "full": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("sigmoid", "tanh", "softplus", "relu", "gelu"),
        widths=(4, 16, 12, 8, None),
        n_inputs=64,
        scales=(0.5, 1.0, 3.0),
    ),
}

#: (equation, the paper's quantity, its exact value in the result)
EQUATIONS = (
    ("(7)", "fisher", "fisher"),
    ("(8)", "squared_score", "var1"),
    ("(9)", "neg_hessian", "var2"),
)


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    totals = dict.fromkeys((e for e, _, _ in EQUATIONS), 0)
    pairs = 0
    methods = set()
    with ctx.part("Theorem 4.1 brackets the exact values", "random MLPs", "engine per_sample"):
        fisher_variances = need("fishsym", "fisher_variances")
        for fam, act, scale, widths, model, x in random_cases(ctx, s):
            res = fisher_variances(model, x, fam, per_sample=True)
            viol = dict.fromkeys(totals, 0)
            for eq, key, attr in EQUATIONS:
                for name in res.fisher:
                    viol[eq] += bracket_violations(
                        getattr(res, attr)[name].double(),
                        res.paper_bounds[key]["lower"][name].double(),
                        res.paper_bounds[key]["upper"][name].double(),
                    )
                totals[eq] += viol[eq]
            pairs += sum(t.numel() for t in res.fisher.values())
            methods.add(f"{fam}: λ̃_max(M) by {res.paper_bounds_method['squared_score']['upper']}")
            ctx.check(
                "eqs. (7)–(9) hold",
                f"{fam}, {act} ×{scale} {'-'.join(map(str, widths))}",
                "engine per input",
                not any(viol.values()),
                "violations " + ", ".join(f"{eq} {v}" for eq, v in viol.items()),
            )
        ctx.number("parameter×input pairs checked", pairs)
        ctx.number("violations (7), (8), (9)", ", ".join(str(v) for v in totals.values()))
    if methods:
        ctx.note("**Certified λ̃(M) values used:** " + "; ".join(sorted(methods)) + ".")
