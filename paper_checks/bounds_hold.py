"""Claim: the spectral bounds of docs/theory.md §3 hold for every parameter,

    ‖w‖² λ_min(I) ≤ V₂ ≤ ‖w‖² λ_max(I),
    ‖u‖⁴ λ_min(μ₄) − I(θ|x)² ≤ V₁ ≤ ‖u‖⁴ λ_max(μ₄) − I(θ|x)²,

with certified spectral values (a reported upper bound below the exact variance would be
a bug), and for the Gaussian head the ``V₁`` bounds are tight (docs/theory.md §4).
"""

from __future__ import annotations

import math

import torch

from fishsym.experiments.training import bracket_violations
from paper_checks._common import (
    as_float64,
    mnist_split,
    random_cases,
    trained_mnist_mlp,
)
from paper_checks._core import need

NAME = "bounds_hold"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 40
CLAIM = "Lower ≤ exact ≤ upper bound for V₁ and V₂, every parameter"
WHERE = "paper's bounds theorem (docs/theory.md §3); Gaussian tightness (docs/theory.md §4)"
METHOD = (
    "engine bounds vs engine exact variances per input and parameter (slack 1e-9 "
    "relative, for rounding), random and trained networks, several families"
)

#: Gaussian: ``V₁ = 2‖u‖⁴`` and both bounds equal ``3‖u‖⁴ − ‖u‖⁴``; in float64 they agree to
#: rounding, so the log-ratio ``log(upper/V₁)`` must be 0 within this
TIGHT_ATOL = 1e-9

#: inputs per engine call in the per-input MNIST check (memory: 7 quantities × 242,762
#: parameters × this many inputs in float64)
MNIST_CHUNK = 8

SETTINGS = {
    "tiny": dict(
        families=("categorical", "gaussian"),
        activations=("sigmoid",),
        widths=(3, 5, None),
        n_inputs=4,
        scales=(1.0,),
        mnist=None,
    ),
    "quick": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("sigmoid", "tanh", "softplus", "relu"),
        widths=(3, 8, 6, None),
        n_inputs=16,
        scales=(0.5, 2.0),
        mnist=dict(widths=(784, 256, 128, 64, 10), epochs=2, n_train=4000, n_inputs=64),
    ),
    "full": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        activations=("sigmoid", "tanh", "softplus", "relu", "gelu", "elu"),
        widths=(4, 16, 12, 8, None),
        n_inputs=64,
        scales=(0.5, 1.0, 3.0),
        mnist=dict(widths=(784, 256, 128, 64, 10), epochs=3, n_train=8000, n_inputs=512),
    ),
}


def _bracket(res):
    """Per-input violations, checked pairs and log-ratios (both estimators)."""
    out = {"viol1": 0, "viol2": 0, "pairs": 0, "ratio1": [], "ratio2": []}
    for name in res.fisher:
        for a, key, est in ((1, "var1", "squared_score"), (2, "var2", "neg_hessian")):
            var = getattr(res, key)[name].to(torch.float64)
            lo = res.bounds[est]["lower"][name].to(torch.float64)
            up = res.bounds[est]["upper"][name].to(torch.float64)
            out[f"viol{a}"] += bracket_violations(var, lo, up)
            positive = var > 0
            out[f"ratio{a}"].append(torch.log(up[positive] / var[positive]))
        out["pairs"] += res.fisher[name].numel()  # per_sample: inputs × entries
    for a in (1, 2):
        out[f"ratio{a}"] = torch.cat(out[f"ratio{a}"]) if out[f"ratio{a}"] else torch.zeros(0)
    return out


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    totals = {"viol1": 0, "viol2": 0, "pairs": 0}
    methods = set()
    with ctx.part("bounds bracket the exact variances", "random MLPs", "engine per_sample"):
        fisher_variances = need("fishsym", "fisher_variances")
        for fam, act, scale, widths, model, x in random_cases(ctx, s):
            res = fisher_variances(model, x, fam, per_sample=True, bounds=True)
            b = _bracket(res)
            for k in totals:
                totals[k] += b[k]
            for est in ("squared_score", "neg_hessian"):
                methods.add(f"{fam}: {est} upper = {res.bounds_method[est]['upper']}")
            ctx.check(
                "lower ≤ V ≤ upper",
                f"{fam}, {act} ×{scale} {'-'.join(map(str, widths))}",
                "engine per input",
                b["viol1"] == 0 and b["viol2"] == 0,
                f"{b['pairs']} parameter×input pairs; violations V₁ {b['viol1']}, "
                f"V₂ {b['viol2']}; median log(upper/V₁) "
                f"{float(b['ratio1'].median()) if b['ratio1'].numel() else math.nan:.3g}",
            )
            if fam == "gaussian":
                worst = float(b["ratio1"].abs().max()) if b["ratio1"].numel() else 0.0
                ctx.check(
                    "Gaussian: V₁ bounds are tight",
                    f"{act} ×{scale}",
                    "engine per input",
                    worst <= TIGHT_ATOL,
                    f"max |log(upper/V₁)| = {worst:.1e}",
                )
        ctx.number("parameter×input pairs checked (random nets)", totals["pairs"])
        ctx.number("violations (V₁, V₂)", f"{totals['viol1']}, {totals['viol2']}")
    if methods:
        ctx.note(
            "**Spectral methods behind the bounds** (from the kernels' `Spectrum.methods`): "
            + "; ".join(sorted(methods))
            + "."
        )

    if s["mnist"]:
        m = s["mnist"]
        with ctx.part("lower ≤ V ≤ upper", "trained MNIST MLP", "engine per input"):
            fisher_variances = need("fishsym", "fisher_variances")
            model = as_float64(
                trained_mnist_mlp(
                    tuple(m["widths"]), "sigmoid", "categorical", m["epochs"], m["n_train"], seed=0
                )
            )
            x = mnist_split(m["n_train"], 2000)[2][: m["n_inputs"]].to(torch.float64)
            # per-input values of 242,762 parameters: a few inputs at a time bounds the memory
            b = {"viol1": 0, "viol2": 0, "pairs": 0, "ratio1": [], "ratio2": []}
            for start in ctx.progress(range(0, len(x), MNIST_CHUNK), "MNIST inputs"):
                part = _bracket(
                    fisher_variances(
                        model,
                        x[start : start + MNIST_CHUNK],
                        "categorical",
                        per_sample=True,
                        bounds=True,
                        progress=False,
                    )
                )
                for k in ("viol1", "viol2", "pairs"):
                    b[k] += part[k]
                for k in ("ratio1", "ratio2"):
                    b[k].append(part[k])
            b["ratio1"], b["ratio2"] = torch.cat(b["ratio1"]), torch.cat(b["ratio2"])
            ctx.check(
                "lower ≤ V ≤ upper",
                f"MNIST {'-'.join(map(str, m['widths']))} sigmoid, {m['n_inputs']} digits",
                "engine per input",
                b["viol1"] == 0 and b["viol2"] == 0,
                f"{b['pairs']:,} parameter×input pairs; "
                f"violations V₁ {b['viol1']}, V₂ {b['viol2']}",
            )
            ctx.number("MNIST pairs checked", b["pairs"])
            ctx.number(
                "MNIST median log(upper/V₁), log(upper/V₂)",
                f"{float(b['ratio1'].median()):.3g}, {float(b['ratio2'].median()):.3g}",
            )
