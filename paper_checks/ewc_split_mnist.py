"""Claim: which Fisher an EWC code computes matters mostly through its **scale**, and
fishsym's audit predicts the strength each one needs (docs/theory.md §13).

After van de Ven (ICLR 2025 blogpost, Split CIFAR-10: exact 84.91 ± 0.65 %, one sampled
label 83.77, empirical 83.28, batched b = 128 83.38), on split MNIST with the bundled
digits (:mod:`fishsym.experiments.ewc`): seven Fishers — exact, one sampled label,
empirical, argmax label, mini-batch (mean loss, b = 128), Adam's ``N·v̂``,
``diagonal_fisher`` at 10 % — each audited against the exact Fisher at the end of the
first task (same network for all), its EWC strength predicted as ``λ*_exact / s`` from the
audit's scale ``s``, and the best strength found by a grid search around it.

Two ways for the estimators' moments: the exact formulas (``fisher_variances``,
``minibatch_fisher``) against the same quantity formed here by per-input autograd (the
argmax and empirical Fishers are deterministic: rounding only; the mini-batch one is
random: its audited scale against the exact ``1/b`` within its standard error).
"""

from __future__ import annotations

import math

import torch

from paper_checks._core import matplotlib, need

NAME = "ewc_split_mnist"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 200
CLAIM = "EWC on split MNIST: seven Fishers audited; the audit's scale predicts their strength"
WHERE = "van de Ven (ICLR 2025 blogpost) Table; docs/theory.md §13"
METHOD = (
    "task-incremental split MNIST (5 tasks), ReLU MLP, Adam; each Fisher at the end of task 1 "
    "audited against fisher_variances; EWC strength grid (factor 2) around λ*_exact/s; "
    "deterministic estimators vs per-input autograd (rounding), the mini-batch scale vs 1/b "
    "(standard error)"
)

#: the deterministic estimators: exact formula vs per-input autograd, float32 (the task
#: Fishers are computed as training code does, in float32)
RTOL = 1e-4
#: the predicted strength must be within this factor of the grid-search optimum (judged in
#: the quick and full tiers; the tiny tier's one seed and two tasks are too noisy to)
STRENGTH_FACTOR = 2.0

SETTINGS = {
    "tiny": dict(n_train=2000, tasks=2, epochs=1, seeds=(0,), variants=("exact", "minibatch",
                 "argmax_label"), center=1000.0, steps=1, judge=False),  # fmt: skip
    "quick": dict(n_train=8000, tasks=5, epochs=1, seeds=(0, 1), variants=None, center=1000.0,
                  steps=3, judge=True),  # fmt: skip
    "full": dict(n_train=8000, tasks=5, epochs=2, seeds=(0, 1, 2, 3, 4), variants=None,
                 center=1000.0, steps=4, judge=True),  # fmt: skip
}


def _mean_std(values):
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / max(1, len(values) - 1))
    return m, s


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    need("fishsym.experiments.ewc", "run_ewc")
    from fishsym.experiments import ewc

    variants = s["variants"] or ewc.VARIANTS
    tasks = ewc.split_mnist(s["n_train"], 2000, ewc.TASKS[: s["tasks"]])
    scales = {}
    with ctx.part("every Fisher audited against the exact one", "end of task 1", "audit"):
        audit = need("fishsym", "audit")
        fisher_variances = need("fishsym", "fisher_variances")
        minibatch_fisher = need("fishsym", "minibatch_fisher")
        model = ewc.make_model(0, n_tasks=len(tasks))
        opt = ewc.train_task(model, tasks[0], 0, s["epochs"], None, 0)
        x, y, head = tasks[0].x, tasks[0].y, ewc.task_head(0)
        exact = ewc.fisher_of("exact", model, tasks[0], 0, opt, torch.Generator().manual_seed(1))
        rows = []
        for v in variants:
            fisher = ewc.fisher_of(v, model, tasks[0], 0, opt, torch.Generator().manual_seed(2))
            res = audit(model, x, "categorical", fisher, truth=exact, output=head)
            overall = res.overall
            scales[v] = overall["scale"]
            rows.append((v, overall))
            ctx.number(f"audit {v}: scale / error after scale / Spearman",
                       f"{overall['scale']:.3g} / {overall['rel_error_scaled']:.1%} / "
                       f"{overall['spearman']:.3f}")  # fmt: skip
        # the deterministic shortcuts, two ways: formula and per-input autograd
        formula = fisher_variances(model, x, "categorical", output=head, var2=False,
                                   bounds=False, dtype=torch.float32, labels=y,
                                   estimators=("argmax_label", "empirical"))  # fmt: skip
        for v in ("argmax_label", "empirical"):
            direct = ewc.fisher_of(v, model, tasks[0], 0, opt, torch.Generator().manual_seed(3))
            worst = max(
                float((formula.mean[v][n] - direct[n]).abs().max()) / float(direct[n].abs().max())
                for n in direct
            )
            ctx.check(f"{v}: exact formula = per-input autograd", "task 1", "fisher_variances",
                      worst <= RTOL, f"max rel deviation {worst:.1e}")  # fmt: skip
        # the mini-batch square: its exact mean is F̄/b; one draw's audited scale against it
        drawn = ewc.minibatch_rows(len(x), torch.Generator().manual_seed(2))  # the draw's
        moments = minibatch_fisher(model, x[drawn], "categorical", ewc.MINIBATCH, output=head,
                                   dtype=torch.float64)  # fmt: skip
        whole = minibatch_fisher(model, x, "categorical", ewc.MINIBATCH, output=head,
                                 dtype=torch.float64)  # drop_last=False, as a loader does
        num_w = sum(float((whole.mean[n] * exact[n].double()).sum()) for n in exact)
        num = sum(float((moments.mean[n] * exact[n].double()).sum()) for n in exact)
        den = sum(float((exact[n].double() ** 2).sum()) for n in exact)
        exact_scale = num / den  # the exact mean's scale: 1/b up to the inputs dropped
        ctx.number("mini-batch Fisher's exact scale, whole batches / with the last one",
                   f"{exact_scale:.4g} / {num_w / den:.4g} (batches {whole.batch_sizes[-2:]}…)")
        # the standard error of one draw's scale ⟨G, F⟩/⟨F, F⟩ from Var[G] (entries of a
        # draw are correlated: Cauchy–Schwarz bound, the sum of the entries' std devs)
        se = sum(float((moments.var[n].sqrt() * exact[n].double().abs()).sum()) for n in exact)
        se /= den
        if "minibatch" in scales:
            dev = abs(scales["minibatch"] - exact_scale)
            # the exact mean is (1/B) Σ_β F̄_β/b_β: F̄/b for equal batches, more when a small
            # last batch (drop_last=False) weighs in
            detail = (
                f"exact mean scale {exact_scale:.4g} (1/b = {1 / ewc.MINIBATCH:.4g}); the "
                f"draw's {scales['minibatch']:.4g}, |Δ| {dev:.2g} ≤ 4·{se:.2g}"
            )
            ctx.check("one mini-batch Fisher draw agrees with its exact mean",
                      f"b = {ewc.MINIBATCH}, {len(moments.batch_sizes)} batches",
                      "minibatch_fisher vs one draw", dev <= 4 * se, detail)  # fmt: skip
        ctx.note("audit at the end of task 1 (scale s, error left after it, Spearman ρ, top-10 % "
                 "overlap): " + "; ".join(
                     f"{v}: s = {r['scale']:.3g}, {r['rel_error_scaled']:.0%}, ρ = "
                     f"{r['spearman']:.3f}, {r['top_overlap']:.0%}" for v, r in rows))  # fmt: skip

    with ctx.part("the audit's scale predicts each Fisher's EWC strength", "grid search",
                  "run_ewc"):  # fmt: skip
        grid = ewc.strength_grid(s["center"], s["steps"])
        curves = {}

        def best_of(variant, strengths):
            means = []
            for lam in strengths:
                accs = [ewc.run_ewc(variant, lam, seed, tasks, s["epochs"]).accuracy
                        for seed in s["seeds"]]  # fmt: skip
                means.append(_mean_std(accs))
            k = max(range(len(strengths)), key=lambda i: means[i][0])
            curves[variant] = (strengths, means)
            return strengths[k], means[k]

        lam_exact, _ = best_of("exact", grid)
        ctx.number("λ* (exact Fisher, grid search)", lam_exact)
        results = []
        for v in variants:
            predicted = lam_exact / scales[v] if scales.get(v, 0) > 0 else math.inf
            if not math.isfinite(predicted):
                continue
            strengths = ewc.strength_grid(predicted, s["steps"])
            if v == "exact":
                strengths = grid
            best, (acc, std) = best_of(v, strengths)
            ratio = best / predicted
            results.append((v, acc, std, predicted, best, ratio))
            ctx.number(f"{v}: accuracy at best λ (mean ± std over seeds)", f"{acc:.2%} ± {std:.2%}")
            ctx.number(f"{v}: best λ / predicted λ", ratio)
            at_edge = best in (strengths[0], strengths[-1])
            if v == "minibatch" and s["judge"]:
                ctx.check("predicted strength within ×2 of the grid optimum", "mini-batch b = 128",
                          "audit scale vs grid search",
                          1 / STRENGTH_FACTOR <= ratio <= STRENGTH_FACTOR and not at_edge,
                          f"predicted {predicted:.3g}, best {best:.3g} (×{ratio:.2f})")  # fmt: skip
        ctx.note("accuracy at the best λ: " + "; ".join(
            f"{v} {a:.2%} ± {sd:.2%} (λ {b:.3g}, {r:.2f}× predicted)"
            for v, a, sd, _, b, r in results))  # fmt: skip
        plt = matplotlib()
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        for v, (strengths, means) in curves.items():
            pred = lam_exact / scales[v] if v != "exact" else lam_exact
            ax.errorbar([lam / pred for lam in strengths], [m for m, _ in means],
                        yerr=[sd for _, sd in means], marker="o", ms=3, capsize=2,
                        label=v)  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("λ / predicted λ (λ*_exact / audited scale)")
        ax.set_ylabel("mean accuracy over tasks")
        ax.set_title("EWC on split MNIST: accuracy against the predicted strength")
        ax.legend(fontsize=7, ncol=2)
        ctx.save_figure(fig, "ewc_split_mnist.png")
