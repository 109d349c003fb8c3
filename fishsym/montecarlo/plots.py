"""Optional figures for the Monte Carlo cross-check (matplotlib, imported on use).

* :func:`plot_variances` — per layer, the Monte Carlo variance of each estimator
  against its exact variance, log–log with the diagonal: a correct implementation
  scatters around the diagonal with spread ``≈ SE/variance``.
* :func:`plot_convergence` — per layer, the median relative standard deviation
  ``√Var(Î)/I`` against the number of labels: Monte Carlo points against the exact
  ``√(V_a/N)/I`` curve.
"""

from __future__ import annotations

import math

import torch

from fishsym.common import parameter_group
from fishsym.errors import ShapeError

_MARKERS = {"squared_score": ("o", "Î₁ squared score"), "neg_hessian": ("s", "Î₂ neg. Hessian")}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is in the notebooks extra
        raise ImportError("plots need matplotlib: pip install fishsym[notebooks]") from err
    return plt


def plot_variances(report, path=None):
    """Monte Carlo variance vs exact variance (``N``-label estimator), log–log, per layer."""
    plt = _pyplot()
    groups = sorted({parameter_group(name) for _, name in report.entries})
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=False):
        n_zero = 0
        lo, hi = math.inf, 0.0
        for (est, name), e in report.entries.items():
            if parameter_group(name) != group:
                continue
            keep = ~e.zero & (e.exact_var > 0) & (e.mc_var > 0)
            n_zero += int(e.zero.sum())
            if not bool(keep.any()):
                continue
            x, y = e.exact_var[keep].flatten(), e.mc_var[keep].flatten()
            marker, label = _MARKERS[est]
            ax.loglog(x, y, marker, ms=2, alpha=0.4, label=label)
            lo = min(lo, float(x.min()), float(y.min()))
            hi = max(hi, float(x.max()), float(y.max()))
        if hi > 0:
            ax.loglog([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_title(f"{group}" + (f" ({n_zero} exact zeros)" if n_zero else ""))
        ax.set_xlabel(f"exact variance, N = {report.n_labels}")
        ax.set_ylabel("Monte Carlo variance")
        ax.legend(fontsize=7)
    fig.suptitle(f"Monte Carlo vs exact ({report.replicates} replicates) — passed: {report.passed}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_convergence(reports, path=None):
    """Median relative standard deviation of ``Î₁``/``Î₂`` per layer against ``n_labels``.

    ``reports``: :func:`~fishsym.montecarlo.compare` reports of Monte Carlo results on
    the same inputs and entries with different ``n_labels``, each against the same exact
    result (``[compare(mc, exact) for mc in estimates]``).
    """
    plt = _pyplot()
    reports = list(reports)
    if len(reports) < 1:
        raise ShapeError("plot_convergence needs at least one comparison report")
    groups = sorted({parameter_group(name) for _, name in reports[0].entries})
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=False):
        for est, (marker, label) in _MARKERS.items():
            ns, mc_rel, ex_rel = [], [], []
            for rep in reports:
                vals_mc, vals_ex = [], []
                for (e_est, name), e in rep.entries.items():
                    if e_est != est or parameter_group(name) != group:
                        continue
                    keep = ~e.zero & (e.exact_mean.abs() > 0)
                    vals_mc.append(
                        (e.mc_var[keep].clamp(min=0).sqrt() / e.exact_mean[keep].abs()).flatten()
                    )
                    vals_ex.append((e.exact_var[keep].sqrt() / e.exact_mean[keep].abs()).flatten())
                if vals_mc and sum(v.numel() for v in vals_mc):
                    ns.append(rep.n_labels)
                    mc_rel.append(float(torch.cat(vals_mc).median()))
                    ex_rel.append(float(torch.cat(vals_ex).median()))
            if ns:
                ax.loglog(ns, mc_rel, marker, label=f"{label} (MC)")
                ax.loglog(ns, ex_rel, "-", label=f"{label} (exact)")
        ax.set_title(group)
        ax.set_xlabel("labels per estimate N")
        ax.set_ylabel("median √Var(Î)/I")
        ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
