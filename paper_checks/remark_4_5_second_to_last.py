"""Claim: the paper's Remark 4.5 — in the second-to-last layer, for the weight ``θ = W[j, b]``
into unit ``j`` (pre-activation ``a_j``, activation ``σ``) from input ``z_b``,

    u = σ'(a_j) z_b W_last[:, j],     w = σ''(a_j) z_b² W_last[:, j],

so ``V₂ = σ''(a_j)² z_b⁴ W_lastᵀ I W_last`` vanishes where ``σ'' = 0``; both variances vanish
for saturated units; and for softplus ``V₂ → 0`` while ``V₁`` stays positive as ``a_j``
grows. Checked on one-hidden-layer networks: the engine's ``V₁``, ``V₂`` of the first layer
against these closed forms (``V₁ = σ'(a_j)⁴ z_b⁴ M[W_last[:, j]⁴]``), a ``tanh`` unit held at
``a_j = 0`` (``σ''(0) = 0``: ``V₂`` exactly 0), a saturated sigmoid unit, and a softplus unit
whose pre-activation grows from 0 to 20 with the network's output held fixed (the last
layer's bias absorbs the unit's activation, so only ``σ'(a)`` and ``σ''(a)`` change).
"""

from __future__ import annotations

import torch

from paper_checks._common import random_inputs, random_mlp
from paper_checks._core import need

NAME = "remark_4_5_second_to_last"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 75
CLAIM = (
    "Remark 4.5: second-to-last layer w = σ''(a) z² W_last; V₂ = 0 where σ'' = 0; softplus V₂ → 0"
)
WHERE = "paper Remark 4.5 (docs/theory.md §8)"
METHOD = (
    "engine V₁, V₂ of the first layer of Linear–σ–Linear nets vs the closed forms; units held "
    "at chosen pre-activations; float64"
)

SETTINGS = {
    "tiny": dict(classes=3, width=4, n_inputs=2, growth=(0.0, 5.0, 20.0)),
    "quick": dict(classes=5, width=6, n_inputs=8, growth=(0.0, 1.0, 2.0, 5.0, 10.0, 20.0)),
    "full": dict(classes=10, width=16, n_inputs=64, growth=(0.0, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0)),
}
#: engine vs closed form: a few dozen float64 roundings apart
RTOL = 1e-10
#: σ', σ'' of each activation (float64, stable forms)
DERIVATIVES = {
    "tanh": (
        lambda a: 1 - torch.tanh(a) ** 2,
        lambda a: -2 * torch.tanh(a) * (1 - torch.tanh(a) ** 2),
    ),
    "sigmoid": (
        lambda a: torch.sigmoid(a) * torch.sigmoid(-a),
        lambda a: torch.sigmoid(a) * torch.sigmoid(-a) * (torch.sigmoid(-a) - torch.sigmoid(a)),
    ),
    "softplus": (torch.sigmoid, lambda a: torch.sigmoid(a) * torch.sigmoid(-a)),
}


def _closed_form(model, x, kernel):
    """``V₁``, ``V₂`` ``[n, width, in]`` of the first layer's weights from the closed forms."""
    first, last = model[0], model[2]
    a = first(x)  # [n, j]
    act = type(model[1]).__name__.lower()
    d1, d2 = (f(a) for f in DERIVATIVES[act])
    h = model(x)
    cols = last.weight  # [c, j]
    m = kernel.var_squared(h, cols.T.expand(x.shape[0], -1, -1).transpose(1, 2))  # M[W[:,j]⁴]
    quad = kernel.quadratic(h, cols.T.expand(x.shape[0], -1, -1).transpose(1, 2))  # WᵀIW
    z4 = x**4
    v1 = (d1**4 * m)[:, :, None] * z4[:, None, :]
    v2 = (d2**2 * quad)[:, :, None] * z4[:, None, :]
    return v1, v2


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    fisher_variances = need("fishsym", "fisher_variances")
    kernels = need("fishsym", "kernels")
    C, width = s["classes"], s["width"]
    kernel = kernels.get("categorical", C=C)
    x = random_inputs(s["n_inputs"], 3, seed=9)
    with ctx.part("w = σ''(a) z² W_last", "Linear–σ–Linear", "engine vs closed form"):
        for i, act in enumerate(("tanh", "sigmoid", "softplus")):
            model = random_mlp((3, width, C), act, seed=300 + i, scale=2.0)
            res = fisher_variances(model, x, kernel, per_sample=True)
            v1, v2 = _closed_form(model, x, kernel)
            e1 = float((res.var1["0.weight"] - v1).abs().max() / v1.abs().max())
            e2 = float((res.var2["0.weight"] - v2).abs().max() / v2.abs().max())
            ctx.check(
                "V₁, V₂ of the second-to-last layer as Remark 4.5",
                act,
                "engine vs closed form",
                e1 <= RTOL and e2 <= RTOL,
                f"max rel. diff V₁ {e1:.1e}, V₂ {e2:.1e}",
            )
    with ctx.part("V₂ = 0 where σ'' = 0; saturation", "held units", "engine"):
        model = random_mlp((3, width, C), "tanh", seed=310, scale=2.0)
        with torch.no_grad():  # unit 0 held at a = 0 for every input
            model[0].weight[0].zero_()
            model[0].bias[0] = 0.0
        res = fisher_variances(model, x, kernel, per_sample=True)
        zero = bool((res.var2["0.weight"][:, 0] == 0).all()) and bool(
            (res.var2["0.bias"][:, 0] == 0).all()
        )
        ctx.check(
            "V₂ = 0 at σ''(a) = 0",
            "tanh unit at a = 0",
            "engine, exact zero",
            zero,
            f"max V₂ of the unit {float(res.var2['0.bias'][:, 0].max()):.1e}",
        )
        model = random_mlp((3, width, C), "sigmoid", seed=311, scale=2.0)
        with torch.no_grad():  # unit 0 saturated: a = 40 for every input
            model[0].weight[0].zero_()
            model[0].bias[0] = 40.0
        res = fisher_variances(model, x, kernel, per_sample=True)
        sat = max(float(res.var1["0.bias"][:, 0].max()), float(res.var2["0.bias"][:, 0].max()))
        ref = float(res.var1["0.bias"][:, 1:].max())
        ctx.check(
            "both variances vanish when saturated",
            "sigmoid unit at a = 40",
            "engine",
            sat <= 1e-30 * max(ref, 1e-300) or sat <= 1e-60,
            f"max V of the unit {sat:.1e} vs other units {ref:.1e}",
        )
    with ctx.part("softplus: V₂ → 0, V₁ stays", "growing pre-activation", "engine"):
        model = random_mlp((3, width, C), "softplus", seed=312, scale=2.0)
        base = model[2].bias.detach().clone()
        v1s, v2s = [], []
        for a in s["growth"]:
            with torch.no_grad():
                model[0].weight[0].zero_()
                model[0].bias[0] = a
                # the output h held fixed: the last bias absorbs the unit's activation, so
                # only σ'(a), σ''(a) change (the remark's ceteris paribus)
                act = torch.nn.functional.softplus(torch.tensor(a, dtype=base.dtype))
                model[2].bias.copy_(base - model[2].weight[:, 0] * act)
            res = fisher_variances(model, x, kernel)
            v1s.append(float(res.var1["0.bias"][0]))
            v2s.append(float(res.var2["0.bias"][0]))
        decreasing = all(b < a for a, b in zip(v2s, v2s[1:], strict=False))
        ok = decreasing and v2s[-1] <= 1e-7 * v2s[0] and v1s[-1] >= v1s[0] > 0
        ctx.check(
            "V₂ → 0 while V₁ stays positive",
            f"softplus unit, a = {s['growth'][0]:g} … {s['growth'][-1]:g}",
            "engine",
            ok,
            f"V₂ {v2s[0]:.2e} → {v2s[-1]:.2e}; V₁ {v1s[0]:.2e} → {v1s[-1]:.2e}",
        )
        ctx.number("softplus unit: V₂ at a = 0 and 20", f"{v2s[0]:.3g}, {v2s[-1]:.3g}")
        ctx.number("softplus unit: V₁ at a = 0 and 20", f"{v1s[0]:.3g}, {v1s[-1]:.3g}")
