"""Exact single-label moments of ``Î₁`` and ``Î₂`` from autograd on ``ℓ`` (docs/theory.md §6).

For an input ``x`` and a parameter entry ``θ_p``, with ``y ∼ p(y | x, θ)``:

    mean1 = E[(∂_pℓ)²]                     var1 = Var[(∂_pℓ)²]
    mean2 = E[−∂²_pℓ]                      var2 = Var[−∂²_pℓ]

(both means equal the conditional Fisher information ``I(θ_p | x)``; ``var1``, ``var2`` are
the single-label variances ``V₁``, ``V₂`` of docs/theory.md §2 with ``N = 1``). The expectation is
a finite weighted sum over labels (:mod:`fishsym.reference.rules`), exact for the
polynomials in ``t`` involved; the per-label derivatives are plain autograd on
``kernel.log_prob`` (:mod:`fishsym.reference.derivatives`). No closed form of the mean,
Fisher information or moments of the family is used: this is an independent oracle for
:func:`fishsym.fisher_variances`.
"""

from __future__ import annotations

import torch
from torch import nn

from fishsym import kernels as _kernels
from fishsym.common import as_inputs, cast_inputs, check_memory, math_attention, memory_budget
from fishsym.common.mask import masked_inputs
from fishsym.common.model import translate_model_errors
from fishsym.errors import NonFiniteError
from fishsym.reference.derivatives import BLOCK_ELEMENTS, label_curvatures, label_scores
from fishsym.reference.rules import LabelRule, label_rule
from fishsym.reference.selection import FunctionalModel, ParamSelection, select_params

#: the estimator names of the glossary, with the exact_moments keys of each
ESTIMATOR_KEYS = {"squared_score": ("mean1", "var1"), "neg_hessian": ("mean2", "var2")}


class ExactMoments(dict):
    """The result of :func:`exact_moments`: a dict with keys ``mean1``, ``var1``,
    ``mean2``, ``var2``, each ``{name: tensor}`` keyed like ``model.named_parameters()``.

    Each tensor is ``[n_inputs, *param.shape]`` for a parameter selected whole, or
    ``[n_inputs, k]`` for ``k`` selected flat indices (listed in :attr:`indices`).

    Attributes
    ----------
    indices:
        ``{name: LongTensor [k] of flat indices into param.flatten(), or None (whole)}``.
    central4_1, central4_2:
        ``{name: tensor}`` shaped like the above: the exact fourth central moments
        ``E[(Î − I)⁴]`` of the single-label ``Î₁`` and ``Î₂`` (used by
        :func:`fishsym.montecarlo.compare` for exact standard errors).
    rule:
        The :class:`~fishsym.reference.rules.LabelRule` kind and detail, as a string.
    tail_bound:
        Certified truncation bound of the rule (0.0 for exact rules).
    family:
        The family's name.
    per_sample:
        Always True (one value per input), for symmetry with ``FisherVariances``.
    """

    per_sample = True

    def __init__(
        self,
        moments: dict,
        *,
        selection: ParamSelection,
        central4_1: dict,
        central4_2: dict,
        rule: LabelRule,
        family: str,
    ):
        super().__init__(moments)
        self.selection = selection
        self.indices = dict(selection.indices)
        self.central4_1 = central4_1
        self.central4_2 = central4_2
        self.rule = f"{rule.kind}: {rule.detail}"
        self.tail_bound = rule.tail_bound
        self.family = family

    def __repr__(self) -> str:
        names = ", ".join(self["mean1"])
        return f"<ExactMoments family={self.family!r} params=[{names}] rule={self.rule!r}>"


@translate_model_errors
def exact_moments(
    model: nn.Module,
    inputs,
    family,
    params=None,
    *,
    output=None,
    max_memory: float | None = None,
    mask=None,
) -> ExactMoments:
    """Exact mean and variance of the single-label ``Î₁`` and ``Î₂`` per input and entry.

    Parameters
    ----------
    model:
        Network whose output for a batch ``[n, ...]`` is the natural parameter ``h``
        ``[n, d]``. Evaluated functionally in float64 on copies of its parameters.
    inputs:
        ``[n_inputs, ...]``.
    family:
        Registered family name (size inferred from ``d``), ``ExponentialFamily`` or kernel.
    params:
        Which entries to compute: ``None`` (all), a list of names (whole tensors), or
        ``{name: flat indices}`` (see :func:`fishsym.reference.selection.select_params`).
    output:
        Selector of the natural parameters from the model's output (tuple, dict,
        HuggingFace-style outputs), e.g. ``lambda out: out.logits``.
    mask:
        Padding mask ``[n_inputs, *factors]`` of an output with factor axes, as for
        :func:`fishsym.fisher_variances`: a masked position is an absent factor.
    max_memory:
        Bytes the computation may plan to use (default: half of this machine's memory);
        a larger request is refused before anything is allocated.

    Returns
    -------
    ExactMoments
        ``{"mean1", "var1", "mean2", "var2"}`` → ``{name: [n_inputs, *shape] or [n_inputs, k]}``,
        float64.

    Raises
    ------
    ShapeError
        Bad ``inputs``, or ``params`` naming unknown parameters / out-of-range indices.
    UnsupportedModelError
        The family has no exact label rule (e.g. gamma, beta); a stochastic model
        (training-mode Dropout/BatchNorm), a final Softmax/Sigmoid, no trainable parameter.
    MemoryBudgetError
        The per-label derivatives of the selected entries would not fit ``max_memory``.
    NonFiniteError
        The network output or a derivative is not finite.
    """
    x, layout = masked_inputs(as_inputs(inputs), mask)
    fmodel = FunctionalModel(model, torch.float64, output=output, mask_layout=layout)
    sel = select_params(model, params)
    x = cast_inputs(x, torch.float64, fmodel.device)
    kernel = _kernels.for_output(family, fmodel.probe(x), fmodel.out_shape)
    h = fmodel.outputs(x)
    kernel.check_h(h)
    rule = label_rule(kernel, h)
    n, J = rule.labels.shape[:2]
    k = sum(sel.count(name) for name in sel.names)
    # per-label scores and curvatures [n, J, k], six [n, k] results, and the vectorised
    # blocks (each bounded by BLOCK_ELEMENTS entries, a few alive at once)
    working, per_entry = 8 * 4 * BLOCK_ELEMENTS, 8 * n * (2 * J + 6)
    budget = memory_budget(max_memory, fmodel.device)
    check_memory(
        per_entry * k + working,
        budget,
        f"exact_moments for {n} inputs × {J} labels × {k:,} parameter entries",
        f"At most {max(1, (budget - working) // per_entry):,} entries fit: select some with "
        "params={name: flat indices} (e.g. fishsym.reference.sample_params), or pass "
        "fewer inputs.",
    )
    with math_attention():
        scores = label_scores(fmodel, kernel, x, rule.labels, sel)
        curvatures = label_curvatures(fmodel, kernel, x, rule.labels, sel)
    weights = rule.weights.unsqueeze(-1)  # [n, J, 1]

    moments = {key: {} for key in ("mean1", "var1", "mean2", "var2")}
    central4_1, central4_2 = {}, {}
    for name in sel.names:
        for key_mean, key_var, c4, per_label in (
            ("mean1", "var1", central4_1, scores[name] ** 2),
            ("mean2", "var2", central4_2, -curvatures[name]),
        ):
            if not bool(torch.isfinite(per_label).all()):
                raise NonFiniteError(
                    f"exact_moments: a per-label derivative of {name!r} is not finite"
                )
            mean = (weights * per_label).sum(1)
            dev = per_label - mean.unsqueeze(1)
            moments[key_mean][name] = sel.reshape(name, mean)
            moments[key_var][name] = sel.reshape(name, (weights * dev**2).sum(1))
            c4[name] = sel.reshape(name, (weights * dev**4).sum(1))
    return ExactMoments(
        moments,
        selection=sel,
        central4_1=central4_1,
        central4_2=central4_2,
        rule=rule,
        family=kernel.name,
    )


__all__ = ["exact_moments", "ExactMoments", "ESTIMATOR_KEYS"]
