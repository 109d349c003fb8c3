"""Figures of a :class:`~fishsym.variance.result.FisherVariances` (matplotlib, imported on
use; ``pip install fishsym[notebooks]``).

* :func:`plot_result` (``res.plot()``) — left, per layer: the mean Fisher ``F̄_i`` per
  entry and the one-draw standard deviation ``√v_i`` of each estimator, as the median
  entry (marker) and its 10–90 % range (bar), with the certified bounds on ``√V`` of
  ``Î₁`` and ``Î₂`` (median entry's lower/upper, short ticks); right: the labels per
  input each estimator needs for a relative error ``rel_error`` of the layer's mean
  Fisher (:meth:`FisherVariances.labels_for`, Chebyshev). Log₁₀ axes; quantities that
  are exactly zero in a whole layer are drawn as hollow triangles on the lower edge,
  labelled "= 0" (e.g. ``V₂`` of the last linear layer), never dropped.
* :func:`plot_over_training` — per layer, the median ``F̄`` and median ``√V`` of each
  estimator against the training step, for a list of results.

Layers are named "layer 1, 2, …" in model order, with their module path.
"""

from __future__ import annotations

import math

import torch

from fishsym.errors import ArgumentTypeError, InvalidArgumentError, ShapeError

#: the 10 % and 90 % quantiles drawn as bars
QUANTILES = (0.1, 0.5, 0.9)
#: per estimator: marker, label
STYLE = {
    "fisher": ("D", "mean Fisher F̄"),
    "squared_score": ("o", "√V Î₁ squared score"),
    "neg_hessian": ("s", "√V Î₂ neg. Hessian"),
    "hutchinson": ("^", "√V Hutchinson"),
    "hutchinson_batch": ("v", "√V Hutchinson (batch probe)"),
    "batched_score": ("P", "√V batched score"),
    "merging_recipe": ("X", "|bias| merging recipe"),
    "empirical": ("*", "√V empirical"),
    "batched_score_data": ("h", "√V batched score (data)"),
    "per_position_score": ("d", "√V per-position squared score"),
    "argmax_label": ("<", "|bias| argmax label"),
}


def pyplot():
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is in the notebooks extra
        raise ImportError("plots need matplotlib: pip install 'fishsym[notebooks]'") from err
    return plt


def layer_names(groups) -> dict[str, str]:
    """Parameter group → ``"layer k (path)"``, ``k = 1, 2, …`` in model order."""
    return {g: f"layer {k} ({g or 'model'})" for k, g in enumerate(groups, 1)}


def _flat(tensors: dict, names) -> torch.Tensor:
    return torch.cat([tensors[n].detach().reshape(-1).to(torch.float64).cpu() for n in names])


def _stats(values: torch.Tensor):
    """``(q10, median, q90)`` of the positive entries, or ``None`` when all are zero."""
    pos = values[values > 0]
    if pos.numel() == 0:
        return None
    q = torch.quantile(pos, torch.tensor(QUANTILES, dtype=pos.dtype))
    return tuple(float(v) for v in q)


def _quantities(res, estimators):
    """``{key: {name: tensor}}`` of the drawn quantities: ``F̄`` and ``√v`` (``|bias|``
    for the deterministic merging recipe and argmax label)."""
    out = {"fisher": res.means["fisher"]}
    for e in estimators:
        if e in ("merging_recipe", "argmax_label"):  # deterministic: their bias shows
            out[e] = {n: b.abs() for n, b in res.bias[e].items()}
        else:
            out[e] = {n: v.clamp_min(0).sqrt() for n, v in res.var[e].items()}
    return out


def _check_estimators(res, estimators):
    if estimators is None:
        return list(res.var)
    estimators = [estimators] if isinstance(estimators, str) else list(estimators)
    missing = [e for e in estimators if e not in res.var]
    if missing:
        raise InvalidArgumentError(
            f"estimators {missing} were not computed (computed: {sorted(res.var)}); pass "
            "estimators=(...) to fisher_variances"
        )
    return estimators


def _mark_zero(ax, x, marker_color, floor):
    ax.scatter(
        [x],
        [floor],
        marker="v",
        facecolors="none",
        edgecolors=marker_color,
        s=60,
        zorder=3,
        clip_on=False,
    )
    ax.annotate(
        "= 0",
        (x, floor),
        textcoords="offset points",
        xytext=(0, 6),
        ha="center",
        fontsize=7,
        color=marker_color,
    )


def plot_result(res, *, rel_error: float = 0.1, estimators=None, path=None, title=None):
    """The figure of :meth:`FisherVariances.plot` (module docstring); returns it and
    writes it to ``path`` when given."""
    plt = pyplot()
    if res.per_sample:
        raise ShapeError(
            "res.plot() draws input averages; compute with per_sample=False (or average "
            "the per-input values yourself)"
        )
    estimators = _check_estimators(res, estimators)
    groups = list(res.groups)
    names = layer_names(groups)
    quantities = _quantities(res, estimators)
    colors = {k: f"C{i}" for i, k in enumerate(quantities)}
    fig, (ax, ax_labels) = plt.subplots(
        1,
        2,
        figsize=(max(8.0, 2.2 * len(groups) + 5), 4.4),
        gridspec_kw={"width_ratios": [3, 2]},
    )
    width = 0.8 / len(quantities)
    stats = {(k, g): _stats(_flat(q, res.groups[g])) for k, q in quantities.items() for g in groups}
    positive = [s for s in stats.values() if s is not None]
    floor = min(s[0] for s in positive) / 10 if positive else 1e-12
    drawn = set()
    for gi, g in enumerate(groups):
        for ki, (k, _) in enumerate(quantities.items()):
            x = gi - 0.4 + width * (ki + 0.5)
            s = stats[(k, g)]
            if s is None:
                _mark_zero(ax, x, colors[k], floor)
                drawn.add(k)
                continue
            lo, med, hi = s
            ax.errorbar(
                [x],
                [med],
                yerr=[[med - lo], [hi - med]],
                fmt=STYLE[k][0],
                color=colors[k],
                capsize=2,
                ms=5,
            )
            drawn.add(k)
            bound_key = {"squared_score": "squared_score", "neg_hessian": "neg_hessian"}.get(k)
            if res.bounds is not None and bound_key is not None:
                for side in ("lower", "upper"):
                    b = _stats(_flat(res.mean_bounds[bound_key][side], res.groups[g]).sqrt())
                    if b is not None:
                        ax.plot(
                            [x - width / 2, x + width / 2],
                            [b[1], b[1]],
                            color=colors[k],
                            lw=1.5,
                            ls=":" if side == "lower" else "-",
                        )
                        drawn.add(f"bound {side}")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor / 2)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([names[g] for g in groups], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("per entry, log₁₀ scale")
    ax.set_title("mean Fisher and one-draw std (median, 10–90 %)", fontsize=9)
    handles = [
        plt.Line2D([], [], marker=STYLE[k][0], color=colors[k], ls="", label=STYLE[k][1])
        for k in quantities
        if k in drawn
    ]
    if "bound upper" in drawn:
        handles.append(plt.Line2D([], [], color="gray", lw=1.5, label="bound √V, upper"))
    if "bound lower" in drawn:
        handles.append(plt.Line2D([], [], color="gray", lw=1.5, ls=":", label="bound √V, lower"))

    # labels per input for rel_error, per layer and estimator
    sampled = [e for e in estimators if e not in ("merging_recipe", "argmax_label")]
    bw = 0.8 / max(1, len(sampled))
    top = 1.0
    for ei, e in enumerate(sampled):
        need = res.labels_for(rel_error, estimator=e)
        for gi, g in enumerate(groups):
            n = need[g or "(model)"]
            x = gi - 0.4 + bw * (ei + 0.5)
            if math.isinf(n):
                ax_labels.annotate("∞", (x, 1), ha="center", va="bottom", color=colors[e])
                continue
            ax_labels.bar([x], [n], width=bw, color=colors[e])
            top = max(top, n)
    ax_labels.set_yscale("log")
    ax_labels.set_ylim(0.5, top * 4)
    ax_labels.set_xticks(range(len(groups)))
    ax_labels.set_xticklabels([names[g] for g in groups], rotation=20, ha="right", fontsize=8)
    ax_labels.set_ylabel("labels (draws) per input, log₁₀ scale")
    ax_labels.set_title(
        f"labels per input for {rel_error:.0%} error of the layer's F̄ (Chebyshev, 95 %)",
        fontsize=9,
    )
    fig.legend(
        handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False
    )
    fig.suptitle(
        title
        or f"{res.family.name if hasattr(res.family, 'name') else ''} — {res.n_inputs} inputs",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08 + 0.04 * (len(handles) > 4), 1, 0.95))
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_over_training(
    results, steps=None, *, estimators=("squared_score", "neg_hessian"), path=None, title=None
):
    """Per layer, the median entry's mean Fisher ``F̄`` and one-draw ``√V`` of each
    estimator against ``steps`` (default ``0, 1, …``), log₁₀ scale; a quantity zero in a
    whole layer at a step is a hollow triangle on the lower edge. ``results``: a list of
    :class:`FisherVariances` of one model (same parameter groups) over training."""
    plt = pyplot()
    results = list(results)
    if not results:
        raise InvalidArgumentError("results must hold at least one FisherVariances")
    steps = list(range(len(results))) if steps is None else list(steps)
    if len(steps) != len(results):
        raise ShapeError(f"steps has {len(steps)} entries for {len(results)} results")
    groups = list(results[0].groups)
    for r in results:
        if list(r.groups) != groups:
            raise InvalidArgumentError("every result must have the same parameter groups")
        if not hasattr(r, "means"):
            raise ArgumentTypeError(f"results must be FisherVariances; got {type(r).__name__}")
    estimators = _check_estimators(results[0], estimators)
    names = layer_names(groups)
    keys = ["fisher", *estimators]
    colors = {k: f"C{i}" for i, k in enumerate(keys)}
    fig, axes = plt.subplots(
        1, len(groups), figsize=(3.4 * len(groups), 3.4), squeeze=False, sharey=True
    )
    series = {
        (k, g): [_stats(_flat(_quantities(r, estimators)[k], r.groups[g])) for r in results]
        for k in keys
        for g in groups
    }
    positive = [s[1] for v in series.values() for s in v if s is not None]
    floor = min(positive) / 10 if positive else 1e-12
    for ax, g in zip(axes[0], groups, strict=True):
        for k in keys:
            pts = [(t, s[1]) for t, s in zip(steps, series[(k, g)], strict=True) if s is not None]
            if pts:
                ax.plot(
                    *zip(*pts, strict=True),
                    marker=STYLE[k][0],
                    ms=3,
                    color=colors[k],
                    label=STYLE[k][1],
                )
            zeros = [t for t, s in zip(steps, series[(k, g)], strict=True) if s is None]
            if zeros:
                ax.scatter(
                    zeros,
                    [floor] * len(zeros),
                    marker="v",
                    facecolors="none",
                    edgecolors=colors[k],
                    clip_on=False,
                    zorder=3,
                )
        ax.set_yscale("log")
        ax.set_title(names[g], fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("median entry, log₁₀ scale")
    axes[0][0].set_ylim(bottom=floor / 2)
    handles = [
        plt.Line2D([], [], marker=STYLE[k][0], color=colors[k], label=STYLE[k][1]) for k in keys
    ]
    if any(s is None for v in series.values() for s in v):
        handles.append(
            plt.Line2D(
                [], [], marker="v", ls="", mfc="none", color="gray", label="= 0 in the whole layer"
            )
        )
    fig.legend(
        handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False
    )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 0.93 if title else 1))
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


__all__ = ["layer_names", "plot_over_training", "plot_result", "pyplot"]
