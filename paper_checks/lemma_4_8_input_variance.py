"""Claim: the paper's Lemma 4.8 — the variance of the Fisher over inputs is bounded by

    Var_x I(θ_i|x) ≤ E_x[‖u_i‖⁴ λ_max(I(h(x)))²]

for every parameter, checked on random MLPs in several families with the engine's exact
``Var_x I`` and the per-input upper bound of eq. (7), squared (``(‖u‖²λ_max)²``).
"""

from __future__ import annotations

from paper_checks._common import FAMILY_OUTPUTS, random_inputs, random_mlp
from paper_checks._core import need

NAME = "lemma_4_8_input_variance"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 44
CLAIM = "Lemma 4.8: Var_x I(θ|x) ≤ E_x[‖u‖⁴ λ_max(I)²] for every parameter"
WHERE = "paper Lemma 4.8 (docs/theory.md §3, §5)"
METHOD = "engine per input: exact Var_x I vs the mean of (‖u‖²λ_max)², float64"

SETTINGS = {
    "tiny": dict(families=("categorical",), activations=("tanh",), widths=(3, 5, None), n=6),
    "quick": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson"),
        activations=("sigmoid", "tanh", "relu"),
        widths=(3, 8, 6, None),
        n=32,
    ),
    "full": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("sigmoid", "tanh", "relu", "gelu"),
        widths=(4, 16, 12, None),
        n=128,
    ),
}


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    fisher_variances = need("fishsym", "fisher_variances")
    violations = pairs = 0
    with ctx.part("Lemma 4.8 holds", "random MLPs", "engine per input"):
        for i, fam in enumerate(s["families"]):
            widths = tuple(w if w is not None else FAMILY_OUTPUTS[fam] for w in s["widths"])
            for j, act in enumerate(s["activations"]):
                model = random_mlp(widths, act, seed=10 * i + j)
                x = random_inputs(s["n"], widths[0], seed=3)
                res = fisher_variances(model, x, fam, per_sample=True)
                bad = 0
                for name in res.fisher:
                    var_x = res.var_fisher_over_inputs[name]
                    bound = (res.paper_bounds["fisher"]["upper"][name] ** 2).mean(0)
                    bad += int((var_x > bound).sum())
                    pairs += var_x.numel()
                violations += bad
                ctx.check(
                    "Var_x I ≤ E_x[‖u‖⁴λ_max²]",
                    f"{fam}, {act}",
                    "engine",
                    bad == 0,
                    f"violations {bad}",
                )
        ctx.number("parameters checked, violations", f"{pairs}, {violations}")
