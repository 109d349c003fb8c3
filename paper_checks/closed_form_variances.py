"""Claim: both estimators are unbiased, and their single-label variances have closed forms
``V₁ = μ₄[u,u,u,u] − I(θ|x)²`` and ``V₂ = wᵀ I(h) w`` (docs/theory.md §2).

The engine evaluates the closed forms for every parameter; the reference enumerates every
label (Gauss–Hermite nodes for Gaussian heads, truncated sums with a certified tail for
Poisson) and runs autograd on the log-likelihood of each — no formula of the theory is
involved — and Monte Carlo draws labels from the model.
"""

from __future__ import annotations

import torch

from paper_checks._common import (
    FAMILY_OUTPUTS,
    as_float64,
    max_rel_err,
    random_inputs,
    random_mlp,
    trained_mnist_mlp,
)
from paper_checks._core import need

NAME = "closed_form_variances"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 30
CLAIM = "Both estimators are unbiased; V₁ = μ₄[u⁴] − I², V₂ = wᵀIw"
WHERE = "paper's variance theorem for Î₁/Î₂ (docs/theory.md §2)"
METHOD = (
    "closed forms (engine, every parameter) vs exact label enumeration + autograd "
    "(no formula) at rtol 1e-9, across families and activations; Monte Carlo z-test"
)

#: engine (closed forms) vs enumeration + autograd, both float64: they differ by rounding
#: only (~1e-14); 1e-9 of the largest value leaves room for the cancellation in μ₄ − I²
RTOL_EXACT = 1e-9
#: family-wise false-alarm rate of the Monte Carlo test
MC_ALPHA = 1e-3

SETTINGS = {
    "tiny": dict(
        families=("categorical", "gaussian"),
        activations=("sigmoid",),
        hidden=(4,),
        n_inputs=2,
        mnist=None,
        mc_labels=None,
    ),
    "quick": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("sigmoid", "tanh", "softplus"),
        hidden=(5, 4),
        n_inputs=4,
        mnist=dict(
            widths=(784, 32, 16, 10), epochs=1, n_train=2000, n_inputs=3, coords_per_layer=24
        ),
        mc_labels=dict(n_labels=2, replicates=4000),
    ),
    "full": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("sigmoid", "tanh", "softplus", "gelu"),
        hidden=(6, 5, 4),
        n_inputs=8,
        mnist=dict(
            widths=(784, 256, 128, 64, 10), epochs=2, n_train=8000, n_inputs=8, coords_per_layer=200
        ),
        mc_labels=dict(n_labels=2, replicates=20000),
    ),
}


def _compare(ctx, res, ref, subject, selection=None):
    """Unbiasedness and both variances, per input and parameter, engine vs reference."""
    worst = {"mean1": 0.0, "mean2": 0.0, "var1": 0.0, "var2": 0.0}
    for name in ref["mean1"]:
        eng_f, eng_v1, eng_v2 = res.fisher[name], res.var1[name], res.var2[name]
        if selection is not None:
            idx = selection[name]
            eng_f, eng_v1, eng_v2 = (
                t.reshape(t.shape[0], -1)[:, idx] for t in (eng_f, eng_v1, eng_v2)
            )
        # means relative to max I; variances relative to the larger of max V and max I²
        # (V₂ is exactly 0 in the last layer, and can exceed I² by orders of magnitude)
        scale = float(eng_f.abs().max())
        worst["mean1"] = max(worst["mean1"], max_rel_err(ref["mean1"][name], eng_f, scale))
        worst["mean2"] = max(worst["mean2"], max_rel_err(ref["mean2"][name], eng_f, scale))
        for key, eng in (("var1", eng_v1), ("var2", eng_v2)):
            vscale = max(scale**2, float(eng.abs().max()))
            worst[key] = max(worst[key], max_rel_err(ref[key][name], eng, vscale))
    method = f"enumeration+autograd ({ref.rule.split(':')[0]})"
    ctx.check(
        "E Î₁ = E Î₂ = I(θ|x)",
        subject,
        method,
        worst["mean1"] <= RTOL_EXACT and worst["mean2"] <= RTOL_EXACT,
        f"max rel err Î₁ {worst['mean1']:.1e}, Î₂ {worst['mean2']:.1e}",
    )
    ctx.check(
        "V₁ = μ₄[u⁴] − I²",
        subject,
        method,
        worst["var1"] <= RTOL_EXACT,
        f"max rel err {worst['var1']:.1e}",
    )
    ctx.check(
        "V₂ = wᵀIw",
        subject,
        method,
        worst["var2"] <= RTOL_EXACT,
        f"max rel err {worst['var2']:.1e}",
    )
    return worst


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    worst_all = 0.0
    n_cases = 0
    with ctx.part("closed forms vs enumeration", "random MLPs", "engine vs reference"):
        fisher_variances = need("fishsym", "fisher_variances")
        exact_moments = need("fishsym.reference", "exact_moments")
        for fam in ctx.progress(s["families"], "families"):
            d = FAMILY_OUTPUTS[fam]
            for act in s["activations"]:
                widths = (3, *s["hidden"], d)
                model = random_mlp(widths, act, seed=len(fam) + len(act), scale=1.5)
                x = random_inputs(s["n_inputs"], 3, seed=7)
                res = fisher_variances(model, x, fam, per_sample=True, bounds=False)
                ref = exact_moments(model, x, fam)
                subject = f"{fam}, {act} MLP {'-'.join(map(str, widths))}"
                worst = _compare(ctx, res, ref, subject)
                worst_all = max(worst_all, *worst.values())
                n_cases += 1
        ctx.number("families × activations", n_cases)
        ctx.number("max rel. error closed form vs enumeration", worst_all)

    if s["mnist"]:
        m = s["mnist"]
        with ctx.part("closed forms vs enumeration", "trained MNIST MLP", "engine vs reference"):
            fisher_variances = need("fishsym", "fisher_variances")
            reference = need("fishsym.reference")
            model = as_float64(
                trained_mnist_mlp(
                    tuple(m["widths"]), "sigmoid", "categorical", m["epochs"], m["n_train"], seed=0
                )
            )
            from paper_checks._common import mnist_split

            x = mnist_split(m["n_train"], 2000)[2][: m["n_inputs"]].to(torch.float64)
            sel = reference.sample_params(
                model, m["coords_per_layer"], torch.Generator().manual_seed(3)
            )
            res = fisher_variances(model, x, "categorical", per_sample=True, bounds=False)
            ref = reference.exact_moments(model, x, "categorical", params=sel)
            worst = _compare(
                ctx,
                res,
                ref,
                f"MNIST {'-'.join(map(str, m['widths']))}, "
                f"{sum(len(v) for v in sel.values())} sampled entries",
                selection=sel,
            )
            ctx.number("max rel. error on MNIST MLP", max(worst.values()))

    if s["mc_labels"]:
        mc = s["mc_labels"]
        with ctx.part(
            "Monte Carlo agrees with the closed forms",
            "categorical sigmoid MLP",
            "montecarlo.estimate + compare",
        ):
            fisher_variances = need("fishsym", "fisher_variances")
            montecarlo = need("fishsym.montecarlo")
            model = random_mlp((3, 5, 4, 3), "sigmoid", seed=11, scale=1.5)
            x = random_inputs(3, 3, seed=12)
            res = fisher_variances(model, x, "categorical", per_sample=True, bounds=False)
            est = montecarlo.estimate(
                model,
                x,
                "categorical",
                n_labels=mc["n_labels"],
                replicates=mc["replicates"],
                generator=torch.Generator().manual_seed(13),
            )
            report = montecarlo.compare(est, res, false_alarm=MC_ALPHA)
            ctx.check(
                "Monte Carlo agrees with the closed forms",
                "categorical sigmoid MLP 3-5-4-3",
                f"MC {mc['replicates']} replicates, z-test α={MC_ALPHA}",
                bool(report.passed),
                _one_line(report),
            )


def _one_line(report) -> str:
    """The comparison report condensed: worst z-scores against the Bonferroni threshold."""
    zm = max(
        (g.max_abs_z_mean for g in report.groups if g.max_abs_z_mean == g.max_abs_z_mean),
        default=0.0,
    )
    zv = max(
        (g.max_abs_z_var for g in report.groups if g.max_abs_z_var == g.max_abs_z_var), default=0.0
    )
    bad = [f"{g.group}/{g.estimator}: {g.status}" for g in report.groups if g.status != "ok"]
    return (
        f"max|z| mean {zm:.2f}, variance {zv:.2f} ≤ {report.threshold:.2f} over {report.n_tests} "
        f"z-scores (false-alarm rate {report.false_alarm:g})"
        + (f"; {'; '.join(bad)}" if bad else "")
    )
