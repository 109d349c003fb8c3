"""The empirical Fisher against the Fisher and its two unbiased estimators (docs/theory.md §5).

Labels drawn from the **data** ``q(y|x)`` instead of the model ``p(y|x, θ)`` give the
empirical Fisher. Per input ``x`` and parameter ``θ_i``, with ``δ = E_q[t] − η(h)``:

* squared-score form ``(∂_iℓ)²``: mean ``E_q[(u_iᵀ(t−η))²] = u_iᵀ(Cov_q[t] + δδᵀ)u_i``, so its
  bias w.r.t. ``I(θ_i|x)`` is ``u_iᵀ(Cov_q[t] − I(h) + δδᵀ)u_i``; single-label variance
  ``E_q[(u_iᵀ(t−η))⁴] − (E_q[(u_iᵀ(t−η))²])²`` with
  ``E_q[(t−η)^{⊗4}][v⁴] = μ_4^q[v⁴] + 4μ_3^q[v³](δᵀv) + 6(vᵀCov_q v)(δᵀv)² + (δᵀv)⁴``;
* Hessian form ``−∂²_iℓ``: mean ``I(θ_i|x) − δᵀw_i``, single-label variance
  ``w_iᵀ Cov_q[t] w_i``.

Two kinds of data labels are handled: labels of the same family at other natural
parameters ``h_q(x)`` (a *teacher* network — the labels are random, so the empirical
Fisher has a variance), and fixed labels (a data set's labels: a point mass, ``Cov_q = 0``,
variance zero — the empirical Fisher trades all its variance for bias).

Three independent routes, each a function here:

* :func:`empirical_fisher_exact` — the formulas above for **every** parameter of an MLP,
  through the per-unit factorisation of docs/theory.md §7 and the family kernels;
* :func:`empirical_fisher_enumerated` — for selected parameter entries, autograd on the
  log-likelihood of every label of a finite support, expectations by exact enumeration
  (docs/theory.md §6; none of the formulas);
* :func:`empirical_fisher_monte_carlo` — labels sampled from ``q``, autograd on each,
  sample means and variances with standard errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from fishsym.common import ESTIMATORS  # noqa: E402  (the glossary's one definition)
from fishsym.errors import ShapeError, UnsupportedModelError
from fishsym.experiments.derivatives import coordinate_derivatives, mlp_unit_derivatives


@dataclass
class EmpiricalFisherMoments:
    """Single-label means and variances per parameter entry, averaged over the inputs.

    Every attribute is a dict keyed by parameter name; tensors are shaped like the
    parameter (exact route) or ``[k]`` for ``k`` selected entries (enumeration route).

    * ``fisher``: ``E_x I(θ_i|x)``
    * ``var1`` / ``var2``: ``E_x V₁(θ_i|x)``, ``E_x V₂(θ_i|x)`` (model labels, docs/theory.md §2)
    * ``emp_mean`` / ``emp_var``: mean and single-label variance of the squared score
      ``(∂_iℓ)²`` under data labels ``q``, averaged over inputs
    * ``emp_hess_mean`` / ``emp_hess_var``: the same for ``−∂²_iℓ`` under ``q``

    With one label per input and ``n_inputs`` inputs, the estimator averaged over the
    inputs has mean ``emp_mean`` and variance ``emp_var / n_inputs`` (the inputs fixed).
    """

    n_inputs: int
    fisher: dict[str, torch.Tensor] = field(default_factory=dict)
    var1: dict[str, torch.Tensor] = field(default_factory=dict)
    var2: dict[str, torch.Tensor] = field(default_factory=dict)
    emp_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    emp_var: dict[str, torch.Tensor] = field(default_factory=dict)
    emp_hess_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    emp_hess_var: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def bias(self) -> dict[str, torch.Tensor]:
        """``E_x E_q[(∂_iℓ)²] − E_x I(θ_i|x)``: the empirical Fisher's bias."""
        return {k: self.emp_mean[k] - self.fisher[k] for k in self.fisher}

    @property
    def hess_bias(self) -> dict[str, torch.Tensor]:
        """``E_x E_q[−∂²_iℓ] − E_x I(θ_i|x) = −E_x δᵀw_i``."""
        return {k: self.emp_hess_mean[k] - self.fisher[k] for k in self.fisher}

    def select(self, coords: Mapping[str, torch.Tensor]) -> EmpiricalFisherMoments:
        """The same moments at selected flat indices (``[k]`` tensors)."""
        out = EmpiricalFisherMoments(self.n_inputs)
        for attr in (
            "fisher",
            "var1",
            "var2",
            "emp_mean",
            "emp_var",
            "emp_hess_mean",
            "emp_hess_var",
        ):
            src = getattr(self, attr)
            getattr(out, attr).update(
                {k: src[k].reshape(-1)[torch.as_tensor(idx)] for k, idx in coords.items()}
            )
        return out


# ---------------------------------------------------------------------- label distributions
def _check_data_labels(model_out: torch.Tensor, teacher_h, labels):
    if (teacher_h is None) == (labels is None):
        raise ValueError(
            "give exactly one of teacher_h (natural parameters of the data-label "
            "distribution, [n, d]) and labels (fixed data labels, one per input)"
        )
    if teacher_h is not None and teacher_h.shape != model_out.shape:
        raise ShapeError(
            f"teacher_h must have the shape of the model output {tuple(model_out.shape)}; "
            f"got {tuple(teacher_h.shape)}"
        )
    if labels is not None and labels.shape[0] != model_out.shape[0]:
        raise ShapeError(
            f"labels must hold one label per input ({model_out.shape[0]}); got shape "
            f"{tuple(labels.shape)}"
        )


def central_cubic(kernel, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``μ_3(h)[v, v, v] = E[((t−η)ᵀv)³]`` per column of ``v`` (``[..., d, K]`` → ``[..., K]``).

    The kernel contract has no cubic form, so: the kernel's ``cubic`` when it has one;
    exact enumeration for a finite support; zero for the Gaussian (symmetric about its
    mean); otherwise :class:`UnsupportedModelError`.
    """
    if hasattr(kernel, "cubic"):
        return kernel.cubic(h, v)
    try:
        support = kernel.support_labels()
    except Exception:  # noqa: BLE001 - any refusal means "not a finite support"
        support = None
    if support is not None:
        t = kernel.suff_stat(support).to(h.dtype)  # [S, d]
        eta = kernel.mean(h)  # [..., d]
        extra = (1,) * (h.ndim - 1)
        log_p = kernel.log_prob(support.reshape(support.shape[:1] + extra + support.shape[1:]), h)
        centred = t.reshape(t.shape[:1] + extra + t.shape[1:]) - eta  # [S, ..., d]
        proj = torch.einsum("s...c,...ck->s...k", centred, v)
        return (log_p.exp().unsqueeze(-1) * proj**3).sum(0)
    if kernel.name == "gaussian":
        return torch.zeros(v.shape[:-2] + v.shape[-1:], dtype=v.dtype)
    raise UnsupportedModelError(
        f"family {kernel.name!r}: the third central moment form is needed for the "
        "empirical-Fisher variance; it is available for finite supports and the Gaussian"
    )


# ---------------------------------------------------------------------- exact (formulas)
def _unit_moments(kernel, h, units, teacher_h, labels):
    """Per-input, per-unit coefficients (``[n, m]`` each) of one Linear layer."""
    G, S = units.jac, units.hess_diag
    eta = kernel.mean(h)
    f = kernel.quadratic(h, G)
    q4 = kernel.quartic(h, G)
    r = kernel.quadratic(h, S)
    if teacher_h is not None:
        delta = kernel.mean(teacher_h) - eta
        c2 = kernel.quadratic(teacher_h, G)
        c3 = central_cubic(kernel, teacher_h, G)
        c4 = kernel.quartic(teacher_h, G)
        hess_var = kernel.quadratic(teacher_h, S)
    else:
        delta = kernel.suff_stat(labels).to(h.dtype) - eta
        c2 = c3 = c4 = hess_var = torch.zeros_like(f)
    dg = torch.einsum("nc,ncm->nm", delta, G)
    ds = torch.einsum("nc,ncm->nm", delta, S)
    m2 = c2 + dg**2
    m4 = c4 + 4 * c3 * dg + 6 * c2 * dg**2 + dg**4
    return {
        "fisher": (f, 2),
        "var1": (q4 - f**2, 4),
        "var2": (r, 4),
        "emp_mean": (m2, 2),
        "emp_var": (m4 - m2**2, 4),
        "emp_hess_mean": (f - ds, 2),
        "emp_hess_var": (hess_var, 4),
    }


def empirical_fisher_exact(
    model: nn.Sequential,
    inputs: torch.Tensor,
    kernel,
    *,
    teacher_h: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    chunk_size: int = 128,
) -> EmpiricalFisherMoments:
    """Exact moments of the empirical Fisher, the Fisher and ``V₁``/``V₂`` for **every**
    parameter of an MLP (docs/theory.md §5 formulas through the factorisation of §7).

    Parameters
    ----------
    model: ``nn.Sequential`` of ``Linear`` layers and elementwise activations; its output
        is the natural parameter ``h`` of ``kernel``'s family.
    inputs: ``[n, *input_shape]`` (the model's dtype; float64 recommended).
    kernel: a :mod:`fishsym.kernels` family kernel.
    teacher_h: ``[n, d]`` natural parameters of the data labels (same family), or
    labels: fixed data labels, one per input (``[n, *obs_shape]``).

    Returns
    -------
    :class:`EmpiricalFisherMoments` with tensors shaped like the parameters. Reductions
    over inputs are matrix products ``Aᵀ Z^k``: no per-input, per-parameter tensor.
    """
    model_out = model(inputs).detach()
    _check_data_labels(model_out, teacher_h, labels)
    res = EmpiricalFisherMoments(n_inputs=inputs.shape[0])
    for start in range(0, inputs.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        x = inputs[sl]
        h = model_out[sl]
        th = None if teacher_h is None else teacher_h[sl].to(h.dtype)
        lab = None if labels is None else labels[sl]
        for units in mlp_unit_derivatives(model, x):
            coeffs = _unit_moments(kernel, h, units, th, lab)
            for attr, (coef, power) in coeffs.items():
                target = getattr(res, attr)
                w_sum = coef.transpose(0, 1) @ units.z_in.pow(power)  # [m, n_in]
                target[units.weight] = target.get(units.weight, 0) + w_sum
                if units.bias is not None:
                    target[units.bias] = target.get(units.bias, 0) + coef.sum(0)
    n = float(inputs.shape[0])
    for attr in ("fisher", "var1", "var2", "emp_mean", "emp_var", "emp_hess_mean", "emp_hess_var"):
        d = getattr(res, attr)
        for k in d:
            d[k] = d[k] / n
    return res


# ---------------------------------------------------------------------- exact (enumeration)
def _label_table(model, inputs, kernel, coords):
    """Score and curvature of every support label: ``[n, k, S]`` each, plus the support."""
    support = kernel.support_labels()

    def head(h, _unused):
        return kernel.log_prob(support, h)

    table = coordinate_derivatives(model, inputs, coords, head=head)
    return table, support


def _support_index(support: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Position of each label in the enumerated support (``[n]``)."""
    eq = support.unsqueeze(0) == labels.unsqueeze(1)  # [n, S, *obs]
    if eq.ndim > 2:
        eq = eq.flatten(2).all(-1)
    found = eq.any(1)
    if not bool(found.all()):
        raise ValueError("labels contain values outside the family's support")
    return eq.to(torch.int64).argmax(1)


def empirical_fisher_enumerated(
    model: nn.Module,
    inputs: torch.Tensor,
    kernel,
    coords: Mapping[str, torch.Tensor],
    *,
    teacher_h: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> EmpiricalFisherMoments:
    """The moments of :func:`empirical_fisher_exact` at selected entries, by autograd on
    the log-likelihood of every label of a finite support and exact enumeration
    (docs/theory.md §6). Uses none of the closed forms; any ``nn.Module`` works.

    Returns
    -------
    :class:`EmpiricalFisherMoments` with ``[k]`` tensors per selected parameter.
    """
    model_out = model(inputs).detach()
    _check_data_labels(model_out, teacher_h, labels)
    table, support = _label_table(model, inputs, kernel, coords)
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


# ---------------------------------------------------------------------- Monte Carlo
@dataclass
class MonteCarloMoments:
    """Sample moments of an estimator averaged over ``n_inputs`` inputs, one data label
    each, over ``replicates`` independent label draws (dicts name → ``[k]``).

    ``mean``/``var``: sample mean and (unbiased) sample variance of the replicates;
    ``se_mean`` = ``√(var/R)``; ``se_var`` = ``√((m₄ − var²)/R)`` with ``m₄`` the sample
    fourth central moment (docs/theory.md §6).
    """

    replicates: int
    mean: dict[str, torch.Tensor] = field(default_factory=dict)
    var: dict[str, torch.Tensor] = field(default_factory=dict)
    se_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    se_var: dict[str, torch.Tensor] = field(default_factory=dict)


def _sample_moments(values: torch.Tensor, out: MonteCarloMoments, name: str) -> None:
    """``values``: ``[k, R]`` replicate estimates."""
    R = values.shape[-1]
    mean = values.mean(-1)
    centred = values - mean.unsqueeze(-1)
    var = centred.pow(2).sum(-1) / (R - 1)
    m4 = centred.pow(4).mean(-1)
    out.mean[name] = mean
    out.var[name] = var
    out.se_mean[name] = (var / R).sqrt()
    out.se_var[name] = ((m4 - var**2).clamp_min(0) / R).sqrt()


def empirical_fisher_monte_carlo(
    model: nn.Module,
    inputs: torch.Tensor,
    kernel,
    coords: Mapping[str, torch.Tensor],
    teacher_h: torch.Tensor,
    replicates: int,
    generator: torch.Generator,
) -> dict[str, MonteCarloMoments]:
    """Monte Carlo of the empirical Fisher with labels drawn from the teacher ``q``.

    Each replicate draws one label per input from ``q(y|x_n) = p(y | h_q(x_n))`` with
    ``generator`` and forms both data-label estimators averaged over the inputs,
    ``(1/n) Σ_n (∂_iℓ(y_n|x_n))²`` and ``−(1/n) Σ_n ∂²_iℓ(y_n|x_n)``, by autograd.

    Returns
    -------
    ``{"squared_score": MonteCarloMoments, "neg_hessian": MonteCarloMoments}``, tensors
    ``[k]`` per selected parameter; compare ``mean`` with ``emp_mean`` and ``var`` with
    ``emp_var / n`` of :func:`empirical_fisher_exact`.
    """
    if replicates < 2:
        raise ValueError(f"replicates must be at least 2 to estimate a variance; got {replicates}")
    draws = kernel.sample(teacher_h.detach(), replicates, generator)  # [R, n, *obs]
    labels = draws.transpose(0, 1)  # [n, R, *obs]

    def head(h, y):
        return kernel.log_prob(y, h)

    table = coordinate_derivatives(model, inputs, coords, head=head, head_args=labels)
    out = {e: MonteCarloMoments(replicates) for e in ESTIMATORS}
    for name, (score, curv) in table.items():  # [n, k, R]
        _sample_moments(score.pow(2).mean(0), out["squared_score"], name)
        _sample_moments(-curv.mean(0), out["neg_hessian"], name)
    return out


__all__ = [
    "ESTIMATORS",
    "EmpiricalFisherMoments",
    "MonteCarloMoments",
    "central_cubic",
    "empirical_fisher_exact",
    "empirical_fisher_enumerated",
    "empirical_fisher_monte_carlo",
]
