"""The paper's main experiment: the Fisher information and the variances of its two
estimators, layer by layer, over 20 epochs of training a 4-layer sigmoid MLP on MNIST
(docs/theory.md §8), plus the same for a ReLU network (where ``Î₂`` is exact everywhere) and for a
regression (Gaussian) head.

Checks: the bounds bracket every parameter's variance at every epoch; ``Î₂``'s variance
is exactly zero in the last layer (everywhere for ReLU). Reported: per layer which
estimator has the lower variance over training, and how large the standard deviations
are relative to the Fisher information.
"""

from __future__ import annotations

import math

import torch

from fishsym.experiments.training import (
    group_summary,
    layer_groups,
    nll_loss,
    one_hot_targets,
    train_over_epochs,
)
from paper_checks._common import mnist_split, random_mlp
from paper_checks._core import matplotlib, need

NAME = "mnist_over_training"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 130
CLAIM = "MNIST over training: FI, std of Î₁/Î₂, bounds per layer (main figure)"
WHERE = "paper's MNIST figure (docs/theory.md §8)"
METHOD = (
    "train with Adam; after every epoch the engine computes, exactly for every parameter "
    "on fixed held-out digits, FI, V₁, V₂ and their "
    "bounds; bracketing and V₂ = 0 checked per parameter"
)

#: Gaussian head: both V₁ bounds equal 2I² = V₁, so log(Σ upper / Σ V₁) is 0 up to float64
#: rounding of the sums
TIGHT_ATOL = 1e-9

#: (label, activation, head) of the networks followed over training
NETWORKS = (
    ("sigmoid MLP, classification", "sigmoid", "categorical"),
    ("ReLU MLP, classification", "relu", "categorical"),
    ("sigmoid MLP, regression (Gaussian head)", "sigmoid", "gaussian"),
)

SETTINGS = {
    "tiny": dict(
        widths=(784, 16, 10),
        epochs=1,
        n_train=256,
        n_heldout=8,
        batch_size=64,
        lr=1e-3,
        seed=0,
        networks=1,
    ),
    "quick": dict(
        widths=(784, 256, 128, 64, 10),
        epochs=5,
        n_train=4000,
        n_heldout=128,
        batch_size=64,
        lr=1e-3,
        seed=0,
        networks=3,
    ),
    "full": dict(
        widths=(784, 256, 128, 64, 10),
        epochs=20,
        n_train=8000,
        n_heldout=1000,
        batch_size=64,
        lr=1e-3,
        seed=0,
        networks=3,
    ),
}


def follow_training(s: dict, activation: str, head: str, progress=None):
    """Train one network with settings ``s`` (see ``SETTINGS``); returns the
    :class:`~fishsym.experiments.training.TrainingHistory` whose ``records[e]`` are the
    per-layer summary rows (:func:`~fishsym.experiments.training.group_summary`) of the
    engine's result on the held-out digits after epoch ``e``.

    ``progress(epoch, epochs)`` is called after every epoch.
    """
    fisher_variances = need("fishsym", "fisher_variances")
    x_train, y_train, x_test, _ = mnist_split(s["n_train"], 2000)
    x_held = x_test[: s["n_heldout"]].to(torch.float64)
    model = random_mlp(tuple(s["widths"]), activation, seed=s["seed"], dtype=torch.float32)
    groups = layer_groups(model)
    targets = y_train if head == "categorical" else one_hot_targets(y_train, s["widths"][-1])

    def callback(epoch, net):
        res = fisher_variances(net, x_held, head, bounds=True, progress=False)
        return group_summary(res, groups)

    return train_over_epochs(
        model,
        x_train,
        targets,
        nll_loss(head),
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        lr=s["lr"],
        generator=torch.Generator().manual_seed(s["seed"] + 1),
        callback=callback,
        progress=progress,
    )


def plot_over_training(records: list, label: str, widths):
    """The paper's MNIST figure: one column per layer; top: FI, std of Î₁ and Î₂ and the
    bounds on the std over epochs (log scale); bottom: ``log(upper / exact variance)``."""
    plt = matplotlib()
    n_layers = len(records[0])
    epochs = list(range(len(records)))
    fig, axes = plt.subplots(2, n_layers, figsize=(3.3 * n_layers, 6.2), squeeze=False, sharex=True)
    for j in range(n_layers):
        rows = [r[j] for r in records]
        ax = axes[0, j]
        notes = []
        ax.semilogy(epochs, [r["fisher"] for r in rows], "k-", lw=2, label="FI (mean over entries)")
        for a, color, name in ((1, "tab:blue", "Î₁"), (2, "tab:orange", "Î₂")):
            std = [r[f"std{a}"] for r in rows]
            if all(v == 0 for v in std):  # nothing to draw on a log axis: say it on the axes
                notes.append((f"std {name} = 0 exactly", color))
                continue
            ax.semilogy(epochs, std, "-", color=color, lw=1.6, label=f"std {name}")
            lo = [math.sqrt(max(r[f"lower{a}"], 0.0)) for r in rows]
            hi = [math.sqrt(max(r[f"upper{a}"], 0.0)) for r in rows]
            ax.semilogy(epochs, hi, "--", color=color, lw=0.9, label=f"{name} upper bound")
            if any(v > 0 for v in lo):
                ax.semilogy(
                    epochs,
                    [v if v > 0 else float("nan") for v in lo],
                    ":",
                    color=color,
                    lw=0.9,
                    label=f"{name} lower bound",
                )
            else:
                notes.append((f"{name} lower bound = 0", color))
        ax.set_title(f"{rows[0]['layer']} ({rows[0]['n_params']:,} params)", fontsize=10)
        if j == 0:
            ax.set_ylabel("mean per parameter, log₁₀ scale")
        for k, (text, color) in enumerate(notes):
            ax.text(0.03, 0.04 + 0.07 * k, text, transform=ax.transAxes, fontsize=7, color=color)
        ax = axes[1, j]
        for a, color, name in ((1, "tab:blue", "Î₁"), (2, "tab:orange", "Î₂")):
            ratio = [r[f"log_ratio{a}"] for r in rows]
            if all(v != v for v in ratio):
                ax.text(
                    0.03,
                    0.9 - 0.08 * a,
                    f"{name}: V = upper = 0",
                    transform=ax.transAxes,
                    fontsize=7,
                    color=color,
                )
                continue
            ax.plot(epochs, ratio, "-o", color=color, ms=3, label=f"ln(upper/V) {name}")
        ax.axhline(0, color="gray", lw=0.6)
        finite = [
            r[f"log_ratio{a}"]
            for r in rows
            for a in (1, 2)
            if r[f"log_ratio{a}"] == r[f"log_ratio{a}"]
        ]
        # a tight bound (ratio 0 up to rounding) is drawn at 0 on a readable scale
        ax.set_ylim(min([-0.05] + finite) - 0.05, max([0.5] + finite) * 1.1)
        if finite and max(abs(v) for v in finite) < 1e-9:
            ax.text(
                0.5,
                0.5,
                "bounds tight: log-ratio = 0",
                transform=ax.transAxes,
                ha="center",
                fontsize=8,
            )
        ax.set_xlabel("epoch")
        if j == 0:
            ax.set_ylabel("ln(upper bound / exact variance)")
    fig.suptitle(
        f"MNIST {'-'.join(map(str, widths))}, {label}: per-layer Fisher information, "
        "standard deviations of the single-label estimators and their bounds",
        fontsize=10,
    )
    # one legend below the panels, listing what is drawn (no legend covers a curve)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(
        handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return fig


def _layer_table(label: str, records: list) -> str:
    """A markdown table: per layer, the values at the last epoch and the winner over training."""
    last = records[-1]
    lines = [
        f"**{label}**, after epoch {len(records) - 1} (per "
        "layer, averages over its parameters; one label):",
        "",
        "| layer | params | FI | std Î₁ / FI | std Î₂ / FI | "
        "ln(upper/V₁) | ln(upper/V₂) | lower variance (epochs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for j, r in enumerate(last):
        wins2 = sum(rows[j]["var2"] < rows[j]["var1"] for rows in records)
        lr2 = "V = 0" if r["var2_zero"] else f"{r['log_ratio2']:.2f}"
        lines.append(
            f"| {r['layer']} | {r['n_params']:,} | {r['fisher']:.3g} "
            f"| {r['rel_std1']:.3g} | {r['rel_std2']:.3g} | "
            f"{r['log_ratio1']:.2f} | {lr2} | Î₂ at {wins2}/{len(records)}, "
            f"Î₁ at {len(records) - wins2}/{len(records)} |"
        )
    return "\n".join(lines)


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    ctx.note(
        f"Setup: widths {'-'.join(map(str, s['widths']))}, Adam lr {s['lr']}, batch size "
        f"{s['batch_size']}, seed {s['seed']}, trained {s['epochs']} epochs on the first "
        f"{s['n_train']} bundled digits; the variances are "
        f"computed on {s['n_heldout']} fixed held-out "
        "digits (the last 2,000 rows of the bundled file), "
        "in float64, before training (epoch 0) and "
        "after every epoch. Per layer (weights and biases "
        "together) the plots show averages over the "
        "layer's entries: FI = mean I(θ_i), std = √(mean V_a(θ_i)) for one label per input, bounds "
        "likewise; the log-ratio is log(Σ upper / Σ V). "
        "Bracketing is checked entry by entry on the "
        "input-averaged values (per-input bracketing is checked in `bounds_hold`)."
        + (
            " Quick tier: fewer epochs, training digits and "
            "held-out digits than the paper's setting; "
            "`--full` runs 20 epochs on 8,000 digits with 1,000 held-out digits."
            if ctx.tier != "full"
            else ""
        )
    )
    for label, activation, head in NETWORKS[: s["networks"]]:
        subject = f"{activation}/{head}"
        with ctx.part("bounds bracket every parameter at every epoch", subject, "engine"):
            bar = ctx.progress(range(s["epochs"]), f"{subject} epochs")
            ticks = iter(bar)
            history = follow_training(
                s, activation, head, progress=lambda e, total, ticks=ticks: next(ticks, None)
            )
            if hasattr(bar, "close"):
                bar.close()
            records = history.records
            n_layers = len(records[0])
            viol = sum(r["violations1"] + r["violations2"] for rows in records for r in rows)
            checked = sum(r["n_params"] for rows in records for r in rows)
            ctx.check(
                "bounds bracket every parameter at every epoch",
                subject,
                "engine, input-averaged",
                viol == 0,
                f"{checked:,} parameter×epoch pairs, {viol} outside their bounds",
            )
            last_zero = all(rows[-1]["var2_zero"] for rows in records)
            ctx.check(
                "V₂ = 0 exactly in the last layer, every epoch",
                subject,
                "engine",
                last_zero,
                "every last-layer entry 0.0" if last_zero else "non-zero entries found",
            )
            if head == "gaussian":
                worst = max(abs(r["log_ratio1"]) for rows in records for r in rows)
                ctx.check(
                    "Gaussian head: V₁ bounds tight (log-ratio 0) in every layer, every epoch",
                    subject,
                    "engine",
                    worst <= TIGHT_ATOL,
                    f"max |log(upper/V₁)| = {worst:.1e}",
                )
            if activation == "relu":
                all_zero = all(r["var2_zero"] for rows in records for r in rows)
                ctx.check(
                    "ReLU: V₂ = 0 exactly in every layer, every epoch",
                    subject,
                    "engine",
                    all_zero,
                    "every entry 0.0" if all_zero else "non-zero entries found",
                )
            for j in range(n_layers):
                rows = [r[j] for r in records]
                wins2 = sum(r["var2"] < r["var1"] for r in rows)
                rel1 = [r["rel_std1"] for r in rows]
                rel2 = [r["rel_std2"] for r in rows]
                ctx.number(
                    f"{subject} {rows[0]['layer']}: Î₂ lower variance",
                    f"{wins2}/{len(rows)} epochs; std/FI Î₁ {min(rel1):.2g}–{max(rel1):.2g}, "
                    f"Î₂ {min(rel2):.2g}–{max(rel2):.2g}",
                )
            ctx.note(_layer_table(label, records))
            ctx.number(
                f"{subject} training loss epoch 0 → {s['epochs']}",
                f"{history.loss[0]:.3f} → {history.loss[-1]:.3f}",
            )
            fig = plot_over_training(records, label, s["widths"])
            ctx.save_figure(fig, f"mnist_over_training_{activation}_{head}.png")
