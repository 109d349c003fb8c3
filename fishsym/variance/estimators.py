"""Every diagonal-Fisher estimator people use, exactly (docs/theory.md §9).

Each estimator is an estimate of the **mean Fisher over the given inputs**,
``F̄_i = (1/n) Σ_n I(θ_i|x_n)``, from one *draw* (labels from the model, or a probe); for
each, :func:`estimator_moments` gives the exact mean, its bias ``mean − F̄`` and the variance
of one draw, from per-input sums the engine already reduces. With ``a_in = R_nᵀ u_in``
(``R Rᵀ = I(h)``, :meth:`~fishsym.kernels.base.FamilyKernel.root_t`):

======================  ==========================================  ========================
estimator               one draw                                    variance of one draw
======================  ==========================================  ========================
``squared_score``       ``(1/n) Σ_n (∂_iℓ(y_n|x_n))²``              ``(1/n²) Σ_n V₁``
``neg_hessian``         ``−(1/n) Σ_n ∂²_iℓ(y_n|x_n)``               ``(1/n²) Σ_n V₂``
``hutchinson``          ``(1/n) Σ_n (ξ_nᵀ a_in)²``, a probe per     ``(2/n²) Σ_n Σ_{j≠k}
                        input (one backward pass each)              a_inj² a_ink²``
``hutchinson_batch``    ``(1/n) (Σ_n ξ_nᵀ a_in)²``, one probe and   ``(2/n²)((Σ_n I_n)² −
                        one backward pass for the batch             Σ_{n,k} a_ink⁴)``
``batched_score``       ``(1/n) (Σ_n ∂_iℓ(y_n|x_n))²``, one         ``(1/n²)(Σ_n κ₄[u_in⁴] +
                        backward pass for the batch                 2 (Σ_n I_n)²)``
``merging_recipe``      ``(1/n) (Σ_n Σ_k a_ink)²`` (the gradient    ``0`` (deterministic;
                        of ``Σ_{n,y} √p̄ log p``, squared)           biased)
``empirical``           ``(1/n) Σ_n (∂_iℓ(y_n|x_n))²`` with the     ``0`` (deterministic
                        data labels ``y_n`` (``labels=``)           given them; biased)
``batched_score_data``  ``(1/n) (Σ_n ∂_iℓ(y_n|x_n))²``, data        ``0`` (idem)
                        labels, one backward pass
``per_position_score``  ``(1/n) Σ_n Σ_t (∂_iℓ_t(y_nt|x_n))²``: per-   ``(1/n²) Σ_n Σ_t V₁,t``
                        position (per-token) scores squared, then
                        summed (§11; one factor: ``squared_score``)
``argmax_label``        ``(1/n) Σ_n (∂_iℓ(ŷ_n|x_n))²`` at the most   ``0`` (deterministic;
                        probable label ``ŷ_n = argmax_y p(y|x_n)``   biased: §13)
                        ("pred", "hard" labels)
======================  ==========================================  ========================

``ξ`` is Rademacher; labels ``y_n`` are drawn from the model, independently per input.
``Σ_{j≠k} a_j² a_k²`` is formed as ``2 Σ_k a_k² Σ_{j<k} a_j²`` (no cancellation against
``(Σ a²)² − Σ a⁴``). :func:`cost` is the cost model, in backward passes per draw.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fishsym.common.tables import text_table

#: the estimators :func:`fishsym.fisher_variances` can report (``estimators=``)
ESTIMATOR_NAMES = (
    "squared_score",
    "neg_hessian",
    "hutchinson",
    "hutchinson_batch",
    "batched_score",
    "merging_recipe",
    "empirical",
    "batched_score_data",
    "per_position_score",
    "argmax_label",
)
#: the estimators that use the data labels (``labels=``): deterministic given them
DATA_LABEL_ESTIMATORS = ("empirical", "batched_score_data")
#: per-unit quantities each estimator needs beyond ``fisher``, ``fisher_sq``, ``var1``,
#: ``var2`` (``hutch_cross``: ``Σ_{j≠k} a_j² a_k²``, quartic; ``root_sum``: ``Σ_k a_k``,
#: linear in ``u``)
EXTRA_QUANTITIES = {
    "hutchinson": ("hutch_cross",),
    "hutchinson_batch": ("hutch_cross",),
    "merging_recipe": ("root_sum",),
    "empirical": ("data_sq",),
    "batched_score_data": ("data_sum",),
    "per_position_score": ("factor_var1",),
    "argmax_label": ("argmax_sq",),
}
#: quantities linear in ``u`` (a factorised block carries the layer input to the power 1)
POWER1 = ("root_sum", "data_sum")
#: quantities quadratic in ``u`` besides ``fisher`` (the layer input squared)
POWER2 = ("fisher", "data_sq", "argmax_sq")
#: a family's support enumerated for its most probable label, at most this many labels
MODE_SUPPORT_LIMIT = 2**16


def cost(estimator: str, n_inputs: int, d: int, factors: int = 1) -> int:
    """Backward passes of the network per draw for ``n_inputs`` inputs and ``d`` outputs:
    a per-sample gradient per input (``squared_score``, ``hutchinson``), one pass for the
    batch (``hutchinson_batch``, ``batched_score``, ``merging_recipe``), and for
    ``neg_hessian`` a diagonal Hessian per input counted as ``d`` passes (a lower bound:
    the output Hessian's square root has ``d`` columns; curved layers cost more). With
    ``factors`` independent positions (§11) the per-position squared score needs a
    gradient per input and position."""
    per = {
        "squared_score": n_inputs,
        "neg_hessian": n_inputs * d,
        "hutchinson": n_inputs,
        "hutchinson_batch": 1,
        "batched_score": 1,
        "merging_recipe": 1,
        "empirical": n_inputs,
        "batched_score_data": 1,
        "per_position_score": n_inputs * factors,
        "argmax_label": n_inputs,
    }
    return per[estimator]


def extra_unit_moments(
    kernel, h: Tensor, jac: Tensor, wanted, data_t: Tensor | None = None
) -> dict[str, Tensor]:
    """Per input and unit, the extra quantities ``wanted`` (see :data:`EXTRA_QUANTITIES`)
    from ``a = Rᵀ g`` and, for the data-label estimators, the score ``s = (t(y) − η)ᵀ g``
    of the data label (``data_t`` ``[n, c]``): ``jac`` ``[n, c, a]`` → ``[n, a]`` each."""
    if not wanted:
        return {}
    out = {}
    if "data_sq" in wanted or "data_sum" in wanted:
        s = torch.einsum("nc,nca->na", data_t - kernel.mean(h), jac)
        if "data_sq" in wanted:
            out["data_sq"] = s * s
        if "data_sum" in wanted:
            out["data_sum"] = s
    if "argmax_sq" in wanted:
        s = torch.einsum("nc,nca->na", mode_suff_stat(kernel, h) - kernel.mean(h), jac)
        out["argmax_sq"] = s * s
    if "factor_var1" in wanted:
        # Σ_t Var[s_t²] over the factors of a product family (docs/theory.md §11); one
        # factor: the squared score's own V₁
        per_factor = getattr(kernel, "var_squared_per_factor", kernel.var_squared)
        out["factor_var1"] = per_factor(h, jac)
    if "hutch_cross" not in wanted and "root_sum" not in wanted:
        return out
    a = kernel.root_t(h, jac)  # [n, r, units]
    if "hutch_cross" in wanted:
        b = a * a
        before = torch.cumsum(b, dim=1) - b  # Σ_{j<k} a_j², exclusive
        out["hutch_cross"] = 2 * (b * before).sum(1)
    if "root_sum" in wanted:
        out["root_sum"] = a.sum(1)
    return out


def mode_suff_stat(kernel, h: Tensor) -> Tensor:
    """``t(ŷ)`` ``[n, c]`` of the most probable label ``ŷ = argmax_y p(y|h)`` per input (the
    first one on ties): per factor for a product family (§11), by ``argmax h`` for a
    categorical head, otherwise by enumerating a finite support of at most
    :data:`MODE_SUPPORT_LIMIT` labels. A family without a finite support has no most
    probable label to square a score at: :class:`~fishsym.errors.InvalidArgumentError`."""
    from fishsym.errors import InfiniteSupportError, InvalidArgumentError
    from fishsym.kernels.categorical import CategoricalKernel

    base = getattr(kernel, "base", None)
    if base is not None and hasattr(kernel, "factor_shape"):  # a product: per factor
        n = h.shape[0]
        return mode_suff_stat(base, h.reshape(n * kernel.T, -1)).reshape(n, -1)
    if isinstance(kernel, CategoricalKernel):
        index = h.argmax(-1)
        return kernel.suff_stat(index, h.dtype)
    try:
        support = kernel.support_labels()
    except (InfiniteSupportError, NotImplementedError) as err:
        raise InvalidArgumentError(
            f'estimator "argmax_label" squares the score at the most probable label; the '
            f"family {kernel.name} has no finite support to take it from ({err})"
        ) from err
    if support.shape[0] > MODE_SUPPORT_LIMIT:
        raise InvalidArgumentError(
            f'estimator "argmax_label": the family {kernel.name} has {support.shape[0]:,} '
            f"labels, more than the {MODE_SUPPORT_LIMIT:,} enumerated for the most probable one"
        )
    support = support.to(h.device)
    logp = torch.stack([kernel.log_prob(y.expand(h.shape[0], *y.shape), h) for y in support])
    best = support[logp.argmax(0)]  # [n, *obs]
    return kernel.suff_stat(best, h.dtype)


def estimator_moments(means: dict, n: int, estimators) -> dict[str, dict[str, dict]]:
    """``{"mean"|"var"|"bias": {estimator: {name: tensor}}}`` from the input means of the
    per-input quantities (``means[q][name]``), for the given inputs as the batch."""
    fisher = means["fisher"]
    out: dict[str, dict] = {"mean": {}, "var": {}, "bias": {}}
    for est in estimators:
        mean, var = {}, {}
        for name, f in fisher.items():
            if est == "squared_score":
                m, v = f, means["var1"][name] / n
            elif est == "neg_hessian":
                m, v = f, means["var2"][name] / n
            elif est == "hutchinson":
                m, v = f, 2 * means["hutch_cross"][name] / n
            elif est == "hutchinson_batch":
                # (2/n²)(Σ cross_n + (Σ I_n)² − Σ I_n²)
                v = 2 * (means["hutch_cross"][name] / n + f * f - means["fisher_sq"][name] / n)
                m, v = f, v.clamp_min(0)
            elif est == "batched_score":
                # (1/n²)(Σ (V₁ − 2I²) + 2(Σ I)²), κ₄ = V₁ − 2I²
                v = (means["var1"][name] - 2 * means["fisher_sq"][name]) / n + 2 * f * f
                m, v = f, v.clamp_min(0)
            elif est == "merging_recipe":
                s = means["root_sum"][name]
                m, v = n * s * s, torch.zeros_like(f)
            elif est == "empirical":
                m, v = means["data_sq"][name], torch.zeros_like(f)
            elif est == "batched_score_data":
                s = means["data_sum"][name]
                m, v = n * s * s, torch.zeros_like(f)
            elif est == "per_position_score":
                m, v = f, means["factor_var1"][name] / n
            elif est == "argmax_label":
                m, v = means["argmax_sq"][name], torch.zeros_like(f)
            else:
                raise KeyError(est)
            mean[name], var[name] = m, v
        out["mean"][est] = mean
        out["var"][est] = var
        out["bias"][est] = {name: mean[name] - fisher[name] for name in fisher}
    return out


class EstimatorComparison(list):
    """Rows of :meth:`FisherVariances.compare_estimators`; ``print`` shows a table."""

    def __init__(self, rows=(), *, rel_error: float, prob: float, n_inputs: int):
        super().__init__(rows)
        self.rel_error, self.prob, self.n_inputs = rel_error, prob, n_inputs

    def table(self) -> str:
        head = [
            "group",
            "estimator",
            "rel. bias",
            "rel. std (1 draw)",
            "passes/draw",
            "draws",
            "passes",
            "best",
        ]
        body = [
            [
                r["group"],
                r["estimator"],
                f"{r['rel_bias']:.3g}",
                f"{r['rel_std']:.3g}",
                str(r["cost"]),
                _count(r["draws"]),
                _count(r["passes"]),
                "*" if r["best"] else "",
            ]
            for r in self
        ]
        return text_table(
            f"estimate of the mean Fisher over {self.n_inputs} inputs; draws for relative "
            f"error {self.rel_error:.0%} (Euclidean norm over the group) with probability "
            f"{self.prob:.0%}, by Chebyshev: var/((1−p)ε²‖F̄‖²); a biased estimator reaches it "
            "only if its relative bias is below ε",
            head,
            body,
        )

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__


def _count(x: float) -> str:
    if x == math.inf:
        return "never"
    return f"{x:,.0f}"


__all__ = [
    "DATA_LABEL_ESTIMATORS",
    "ESTIMATOR_NAMES",
    "EXTRA_QUANTITIES",
    "EstimatorComparison",
    "cost",
    "estimator_moments",
    "extra_unit_moments",
    "mode_suff_stat",
]
