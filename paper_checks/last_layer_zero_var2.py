"""Claim: ``V₂ = 0`` for every parameter in which ``h`` is affine — all weights and biases of
the last (linear) layer, and every parameter of a generalised linear model — so there
``Î₂`` is exact from a single label (docs/theory.md §2). Hidden layers of a sigmoid network have
``V₂ > 0``.
"""

from __future__ import annotations

import torch
from torch import nn

from paper_checks._common import FAMILY_OUTPUTS, kernel_for, linear_names, random_inputs, random_mlp
from paper_checks._core import need

NAME = "last_layer_zero_var2"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 70
CLAIM = "V₂ = 0 in the last layer and in GLMs (Î₂ exact from one label)"
WHERE = "paper Remark 4.4 (V₂ = 0 in the last linear layer, any family; docs/theory.md §2, §8)"
METHOD = (
    "engine V₂ exactly 0.0; exact enumeration + autograd gives 0; one sampled label's Î₂ "
    "equals I(θ|x); hidden layers V₂ > 0 as a contrast"
)

#: autograd's Î₂ of a last-layer parameter is uᵀI(h)u computed along another float64 path
#: than the engine's I(θ|x): agreement to rounding
RTOL = 1e-10

SETTINGS = {
    "tiny": dict(families=("categorical",), n_inputs=3, mc_labels=8),
    "quick": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        n_inputs=8,
        mc_labels=64,
    ),
    "full": dict(
        families=("categorical", "gaussian", "bernoulli", "poisson", "independent_bernoulli"),
        n_inputs=64,
        mc_labels=512,
    ),
}


def _one_label_neg_hessian(model, x, fam, n_labels, names, gen):
    """``Î₂`` from single sampled labels, by autograd (name → ``[n, K, *shape]``)."""
    from fishsym.reference.coordinates import label_derivatives, split_flat

    kern = kernel_for(fam, model(x).shape[1])
    labels = kern.sample(model(x).detach(), n_labels, gen).transpose(0, 1)
    layout, _, curv = label_derivatives(model, x, kern, labels)
    values = split_flat(layout, -curv)
    return {n: values[n] for n in names}


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    n_zero = n_params = 0
    with ctx.part("V₂ = 0 in the last layer", "sigmoid MLPs", "engine"):
        fisher_variances = need("fishsym", "fisher_variances")
        exact_moments = need("fishsym.reference", "exact_moments")
        for fam in s["families"]:
            d = FAMILY_OUTPUTS[fam]
            model = random_mlp((3, 6, 5, d), "sigmoid", seed=21, scale=2.0)
            x = random_inputs(s["n_inputs"], 3, seed=22)
            res = fisher_variances(model, x, fam, per_sample=True, bounds=False)
            layers = linear_names(model)
            _, w_last, b_last = layers[-1]
            last_zero = all(bool((res.var2[n] == 0).all()) for n in (w_last, b_last))
            hidden_pos = all(bool((res.var2[w] > 0).any()) for _, w, _ in layers[:-1])
            ref = exact_moments(model, x, fam, params=[w_last, b_last])
            ref_zero = max(float(ref["var2"][n].abs().max()) for n in (w_last, b_last))
            scale = max(float(res.fisher[n].abs().max()) for n in (w_last, b_last))
            n_zero += sum(res.var2[n].numel() for n in (w_last, b_last))
            n_params += sum(res.var2[n].numel() for n in res.var2)
            ctx.check(
                "V₂ = 0 exactly in the last layer",
                f"{fam}, sigmoid 3-6-5-{d}",
                "engine",
                last_zero,
                "every last-layer entry 0.0, every input",
            )
            ctx.check(
                "V₂ = 0 in the last layer (independent)",
                f"{fam}",
                "enumeration + autograd",
                ref_zero <= RTOL * scale**2,
                f"max |V₂| {ref_zero:.1e} (scale I² {scale**2:.1e})",
            )
            ctx.check(
                "hidden layers: V₂ > 0 (contrast)",
                f"{fam}",
                "engine",
                hidden_pos,
                "some hidden-layer weights have V₂ > 0",
            )
            sampled = _one_label_neg_hessian(
                model, x, fam, s["mc_labels"], (w_last, b_last), torch.Generator().manual_seed(23)
            )
            worst = 0.0
            for n in (w_last, b_last):
                fisher = res.fisher[n].unsqueeze(1)  # [n, 1, *shape]
                worst = max(worst, float((sampled[n] - fisher).abs().max()) / max(scale, 1e-300))
            ctx.check(
                "one sampled label's Î₂ = I(θ|x) in the last layer",
                f"{fam}, {s['mc_labels']} labels/input",
                "sampled labels + autograd",
                worst <= RTOL,
                f"max rel deviation {worst:.1e}",
            )
        ctx.number("last-layer parameter×input pairs with V₂ = 0", n_zero)

    with ctx.part("V₂ = 0 for GLMs", "linear models", "engine"):
        fisher_variances = need("fishsym", "fisher_variances")
        for fam in s["families"]:
            d = FAMILY_OUTPUTS[fam]
            glm = nn.Sequential(nn.Linear(5, d, dtype=torch.float64))
            with torch.no_grad():
                for p in glm.parameters():
                    p.copy_(
                        torch.randn(
                            p.shape,
                            generator=torch.Generator().manual_seed(31),
                            dtype=torch.float64,
                        )
                    )
            x = random_inputs(s["n_inputs"], 5, seed=32)
            res = fisher_variances(glm, x, fam, per_sample=True, bounds=False)
            zero = all(bool((v == 0).all()) for v in res.var2.values())
            pos1 = all(bool((v >= 0).all()) for v in res.var1.values())
            ctx.check(
                "V₂ = 0 for every GLM parameter",
                f"{fam} GLM 5→{d}",
                "engine",
                zero and pos1,
                "V₂ = 0.0 everywhere (V₁ ≥ 0)",
            )
