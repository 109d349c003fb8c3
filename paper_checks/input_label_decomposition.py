"""Claim: with random inputs ``x ∼ q(x)`` and model labels, the variance of either joint
estimator splits into a label part and an input part (law of total variance, docs/theory.md §5):

    Var Î_a(θ_i) = (1/N_x) ( E_x[v_a(θ_i|x)] / N_y + Var_x[I(θ_i|x)] ),   a ∈ {1, 2},

with ``N_x`` inputs and ``N_y`` labels per input. The input part is the same for both
estimators; only the label part differs.
"""

from __future__ import annotations

import torch

from paper_checks._common import (
    annotate_exact_zeros,
    kernel_for,
    legend_below,
    linear_names,
    max_rel_err,
    random_inputs,
    random_mlp,
)
from paper_checks._core import matplotlib, need

NAME = "input_label_decomposition"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 100
CLAIM = "Var Î = (E_x v/N_y + Var_x I)/N_x: label part + input part"
WHERE = "paper Thm. 4.7 (input/label decomposition; docs/theory.md §5)"
METHOD = (
    "engine variance(n_labels, n_inputs) vs per-input exact enumeration + autograd "
    "(rtol 1e-9); Monte Carlo over random inputs and labels, Bonferroni z-test"
)

#: engine vs the decomposition assembled from the enumeration reference (float64)
RTOL = 1e-9
#: family-wise false-alarm rate of the Monte Carlo z-tests
MC_ALPHA = 1e-3

SETTINGS = {
    "tiny": dict(families=("categorical",), n_pool=4, n_inputs=2, n_labels=2, replicates=2000),
    "quick": dict(
        families=("categorical", "bernoulli"), n_pool=8, n_inputs=4, n_labels=2, replicates=20000
    ),
    "full": dict(
        families=("categorical", "bernoulli", "independent_bernoulli"),
        n_pool=32,
        n_inputs=8,
        n_labels=4,
        replicates=100000,
    ),
}
_OUT = {"categorical": 3, "bernoulli": 1, "independent_bernoulli": 2}


def _monte_carlo(model, pool, kern, n_inputs, n_labels, replicates, gen):
    """Replicates of both joint estimators: ``{estimator: {name: [R, k]}}``."""
    from fishsym.reference.coordinates import label_derivatives, split_flat

    support = kern.support_labels()
    every_label = support.unsqueeze(0).expand((len(pool),) + tuple(support.shape))
    layout, score_all, curv_all = label_derivatives(
        model, pool, kern, every_label
    )  # [n_pool, S, P]
    scores, curvs = (
        split_flat(layout, score_all),
        split_flat(layout, curv_all),
    )  # [n_pool, S, *shape]
    table = {
        name: (scores[name].flatten(2).transpose(1, 2), curvs[name].flatten(2).transpose(1, 2))
        for name in scores
    }  # [n_pool, k, S]
    h = model(pool).detach()
    x_idx = torch.randint(len(pool), (replicates, n_inputs), generator=gen)
    labels = kern.sample(h[x_idx.reshape(-1)], n_labels, gen)  # [N_y, R·N_x, *obs]
    # position of each sampled label in the enumerated support
    eq = support.unsqueeze(0).unsqueeze(0) == labels.unsqueeze(2)  # [N_y, R·N_x, S, *obs]
    if eq.ndim > 3:
        eq = eq.flatten(3).all(-1)
    y_idx = eq.to(torch.int64).argmax(-1).transpose(0, 1).reshape(replicates, n_inputs, n_labels)
    out = {"squared_score": {}, "neg_hessian": {}}
    xi = x_idx.unsqueeze(-1).expand_as(y_idx)
    for name, (score, curv) in table.items():
        for est, values in (("squared_score", score**2), ("neg_hessian", -curv)):
            # values[x, p, y] gathered at the sampled (x, y) pairs → [R, N_x, N_y, k]
            picked = values.permute(0, 2, 1)[xi, y_idx]
            out[est][name] = picked.mean(dim=(1, 2))
    return out


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    plt = matplotlib()
    bars = None
    for fam in s["families"]:
        d = _OUT[fam]
        model = random_mlp((3, 6, 5, d), "sigmoid", seed=61, scale=2.0)
        pool = random_inputs(s["n_pool"], 3, seed=62)
        Nx, Ny = s["n_inputs"], s["n_labels"]
        with ctx.part("decomposition = engine.variance", fam, "enumeration"):
            fisher_variances = need("fishsym", "fisher_variances")
            exact_moments = need("fishsym.reference", "exact_moments")
            res = fisher_variances(model, pool, fam, bounds=False)
            ref = exact_moments(model, pool, fam)
            worst = {"input part": 0.0, "squared_score": 0.0, "neg_hessian": 0.0}
            for name in res.fisher:
                var_x = ref["mean1"][name].var(0, unbiased=False)
                worst["input part"] = max(
                    worst["input part"], max_rel_err(res.var_fisher_over_inputs[name], var_x)
                )
                for est, key in (("squared_score", "var1"), ("neg_hessian", "var2")):
                    predicted = (ref[key][name].mean(0) / Ny + var_x) / Nx
                    got = res.variance(est, n_labels=Ny, n_inputs=Nx)[name]
                    worst[est] = max(worst[est], max_rel_err(got, predicted))
            ctx.check(
                "Var_x I(θ|x): engine = enumeration",
                fam,
                "exact",
                worst["input part"] <= RTOL,
                f"max rel err {worst['input part']:.1e}",
            )
            ctx.check(
                f"(E_x v/N_y + Var_x I)/N_x, N_x={Nx}, N_y={Ny}",
                fam,
                "engine.variance vs enumeration",
                max(worst["squared_score"], worst["neg_hessian"]) <= RTOL,
                f"max rel err Î₁ {worst['squared_score']:.1e}, Î₂ {worst['neg_hessian']:.1e}",
            )
            if bars is None:
                bars = []
                for label, w, b in linear_names(model):
                    input_part = (
                        sum(float(res.var_fisher_over_inputs[n].sum()) for n in (w, b)) / Nx
                    )
                    lab1 = sum(float(res.var1[n].sum()) for n in (w, b)) / (Nx * Ny)
                    lab2 = sum(float(res.var2[n].sum()) for n in (w, b)) / (Nx * Ny)
                    bars.append((label, input_part, lab1, lab2))

        with ctx.part("Monte Carlo over random inputs and labels", fam, "MC z-test"):
            fisher_variances = need("fishsym", "fisher_variances")
            from fishsym.montecarlo.compare import z_scores, z_test

            res = fisher_variances(model, pool, fam, bounds=False)
            kern = kernel_for(fam, d)
            mc = _monte_carlo(
                model, pool, kern, Nx, Ny, s["replicates"], torch.Generator().manual_seed(63)
            )
            zs_mean, zs_var = [], []
            for est in ("squared_score", "neg_hessian"):
                exact_var = res.variance(est, n_labels=Ny, n_inputs=Nx)
                for name, reps in mc[est].items():  # [R, k]
                    R = reps.shape[0]
                    mean = reps.mean(0)
                    c = reps - mean
                    var = c.pow(2).sum(0) / (R - 1)
                    se_var = ((c.pow(4).mean(0) - var**2).clamp_min(0) / R).sqrt()
                    zs_mean.append(z_scores(mean, res.fisher[name].reshape(-1), (var / R).sqrt()))
                    zs_var.append(
                        z_scores(var, exact_var[name].reshape(-1), se_var, zero_scale=mean**2)
                    )
            t_mean, t_var = (
                z_test(torch.cat(zs_mean), MC_ALPHA / 2),
                z_test(torch.cat(zs_var), MC_ALPHA / 2),
            )
            ctx.check(
                "MC mean of both joint estimators = E_x I(θ|x)",
                fam,
                f"{s['replicates']} replicates",
                t_mean.passed,
                t_mean.describe(),
            )
            ctx.check(
                "MC variance = (E_x v/N_y + Var_x I)/N_x",
                fam,
                f"{s['replicates']} replicates",
                t_var.passed,
                t_var.describe(),
            )

    if bars:
        ctx.number("input part / label part (Î₁), layer 1", f"{bars[0][1]:.3g} / {bars[0][2]:.3g}")
        fig, ax = plt.subplots(figsize=(7, 3.8))
        xs = torch.arange(len(bars), dtype=torch.float64)
        width = 0.27
        series = (
            ("input part Var_x I / N_x (the same for Î₁ and Î₂)", 1, "tab:gray"),
            ("label part E_x V₁ / (N_x N_y) — Î₁", 2, "tab:blue"),
            ("label part E_x V₂ / (N_x N_y) — Î₂", 3, "tab:orange"),
        )
        zeros = []
        for i, (lab, col, color) in enumerate(series):
            vals = [b[col] for b in bars]
            ax.bar(
                xs + (i - 1) * width,
                [v if v > 0 else float("nan") for v in vals],
                width,
                color=color,
                label=lab,
            )
            zeros += [(float(xs[j]) + (i - 1) * width, color) for j, v in enumerate(vals) if v <= 0]
        ax.set_yscale("log")
        annotate_exact_zeros(ax, zeros, 1.3)  # a zero has no bar on a log axis
        ax.set_xticks(xs.tolist(), [b[0] for b in bars])
        ax.set_ylabel("Σ over the layer of the variance, log₁₀ scale")
        ax.set_title(
            f"Joint variance = input part + label part ({s['families'][0]}, "
            f"N_x={s['n_inputs']}, N_y={s['n_labels']})",
            fontsize=10,
        )
        legend_below(ax, ncol=1)
        ctx.save_figure(fig, "input_label_decomposition.png")
