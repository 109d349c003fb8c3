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

Three independent routes, one per stage of the pipeline:

* :func:`empirical_fisher_exact` (here) — the formulas above for **every** parameter, on
  top of the engine: its blocks' ``u``/``w`` (the Linear factorisation of docs/theory.md
  §7 on MLPs, dense columns on the generic path) and the family kernels;
* :func:`fishsym.reference.empirical.empirical_fisher_enumerated` — for selected entries,
  autograd on the log-likelihood of every label of a finite support, expectations by
  exact enumeration (docs/theory.md §6; none of the formulas);
* :func:`fishsym.montecarlo.empirical.empirical_fisher_monte_carlo` — labels sampled
  from ``q``, autograd on each, sample means and variances with standard errors.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from fishsym import engine as _engine
from fishsym import kernels as _kernels
from fishsym.common import ModelView, cast_inputs, check_count, check_dtype
from fishsym.common import distributed as _dist
from fishsym.common.data import DataSource
from fishsym.common.distributed import use_distributed
from fishsym.common.model import translate_model_errors
from fishsym.errors import InvalidArgumentError, ShapeError, UnsupportedModelError

#: the moments, and which of them are quadratic in ``u`` (the rest are quartic in ``u``
#: or quadratic in ``w``): a factorised block carries ``z²`` resp. ``z⁴``
QUANTITIES = ("fisher", "var1", "var2", "emp_mean", "emp_var", "emp_hess_mean", "emp_hess_var")
POWER2 = ("fisher", "emp_mean", "emp_hess_mean")


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


def _check_data_labels(model_out: torch.Tensor, teacher_h, labels):
    if (teacher_h is None) == (labels is None):
        raise InvalidArgumentError(
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


def central_cubic(kernel, h: Tensor, v: Tensor) -> Tensor:
    """``μ_3(h)[v, v, v] = E[((t−η)ᵀv)³]`` per column of ``v`` (``[..., d, K]`` → ``[..., K]``).

    The kernel's ``cubic`` form; for a kernel without one (a user kernel that implements
    only the docs/theory.md §2 contract), exact enumeration of a finite support, else
    :class:`UnsupportedModelError`.
    """
    try:
        return kernel.cubic(h, v)
    except NotImplementedError:
        pass
    try:
        support = kernel.support_labels()
    except Exception as err:  # noqa: BLE001 - any refusal means "not a finite support"
        raise UnsupportedModelError(
            f"family {kernel.name!r}: the third central moment form μ_3[v³] is needed for the "
            "empirical-Fisher variance; the kernel has no cubic form and no finite support "
            "to enumerate"
        ) from err
    t = kernel.suff_stat(support).to(h.dtype)  # [S, d]
    eta = kernel.mean(h)  # [..., d]
    extra = (1,) * (h.ndim - 1)
    log_p = kernel.log_prob(support.reshape(support.shape[:1] + extra + support.shape[1:]), h)
    centred = t.reshape(t.shape[:1] + extra + t.shape[1:]) - eta  # [S, ..., d]
    proj = torch.einsum("s...c,...ck->s...k", centred, v)
    return (log_p.exp().unsqueeze(-1) * proj**3).sum(0)


def _unit_moments(kernel, h, jac, hess, teacher_h, labels) -> dict[str, Tensor]:
    """Per-input, per-unit (or per-entry) moments ``[n, a]`` from a block's ``u``-vectors
    ``jac`` and ``w``-vectors ``hess`` (``None``: ``w ≡ 0``)."""
    eta = kernel.mean(h)
    f = kernel.quadratic(h, jac)
    zero = torch.zeros_like(f)
    r = kernel.quadratic(h, hess) if hess is not None else zero
    if teacher_h is not None:
        delta = kernel.mean(teacher_h) - eta
        c2 = kernel.quadratic(teacher_h, jac)
        c3 = central_cubic(kernel, teacher_h, jac)
        hess_var = kernel.quadratic(teacher_h, hess) if hess is not None else zero
    else:
        delta = kernel.suff_stat(labels).to(h.dtype) - eta
        c2 = c3 = hess_var = zero
    dg = torch.einsum("nc,ncm->nm", delta, jac)
    ds = torch.einsum("nc,ncm->nm", delta, hess) if hess is not None else zero
    m2 = c2 + dg**2
    # Var_q[(X + δᵀu)²] with X = uᵀ(t − η_q): E[(X+δ)⁴] − (E[(X+δ)²])² expands to
    # Var_q[X²] + 4μ_3δ + 4c₂δ², the first term cancellation-free from the kernel, so the
    # squared mean is never subtracted from itself
    if teacher_h is not None:
        emp_var = kernel.var_squared(teacher_h, jac) + 4 * c3 * dg + 4 * c2 * dg**2
    else:
        emp_var = zero  # a point mass: the squared score is fixed
    return {
        "fisher": f,
        "var1": kernel.var_squared(h, jac),
        "var2": r,
        "emp_mean": m2,
        "emp_var": emp_var,
        "emp_hess_mean": f - ds,
        "emp_hess_var": hess_var,
    }


@translate_model_errors
def empirical_fisher_exact(
    model: nn.Module,
    inputs,
    kernel,
    *,
    teacher_h: Tensor | None = None,
    labels: Tensor | None = None,
    chunk_size: int = 128,
    dtype: torch.dtype | None = None,
    path: str = "auto",
    max_inputs: int | None = None,
    distributed: bool | None = None,
) -> EmpiricalFisherMoments:
    """Exact moments of the empirical Fisher, the Fisher and ``V₁``/``V₂`` for **every**
    parameter (docs/theory.md §5 formulas on the engine's ``u``, ``w``).

    Parameters
    ----------
    model: an ``nn.Module`` whose output is the natural parameter ``h`` of the family
        (never modified); MLPs take the structured path, other models the generic one.
    inputs: ``[n, *input_shape]``, or a ``Dataset`` / ``DataLoader`` of batches
        ``(x, y)`` whose ``y`` are the data labels (:mod:`fishsym.common.data`).
    kernel: a :mod:`fishsym.kernels` family kernel, or a family (name, symbolic family).
    teacher_h: ``[n, d]`` natural parameters of the data labels (same family), or
    labels: fixed data labels, one per input (``[n, *obs_shape]``).
    chunk_size: inputs per engine pass.
    dtype: working dtype (default float64).
    path: the engine, as for :func:`fishsym.fisher_variances`.
    max_inputs, distributed: as for :func:`fishsym.fisher_variances`.

    Returns
    -------
    :class:`EmpiricalFisherMoments` with tensors shaped like the parameters. A factorised
    block's sums over inputs are matrix products ``Aᵀ Z^k``: no per-input, per-parameter
    tensor.
    """
    dtype = check_dtype(dtype)
    chunk_size = check_count(chunk_size, "chunk_size")
    source = DataSource(inputs, max_inputs=max_inputs)
    reduce_ranks = use_distributed(distributed)
    view = ModelView(model, dtype)
    stream = source.batches()
    first_x, first_y = next(stream)
    first_x = cast_inputs(first_x, dtype, view.device)
    out_dim = view.probe(first_x)
    if not source.in_memory:
        if teacher_h is not None or labels is not None:
            raise InvalidArgumentError(
                "with a dataset or data loader the data labels come from its batches "
                "(x, y); teacher_h= and labels= go with in-memory inputs"
            )
        if first_y is None:
            raise InvalidArgumentError(
                "the empirical Fisher needs data labels: give batches (x, y)"
            )
    else:
        if source.max_inputs is not None:
            teacher_h = None if teacher_h is None else teacher_h[: source.max_inputs]
            labels = None if labels is None else labels[: source.max_inputs]
        model_out = view.outputs(first_x)
        _check_data_labels(model_out, teacher_h, labels)
    kernel = _kernels.for_output(kernel, out_dim, view.out_shape)
    eng = _engine.select(view, path)
    eng.prepare(first_x)
    shapes = {name: view.params[name].shape for name in eng.param_names()}
    store = {
        name: {q: torch.zeros(shape, dtype=dtype, device=view.device) for q in QUANTITIES}
        for name, shape in shapes.items()
    }
    n_inputs = 0
    with torch.no_grad() if eng.no_grad else contextlib.nullcontext():
        for index, (xb, yb) in enumerate(itertools.chain([(first_x, first_y)], stream)):
            xb = xb if index == 0 else cast_inputs(xb, dtype, view.device)
            if not source.in_memory:
                if yb is None:
                    raise InvalidArgumentError(f"inputs: batch {index} has no labels (x, y)")
                labels = yb
            for start in range(0, xb.shape[0], chunk_size):
                rows = slice(start, min(start + chunk_size, xb.shape[0]))
                th = None
                if teacher_h is not None:
                    th = teacher_h[rows].to(device=view.device, dtype=dtype)
                lab = None if labels is None else labels[rows]
                h, batches = eng.batches(xb[rows], out_dim)
                for batch in batches:
                    for pd in batch:
                        moments = _unit_moments(kernel, h, pd.jac, pd.hess_diag, th, lab)
                        pd.reduce(store[pd.name], moments, rows, False, power2=POWER2)
            n_inputs += xb.shape[0]
    if reduce_ranks:
        _dist.all_reduce_sum([t for st in store.values() for t in st.values()])
        n_inputs = _dist.all_reduce_count(n_inputs, view.device)
    res = EmpiricalFisherMoments(n_inputs=n_inputs)
    for q in QUANTITIES:
        getattr(res, q).update({name: store[name][q].detach() / n_inputs for name in shapes})
    return res


__all__ = ["EmpiricalFisherMoments", "central_cubic", "empirical_fisher_exact"]
