"""Claim: with piecewise-linear activations (ReLU, leaky ReLU) ``w_i = ∂²h/∂θ_i² = 0`` almost
everywhere, so ``V₂ = 0`` for **every** parameter and a single label's ``Î₂(θ_i|x)`` equals
``I(θ_i|x)`` exactly (docs/theory.md §2). A smooth activation (softplus) is the contrast.
"""

from __future__ import annotations

import torch

from paper_checks._common import (
    FAMILY_OUTPUTS,
    as_float64,
    kernel_for,
    mnist_split,
    random_inputs,
    random_mlp,
    trained_mnist_mlp,
)
from paper_checks._core import need

NAME = "relu_zero_var2"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 80
CLAIM = "ReLU networks: V₂ = 0 for every parameter, Î₂ = I(θ|x) from one label"
WHERE = "paper's variance theorem, piecewise-linear case (docs/theory.md §2, §8)"
METHOD = (
    "engine V₂ exactly 0.0 everywhere; enumeration + autograd V₂ = 0; sampled labels' "
    "Î₂ = engine I(θ|x); softplus contrast has V₂ > 0"
)

#: autograd's per-label Î₂ vs the engine's I(θ|x): two float64 paths, rounding only
RTOL = 1e-10

SETTINGS = {
    "tiny": dict(
        families=("categorical",), activations=("relu",), n_inputs=3, labels=4, mnist=None
    ),
    "quick": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson"),
        activations=("relu", "leaky_relu"),
        n_inputs=8,
        labels=16,
        mnist=dict(widths=(784, 256, 128, 64, 10), epochs=1, n_train=2000, n_inputs=64),
    ),
    "full": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("relu", "leaky_relu"),
        n_inputs=64,
        labels=128,
        mnist=dict(widths=(784, 256, 128, 64, 10), epochs=3, n_train=8000, n_inputs=512),
    ),
}


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    with ctx.part("V₂ = 0 everywhere", "ReLU MLPs", "engine + reference"):
        fisher_variances = need("fishsym", "fisher_variances")
        exact_moments = need("fishsym.reference", "exact_moments")
        from fishsym.reference.coordinates import label_derivatives, split_flat

        for fam in s["families"]:
            d = FAMILY_OUTPUTS[fam]
            for act in s["activations"]:
                model = random_mlp((3, 8, 6, d), act, seed=41, scale=1.5)
                x = random_inputs(s["n_inputs"], 3, seed=42)
                res = fisher_variances(model, x, fam, per_sample=True, bounds=False)
                ref = exact_moments(model, x, fam)
                zero = all(bool((v == 0).all()) for v in res.var2.values())
                scale = max(float(v.abs().max()) for v in res.fisher.values())
                ref_max = max(float(v.abs().max()) for v in ref["var2"].values())
                ctx.check(
                    "V₂ = 0 exactly for every parameter",
                    f"{fam}, {act} 3-8-6-{d}",
                    "engine",
                    zero,
                    f"{sum(v.numel() for v in res.var2.values())} parameter×input pairs, all 0.0",
                )
                ctx.check(
                    "V₂ = 0 (independent)",
                    f"{fam}, {act}",
                    "enumeration + autograd",
                    ref_max <= RTOL * scale**2,
                    f"max |V₂| {ref_max:.1e}",
                )
                kern = kernel_for(fam, d)
                labels = kern.sample(
                    model(x).detach(), s["labels"], torch.Generator().manual_seed(43)
                )
                layout, _, curv = label_derivatives(
                    model, x, kern, labels.transpose(0, 1)
                )  # [n, K, P]
                worst = 0.0
                for name, values in split_flat(layout, -curv).items():  # [n, K, *shape]
                    fisher = res.fisher[name].unsqueeze(1)  # [n, 1, *shape]
                    worst = max(worst, float((values - fisher).abs().max()) / scale)
                ctx.check(
                    "every sampled label's Î₂ equals I(θ|x)",
                    f"{fam}, {act}, {s['labels']} labels",
                    "sampled labels + autograd",
                    worst <= RTOL,
                    f"max rel deviation {worst:.1e}",
                )
        model = random_mlp((3, 8, 6, 3), "softplus", seed=41, scale=1.5)
        res = fisher_variances(
            model,
            random_inputs(s["n_inputs"], 3, seed=42),
            "categorical",
            per_sample=True,
            bounds=False,
        )
        hidden_positive = sum(
            int((v > 0).sum()) for n, v in res.var2.items() if not n.startswith("4.")
        )
        ctx.check(
            "smooth activation (softplus): V₂ > 0 in hidden layers (contrast)",
            "categorical",
            "engine",
            hidden_positive > 0,
            f"{hidden_positive} hidden-layer pairs with V₂ > 0",
        )

    if s["mnist"]:
        m = s["mnist"]
        with ctx.part("V₂ = 0 everywhere", "trained ReLU MNIST MLP", "engine"):
            fisher_variances = need("fishsym", "fisher_variances")
            model = as_float64(
                trained_mnist_mlp(
                    tuple(m["widths"]), "relu", "categorical", m["epochs"], m["n_train"], seed=0
                )
            )
            x = mnist_split(m["n_train"], 2000)[2][: m["n_inputs"]].to(torch.float64)
            res = fisher_variances(model, x, "categorical", per_sample=False, bounds=False)
            zero = all(bool((v == 0).all()) for v in res.var2.values())
            n = sum(v.numel() for v in res.var2.values())
            ctx.check(
                "V₂ = 0 exactly for every parameter",
                f"MNIST {'-'.join(map(str, m['widths']))} ReLU",
                "engine",
                zero,
                f"{n:,} parameters, mean over {m['n_inputs']} digits, all 0.0",
            )
            fisher = torch.cat([v.reshape(-1) for v in res.fisher.values()])
            var1 = torch.cat([v.reshape(-1) for v in res.var1.values()])
            rel = var1[fisher > 0].clamp_min(0).sqrt() / fisher[fisher > 0]
            ctx.number("ReLU MNIST parameters with V₂ = 0", n)
            ctx.number("ReLU MNIST median std/I of Î₁ (one label; Î₂: 0)", float(rel.median()))
