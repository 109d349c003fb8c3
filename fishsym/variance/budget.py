"""Label budgets that answer the user's question (docs/theory.md §5, §9).

*"With ``n_inputs`` inputs and ``N`` labels (draws) per input, how accurate is my diagonal
Fisher, per layer, with which estimator — and how many labels do I need for 10 %?"*

The estimate is of the **mean Fisher** ``F̄_i = E_x I(θ_i|x)``. Its variance per entry is

* inputs fixed (the given ``inputs`` are the batch): ``σ_i² = v_i / N``, with ``v_i`` the
  one-draw variance of :attr:`FisherVariances.var` (``E_x V_a / n`` for ``Î₁``, ``Î₂``);
* ``n_x`` inputs drawn from the data the given inputs represent (``Î₁``, ``Î₂`` only):
  ``σ_i² = (E_x V_a / N + Var_x I) / n_x`` — a label part and an input part (§5).

A biased estimator (the merging recipe) adds its bias ``b_i``. Two statements, named:

* ``"chebyshev"`` — distribution-free: per entry ``P(|e_i| ≥ |b_i| + σ_i/√(1−p)) ≤ 1−p``;
  for a layer's Euclidean norm ``P(‖e − b‖ ≥ √(Σσ²/(1−p))) ≤ 1−p``.
* ``"normal"`` — the central-limit approximation: per entry ``|b_i| + z σ_i`` with
  ``z = Φ⁻¹((1+p)/2)``; for the norm, ``‖e − b‖²`` as a weighted χ² matched in mean
  ``Σσ²`` and variance ``2Σσ⁴`` (one-sided ``Φ⁻¹(p)``).

Errors are relative: per entry to ``F̄_i`` (entries with ``F̄_i = 0`` are left out of the
quantiles), per layer to ``‖F̄‖``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch

from fishsym.common.tables import text_table
from fishsym.errors import InvalidArgumentError

METHODS = ("chebyshev", "normal")
#: per-layer summaries of the error: the norm over the layer and two per-entry quantiles
TARGETS = ("norm", "median", "q90")
#: most labels per input :func:`labels_for` searches (beyond: ``inf``)
MAX_LABELS = 10**15


def _sigma2(res, estimator: str, n_labels: float, n_inputs):
    """``{name: σ_i²}`` of the estimate of ``F̄`` (see the module docstring)."""
    if estimator == "neg_hessian" and "var2" in getattr(res, "skipped", ()):
        raise InvalidArgumentError(
            "estimator 'neg_hessian': its variance V₂ was skipped (var2=False); compute with "
            "var2=True"
        )
    if estimator not in res.var:
        raise InvalidArgumentError(
            f"estimator {estimator!r} was not computed; pass estimators=(..., {estimator!r}) "
            f"to fisher_variances (computed: {sorted(res.var)})"
        )
    if n_inputs is None:
        return {name: v / n_labels for name, v in res.var[estimator].items()}
    if estimator not in ("squared_score", "neg_hessian"):
        raise InvalidArgumentError(
            f"n_inputs (inputs drawn from the data) is available for squared_score and "
            f"neg_hessian; {estimator!r} is a batch estimator of the given inputs: pass "
            "n_inputs=None"
        )
    key = "var1" if estimator == "squared_score" else "var2"
    return {
        name: (v / n_labels + res.var_fisher_over_inputs[name]) / n_inputs
        for name, v in res.means[key].items()
    }


def group_errors(res, estimator, n_labels, n_inputs, prob, method) -> dict[str, dict]:
    """Per group: ``{"norm": ε, "median": ε, "q90": ε}`` (relative errors at ``prob``)."""
    sigma2 = _sigma2(res, estimator, n_labels, n_inputs)
    bias = res.bias.get(estimator, {})
    z2 = NormalDist().inv_cdf((1 + prob) / 2)
    z1 = NormalDist().inv_cdf(prob)
    out = {}
    for group, names in res.groups.items():
        f = torch.cat([res.means["fisher"][n].double().reshape(-1) for n in names])
        s2 = torch.cat([sigma2[n].double().reshape(-1) for n in names]).clamp_min(0)
        b = torch.cat(
            [
                bias[n].double().reshape(-1)
                if n in bias
                else torch.zeros(s2.numel(), dtype=s2.dtype)
                for n in names
            ]
        ).abs()
        norm_f = float(f.norm())
        if method == "chebyshev":
            spread = math.sqrt(float(s2.sum()) / (1 - prob))
            per = b + s2.sqrt() / math.sqrt(1 - prob)
        else:
            mean, var = float(s2.sum()), 2 * float((s2 * s2).sum())
            spread = math.sqrt(max(0.0, mean + z1 * math.sqrt(var)))
            per = b + z2 * s2.sqrt()
        norm = (float(b.norm()) + spread) / norm_f if norm_f > 0 else math.inf
        rel = per[f > 0] / f[f > 0]
        if rel.numel():
            median = float(rel.quantile(0.5)) if rel.numel() < 2**24 else float(rel.median())
            q90 = float(rel.quantile(0.9)) if rel.numel() < 2**24 else math.nan
        else:
            median = q90 = math.inf
        out[group or "(model)"] = {"norm": norm, "median": median, "q90": q90}
    return out


def labels_for(res, rel_error, estimator, n_inputs, prob, method, target) -> dict[str, float]:
    """Per group, the fewest labels (draws) per input whose error (``target``) is at most
    ``rel_error`` — ``inf`` where no number of labels reaches it (a bias above it, or
    the input part alone too large: more inputs are needed)."""
    out = {}
    for group in res.groups:
        key = group or "(model)"

        def err(n, key=key):
            return group_errors(res, estimator, n, n_inputs, prob, method)[key][target]

        if err(MAX_LABELS) > rel_error:
            out[key] = math.inf
            continue
        lo, hi = 0, 1  # err(hi) ≤ rel_error < err(lo) (lo = 0 stands for "no labels")
        while err(hi) > rel_error:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if err(mid) > rel_error:
                lo = mid
            else:
                hi = mid
        out[key] = float(hi)
    return out


class ErrorReport(list):
    """Rows of :meth:`FisherVariances.relative_error`; ``print`` shows a table."""

    def __init__(self, rows=(), *, header: str):
        super().__init__(rows)
        self.header = header

    def table(self) -> str:
        head = ["group", "estimator", "params", "error (norm)", "median entry", "90% entry"]
        body = [
            [
                r["group"],
                r["estimator"],
                str(r["n_params"]),
                _pct(r["norm"]),
                _pct(r["median"]),
                _pct(r["q90"]),
            ]
            for r in self
        ]
        return text_table(
            self.header,
            head,
            body,
        )

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__


def _pct(x: float) -> str:
    if x == math.inf or math.isnan(x):
        return "∞" if x == math.inf else "-"
    return f"{100 * x:.3g}%"


__all__ = ["METHODS", "TARGETS", "ErrorReport", "group_errors", "labels_for"]
