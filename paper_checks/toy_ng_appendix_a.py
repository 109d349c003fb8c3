"""The toy natural gradient with **the protocol of the paper's Appendix A** (docs/theory.md §8),
beside our own toy setup (``toy_natural_gradient``).

Appendix A: ``x ∈ R² ∼ N(0, I₂)``, ``θ_true = (1, 1)``, ``a = θ_trueᵀx``; regression
``y ∼ N(a, 1)``, classification ``y ∼ Bernoulli(sigmoid(a))``; model ``h = θᵀx`` (no bias);
diagonal natural gradient with ``Î₁`` or ``Î₂``, each from one model-sampled label per
input; learning rate 0.01, 256 epochs, 256 training points, 4 random training points per
step, test NLL on 4,096 points. Panels: test NLL over epochs, the parameter trajectories,
and the summed estimator variances over epochs for joint ``(x, y)`` samples, off-diagonal
entries included.

**Choices the paper leaves open**, ours: the start ``θ₀ = (−1, −1)``; damping 1e-3 added to
``F̂`` (one label per input can give ``Î₁ ≈ 0`` and an unbounded step; the paper mentions
none); the seeds below. The joint variances are exact: with ``u = x`` and ``d = 1``,
``Var_{x,y} Î₁[i,j] = E_x[(μ₄ − I²) x_i² x_j²] + Var_x[I x_i x_j]`` and
``Var_{x,y} Î₂[i,j] = Var_x[I x_i x_j]`` (``Î₂`` has no label variance: ``h`` is linear),
over the 4,096 test inputs as the input distribution; their diagonal is checked against
the engine's ``E_x V + Var_x I``.
"""

from __future__ import annotations

import torch
from torch import nn

from paper_checks._common import legend_below
from paper_checks._core import matplotlib, need

NAME = "toy_ng_appendix_a"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 121
CLAIM = "Toy natural gradient, Appendix A protocol: Î₂ has no label variance; three panels"
WHERE = "paper's Figure 1 and Appendix A (docs/theory.md §8)"
METHOD = (
    "diagonal NG (lr 0.01, 4 points per step, one model label per input) with Î₁ or Î₂ over "
    "label seeds; exact joint (x, y) variances of the full estimator matrices per epoch, "
    "their diagonal against the engine"
)

THETA_TRUE = (1.0, 1.0)
THETA_START = (-1.0, -1.0)
DAMPING = 1e-3
#: the closed form of the joint variance vs the engine: float64 sums over 4,096 inputs
RTOL = 1e-10

SETTINGS = {
    "tiny": dict(epochs=2, n_train=32, n_test=256, batch=4, lr=0.01, label_seeds=2),
    "quick": dict(epochs=16, n_train=256, n_test=4096, batch=4, lr=0.01, label_seeds=2),
    "full": dict(epochs=256, n_train=256, n_test=4096, batch=4, lr=0.01, label_seeds=4),
}
TASKS = {"regression": "gaussian", "classification": "bernoulli"}


def data(task: str, n: int, gen: torch.Generator):
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    a = x @ torch.tensor(THETA_TRUE, dtype=torch.float64)
    if task == "regression":
        y = a + torch.randn(n, generator=gen, dtype=torch.float64)
    else:
        y = torch.bernoulli(torch.sigmoid(a), generator=gen)
    return x, y


def model() -> nn.Sequential:
    layer = nn.Linear(2, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([THETA_START], dtype=torch.float64))
    return nn.Sequential(layer)


def joint_variances(net, x, kernel):
    """``(Σ_ij Var Î₁[i,j], Σ_ij Var Î₂[i,j], diag Var Î₁, diag Var Î₂)`` for one joint
    ``(x, y)`` sample, ``x`` from the rows of ``x``."""
    with torch.no_grad():
        h = net(x)
        fisher = kernel.fisher(h)[:, 0, 0]  # I(h), d = 1
        label = kernel.var_squared(h, torch.ones_like(h)[..., None])[:, 0]  # μ₄ − I²
    xx = x[:, :, None] * x[:, None, :]  # [n, i, j]
    mean = fisher[:, None, None] * xx
    input_part = mean.var(0, unbiased=False)
    label_part = (label[:, None, None] * xx**2).mean(0)
    v1, v2 = label_part + input_part, input_part
    return float(v1.sum()), float(v2.sum()), v1.diagonal(), v2.diagonal()


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    DiagonalNaturalGradient, nll = need(
        "fishsym.experiments.natural_gradient", "DiagonalNaturalGradient", "nll"
    )
    fisher_variances = need("fishsym", "fisher_variances")
    kernels = need("fishsym", "kernels")
    ctx.note(
        f"Protocol: x ∼ N(0, I₂), θ_true = {THETA_TRUE}, h = θᵀx (no bias), start θ₀ = "
        f"{THETA_START}, lr = {s['lr']}, {s['batch']} points per step, {s['epochs']} epochs, "
        f"{s['n_train']} training and {s['n_test']} test points, one model label per input, "
        f"damping {DAMPING} (ours: the paper states none), {s['label_seeds']} label seeds."
    )
    results = {}
    for task, family in TASKS.items():
        kernel = kernels.get(family) if family == "bernoulli" else kernels.get(family, d=1)
        gen = torch.Generator().manual_seed(11)
        x_train, y_train = data(task, s["n_train"], gen)
        x_test, y_test = data(task, s["n_test"], gen)
        with ctx.part("runs", task, "diagonal NG"):
            for est in ("squared_score", "neg_hessian"):
                for seed in range(s["label_seeds"]):
                    net = model()
                    opt = DiagonalNaturalGradient(
                        net,
                        kernel,
                        est,
                        s["lr"],
                        DAMPING,
                        1,
                        torch.Generator().manual_seed(500 + seed),
                    )
                    order = torch.Generator().manual_seed(7)  # the same batches for all runs
                    path, test_nll, sums = [net[0].weight.detach()[0].clone()], [], []
                    for epoch in range(s["epochs"] + 1):
                        with torch.no_grad():
                            test_nll.append(float(nll(net, kernel, x_test, y_test)))
                        sums.append(joint_variances(net, x_test, kernel))
                        if epoch == s["epochs"]:
                            break
                        perm = torch.randperm(s["n_train"], generator=order)
                        for start in range(0, s["n_train"], s["batch"]):
                            idx = perm[start : start + s["batch"]]
                            opt.step(x_train[idx], y_train[idx])
                            path.append(net[0].weight.detach()[0].clone())
                    results[(task, est, seed)] = (torch.stack(path), test_nll, sums, net)
            same = all(
                torch.equal(
                    results[(task, "neg_hessian", 0)][0], results[(task, "neg_hessian", k)][0]
                )
                for k in range(s["label_seeds"])
            )
            ctx.check("Î₂ runs do not depend on the label seed", task, "label seeds", same)
            first = results[(task, "squared_score", 0)][1]
            better = all(
                results[(task, e, k)][1][-1] < first[0]
                for e in ("squared_score", "neg_hessian")
                for k in range(s["label_seeds"])
            )
            ctx.check(
                "both estimators lower the test NLL",
                task,
                "final vs start",
                better,
                ", ".join(
                    f"{e}: {results[(task, e, 0)][1][-1]:.4f}"
                    for e in ("squared_score", "neg_hessian")
                ),
            )
        with ctx.part("joint (x, y) variances", task, "closed form vs engine"):
            net = results[(task, "squared_score", 0)][3]
            _, _, d1, d2 = joint_variances(net, x_test, kernel)
            res = fisher_variances(net, x_test, family, bounds=False, progress=False)
            w = "0.weight"
            e1 = res.var1[w][0] + res.var_fisher_over_inputs[w][0]
            e2 = res.var2[w][0] + res.var_fisher_over_inputs[w][0]
            ok = bool(torch.allclose(d1, e1, rtol=RTOL, atol=0)) and bool(
                torch.allclose(d2, e2, rtol=RTOL, atol=0)
            )
            ctx.check(
                "diagonal = E_x V + Var_x I (engine)",
                task,
                "float64",
                ok,
                f"max rel. diff {float(((d1 - e1).abs() / e1).max()):.1e}",
            )
            zero = all(bool((v == 0).all()) for v in res.var2.values())
            ctx.check("V₂ = 0 (no label variance of Î₂)", task, "engine", zero)
            final = results[(task, "squared_score", 0)][2][-1]
            ctx.number(
                f"{task}: Σ joint Var Î₁, Î₂ (last epoch, run Î₁)",
                f"{final[0]:.4g}, {final[1]:.4g}",
            )
    if results:
        ctx.save_figure(_figure(matplotlib(), results, s), "toy_ng_appendix_a.png")


def _figure(plt, results, s):
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    colors = {"squared_score": "C0", "neg_hessian": "C1"}
    names = {"squared_score": "Î₁ (squared score)", "neg_hessian": "Î₂ (neg. Hessian)"}
    for row, task in enumerate(TASKS):
        ax_nll, ax_path, ax_var = axes[row]
        for est in ("squared_score", "neg_hessian"):
            for seed in range(s["label_seeds"]):
                path, test_nll, sums, _ = results[(task, est, seed)]
                lab = names[est] if seed == 0 else None
                ax_nll.plot(test_nll, color=colors[est], lw=1, alpha=0.8, label=lab)
                ax_path.plot(
                    path[:, 0], path[:, 1], color=colors[est], lw=0.8, alpha=0.8, label=lab
                )
                if seed == 0:
                    ax_var.plot(
                        [v[0] for v in sums],
                        color=colors[est],
                        ls="-",
                        label=f"Σ Var Î₁ along the {names[est][:2]} run",
                    )
                    ax_var.plot(
                        [v[1] for v in sums],
                        color=colors[est],
                        ls="--",
                        label=f"Σ Var Î₂ along the {names[est][:2]} run",
                    )
        ax_path.plot(*THETA_TRUE, "k*", ms=10, label="θ_true")
        ax_path.plot(*THETA_START, "ko", ms=4, label="θ₀")
        ax_nll.set(title=f"{task}: test NLL", xlabel="epoch")
        ax_path.set(title=f"{task}: trajectories", xlabel="θ₁", ylabel="θ₂")
        ax_var.set(
            title=f"{task}: summed joint (x, y) variances", xlabel="epoch", ylabel="log₁₀ scale"
        )
        ax_var.set_yscale("log")
        for ax in (ax_nll, ax_path, ax_var):
            legend_below(ax)
    fig.tight_layout()
    return fig
