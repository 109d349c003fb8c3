"""Claim: for a Gaussian (regression) head with identity covariance the coefficient of
variation of ``Î₁`` is ``√(2/N)`` for **every** parameter, whatever the network
(``V₁ = 2·I(θ|x)²``, docs/theory.md §4), while ``V₂ = ‖w‖²`` depends on the network.
"""

from __future__ import annotations

import math

import torch

from paper_checks._common import legend_below, max_rel_err, random_inputs, random_mlp
from paper_checks._core import matplotlib, need

NAME = "gaussian_cv"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 60
CLAIM = "Gaussian head: CV of Î₁ is √(2/N) for every parameter"
WHERE = "paper's regression case (docs/theory.md §4, §8)"
METHOD = (
    "engine V₁ vs 2·I² per input and parameter (rtol 1e-10); Monte Carlo CV with N ≥ 2 labels "
    "(fishsym.montecarlo) vs √(2/N), z-test on the sample variances"
)

#: both sides in float64 from the same u: rounding only
RTOL = 1e-10
#: family-wise false-alarm rate of the Monte Carlo z-test
MC_ALPHA = 1e-3

SETTINGS = {
    "tiny": dict(
        outputs=(1,), activations=("tanh",), n_inputs=3, mc=dict(n_labels=(2, 4), replicates=400)
    ),
    "quick": dict(
        outputs=(1, 2, 10),
        activations=("sigmoid", "tanh", "relu"),
        n_inputs=8,
        mc=dict(n_labels=(2, 4, 8, 16), replicates=4000),
    ),
    "full": dict(
        outputs=(1, 2, 10),
        activations=("sigmoid", "tanh", "relu", "softplus", "gelu"),
        n_inputs=32,
        mc=dict(n_labels=(2, 4, 8, 16, 32, 64), replicates=20000),
    ),
}


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    plt = matplotlib()
    with ctx.part("V₁ = 2 I² (CV √(2/N))", "gaussian", "engine"):
        fisher_variances = need("fishsym", "fisher_variances")
        worst = 0.0
        for d in s["outputs"]:
            for act in s["activations"]:
                model = random_mlp((4, 6, 5, d), act, seed=d, scale=1.3)
                x = random_inputs(s["n_inputs"], 4, seed=d + 1)
                res = fisher_variances(model, x, "gaussian", per_sample=True, bounds=False)
                err = max(max_rel_err(res.var1[n], 2 * res.fisher[n] ** 2) for n in res.fisher)
                worst = max(worst, err)
                ctx.check(
                    "V₁(θ|x) = 2·I(θ|x)² for every parameter and input",
                    f"gaussian d={d}, {act} MLP",
                    "engine per input",
                    err <= RTOL,
                    f"max rel err {err:.1e}",
                )
        ctx.number("max rel. error V₁ vs 2I²", worst)

    mc = s["mc"]
    points = []
    with ctx.part("Monte Carlo CV = √(2/N)", "gaussian d=2 tanh MLP", "montecarlo.estimate"):
        fisher_variances = need("fishsym", "fisher_variances")
        estimate = need("fishsym.montecarlo", "estimate")
        from fishsym.montecarlo.compare import z_scores, z_test

        model = random_mlp((4, 6, 5, 2), "tanh", seed=3, scale=1.3)
        x = random_inputs(2, 4, seed=4)
        res = fisher_variances(model, x, "gaussian", per_sample=True, bounds=False)
        zs = []
        for N in mc["n_labels"]:
            est = estimate(
                model,
                x,
                "gaussian",
                n_labels=N,
                replicates=mc["replicates"],
                generator=torch.Generator().manual_seed(100 + N),
            )
            for name in res.fisher:
                fisher = res.fisher[name].reshape(x.shape[0], -1)
                var_mc = est.var["squared_score"][name].reshape(x.shape[0], -1)
                se_mc = est.se_var("squared_score")[name].reshape(x.shape[0], -1)
                exact = 2 * fisher**2 / N
                keep = fisher > 0
                zs.append(z_scores(var_mc[keep], exact[keep], se_mc[keep]))
                cv = var_mc[keep].sqrt() / fisher[keep]
                points.append((N, cv))
        test = z_test(torch.cat(zs), MC_ALPHA)
        ctx.check(
            "MC variance of Î₁ with N labels = 2I²/N",
            f"N ∈ {list(mc['n_labels'])}",
            f"{mc['replicates']} replicates, Bonferroni z-test",
            test.passed,
            test.describe(),
        )
        med = {N: float(cv.median()) for N, cv in points}
        N0 = min(med)
        ctx.number(
            f"median measured CV at N={N0} (theory √(2/N) = {math.sqrt(2 / N0):.4f})", med[N0]
        )

    if points:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for N, cv in points:
            ax.plot([N] * len(cv), cv, ".", color="tab:blue", alpha=0.25, ms=4)
        grid = torch.tensor(sorted({N for N, _ in points}), dtype=torch.float64)
        ax.loglog(grid, (2 / grid).sqrt(), "k-", label="√(2/N) (theory)")
        ax.plot([], [], ".", color="tab:blue", label="Monte Carlo, each parameter and input")
        ax.set_xticks(grid.tolist(), [str(int(v)) for v in grid.tolist()])
        ticks = (2 / grid).sqrt().tolist()
        ax.set_yticks(ticks, [f"{v:.3f}" for v in ticks])
        ax.minorticks_off()
        ax.set_xlabel("labels per input N, log₁₀ scale")
        ax.set_ylabel("coefficient of variation of Î₁, log₁₀ scale")
        ax.set_title("Gaussian head: CV of Î₁ is √(2/N) for every parameter")
        legend_below(ax, ncol=1)
        ctx.save_figure(fig, "gaussian_cv.png")
