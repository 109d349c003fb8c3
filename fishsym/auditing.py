"""Hold any diagonal Fisher against the truth: ``fishsym.audit`` (docs/theory.md §13).

A diagonal Fisher ``G`` — a dict name → tensor shaped like the parameters, from the
user's own code, Adam's ``exp_avg_sq`` (:func:`adam_fisher`), BackPACK, laplace-torch or one
of fishsym's estimators — is compared, per layer, with the truth ``F``, the mean Fisher
``F̄_i = (1/n) Σ_n I(θ_i|x_n)`` over the given inputs:

* the **relative error** ``‖G − F‖ / ‖F‖`` (Euclidean norms over the layer's entries);
* the **scale** ``s = ⟨G, F⟩ / ⟨F, F⟩``, the factor by which ``G`` best matches ``F``
  (least squares ``G ≈ s·F``): a Fisher off by a constant factor only needs its EWC or
  Laplace strength divided by ``s``; and the error left after that rescaling,
  ``‖G/s − F‖ / ‖F‖``;
* the **rank agreement** that pruning and merging depend on: Spearman's ``ρ`` between the
  entries of ``G`` and ``F`` (``scipy.stats.spearmanr``) and the overlap of their top
  ``k`` entries (``k = ⌈top·m⌉`` of ``m``);
* a **verdict** in words.

The truth is the exact Fisher (:func:`fishsym.fisher_variances` without ``V₂`` or bounds)
where that is affordable, otherwise a :func:`fishsym.diagonal_fisher` estimate at 10 %
whose uncertainty the verdicts carry: a layer "matches" within the larger of ``tol`` and
twice the truth's own relative standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from fishsym.common.selection import parameter_groups
from fishsym.common.tables import text_table
from fishsym.errors import (
    ArgumentTypeError,
    DomainError,
    InvalidArgumentError,
    NonFiniteError,
    ShapeError,
)

#: a layer "matches" when its relative error is at most this (or twice the truth's own
#: relative standard error, when the truth is sampled)
MATCH_TOL = 0.05
#: the rank agreement that keeps pruning and merging decisions: Spearman ρ and top-k
#: overlap at least these
RANK_RHO, RANK_OVERLAP = 0.9, 0.8
#: a Fisher is computed exactly when (inputs × parameter entries × outputs) is at most this
#: (the per-input Jacobians' numbers); above it the truth is sampled
EXACT_LIMIT = 2e10

#: why an identically zero Fisher is no Fisher at all
ZERO_NOTE = (
    "identically zero: no information. (The 'soft' merging recipe computes this: the "
    "gradient of Σ_y p̄_y log p_y with p̄ = p detached is Σ_y ∇p_y = ∇1 = 0. Square the "
    "scores instead: the squared score, or the merging recipe of √p̄.)"
)


@dataclass
class Audit:
    """The per-layer comparison of a diagonal Fisher with the truth (module docstring).

    Attributes
    ----------
    rows:
        One dict per layer and a last one, ``"all"``, over every audited entry:
        ``group``, ``entries``, ``rel_error``, ``scale``, ``rel_error_scaled``,
        ``strength_factor`` (``1/s``: multiply an EWC/Laplace strength tuned for the
        truth by it), ``spearman``, ``top_overlap``, ``truth_rel_std`` (0 for an exact
        truth), ``verdict``.
    truth:
        ``{name: tensor}``, the truth used.
    truth_kind:
        ``"exact"`` or ``"sampled"`` (a ``diagonal_fisher`` estimate).
    top:
        The fraction of entries in the top-``k`` overlap.
    """

    rows: list[dict]
    truth: dict[str, Tensor]
    truth_kind: str
    top: float
    skipped: list[str] = field(default_factory=list)

    def to_records(self) -> list[dict]:
        """The rows as plain dicts (numbers as Python floats)."""
        return [dict(r) for r in self.rows]

    @property
    def overall(self) -> dict:
        """The row over every audited entry."""
        return self.rows[-1]

    def table(self) -> str:
        head = ["layer", "entries", "rel. error", "scale", "after scale", "λ ×", "Spearman",
                f"top {self.top:.0%}", "verdict"]  # fmt: skip
        body = [
            [r["group"], f"{r['entries']:,}", _pct(r["rel_error"]), _g(r["scale"]),
             _pct(r["rel_error_scaled"]), _g(r["strength_factor"]), _g(r["spearman"]),
             _pct(r["top_overlap"]), r["verdict"]]  # fmt: skip
            for r in self.rows
        ]
        truth = (
            "the exact Fisher"
            if self.truth_kind == "exact"
            else "a diagonal_fisher estimate (its uncertainty in the verdicts)"
        )
        return text_table(f"audit against {truth}", head, body)

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__

    def plot(self, ax=None):
        """Per layer: the relative error before and after the best scale (bars, log
        scale) and Spearman's ρ (points, right axis)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(self.rows)), 3.2))
        rows = self.rows
        xs = range(len(rows))
        floor = 1e-6  # a bar of zero error still shows on the log axis
        ax.bar([x - 0.2 for x in xs], [max(r["rel_error"], floor) for r in rows], 0.4,
               label="relative error")  # fmt: skip
        ax.bar([x + 0.2 for x in xs], [max(_finite(r["rel_error_scaled"]), floor) for r in rows],
               0.4, label="after the best scale")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xticks(list(xs), [r["group"] for r in rows], rotation=45, ha="right")
        ax.set_ylabel("relative error")
        twin = ax.twinx()
        twin.plot(list(xs), [_finite(r["spearman"], 0.0) for r in rows], "ko", label="Spearman ρ")
        twin.set_ylim(-1.05, 1.05)
        twin.set_ylabel("Spearman ρ")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"audit against the {self.truth_kind} Fisher")
        return ax


def audit(
    model: nn.Module,
    inputs,
    family,
    fisher: dict,
    *,
    truth=None,
    exact: bool | None = None,
    top: float = 0.1,
    tol: float = MATCH_TOL,
    dtype: torch.dtype | None = None,
    output=None,
    mask=None,
    generator: torch.Generator | None = None,
) -> Audit:
    """Audit the diagonal Fisher ``fisher`` of ``model`` on ``inputs`` (module docstring).

    Parameters
    ----------
    model, inputs, family, output, mask, dtype:
        As for :func:`fishsym.fisher_variances`; the truth is the mean Fisher over
        ``inputs``. The model is never modified.
    fisher:
        ``{name: tensor}`` for some or all of the model's trainable parameters, each
        shaped like its parameter, finite and non-negative.
    truth:
        A truth already computed: a ``{name: tensor}``, a
        :class:`~fishsym.variance.FisherVariances` or a
        :class:`~fishsym.sampling.diagonal.DiagonalFisher` (its standard errors then
        enter the verdicts). ``None``: computed here.
    exact:
        ``True``: the exact Fisher; ``False``: a ``diagonal_fisher`` estimate at 10 %
        (needs ``generator``); ``None``: exact when inputs × entries × outputs is at most
        :data:`EXACT_LIMIT`.
    top:
        Fraction of entries compared by the top-``k`` overlap, in ``(0, 1]``.
    tol:
        Relative error under which a layer "matches".
    generator:
        For a sampled truth (no global random state is used).

    Returns
    -------
    Audit
        Per-layer rows, ``table()``, ``plot()``, ``to_records()``.
    """

    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    for name, value in (("top", top), ("tol", tol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ArgumentTypeError(f"{name} must be a number; got {value!r}")
    if not 0 < top <= 1:
        raise InvalidArgumentError(f"top must be a fraction in (0, 1]; got {top!r}")
    if not tol > 0:
        raise InvalidArgumentError(f"tol must be positive; got {tol!r}")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    given = _check_fisher(fisher, params)
    truth_kind, truth_t, truth_se = _truth(
        model, inputs, family, params, truth, exact, dtype, output, mask, generator
    )
    missing = [n for n in given if n not in truth_t]
    if missing:
        raise InvalidArgumentError(f"the truth has no entries for {missing}")
    rows = []
    groups = parameter_groups(list(given))
    for group, names in groups.items():
        rows.append(_row(group, names, given, truth_t, truth_se, top, tol))
    if len(groups) > 1:
        rows.append(_row("all", list(given), given, truth_t, truth_se, top, tol))
    else:
        rows.append({**rows[0], "group": "all"})
    skipped = [n for n in params if n not in given]
    return Audit(rows, {n: truth_t[n] for n in given}, truth_kind, top, skipped)


def adam_fisher(optimizer, model: nn.Module, n_data: int, *, bias_correction: bool = True) -> dict:
    """Adam's second-moment estimate as a diagonal Fisher ("Squisher"): ``N·v̂`` per
    parameter, ``v̂ = exp_avg_sq / (1 − β₂ᵗ)`` with ``bias_correction`` (``N = n_data``,
    the number of training inputs; ``v`` averages squared mini-batch-mean gradients).

    Raises :class:`ArgumentTypeError` for an optimizer without ``exp_avg_sq`` state (not
    Adam, AdamW or a relative) and :class:`InvalidArgumentError` for a parameter it has
    not stepped yet."""
    if isinstance(n_data, bool) or not isinstance(n_data, int) or n_data < 1:
        raise InvalidArgumentError(f"n_data must be a positive integer; got {n_data!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ArgumentTypeError(
            f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}"
        )
    betas = {id(p): g.get("betas", (None, None))[1] for g in optimizer.param_groups
             for p in g["params"]}  # fmt: skip
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) not in betas:
            continue
        state = optimizer.state.get(p, {})
        if betas[id(p)] is None or (state and "exp_avg_sq" not in state):
            raise ArgumentTypeError(
                f"the optimizer keeps no exp_avg_sq for {name!r} ({type(optimizer).__name__}): "
                "adam_fisher reads Adam's (or AdamW's) second-moment estimate"
            )
        if "exp_avg_sq" not in state:
            raise InvalidArgumentError(f"parameter {name!r} has not been stepped by the optimizer")
        v = state["exp_avg_sq"].detach().clone()
        if bias_correction:
            step = float(state["step"])
            v = v / (1 - betas[id(p)] ** step)
        out[name] = n_data * v
    return out


# --------------------------------------------------------------------------- internals
def _check_fisher(fisher, params: dict) -> dict[str, Tensor]:
    if not isinstance(fisher, dict) or not fisher:
        raise ArgumentTypeError(
            "fisher must be a non-empty dict {parameter name: tensor shaped like the "
            f"parameter}}; got {type(fisher).__name__}"
        )
    out = {}
    for name, t in fisher.items():
        if name not in params:
            raise InvalidArgumentError(
                f"fisher has an entry {name!r} that is not a trainable parameter of the "
                f"model; valid names: {sorted(params)}"
            )
        if not isinstance(t, Tensor):
            raise ArgumentTypeError(f"fisher[{name!r}] must be a tensor; got {type(t).__name__}")
        if tuple(t.shape) != tuple(params[name].shape):
            raise ShapeError(
                f"fisher[{name!r}] has shape {tuple(t.shape)}; the parameter has "
                f"{tuple(params[name].shape)}"
            )
        t = t.detach().to(torch.float64)
        if not bool(torch.isfinite(t).all()):
            raise NonFiniteError(f"fisher[{name!r}] contains NaN or inf")
        if bool((t < 0).any()):
            raise DomainError(
                f"fisher[{name!r}] has negative entries (min {float(t.min()):.3g}); a "
                "diagonal Fisher is non-negative"
            )
        out[name] = t.cpu()
    return out


def _truth(model, inputs, family, params, truth, exact, dtype, output, mask, generator):
    """``(kind, {name: F}, {name: standard error or None})``."""
    from fishsym.sampling import DiagonalFisher, diagonal_fisher
    from fishsym.variance import FisherVariances, fisher_variances

    if truth is not None:
        if isinstance(truth, FisherVariances):
            if truth.per_sample:
                return "exact", {n: t.mean(0).double().cpu() for n, t in truth.fisher.items()}, {}
            return "exact", {n: t.double().cpu() for n, t in truth.fisher.items()}, {}
        if isinstance(truth, DiagonalFisher):
            return (
                "sampled",
                {n: t.double().cpu() for n, t in truth.value.items()},
                {n: t.double().cpu() for n, t in truth.stderr.items()},
            )
        if isinstance(truth, dict):
            return "exact", _check_fisher(truth, params), {}
        raise ArgumentTypeError(
            "truth must be None, a {name: tensor} dict, a FisherVariances or a "
            f"DiagonalFisher; got {type(truth).__name__}"
        )
    if exact is None:
        exact = _affordable(model, inputs, params, output)
    if exact:
        res = fisher_variances(
            model, inputs, family, var2=False, bounds=False, dtype=dtype, output=output,
            mask=mask, estimators=("squared_score",), progress=False,
        )  # fmt: skip
        return "exact", {n: t.double().cpu() for n, t in res.fisher.items()}, {}
    if generator is None:
        raise InvalidArgumentError(
            "a sampled truth (exact=False, or a model too large for the exact Fisher) needs "
            "generator=torch.Generator().manual_seed(...)"
        )
    est = diagonal_fisher(
        model, inputs, family, generator=generator, dtype=dtype, output=output, mask=mask,
        exact=False,
    )  # fmt: skip
    return (
        "sampled",
        {n: t.double().cpu() for n, t in est.value.items()},
        {n: t.double().cpu() for n, t in est.stderr.items()},
    )


def _affordable(model, inputs, params, output) -> bool:
    from fishsym.common import ModelView, cast_inputs
    from fishsym.common.data import DataSource

    source = DataSource(inputs)
    n = source.known_length() or 1
    x, _ = next(source.batches())
    view = ModelView(model, torch.float32, output)  # the private copy: hooks settled there
    d = view.probe(cast_inputs(x[:2], torch.float32, view.device))
    entries = sum(p.numel() for p in params.values())
    return n * entries * d <= EXACT_LIMIT


def _row(group, names, given, truth, truth_se, top, tol) -> dict:
    from scipy import stats

    g = torch.cat([given[n].reshape(-1) for n in names])
    f = torch.cat([truth[n].reshape(-1).double() for n in names])
    norm_f = float(f.norm())
    if norm_f > 0:
        rel = float((g - f).norm()) / norm_f
    else:
        rel = 0.0 if float(g.norm()) == 0 else math.inf
    ff = float(f @ f)
    scale = float(g @ f) / ff if ff > 0 else math.nan
    if scale > 0:
        scaled = float((g / scale - f).norm()) / norm_f
    else:
        scaled = math.inf
    if g.numel() > 1 and float(g.std()) > 0 and float(f.std()) > 0:
        rho = float(stats.spearmanr(g.numpy(), f.numpy()).statistic)
    else:
        rho = math.nan  # a constant tensor has no ranking
    k = max(1, math.ceil(top * g.numel()))
    top_g = set(torch.topk(g, k).indices.tolist())
    top_f = set(torch.topk(f, k).indices.tolist())
    overlap = len(top_g & top_f) / k
    se = [truth_se[n].reshape(-1) for n in names if truth_se.get(n) is not None]
    truth_rel_std = float(torch.cat(se).norm()) / norm_f if se and norm_f > 0 else 0.0
    within = max(tol, 2 * truth_rel_std)
    if float(g.abs().max()) == 0:
        verdict = ZERO_NOTE
    elif rel <= within:
        verdict = "matches" + (" (within the truth's uncertainty)" if within > tol else "")
    elif scaled <= within:
        verdict = (
            f"right up to a scale: {scale:.3g}× the truth (divide an EWC/Laplace strength "
            f"tuned on the truth by {scale:.3g})"
        )
    elif rho >= RANK_RHO and overlap >= RANK_OVERLAP:
        verdict = "values off, ranking kept (pruning and merging decisions hold)"
    else:
        verdict = "wrong: values and ranking off"
    return {
        "group": group,
        "entries": int(g.numel()),
        "rel_error": rel,
        "scale": scale,
        "rel_error_scaled": scaled,
        "strength_factor": 1 / scale if scale > 0 else math.inf,
        "spearman": rho,
        "top_overlap": overlap,
        "truth_rel_std": truth_rel_std,
        "verdict": verdict,
    }


def _pct(x: float) -> str:
    return "∞" if x == math.inf else ("-" if x != x else f"{100 * x:.3g} %")


def _g(x: float) -> str:
    return "∞" if x == math.inf else ("-" if x != x else f"{x:.3g}")


def _finite(x: float, default: float = 1e6) -> float:
    return x if math.isfinite(x) else default


__all__ = ["Audit", "adam_fisher", "audit", "EXACT_LIMIT", "MATCH_TOL"]
