"""The paper's Figure 1: diagonal natural gradient on two-dimensional toy problems —
linear regression and logistic regression — preconditioned by ``Î₁`` or by ``Î₂``
estimated from labels sampled from the model. For these models ``h`` is affine in ``θ``,
so ``Î₂`` has no label variance at all (``V₂ = 0``) and its run is the smoother one
(docs/theory.md §2, §8).
"""

from __future__ import annotations

import torch

from fishsym.experiments.toy import TASKS, TRUE_WEIGHT, toy_model
from paper_checks._common import legend_below
from paper_checks._core import matplotlib, need

NAME = "toy_natural_gradient"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 120
CLAIM = "Toy natural gradient (Fig. 1): Î₂ has zero label variance, its run is no noisier"
WHERE = "paper's Figure 1 (docs/theory.md §8)"
METHOD = (
    "diagonal NG with Î₁ or Î₂ from model labels (seeded), repeated over label seeds; "
    "engine V₂ = 0 at every epoch; Monte Carlo variance "
    "of the preconditioner vs the engine (z-test)"
)

#: Î₂ runs with different label seeds must coincide: Î₂ does not depend on the labels
#: (the curvature of an affine h is exactly 0), so any difference is float64 rounding
SAME_RUN_ATOL = 1e-12
#: family-wise false-alarm rate of the Monte Carlo z-test
MC_ALPHA = 1e-3

SETTINGS = {
    "tiny": dict(
        epochs=2,
        n_train=64,
        n_test=256,
        batch_size=16,
        lr=0.1,
        damping=1e-3,
        n_labels=1,
        label_seeds=2,
        mc_draws=100,
        mc_epochs=(0, 2),
    ),
    "quick": dict(
        epochs=25,
        n_train=256,
        n_test=4096,
        batch_size=16,
        lr=0.1,
        damping=1e-3,
        n_labels=1,
        label_seeds=6,
        mc_draws=400,
        mc_epochs=(0, 10, 25),
    ),
    "full": dict(
        epochs=40,
        n_train=512,
        n_test=8192,
        batch_size=16,
        lr=0.1,
        damping=1e-3,
        n_labels=1,
        label_seeds=16,
        mc_draws=2000,
        mc_epochs=(0, 5, 20, 40),
    ),
}


def _params_model(params):
    model = toy_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name])
    return model


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    from fishsym.experiments.natural_gradient import (
        run_toy_natural_gradient,
        sampled_diag_fisher_draws,
    )
    from fishsym.montecarlo.compare import z_scores, z_test
    from paper_checks._common import kernel_for

    ctx.note(
        "Setup: inputs x ∈ R² from a correlated Gaussian "
        "(correlation 0.91, variances 2.25 and 0.97), "
        "targets from h = 2x₁ − 1.5x₂ + 0.5 (regression: "
        "y = h + N(0,1); logistic: y ∼ Bernoulli(σ(h))); "
        f"{s['n_train']} training and {s['n_test']} test points; model nn.Linear(2, 1) started at "
        "w = (−1.5, 1.5), b = 0. Update θ ← θ − lr·∇L/(F̂ "
        f"+ damping) with lr = {s['lr']}, damping = "
        f"{s['damping']}, mini-batches of {s['batch_size']}, "
        f"F̂ from {s['n_labels']} label(s) per batch "
        f"input drawn from the model; {s['epochs']} epochs; "
        "the Î₁ and Î₂ runs share data and batch order "
        f"and are repeated over {s['label_seeds']} label seeds."
    )
    runs = {}
    for task in TASKS:
        fam, sizes = TASKS[task]
        with ctx.part("runs", task, "diagonal NG"):
            kern = kernel_for(fam, 1)
            for est in ("squared_score", "neg_hessian"):
                runs[(task, est)] = [
                    run_toy_natural_gradient(
                        task,
                        est,
                        epochs=s["epochs"],
                        lr=s["lr"],
                        damping=s["damping"],
                        n_labels=s["n_labels"],
                        batch_size=s["batch_size"],
                        n_train=s["n_train"],
                        n_test=s["n_test"],
                        label_seed=100 + seed,
                        kernel=kern,
                    )
                    for seed in ctx.progress(range(s["label_seeds"]), f"{task} {est}")
                ]
            r1, r2 = runs[(task, "squared_score")], runs[(task, "neg_hessian")]
            diff = max(float((r.trajectory - r2[0].trajectory).abs().max()) for r in r2)
            ctx.check(
                "Î₂ runs do not depend on the label seed",
                task,
                f"{s['label_seeds']} seeds",
                diff <= SAME_RUN_ATOL,
                f"max |Δθ| between seeds {diff:.1e}",
            )
            nll1 = torch.tensor([r.test_nll for r in r1])
            nll2 = torch.tensor([r.test_nll for r in r2])
            spread1, spread2 = nll1.std(0), nll2.std(0)
            ctx.check(
                "Î₂'s run is no noisier than Î₁'s",
                task,
                "std of test NLL over label seeds, every epoch",
                bool((spread2 <= spread1 + SAME_RUN_ATOL).all()),
                f"mean std Î₁ {float(spread1.mean()):.2e}, Î₂ {float(spread2.mean()):.2e}",
            )
            ctx.number(
                f"{task}: final test NLL Î₁ (mean±std) / Î₂",
                f"{float(nll1[:, -1].mean()):.4f}±{float(nll1[:, -1].std()):.1e} "
                f"/ {float(nll2[0, -1]):.4f}",
            )

        with ctx.part("V₂ = 0 and MC preconditioner variance = engine", task, "engine + MC"):
            fisher_variances = need("fishsym", "fisher_variances")
            kern = kernel_for(fam, 1)
            base1 = runs[(task, "squared_score")][0]
            base2 = runs[(task, "neg_hessian")][0]
            x_train = base1.x_train
            zero2 = True
            zs = []
            sums = {"squared_score": [], "neg_hessian": []}
            for run_ in (base1, base2):
                for epoch, params in enumerate(run_.epoch_params):
                    model = _params_model(params)
                    res = fisher_variances(model, x_train, fam, bounds=False, progress=False)
                    zero2 &= all(bool((v == 0).all()) for v in res.var2.values())
                    sums[run_.estimator].append(
                        (
                            sum(float(v.sum()) for v in res.var1.values()),
                            sum(float(v.sum()) for v in res.var2.values()),
                        )
                    )
                    if epoch in s["mc_epochs"] and run_ is base1:
                        for est, key in (("squared_score", "var1"), ("neg_hessian", "var2")):
                            draws = sampled_diag_fisher_draws(
                                model,
                                x_train,
                                kern,
                                est,
                                1,
                                s["mc_draws"],
                                torch.Generator().manual_seed(epoch),
                            )
                            for name, d in draws.items():  # [R, *shape]
                                R = d.shape[0]
                                c = d - d.mean(0)
                                var = c.pow(2).sum(0) / (R - 1)
                                se = ((c.pow(4).mean(0) - var**2).clamp_min(0) / R).sqrt()
                                exact = getattr(res, key)[name] / len(x_train)
                                zs.append(
                                    z_scores(
                                        var.reshape(-1),
                                        exact.reshape(-1),
                                        se.reshape(-1),
                                        zero_scale=d.mean(0).pow(2).reshape(-1),
                                    )
                                )
            ctx.check(
                "V₂ = 0 exactly for every parameter at every epoch",
                task,
                "engine",
                zero2,
                "linear model: h affine in θ",
            )
            test = z_test(torch.cat(zs), MC_ALPHA)
            ctx.check(
                "MC variance of the Î₁ / Î₂ preconditioner = engine V / n",
                task,
                f"{s['mc_draws']} draws at epochs {list(s['mc_epochs'])}",
                test.passed,
                test.describe(),
            )
            runs[(task, "sums")] = sums

    if any(k[1] == "squared_score" for k in runs):
        ctx.save_figure(plot_toy(runs), "toy_natural_gradient.png")


def plot_toy(runs: dict):
    """Figure 1: per task (rows) the test NLL over epochs, the parameter trajectories and
    the summed exact estimator variances. ``runs[(task, estimator)]`` are lists of
    :class:`~fishsym.experiments.natural_gradient.NaturalGradientRun` (one per label seed);
    ``runs[(task, "sums")]`` the per-epoch ``(Σ V₁, Σ V₂)`` along each estimator's run."""
    plt = matplotlib()
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for i, task in enumerate(TASKS):
        if (task, "squared_score") not in runs:
            continue
        r1, r2 = runs[(task, "squared_score")], runs[(task, "neg_hessian")]
        epochs = list(range(len(r1[0].test_nll)))
        ax = axes[i, 0]
        for j, r in enumerate(r1):
            ax.plot(
                epochs,
                r.test_nll,
                color="tab:blue",
                alpha=0.35,
                lw=1,
                label="Î₁ (each label seed)" if j == 0 else None,
            )
        ax.plot(
            epochs, r2[0].test_nll, color="tab:orange", lw=2, label="Î₂ (every seed: identical)"
        )
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test NLL, log₁₀ scale")
        ax.set_title(f"{task.replace('_', ' ')}: test NLL")
        legend_below(ax)
        ax = axes[i, 1]
        for j, r in enumerate(r1):
            ax.plot(
                r.trajectory[:, 0],
                r.trajectory[:, 1],
                color="tab:blue",
                alpha=0.35,
                lw=0.8,
                label="Î₁" if j == 0 else None,
            )
        ax.plot(
            r2[0].trajectory[:, 0], r2[0].trajectory[:, 1], color="tab:orange", lw=1.8, label="Î₂"
        )
        ax.plot(*r2[0].trajectory[0, :2], "ko", ms=5, label="start")
        ax.plot(*TRUE_WEIGHT, "k*", ms=10, label="generating w")
        ax.set_xlabel("w₁")
        ax.set_ylabel("w₂")
        ax.set_title("parameter trajectories (every step)")
        legend_below(ax)
        ax = axes[i, 2]
        sums = runs.get((task, "sums"))
        if sums:
            v1 = [a for a, _ in sums["squared_score"]]
            v2 = [b for _, b in sums["neg_hessian"]]
            ax.plot(
                epochs, v1, "-o", ms=3, color="tab:blue", label="Σ_i E_x V₁(θ_i|x) along the Î₁ run"
            )
            ax.plot(
                epochs,
                v2,
                "-o",
                ms=3,
                color="tab:orange",
                label="Σ_i E_x V₂(θ_i|x) along the Î₂ run (≡ 0)",
            )
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_xlabel("epoch")
            ax.set_ylabel("summed single-label variance\nsymlog₁₀ (linear below 1e−3)")
            ax.set_title("summed estimator variances (exact)")
            legend_below(ax, ncol=1)
    fig.tight_layout()
    return fig
