"""The result of :func:`fishsym.fisher_variances` and what it means for a user.

Everything is per parameter entry ``θ_i`` and keyed by the names of
``model.named_parameters()``. ``Î₁`` is the squared score (``"squared_score"``), ``Î₂``
the negative diagonal Hessian (``"neg_hessian"``); labels are drawn from the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from fishsym.common import ESTIMATORS, check_choice, check_count, check_positive, check_probability
from fishsym.errors import ArgumentTypeError, InvalidArgumentError

_VAR_KEY = {"squared_score": "var1", "neg_hessian": "var2"}


def _check_estimator(estimator: str) -> str:
    return check_choice(estimator, ESTIMATORS, "estimator")


def _check_count(value, argname: str) -> int:
    return check_count(value, argname)


def _check_probability(rel_error, prob) -> tuple[float, float]:
    return check_positive(rel_error, "rel_error"), check_probability(prob, "prob")


def chebyshev_labels(var: Tensor, fisher: Tensor, rel_error: float, prob: float) -> Tensor:
    """Labels ``N ≥ v / (ρ ε² I²)`` with ``ρ = 1 − prob`` (docs/theory.md §5, Chebyshev), at
    least 1.

    Formed as ``(√v / I)² / (ρε²)`` so that a tiny ``I > 0`` whose square underflows still
    gives its finite count. ``inf`` where ``I = 0 < v`` (no number of labels gives a
    relative error).
    """
    rho = 1.0 - prob
    ratio = var.clamp_min(0).sqrt() / fisher
    need = ratio * ratio / (rho * rel_error**2)
    need = torch.where(var == 0, torch.zeros_like(need), need)
    return torch.ceil(need).clamp_min(1)


@dataclass
class FisherVariances:
    """Exact conditional Fisher diagonal and single-label estimator variances.

    Attributes
    ----------
    fisher:
        ``E_x I(θ_i|x)``, ``I(θ_i|x) = u_iᵀ I(h) u_i`` — dict name → tensor shaped like the
        parameter (``[n_inputs, *shape]`` of ``I(θ_i|x)`` with ``per_sample``).
    var1, var2:
        ``E_x V₁(θ_i|x)``, ``E_x V₂(θ_i|x)``: single-label (``N = 1``) variances of
        ``Î₁`` and ``Î₂`` (docs/theory.md §2), same layout.
    bounds:
        ``bounds[estimator]["lower" | "upper"]``, same layout: the docs/theory.md §3 bounds
        (``N = 1``) averaged over inputs, each per-input bound ``max(0, ·)`` and rounded
        outward (certified in floating point); ``None`` when not requested.
    bounds_method:
        ``bounds_method[estimator]["lower" | "upper"]``: how the spectral value behind each
        bound was obtained (from the kernel's ``Spectrum.methods``).
    var_fisher_over_inputs:
        ``Var_x I(θ_i|x)`` over the given inputs (population variance), shaped like the
        parameter: the input-randomness term of docs/theory.md §5. Without
        ``per_sample`` it is formed as ``mean(I²) − mean(I)²`` from the factorised sums
        (no per-input values exist), so its absolute error is of order
        ``n_inputs · eps · mean(I²)``: entries whose spread over inputs is tiny against
        their mean are known to that absolute accuracy only.
    per_sample:
        Whether ``fisher``, ``var1``, ``var2``, ``bounds`` keep the input axis.
    family, kernel:
        The exponential family and its torch kernel.
    n_inputs, path:
        Number of inputs; the engine: ``"structured"``, ``"graph"`` or ``"generic"``.
    groups:
        Module name → names of its parameters (the layer groups of :meth:`summary`).
    var2_routes:
        Parameter name → how its ``w_i = ∂²h/∂θ_i²`` (hence ``V₂``) was obtained:
        ``"structural zero"`` (proved ``w ≡ 0``, nothing computed), ``"curvature
        sources"`` (docs/theory.md §10), ``"structured recursion (docs/theory.md §7)"`` or
        ``"second-order passes (…)"``; :attr:`methods` gives the same per group.
    """

    fisher: dict[str, Tensor]
    var1: dict[str, Tensor]
    var2: dict[str, Tensor]
    bounds: dict | None
    bounds_method: dict | None
    var_fisher_over_inputs: dict[str, Tensor]
    per_sample: bool
    kernel: object
    n_inputs: int
    path: str
    groups: dict[str, list[str]]
    means: dict[str, dict[str, Tensor]] = field(repr=False)
    mean_bounds: dict | None = field(repr=False, default=None)
    var2_routes: dict[str, str] = field(default_factory=dict)
    #: ``mean[estimator][name]``, ``var[estimator][name]``, ``bias[estimator][name]``: each
    #: requested estimator (``estimators=``) as an estimate of the mean Fisher over the
    #: inputs from one draw (docs/theory.md §9; :mod:`fishsym.variance.estimators`)
    mean: dict = field(default_factory=dict)
    var: dict = field(default_factory=dict)
    bias: dict = field(default_factory=dict)
    #: backward passes per draw of each estimator (:func:`fishsym.variance.estimators.cost`)
    cost: dict = field(default_factory=dict)
    #: the paper's Theorem 4.1 as stated (docs/theory.md §3), laid out like ``bounds``:
    #: ``paper_bounds["fisher" | "squared_score" | "neg_hessian"]["lower" | "upper"]`` —
    #: eq. (7) ``‖u‖²λ(I)`` for ``I(θ|x)``, eq. (8) ``‖u‖⁴λ̃(M)``, ``M = μ₄ − I⊗I``, for
    #: ``V₁``, eq. (9) for ``V₂`` (the same as ``bounds["neg_hessian"]``); certified,
    #: rounded outward; ``bounds`` keeps our ``‖u‖⁴λ(μ₄) − I²`` form ("exact_fisher")
    paper_bounds: dict | None = None
    paper_bounds_method: dict | None = None
    #: what was not computed on request (``("var2",)`` with ``var2=False``: ``var2`` is
    #: ``None`` and nothing of the negative-Hessian estimator is present)
    skipped: tuple = ()

    @property
    def _estimators(self) -> tuple[str, ...]:
        """The single-label estimators this result has variances of."""
        return tuple(e for e in ESTIMATORS if getattr(self, _VAR_KEY[e]) is not None)

    def compare_estimators(self, rel_error: float = 0.1, prob: float = 0.95):
        """Per layer, each requested estimator's relative bias and standard deviation (one
        draw), its cost in backward passes, the draws and passes it needs for relative
        error ``rel_error`` in Euclidean norm over the layer with probability ``prob``
        (Chebyshev: ``draws = ⌈Σ_i var_i / ((1 − prob) ε² Σ_i F̄_i²)⌉``, never for a
        biased estimator whose relative bias exceeds ``ε``), and the cheapest (``best``).
        """
        from fishsym.variance.estimators import EstimatorComparison

        rel_error, prob = _check_probability(rel_error, prob)
        rows = EstimatorComparison(rel_error=rel_error, prob=prob, n_inputs=self.n_inputs)
        for group, names in self.groups.items():
            norm2 = sum(float(self.means["fisher"][n].double().pow(2).sum()) for n in names)
            group_rows = []
            for est in self.mean:
                var = sum(float(self.var[est][n].double().sum()) for n in names)
                bias2 = sum(float(self.bias[est][n].double().pow(2).sum()) for n in names)
                rel_bias = math.sqrt(bias2 / norm2) if norm2 > 0 else math.inf
                rel_std = math.sqrt(var / norm2) if norm2 > 0 else math.inf
                if rel_bias > rel_error or norm2 == 0:
                    draws = math.inf
                else:
                    # the bias takes its share of the error; the variance gets the rest
                    room = (1 - prob) * (rel_error**2 - rel_bias**2) * norm2
                    draws = (
                        1.0
                        if var == 0
                        else (float(math.ceil(var / room)) if room > 0 else math.inf)
                    )
                cost = self.cost.get(est, math.nan)
                group_rows.append(
                    {
                        "group": group or "(model)",
                        "estimator": est,
                        "rel_bias": rel_bias,
                        "rel_std": rel_std,
                        "cost": cost,
                        "draws": draws,
                        "passes": draws * cost,
                        "best": False,
                    }
                )
            finite = [r for r in group_rows if r["passes"] < math.inf]
            if finite:
                min(finite, key=lambda r: r["passes"])["best"] = True
            rows.extend(group_rows)
        return rows

    # ------------------------------------------------------------------ keeping results
    def save(self, path):
        """Write the result to ``path``: tensors and JSON metadata, version-stamped, read
        back by :func:`fishsym.load` without unpickling code
        (:mod:`fishsym.variance.storage` documents the format). Returns the path."""
        from fishsym.variance import storage

        return storage.save(self, path)

    def to_records(self, rel_error: float = 0.1, prob: float = 0.95) -> list[dict]:
        """The per-layer and per-tensor summary as plain dicts (:meth:`summary`), e.g. for
        ``pandas.DataFrame``; :meth:`Summary.to_csv` writes them as CSV."""
        return [dict(r) for r in self.summary(rel_error, prob)]

    # ------------------------------------------------------------------ label budgets
    def relative_error(
        self,
        n_labels: int = 1,
        n_inputs: int | None = None,
        *,
        estimators=None,
        prob: float = 0.95,
        method: str = "chebyshev",
    ):
        """Per layer and estimator, the relative error of the estimate of the mean Fisher
        with ``n_labels`` labels (draws) per input, at probability ``prob``: of the layer's
        Euclidean norm, and of its median and 90 %-quantile entry (docs/theory.md §5;
        :mod:`fishsym.variance.budget` states the variances and both methods,
        ``"chebyshev"`` — guaranteed — and ``"normal"`` — the CLT approximation).

        ``n_inputs=None``: the given inputs are the batch; ``n_inputs = k``: ``k`` inputs
        drawn from the data the given inputs represent (label part + input part).
        """
        from fishsym.variance import budget

        n_labels = _check_count(n_labels, "n_labels")
        if n_inputs is not None:
            n_inputs = _check_count(n_inputs, "n_inputs")
        prob = check_probability(prob, "prob")
        method = check_choice(method, budget.METHODS, "method")
        estimators = list(self.var) if estimators is None else list(estimators)
        where = (
            f"the {self.n_inputs} given inputs"
            if n_inputs is None
            else f"{n_inputs} inputs drawn from the data"
        )
        rows = budget.ErrorReport(
            header=f"relative error of the mean-Fisher estimate from {where}, {n_labels} "
            f"label(s) per input, probability {prob:.0%} ({method})"
        )
        for est in estimators:
            errors = budget.group_errors(self, est, n_labels, n_inputs, prob, method)
            for group, names in self.groups.items():
                key = group or "(model)"
                rows.append(
                    {
                        "group": key,
                        "estimator": est,
                        "n_params": sum(self.means["fisher"][n].numel() for n in names),
                        **errors[key],
                    }
                )
        return rows

    def labels_for(
        self,
        rel_error: float = 0.1,
        n_inputs: int | None = None,
        *,
        estimator: str = "squared_score",
        prob: float = 0.95,
        method: str = "chebyshev",
        target: str = "norm",
    ) -> dict[str, float]:
        """The inverse of :meth:`relative_error`: per layer, the fewest labels (draws) per
        input for relative error ``rel_error`` at probability ``prob`` — of the layer's
        norm (``target="norm"``), or of its median / 90 %-quantile entry (``"median"``,
        ``"q90"``). ``inf`` where no number of labels reaches it (a bias above it, or an
        input part that needs more inputs)."""
        from fishsym.variance import budget

        rel_error, prob = _check_probability(rel_error, prob)
        if n_inputs is not None:
            n_inputs = _check_count(n_inputs, "n_inputs")
        method = check_choice(method, budget.METHODS, "method")
        target = check_choice(target, budget.TARGETS, "target")
        return budget.labels_for(self, rel_error, estimator, n_inputs, prob, method, target)

    @property
    def methods(self) -> dict[str, str]:
        """Parameter group (module) → the route(s) that produced its ``V₂``."""
        return {
            (group or "(model)"): " + ".join(
                sorted({self.var2_routes.get(n, "unknown") for n in names})
            )
            for group, names in self.groups.items()
        }

    def plot(self, *, rel_error: float = 0.1, estimators=None, path=None, title=None):
        """Per layer: the mean Fisher, the one-draw std of each estimator and the bounds
        (log scale, exact zeros marked), and the labels per input each estimator needs for
        ``rel_error``; returns the matplotlib figure (:func:`fishsym.variance.plots.plot_result`)."""
        from fishsym.variance.plots import plot_result

        return plot_result(self, rel_error=rel_error, estimators=estimators, path=path, title=title)

    @property
    def family(self):
        """The exponential family (``kernel.family``)."""
        return self.kernel.family

    # ------------------------------------------------------------------ docs/theory.md §5
    def variance(self, estimator: str, n_labels: int = 1, n_inputs: int = 1) -> dict[str, Tensor]:
        """Variance of the joint estimator of the data Fisher ``E_x I(θ_i|x)`` from
        ``n_inputs`` inputs drawn from the empirical distribution of the given inputs, with
        ``n_labels`` model labels each (docs/theory.md §5):

            (1/N_x) ( E_x[v_a(θ_i|x)] / N_y + Var_x[I(θ_i|x)] ),   a ∈ {1, 2}.

        Returns a dict name → tensor shaped like the parameter.
        """
        key = _VAR_KEY[_check_estimator(estimator)]
        self._require(estimator)
        n_y = _check_count(n_labels, "n_labels")
        n_x = _check_count(n_inputs, "n_inputs")
        return {
            name: (v / n_y + self.var_fisher_over_inputs[name]) / n_x
            for name, v in self.means[key].items()
        }

    def samples_needed(
        self, rel_error: float = 0.1, prob: float = 0.95
    ) -> dict[str, dict[str, Tensor]]:
        """Labels for **one input**: ``N`` so that the ``N``-label estimate ``Î_a(θ_i|x)`` is
        within relative error ``rel_error`` of ``I(θ_i|x)`` with probability at least
        ``prob``, by Chebyshev (docs/theory.md §5): ``N ≥ V_a / ((1 − prob) ε² I²)``, per
        parameter entry.

        With ``per_sample`` the count is per input (``[n_inputs, *shape]``); otherwise it is
        that of a *typical* input — ``V_a`` and ``I`` replaced by their averages over the
        inputs — and guarantees nothing for any one input. This is rarely the question:
        the error of the **mean Fisher over many inputs** (what EWC, merging or Laplace
        use) falls with the inputs too — see :meth:`relative_error` and
        :meth:`labels_for`. Returns ``{estimator: {name: tensor}}`` (floats: ``inf`` where
        ``I = 0 < V``; at least 1).
        """
        rel_error, prob = _check_probability(rel_error, prob)
        return {
            est: {
                name: chebyshev_labels(v, self.fisher[name], rel_error, prob)
                for name, v in getattr(self, _VAR_KEY[est]).items()
            }
            for est in self._estimators
        }

    def _require(self, estimator: str) -> None:
        if estimator not in self._estimators:
            from fishsym.errors import InvalidArgumentError

            raise InvalidArgumentError(
                f"estimator {estimator!r}: its variance was skipped (var2=False); compute "
                "with var2=True"
            )

    # ------------------------------------------------------------------ summary
    def summary(self, rel_error: float = 0.1, prob: float = 0.95) -> Summary:
        """Per parameter group — each module (e.g. a Linear layer's weight and bias) and
        each tensor — the trace forms over the group's entries ``i`` (docs/theory.md §3):

        * ``fisher``: ``Σ_i I(θ_i)``;
        * ``std_squared_score`` / ``std_neg_hessian``: ``√(Σ_i V_a(θ_i))``, the root mean
          squared Euclidean error of the group's single-label diagonal estimate;
        * ``*_bounds``: the same from the summed lower / upper bounds (lower clamped at 0);
        * ``lower_variance``: the estimator with the smaller ``Σ_i V_a``;
        * ``labels_*``: labels per input for relative error ``rel_error`` in Euclidean norm
          with probability ``prob``, by Chebyshev on the squared norm:
          ``N ≥ Σ_i V_a / ((1 − prob) ε² Σ_i I(θ_i)²)``.

        Values use the input-averaged quantities. Returns a :class:`Summary` (a list of
        dicts that prints as a table).
        """
        rel_error, prob = _check_probability(rel_error, prob)
        rows = Summary(
            rel_error=rel_error, prob=prob, family=self.kernel.name, n_inputs=self.n_inputs
        )
        for module, names in self.groups.items():
            if len(names) > 1:
                rows.append(self._record(module or "(model)", "layer", names, rel_error, prob))
            for name in names:
                rows.append(self._record(name, "tensor", [name], rel_error, prob))
        return rows

    def _record(
        self, label: str, kind: str, names: list[str], rel_error: float, prob: float
    ) -> dict:
        def total(d):
            return sum(float(d[n].double().sum()) for n in names)

        fisher = total(self.means["fisher"])
        fisher_sq = sum(float(self.means["fisher"][n].double().pow(2).sum()) for n in names)
        rec = {
            "group": label,
            "kind": kind,
            "n_params": sum(self.means["fisher"][n].numel() for n in names),
            "fisher": fisher,
        }
        variances = {}
        for est in self._estimators:
            v = total(self.means[_VAR_KEY[est]])
            variances[est] = v
            rec[f"std_{est}"] = math.sqrt(max(v, 0.0))
            if self.mean_bounds is not None:
                lo = total(self.mean_bounds[est]["lower"])
                hi = total(self.mean_bounds[est]["upper"])
                rec[f"std_{est}_bounds"] = (math.sqrt(max(lo, 0.0)), math.sqrt(max(hi, 0.0)))
        if "neg_hessian" in variances:
            v1, v2 = variances["squared_score"], variances["neg_hessian"]
            rec["lower_variance"] = (
                "equal" if v1 == v2 else ("squared_score" if v1 < v2 else "neg_hessian")
            )
        else:  # V₂ skipped (var2=False)
            rec["std_neg_hessian"] = None
            rec["labels_neg_hessian"] = None
            rec["lower_variance"] = None
        for est in self._estimators:
            v = variances[est]
            if v == 0:
                rec[f"labels_{est}"] = 1.0
            elif fisher_sq == 0:
                rec[f"labels_{est}"] = math.inf
            else:
                rec[f"labels_{est}"] = float(math.ceil(v / ((1 - prob) * rel_error**2 * fisher_sq)))
        return rec

    def __repr__(self) -> str:
        n_params = sum(t.numel() for t in self.means["fisher"].values())
        return (
            f"<FisherVariances family={self.kernel.name} "
            f"params={n_params} inputs={self.n_inputs} path={self.path} "
            f"per_sample={self.per_sample}>"
        )


class Summary(list):
    """The records of :meth:`FisherVariances.summary`; ``print`` shows them as a table."""

    def __init__(self, records=(), *, rel_error: float, prob: float, family: str, n_inputs: int):
        super().__init__(records)
        self.rel_error, self.prob, self.family, self.n_inputs = rel_error, prob, family, n_inputs

    def to_csv(self, path) -> None:
        """Write the records as CSV (one row per layer or tensor; bound pairs as two
        columns ``…_lower``/``…_upper``)."""
        import csv

        rows = []
        for r in self:
            row = {}
            for key, value in r.items():
                if isinstance(value, tuple):
                    row[f"{key}_lower"], row[f"{key}_upper"] = value
                else:
                    row[key] = value
            rows.append(row)
        fields = list(dict.fromkeys(k for row in rows for k in row))
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def table(self) -> str:
        """The records as a fixed-width text table."""
        has_bounds = any("std_squared_score_bounds" in r for r in self)
        head = ["group", "params", "FI (Σ)", "std Î₁"]
        if has_bounds:
            head.append("Î₁ bounds")
        head.append("std Î₂")
        if has_bounds:
            head.append("Î₂ bounds")
        pct = f"{self.rel_error:.0%}@{self.prob:.0%}"
        head += ["lower var", f"labels Î₁ {pct}", f"labels Î₂ {pct}"]
        body = []
        for r in self:
            name = r["group"] if r["kind"] == "layer" else "  " + r["group"]
            row = [name, str(r["n_params"]), _g(r["fisher"]), _g(r["std_squared_score"])]
            if has_bounds:
                row.append(_interval(r.get("std_squared_score_bounds")))
            skipped = r["std_neg_hessian"] is None  # var2=False
            row.append("skipped" if skipped else _g(r["std_neg_hessian"]))
            if has_bounds:
                row.append("skipped" if skipped else _interval(r.get("std_neg_hessian_bounds")))
            short = {"squared_score": "Î₁", "neg_hessian": "Î₂", "equal": "=", None: "—"}
            row += [
                short[r["lower_variance"]],
                _count(r["labels_squared_score"]),
                "skipped" if skipped else _count(r["labels_neg_hessian"]),
            ]
            body.append(row)
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
        lines = [
            f"family {self.family}, {self.n_inputs} inputs; std = √(Σ_i V_a) per group, "
            "single label"
        ]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in body]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()


def _g(x: float) -> str:
    return f"{x:.3g}"


def _interval(pair) -> str:
    return "" if pair is None else f"[{pair[0]:.3g}, {pair[1]:.3g}]"


def _count(x: float) -> str:
    return "inf" if math.isinf(x) else f"{int(x):,}"


def load(path, family=None):
    """Read a result written by :meth:`FisherVariances.save` (the format:
    :mod:`fishsym.variance.storage`).

    ``family``: the family (name, symbolic family or kernel) for a user-defined family that
    the registry cannot rebuild from its stored name and sizes.

    Everything is validated against the file's own metadata before a result is built:
    the metadata's keys and types, family sizes (at most :data:`MAX_FAMILY_SIZE`), each
    tensor's key, dtype, finiteness and shape; and the family rebuilt (or given) must be
    the one the file was computed with (its :func:`family_signature`). A file that fails
    any check raises :class:`~fishsym.errors.InvalidArgumentError`. No code runs from a
    file (``torch.load(weights_only=True)``).
    """
    from fishsym import kernels
    from fishsym.variance.storage import (
        FORMAT,
        MAX_FAMILY_SIZE,
        VERSION,
        _bad,
        _check_meta,
        _check_tensors,
        _unflatten,
        family_signature,
    )

    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"path {str(path)!r} is not a file written by res.save")
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for foreign files
        raise InvalidArgumentError(
            f"{str(path)!r} is not a fishsym result file (torch.load(weights_only=True): {err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InvalidArgumentError(f"{str(path)!r} is not a fishsym result file ({FORMAT})")
    if payload.get("version") != VERSION:
        raise InvalidArgumentError(
            f"{str(path)!r} has format version {payload.get('version')!r}; this fishsym reads "
            f"version {VERSION}"
        )
    try:
        meta = json.loads(payload.get("meta"))
    except (TypeError, ValueError) as err:
        raise _bad(path, f"its metadata is not JSON ({err})") from err
    _check_meta(path, meta)
    tensors = payload.get("tensors")
    _check_tensors(path, tensors, meta)
    sizes = dict(meta["sizes"])
    factors = sizes.pop("factors", None)  # a product over factor axes (docs/theory.md §11)
    if factors is not None and (
        not isinstance(factors, list)
        or not factors
        or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in factors)
        or math.prod(factors) > MAX_FAMILY_SIZE
    ):
        raise _bad(path, f"its factor axes {factors!r} are not a list of positive sizes")
    if family is None:
        try:
            kernel = kernels.get(meta["family"], **sizes)
        except Exception as err:  # noqa: BLE001 - an unregistered (user) family
            raise InvalidArgumentError(
                f"family {meta['family']!r} of {str(path)!r} is not registered; pass "
                "family= (the ExponentialFamily or kernel it was computed with)"
            ) from err
    elif hasattr(family, "log_prob"):
        kernel = getattr(family, "base", family)
    elif isinstance(family, str) or hasattr(family, "natural_params"):
        kernel = kernels.get(family, **sizes)
    else:
        raise ArgumentTypeError(
            f"family must be a name, an ExponentialFamily or a kernel; got {family!r}"
        )
    if factors is not None:
        kernel = kernels.ProductKernel(kernel, factors)
    stored, rebuilt = meta.get("family_signature"), family_signature(kernel)
    if stored is not None and rebuilt is not None and stored != rebuilt:
        raise InvalidArgumentError(
            f"{str(path)!r} was computed with a family named {meta['family']!r} that is not "
            f"the {'registered' if family is None else 'given'} one (sufficient statistic, "
            "log-partition or base measure differ: a user family of the same name?); pass "
            "family= the ExponentialFamily or kernel it was computed with"
        )
    order = meta["params"]

    def params(prefix):
        flat = _unflatten(tensors, prefix, 1)
        return None if flat is None else {n: flat[n] for n in order if n in flat}

    def nested(prefix, depth):
        tree = _unflatten(tensors, prefix, depth)
        if tree is None:
            return None

        def reorder(node, level):
            if level == 1:
                return {n: node[n] for n in order if n in node}
            return {k: reorder(v, level - 1) for k, v in node.items()}

        return reorder(tree, depth)

    res = FisherVariances(
        fisher=params("fisher"),
        var1=params("var1"),
        var2=params("var2"),
        bounds=nested("bounds", 3),
        bounds_method=meta["bounds_method"],
        var_fisher_over_inputs=params("var_x"),
        per_sample=meta["per_sample"],
        kernel=kernel,
        n_inputs=meta["n_inputs"],
        path=meta["path"],
        groups=meta["groups"],
        means=nested("means", 2),
        mean_bounds=nested("mean_bounds", 3),
    )
    res.var2_routes = meta["var2_routes"]
    res.paper_bounds = nested("paper_bounds", 3)
    res.paper_bounds_method = meta["paper_bounds_method"]
    res.mean = nested("mean", 2) or {}
    res.var = nested("var", 2) or {}
    res.bias = nested("bias", 2) or {}
    res.cost = meta["cost"]
    skipped = meta.get("skipped", [])
    if not isinstance(skipped, list) or not set(skipped) <= {"var2"}:
        raise _bad(
            path, f"metadata 'skipped' must be a list of skipped quantities; got {skipped!r:.80}"
        )
    res.skipped = tuple(skipped)
    if "var2" not in res.skipped and res.var2 is None:
        raise _bad(path, "V₂ is missing although the file does not say it was skipped")
    return res


__all__ = ["FisherVariances", "Summary", "ESTIMATORS", "chebyshev_labels", "load"]
