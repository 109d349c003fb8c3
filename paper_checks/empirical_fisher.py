"""Claim: the empirical Fisher — the squared score with labels from the *data* instead of
the model — is biased, with the bias and variance docs/theory.md §5 predicts:

    E_q[(∂_iℓ)²] − I(θ_i|x) = u_iᵀ(Cov_q[t] − I(h) + δδᵀ)u_i,    δ = E_q[t] − η(h),

single-label variance ``E_q[(u_iᵀ(t−η))⁴] − (E_q[(u_iᵀ(t−η))²])²`` (and the Hessian form:
mean ``I − δᵀw``, variance ``wᵀCov_q w``). With a data set's fixed labels the empirical
Fisher has no sampling variance at all: it trades variance for bias.
"""

from __future__ import annotations

import math

import torch

from paper_checks._common import (
    annotate_exact_zeros,
    as_float64,
    kernel_for,
    legend_below,
    linear_names,
    max_rel_err,
    mnist_split,
    trained_mnist_mlp,
)
from paper_checks._core import matplotlib, need

NAME = "empirical_fisher"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 110
CLAIM = "Empirical Fisher: bias and variance as docs/theory.md §5 predicts"
WHERE = "paper's empirical-Fisher discussion (docs/theory.md §5)"
METHOD = (
    "on a trained MNIST MLP, exact formulas for every parameter (forward-mode AD per unit + "
    "kernels) vs label enumeration + autograd (rtol 1e-9) vs Monte Carlo over data labels "
    "(z-test); Fisher/V₁/V₂ also vs the engine"
)

#: formula route vs enumeration route vs engine, all float64 (rounding only)
RTOL = 1e-9
#: family-wise false-alarm rate of the Monte Carlo z-test
MC_ALPHA = 1e-3

SETTINGS = {
    "tiny": dict(
        widths=(784, 8, 10),
        epochs=1,
        teacher_epochs=1,
        n_train=500,
        n_inputs=6,
        coords=3,
        replicates=300,
    ),
    "quick": dict(
        widths=(784, 256, 128, 64, 10),
        epochs=2,
        teacher_epochs=4,
        n_train=4000,
        n_inputs=64,
        coords=12,
        replicates=3000,
    ),
    # memory of the Monte Carlo: inputs × entries per tensor × replicates floats, twice
    "full": dict(
        widths=(784, 256, 128, 64, 10),
        epochs=5,
        teacher_epochs=10,
        n_train=8000,
        n_inputs=256,
        coords=32,
        replicates=5000,
    ),
}


def _compare_all(a, b) -> float:
    """Largest deviation over the 7 quantities, relative to the tensor's largest Fisher
    value (means) or the larger of its square and the largest variance (variances)."""
    worst = 0.0
    for k in b.fisher:
        fmax = float(b.fisher[k].abs().max())
        for attr in ("fisher", "emp_mean", "emp_hess_mean"):
            worst = max(worst, max_rel_err(getattr(a, attr)[k], getattr(b, attr)[k], fmax))
        for attr in ("var1", "var2", "emp_var", "emp_hess_var"):
            vscale = max(fmax**2, float(getattr(b, attr)[k].abs().max()))
            worst = max(worst, max_rel_err(getattr(a, attr)[k], getattr(b, attr)[k], vscale))
    return worst


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    plt = matplotlib()
    from fishsym.montecarlo.compare import z_scores, z_test
    from fishsym.montecarlo.empirical import empirical_fisher_monte_carlo
    from fishsym.reference.coordinates import sample_coordinates
    from fishsym.reference.empirical import empirical_fisher_enumerated
    from fishsym.variance.empirical import empirical_fisher_exact

    widths = tuple(s["widths"])
    student = as_float64(
        trained_mnist_mlp(widths, "sigmoid", "categorical", s["epochs"], s["n_train"], seed=0)
    )
    teacher = as_float64(
        trained_mnist_mlp(
            widths, "sigmoid", "categorical", s["teacher_epochs"], s["n_train"], seed=7
        )
    )
    _, _, x_test, y_test = mnist_split(s["n_train"], 2000)
    x = x_test[: s["n_inputs"]].to(torch.float64)
    y = y_test[: s["n_inputs"]]
    with torch.no_grad():
        teacher_h = teacher(x)
    n = s["n_inputs"]
    ctx.note(
        "Setup: the student is the sigmoid MLP "
        f"{'-'.join(map(str, widths))} trained {s['epochs']} epochs "
        f"(Adam, lr 1e-3, batch 64, seed 0) on {s['n_train']} "
        f"digits; {n} held-out digits. Two kinds of "
        "data labels: (a) a *teacher* — the same architecture "
        f"trained {s['teacher_epochs']} epochs from "
        "seed 7 — whose predictive distribution q(y|x) "
        "supplies random labels (so the empirical Fisher "
        "has a bias **and** a variance), and (b) the digits' real labels (fixed: bias only). Each "
        "estimator uses one label per digit averaged over "
        f"the {n} digits; the model-label estimators "
        "Î₁, Î₂ use labels drawn from the student."
    )
    exact = exact_real = None
    with ctx.part(
        "exact formulas = enumeration + autograd", "MNIST sigmoid MLP", "two exact routes"
    ):
        kern = kernel_for("categorical", widths[-1])
        exact = empirical_fisher_exact(student, x, kern, teacher_h=teacher_h)
        exact_real = empirical_fisher_exact(student, x, kern, labels=y)
        coords = sample_coordinates(student, s["coords"], torch.Generator().manual_seed(71))
        enum = empirical_fisher_enumerated(student, x, kern, coords, teacher_h=teacher_h)
        enum_real = empirical_fisher_enumerated(student, x, kern, coords, labels=y)
        err = _compare_all(exact.select(coords), enum)
        err_real = _compare_all(exact_real.select(coords), enum_real)
        k = sum(len(v) for v in coords.values())
        ctx.check(
            "docs/theory.md §5 formulas = exact enumeration (teacher labels)",
            f"{k} sampled entries",
            "formulas vs enumeration + autograd",
            err <= RTOL,
            f"max rel err {err:.1e} over 7 quantities",
        )
        ctx.check(
            "docs/theory.md §5 formulas = exact enumeration (real labels)",
            f"{k} sampled entries",
            "formulas vs enumeration + autograd",
            err_real <= RTOL,
            f"max rel err {err_real:.1e}",
        )
        zero_var = max(
            float(exact_real.emp_var[k].abs().max()) / float(exact_real.emp_mean[k].max()) ** 2
            for k in exact_real.emp_var
        )
        ctx.check(
            "fixed data labels: the empirical Fisher has zero variance",
            "real labels",
            "formula",
            zero_var <= RTOL,
            f"max single-label variance / (mean)² {zero_var:.1e} (rounding)",
        )

    with ctx.part("Fisher, V₁, V₂ = engine", "MNIST sigmoid MLP", "engine"):
        fisher_variances = need("fishsym", "fisher_variances")
        if exact is None:
            raise RuntimeError("the exact route failed above")
        res = fisher_variances(student, x, "categorical", bounds=False, progress=False)
        worst = max(
            max_rel_err(
                getattr(exact, a)[k],
                getattr(res, a)[k],
                float(res.fisher[k].abs().max())
                if a == "fisher"
                else max(
                    float(res.fisher[k].abs().max()) ** 2, float(getattr(res, a)[k].abs().max())
                ),
            )
            for a in ("fisher", "var1", "var2")
            for k in res.fisher
        )
        ctx.check(
            "Fisher, V₁, V₂ of the formula route = engine (every parameter)",
            "MNIST",
            "forward-mode AD vs engine",
            worst <= RTOL,
            f"max rel err {worst:.1e}",
        )

    with ctx.part("Monte Carlo over teacher labels", "sampled entries", "MC z-test"):
        if exact is None:
            raise RuntimeError("the exact route failed above")
        mc = empirical_fisher_monte_carlo(
            student, x, kern, coords, teacher_h, s["replicates"], torch.Generator().manual_seed(72)
        )
        sel = exact.select(coords)
        zs = []
        for est, mean_key, var_key in (
            ("squared_score", "emp_mean", "emp_var"),
            ("neg_hessian", "emp_hess_mean", "emp_hess_var"),
        ):
            m = mc[est]
            for name in coords:
                zs.append(z_scores(m.mean[name], getattr(sel, mean_key)[name], m.se_mean[name]))
                zs.append(
                    z_scores(
                        m.var[name],
                        getattr(sel, var_key)[name] / n,
                        m.se_var[name],
                        zero_scale=m.mean[name] ** 2,
                    )
                )
        test = z_test(torch.cat(zs), MC_ALPHA)
        ctx.check(
            "MC mean and variance of the empirical Fisher (both forms) = docs/theory.md §5",
            f"{s['replicates']} label draws",
            "Bonferroni z-test",
            test.passed,
            test.describe(),
        )

    if exact is None:
        return
    rows = []
    for label, w, b in linear_names(student):

        def mean(d, w=w, b=b):
            return float(torch.cat([d[w].reshape(-1), d[b].reshape(-1)]).mean())

        fi = mean(exact.fisher)
        rows.append(
            dict(
                layer=label,
                fisher=fi,
                bias_teacher=mean(exact.bias) / fi,
                bias_real=mean(exact_real.bias) / fi,
                std_emp=math.sqrt(mean(exact.emp_var) / n) / fi,
                std1=math.sqrt(mean(exact.var1) / n) / fi,
                std2=math.sqrt(mean(exact.var2) / n) / fi,
            )
        )
        ctx.number(
            f"{label}: rel. bias teacher / real labels",
            f"{rows[-1]['bias_teacher']:+.2f} / {rows[-1]['bias_real']:+.2f}; rel. std "
            f"Ê {rows[-1]['std_emp']:.2g}, Î₁ {rows[-1]['std1']:.2g}, Î₂ {rows[-1]['std2']:.2g}",
        )
    lines = [
        "Per layer (averages over its parameters, relative to the Fisher information; "
        f"estimators averaged over the {n} digits with one label each):",
        "",
        "| layer | FI | bias, teacher labels | bias, real "
        "labels | std, empirical (teacher) | std Î₁ | std Î₂ |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['fisher']:.3g} | "
            f"{r['bias_teacher']:+.3f} | {r['bias_real']:+.3f} | "
            f"{r['std_emp']:.3g} | {r['std1']:.3g} | {r['std2']:.3g} |"
        )
    ctx.note("\n".join(lines))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    xs = torch.arange(len(rows), dtype=torch.float64)
    series = [
        ("|bias|/FI, empirical (teacher labels)", "bias_teacher", "tab:red"),
        ("|bias|/FI, empirical (real labels)", "bias_real", "darkred"),
        (f"std/FI, empirical (teacher), N={n}", "std_emp", "tab:pink"),
        (f"std/FI, Î₁ (model labels), N={n}", "std1", "tab:blue"),
        (f"std/FI, Î₂ (model labels), N={n}", "std2", "tab:orange"),
    ]
    width = 0.16
    zeros = []
    for i, (lab, key, color) in enumerate(series):
        vals = [abs(r[key]) for r in rows]
        ax.bar(
            xs + (i - 2) * width,
            [v if v > 0 else float("nan") for v in vals],
            width,
            color=color,
            label=lab,
        )
        zeros += [(float(xs[j]) + (i - 2) * width, color) for j, v in enumerate(vals) if v == 0]
    ax.set_yscale("log")
    annotate_exact_zeros(ax, zeros, 1.2)  # a zero has no bar on a log axis
    ax.set_xticks(xs.tolist(), [r["layer"] for r in rows])
    ax.set_ylabel("relative to the Fisher information\n(mean over the layer), log₁₀ scale")
    ax.set_title("Empirical Fisher: bias vs the estimators' standard deviations")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax = axes[1]
    gen = torch.Generator().manual_seed(73)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for (label, w, _), color in zip(linear_names(student), colors, strict=False):
        f = exact.fisher[w].reshape(-1)
        e = exact_real.emp_mean[w].reshape(-1)
        pick = torch.randperm(len(f), generator=gen)[:400]
        ax.loglog(f[pick], e[pick], ".", ms=3, alpha=0.6, color=color, label=label)
    lims = ax.get_xlim()
    ax.plot(lims, lims, "k-", lw=0.8, label="empirical = Fisher")
    ax.set_xlabel("Fisher information I(θ_i) (exact), log₁₀ scale")
    ax.set_ylabel("empirical Fisher, real labels, log₁₀ scale")
    ax.set_title("Per parameter (400 weights per layer)")
    legend_below(ax, ncol=3)
    fig.tight_layout()
    ctx.save_figure(fig, "empirical_fisher.png")
