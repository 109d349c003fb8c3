"""The empirical Fisher by exact enumeration of a finite label support (docs/theory.md
§5, §6): the reference route of :func:`fishsym.variance.empirical.empirical_fisher_exact`.

Per selected entry, the score ``∂_pℓ(y)`` and curvature ``∂²_pℓ(y)`` of every label ``y``
of the support come from forward-mode autograd on ``kernel.log_prob``
(:func:`fishsym.reference.coordinates.coordinate_derivatives`); the expectations under
the model ``p`` and under the data labels ``q`` are finite sums. None of the closed forms
of docs/theory.md §5 is used.
"""

from __future__ import annotations

import torch
from torch import nn

from fishsym.common import ModelView, as_inputs
from fishsym.errors import DomainError
from fishsym.reference.coordinates import coordinate_derivatives
from fishsym.variance.empirical import EmpiricalFisherMoments, _check_data_labels


def _label_table(model, inputs, kernel, params):
    """Score and curvature of every support label: ``[n, k, S]`` each, plus the support."""
    support = kernel.support_labels()

    def head(h, _unused):
        return kernel.log_prob(support, h)

    table = coordinate_derivatives(model, inputs, params, head=head)
    return table, support


def _support_index(support: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Position of each label in the enumerated support (``[n]``)."""
    eq = support.unsqueeze(0) == labels.unsqueeze(1)  # [n, S, *obs]
    if eq.ndim > 2:
        eq = eq.flatten(2).all(-1)
    found = eq.any(1)
    if not bool(found.all()):
        raise DomainError("labels contain values outside the family's support")
    return eq.to(torch.int64).argmax(1)


def empirical_fisher_enumerated(
    model: nn.Module,
    inputs: torch.Tensor,
    kernel,
    params=None,
    *,
    teacher_h: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> EmpiricalFisherMoments:
    """The moments of :func:`empirical_fisher_exact` at selected entries, by autograd on
    the log-likelihood of every label of a finite support and exact enumeration
    (docs/theory.md §6). Uses none of the closed forms; any ``nn.Module`` works.
    ``params``: the entries (``None``: all; names; ``{name: flat indices}``).

    Returns
    -------
    :class:`EmpiricalFisherMoments` with ``[k]`` tensors per selected parameter.
    """
    inputs = as_inputs(inputs)
    first = next(iter(model.parameters()), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float64
    model_out = ModelView(model, dtype).outputs(inputs)
    _check_data_labels(model_out, teacher_h, labels)
    table, support = _label_table(model, inputs, kernel, params)
    S = support.shape[0]
    extra_p = support.reshape(support.shape[:1] + (1,) + support.shape[1:])
    p = kernel.log_prob(extra_p, model_out).exp().transpose(0, 1)  # [n, S]
    if teacher_h is not None:
        q = kernel.log_prob(extra_p, teacher_h.to(model_out.dtype)).exp().transpose(0, 1)
    else:
        q = torch.nn.functional.one_hot(_support_index(support, labels), S).to(model_out.dtype)
    res = EmpiricalFisherMoments(n_inputs=inputs.shape[0])
    for name, (score, curv) in table.items():
        pk, qk = p.unsqueeze(1), q.unsqueeze(1)  # [n, 1, S]
        fisher = (pk * score**2).sum(-1)
        mean2 = (pk * -curv).sum(-1)
        res.fisher[name] = fisher.mean(0)
        res.var1[name] = ((pk * score**4).sum(-1) - fisher**2).mean(0)
        res.var2[name] = ((pk * curv**2).sum(-1) - mean2**2).mean(0)
        emp = (qk * score**2).sum(-1)
        res.emp_mean[name] = emp.mean(0)
        res.emp_var[name] = ((qk * score**4).sum(-1) - emp**2).mean(0)
        hess = (qk * -curv).sum(-1)
        res.emp_hess_mean[name] = hess.mean(0)
        res.emp_hess_var[name] = ((qk * curv**2).sum(-1) - hess**2).mean(0)
    return res


__all__ = ["empirical_fisher_enumerated"]
