"""Claim: a single label's ``Î₂ = −∂²_iℓ`` can be **negative** for hidden-layer parameters
(``−∂²_iℓ = −(t−η)ᵀw_i + u_iᵀI(h)u_i`` and the first term has either sign), while
``Î₁ = (∂_iℓ)² ≥ 0`` always; in the last layer ``Î₂ = u_iᵀI(h)u_i ≥ 0`` for every label.
Averaged over labels both equal ``I(θ_i|x) ≥ 0`` (docs/theory.md §2, §8).
"""

from __future__ import annotations

import torch

from paper_checks._common import (
    as_float64,
    kernel_for,
    linear_names,
    mnist_split,
    trained_mnist_mlp,
)
from paper_checks._core import matplotlib, need

NAME = "negative_neg_hessian"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 90
CLAIM = "Single-label Î₂ can be negative in hidden layers; Î₁ ≥ 0 always"
WHERE = "paper's discussion of Î₂ (docs/theory.md §8)"
METHOD = (
    "every label of every held-out digit enumerated, Î₁ and Î₂ by autograd on sampled "
    "entries of a trained sigmoid MNIST MLP; probabilities of Î₂ < 0 exact"
)

#: the label-average of Î₂ vs the engine's I(θ|x) (float64, rounding only)
RTOL = 1e-9
#: a per-label value counts as negative only below −NEG_RTOL × (largest |value| over the
#: labels of that entry and input): autograd's ``u_iᵀI(h)u_i`` is a difference of float64
#: terms and can round to −1e-17 where it is mathematically ≥ 0; a real negative Î₂ in a
#: hidden layer is of the size of the values themselves
NEG_RTOL = 1e-12

SETTINGS = {
    "tiny": dict(widths=(784, 16, 10), epochs=1, n_train=500, n_inputs=2, coords=4),
    "quick": dict(widths=(784, 256, 128, 64, 10), epochs=2, n_train=4000, n_inputs=16, coords=32),
    "full": dict(widths=(784, 256, 128, 64, 10), epochs=5, n_train=8000, n_inputs=128, coords=256),
}


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    plt = matplotlib()
    from fishsym.reference.coordinates import coordinate_derivatives, sample_coordinates

    model = as_float64(
        trained_mnist_mlp(
            tuple(s["widths"]), "sigmoid", "categorical", s["epochs"], s["n_train"], seed=0
        )
    )
    x = mnist_split(s["n_train"], 2000)[2][: s["n_inputs"]].to(torch.float64)
    rows = []
    with ctx.part(
        "single-label Î₂ < 0 occurs in hidden layers", "MNIST sigmoid MLP", "enumeration"
    ):
        kern = kernel_for("categorical", s["widths"][-1])
        support = kern.support_labels()
        coords = sample_coordinates(model, s["coords"], torch.Generator().manual_seed(51))
        table = coordinate_derivatives(
            model, x, coords, head=lambda h, _: kern.log_prob(support, h)
        )
        with torch.no_grad():
            probs = torch.softmax(model(x), -1)[:, None, :]  # [n, 1, C]
        layers = linear_names(model)
        hidden_negative = 0
        mean2 = {}
        for label, w_name, b_name in layers:
            neg1 = neg2 = 0
            prob_neg = []
            for name in (w_name, b_name):
                score, curv = table[name]  # [n, k, C]: every label C of every input n
                i1, i2 = score**2, -curv
                slack = NEG_RTOL * i2.abs().amax(-1, keepdim=True)
                neg1 += int((i1 < 0).sum())
                neg2 += int((i2 < -slack).sum())
                prob_neg.append(((i2 < -slack).to(torch.float64) * probs).sum(-1).reshape(-1))
                mean2[name] = (probs * i2).sum(-1)  # [n, k]: E_y Î₂
            p_neg = torch.cat(prob_neg)
            rows.append((label, float((p_neg > 0).to(torch.float64).mean()), float(p_neg.max())))
            if label == layers[-1][0]:
                ctx.check(
                    "last layer: Î₂ ≥ 0 for every label",
                    label,
                    "enumeration + autograd",
                    neg2 == 0,
                    f"{neg2} negative values",
                )
            else:
                hidden_negative += neg2
            ctx.check(
                "Î₁ ≥ 0 for every label",
                label,
                "enumeration + autograd",
                neg1 == 0,
                f"{neg1} negative",
            )
        ctx.check(
            "single-label Î₂ < 0 occurs in hidden layers",
            "MNIST sigmoid MLP",
            "enumeration + autograd",
            hidden_negative > 0,
            f"{hidden_negative} negative (entry, input, label) values in hidden layers",
        )
        for label, frac, pmax in rows:
            ctx.number(
                f"{label}: entries with P(Î₂<0) > 0", f"{100 * frac:.0f}% (max P = {pmax:.2f})"
            )

    with ctx.part(
        "E_y Î₂ = I(θ|x) ≥ 0 on the sampled entries", "MNIST sigmoid MLP", "enumeration vs engine"
    ):
        fisher_variances = need("fishsym", "fisher_variances")
        res = fisher_variances(model, x, "categorical", per_sample=True, bounds=False)
        worst = 0.0
        for name, m2 in mean2.items():
            fisher = res.fisher[name].reshape(x.shape[0], -1)[:, coords[name]]
            worst = max(
                worst, float((m2 - fisher).abs().max() / fisher.abs().max().clamp_min(1e-300))
            )
        ctx.check(
            "E_y Î₂ = I(θ|x) ≥ 0 on the sampled entries",
            "all layers",
            "enumeration vs engine",
            worst <= RTOL,
            f"max rel err {worst:.1e}",
        )

    if rows:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        labels = [r[0] for r in rows]
        ax.bar(labels, [100 * r[1] for r in rows], color="tab:purple")
        ax.set_ylabel("% of sampled entries with P(Î₂ < 0) > 0")
        ax.set_ylim(0, 112)
        ax.set_title("One label: Î₂ can be negative in hidden layers, never in the last")
        for i, r in enumerate(rows):
            ax.text(i, 100 * r[1], f"max P(Î₂<0)={r[2]:.2f}", ha="center", va="bottom", fontsize=8)
        ctx.save_figure(fig, "negative_neg_hessian.png")
