"""Monte Carlo estimates of ``Î₁`` and ``Î₂`` with labels drawn from the model (docs/theory.md §2).

What a practitioner would do, made rigorous: for each input ``x_n`` draw
``M = n_labels × replicates`` labels ``y_m ∼ p(y | x_n, θ)`` with an explicit
``torch.Generator``, split them into ``replicates`` disjoint groups of ``n_labels``, and
form in each group ``r``

    Î₁,r(θ_p | x_n) = (1/n_labels) Σ_{m ∈ r} (∂_p ℓ(y_m))²          ("squared_score")
    Î₂,r(θ_p | x_n) = −(1/n_labels) Σ_{m ∈ r} ∂²_p ℓ(y_m)           ("neg_hessian")

by autograd on the sampled log-likelihoods ``ℓ(y) = log p(y | h(x; θ))``. The per-label
derivatives are factored through ``h`` by the chain rule — exactly, for any model:

    ∂_p ℓ(y)  = ∇_hℓ(y) · u_p                        u_p = ∂h/∂θ_p
    ∂²_p ℓ(y) = ∇_hℓ(y) · w_p + u_pᵀ ∇²_hℓ(y) u_p     w_p = ∂²h/∂θ_p²

``∇_hℓ`` and ``∇²_hℓ`` come from autograd on ``kernel.log_prob`` once per sampled label;
``u`` (all entries) from ``d`` reverse passes per input (``vjp``, the network Jacobian),
and ``(u_p, w_p)`` of the entries selected for ``Î₂`` from one forward-over-forward pass
per input and entry (``jvp`` of ``jvp``: the ``p``-th entry of the Hessian-vector
product with ``e_p``). Summed over a replicate,

    Σ_{m∈r} (∂_pℓ)²  = u_pᵀ S_r u_p,          S_r = Σ_{m∈r} ∇_hℓ ∇_hℓᵀ
    Σ_{m∈r} ∂²_pℓ    = G_r · w_p + u_pᵀ H_r u_p,   G_r = Σ ∇_hℓ,  H_r = Σ ∇²_hℓ,

so the work is ``O(M d²)`` per input for the labels plus ``O(R d² P)`` for ``Î₁`` —
instead of materialising ``M × P`` per-sample gradients — and one network pass per
entry for ``Î₂``. The numbers are those of per-sample ``vmap(grad)`` / Hessian-vector
products (the tests hold them to a per-label ``torch.autograd`` loop). No closed form of
the family (mean, Fisher information, moments) is used. The replicates are independent,
so their sample mean, sample variance and fourth central moment estimate ``I(θ_p|x_n)``,
the variance ``V_a/n_labels`` of the ``n_labels``-label estimator and its fourth moment.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import grad, vjp, vmap
from torch.func import hessian as hessian_fn

from fishsym import kernels as _kernels
from fishsym.common import (
    ESTIMATORS,
    cast_inputs,
    check_count,
    check_dtype,
    check_generator,
    check_memory,
    math_attention,
    memory_budget,
)
from fishsym.common import distributed as _dist
from fishsym.common.data import materialise
from fishsym.common.distributed import use_distributed
from fishsym.common.mask import masked_inputs
from fishsym.common.model import translate_model_errors
from fishsym.common.progress import progress_bar
from fishsym.engine.generic import GenericModel
from fishsym.errors import InvalidArgumentError, NonFiniteError, NoSamplerError
from fishsym.reference.selection import FunctionalModel, ParamSelection, select_params

#: upper bound on float entries materialised by one vectorised call (per-label gradients
#: of the selected tensors); 2^24 float32 entries = 64 MiB
BLOCK_ELEMENTS = 2**24
#: show a progress bar when a run needs at least this many vectorised calls (and
#: ``progress`` is not given) and stderr is a terminal
PROGRESS_MIN_CALLS = 50
_SAME = object()


@dataclass
class MonteCarloEstimate:
    """Replicated Monte Carlo estimates of ``Î₁`` / ``Î₂`` per input and parameter entry.

    ``mean[est][name]``, ``var[est][name]`` and ``central4[est][name]`` are float64
    tensors ``[n_inputs, *param.shape]`` (whole parameter) or ``[n_inputs, k]`` (``k``
    selected flat indices, see ``selection[est].indices``): over the ``replicates``
    independent ``n_labels``-label estimates, their sample mean, unbiased sample
    variance ``s²`` and (biased) fourth central moment ``m₄``. ``est`` is
    ``"squared_score"`` (``Î₁``) or ``"neg_hessian"`` (``Î₂``).
    """

    family: str
    n_labels: int
    replicates: int
    n_inputs: int
    dtype: torch.dtype
    selection: dict[str, ParamSelection]
    mean: dict[str, dict[str, Tensor]]
    var: dict[str, dict[str, Tensor]]
    central4: dict[str, dict[str, Tensor]]
    seconds: float

    @property
    def estimators(self) -> tuple[str, ...]:
        return tuple(self.mean)

    def se_mean(self, est: str) -> dict[str, Tensor]:
        """Standard error of the sample mean, ``s/√R``."""
        R = self.replicates
        return {n: (v / R).sqrt() for n, v in self.var[est].items()}

    def se_var(self, est: str) -> dict[str, Tensor]:
        """Standard error of the sample variance from the empirical fourth moment:
        ``√((m₄ − s⁴(R−3)/(R−1))/R)``, the plug-in of ``Var(s²) = (μ₄ − σ⁴(R−3)/(R−1))/R``
        (≈ ``√((m₄ − s⁴)/R)`` for large ``R``, docs/theory.md §6)."""
        R = self.replicates
        return {
            n: ((self.central4[est][n] - v**2 * (R - 3) / (R - 1)).clamp(min=0) / R).sqrt()
            for n, v in self.var[est].items()
        }

    def ess(self, est: str) -> dict[str, Tensor]:
        """Effective number of replicates carrying the sample variance,
        ``(Σ_r d_r²)² / Σ_r d_r⁴ = R m₂²/m₄`` (``d_r`` the deviations, ``m₂`` biased): about
        ``R/3`` for normal replicates, about the number of rare events when a few
        replicates carry all the variance; 0 when all replicates are equal."""
        R = self.replicates
        out = {}
        for n, v in self.var[est].items():
            m2 = v * (R - 1) / R
            m4 = self.central4[est][n]
            out[n] = torch.where(
                m4 > 0, R * m2**2 / m4.clamp(min=torch.finfo(m4.dtype).tiny), torch.zeros_like(m4)
            )
        return out

    # the exact_moments vocabulary
    @property
    def mean1(self):
        return self.mean["squared_score"]

    @property
    def var1(self):
        return self.var["squared_score"]

    @property
    def mean2(self):
        return self.mean["neg_hessian"]

    @property
    def var2(self):
        return self.var["neg_hessian"]

    def __repr__(self) -> str:
        return (
            f"<MonteCarloEstimate family={self.family!r} estimators={list(self.estimators)} "
            f"n_inputs={self.n_inputs} n_labels={self.n_labels} replicates={self.replicates} "
            f"({self.seconds:.2f} s)>"
        )


def draw_labels(kernel, h: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` labels per input from ``p(y | h)``: ``[n_inputs, n, *obs_shape]``.

    A family whose kernel has no sampler raises :class:`~fishsym.errors.NoSamplerError`.
    """
    try:
        y = kernel.sample(h, n, generator=generator)
    except NotImplementedError as err:  # NoSamplerError, or a user kernel's own
        raise NoSamplerError(
            f"fishsym.montecarlo: family {kernel.name!r} has no sampler ({err}); Monte Carlo "
            f"needs kernel.sample"
        ) from err
    return y.movedim(0, 1)


@translate_model_errors
def estimate(
    model: nn.Module,
    inputs: Tensor,
    family,
    n_labels: int,
    replicates: int,
    generator: torch.Generator,
    params=None,
    *,
    hessian_params=_SAME,
    estimators=ESTIMATORS,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    output=None,
    max_memory: float | None = None,
    max_inputs: int | None = None,
    distributed: bool | None = None,
    mask=None,
) -> MonteCarloEstimate:
    """Replicated Monte Carlo estimates of ``Î₁`` and ``Î₂`` (docs/theory.md §2, §6).

    Parameters
    ----------
    model, inputs, family:
        As in :func:`fishsym.reference.exact_moments`; ``h = model(inputs)``.
    n_labels:
        Labels averaged by one estimate (``N`` of docs/theory.md §2), ≥ 1 (one label per
        estimate is what practitioners use: BackPACK's and laplace-torch's default).
    replicates:
        Independent estimates per input, ≥ 2. The returned variance is that of the
        ``n_labels``-label estimator; ``n_labels × replicates`` labels are drawn per input.
    generator:
        The ``torch.Generator`` every label is drawn from (no global random state).
    params:
        Entries for ``Î₁`` (and ``Î₂`` unless ``hessian_params`` is given): ``None`` (all),
        a list of names, or ``{name: flat indices}``.
    hessian_params:
        Entries for ``Î₂`` when they differ (its cost grows with the number of entries,
        that of ``Î₁`` does not).
    estimators:
        Which of ``"squared_score"``, ``"neg_hessian"`` to compute.
    dtype:
        Working dtype of the derivatives (default: the model's). Per-replicate label
        sums are accumulated in float64; results are returned in float64.
    progress:
        Show a tqdm progress bar (default: for long runs, on a terminal or in a notebook).
    output:
        Selector of the natural parameters from the model's output, e.g.
        ``lambda out: out.logits``.
    mask:
        Padding mask ``[n_inputs, *factors]`` of an output with factor axes, as for
        :func:`fishsym.fisher_variances`: a masked position is an absent factor.
    max_memory:
        Bytes the run may plan to use (default: half of this machine's memory); a larger
        request is refused before anything is allocated.
    max_inputs:
        Use at most this many inputs (a ``Dataset`` / ``DataLoader`` is read into memory).
    distributed:
        Under an initialised ``torch.distributed`` group (``None``: whenever one with more
        than one rank is), each rank passes its own inputs and draws its labels from its
        own stream (:func:`fishsym.common.distributed.rank_generator`); the per-input
        results are gathered in rank order, so every rank returns all of them.

    Returns
    -------
    MonteCarloEstimate
        Per estimator and parameter: sample means, variances and fourth central moments,
        ``[n_inputs, *shape]`` or ``[n_inputs, k]``; standard errors via ``se_mean``,
        ``se_var``.

    Raises
    ------
    InvalidArgumentError, ArgumentTypeError
        ``n_labels`` < 1, ``replicates`` < 2, a dtype other than float32/float64, unknown
        estimator names.
    ShapeError
        Bad ``inputs``, unknown parameter names or out-of-range indices.
    MemoryBudgetError
        Label sums or results that would not fit ``max_memory``.
    NoSamplerError
        The family's kernel has no sampler.
    """
    n_labels = check_count(n_labels, "n_labels", minimum=1)
    replicates = check_count(replicates, "replicates", minimum=2)
    check_generator(generator)
    estimators = (estimators,) if isinstance(estimators, str) else tuple(estimators)
    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad or not estimators:
        raise InvalidArgumentError(
            f"estimators must be a non-empty subset of {ESTIMATORS}; got {estimators}"
        )
    x, _ = materialise(inputs, max_inputs=max_inputs)
    x, layout = masked_inputs(x, mask)
    reduce_ranks = use_distributed(distributed)
    if reduce_ranks:
        generator = _dist.rank_generator(generator)
    if dtype is None:
        first = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        dtype = first.dtype if first is not None and first.dtype == torch.float32 else None
    dtype = check_dtype(dtype)
    fmodel = FunctionalModel(model, dtype, output=output, mask_layout=layout)
    sel1 = select_params(model, params)
    sel2 = sel1 if hessian_params is _SAME else select_params(model, hessian_params)
    selections = {"squared_score": sel1, "neg_hessian": sel2}
    x = cast_inputs(x, dtype, fmodel.device)
    kernel = _kernels.for_output(family, fmodel.probe(x), fmodel.out_shape)
    with math_attention():
        h = fmodel.outputs(x)
    kernel.check_h(h)
    n, d = h.shape
    k_total = sum(
        sum(selections[e].count(name) for name in selections[e].names) for e in estimators
    )
    # per-replicate label sums G, S (and H) in float64, labels, results [3, n, k] per
    # estimator, and the vectorised blocks (BLOCK_ELEMENTS entries each)
    needed = (
        8 * n * replicates * (d + 2 * d * d)
        + 8 * n * n_labels * replicates * max(1, kernel.d)
        + 24 * n * k_total
        + 8 * 4 * BLOCK_ELEMENTS
    )
    check_memory(
        needed,
        memory_budget(max_memory, fmodel.device),
        f"montecarlo.estimate for {n} inputs × {replicates} replicates × {n_labels} labels "
        f"(d = {d}) and {k_total:,} parameter entries",
        "Pass fewer inputs, replicates or selected entries (params=...).",
    )

    start = time.perf_counter()
    M = n_labels * replicates
    labels = draw_labels(kernel, h, M, generator)  # [n, M, *obs]
    n = x.shape[0]
    runs = {
        "squared_score": _SquaredScore(fmodel, sel1, n_labels, kernel.d),
        "neg_hessian": _NegHessian(fmodel, sel2, n_labels),
    }
    runs = {e: runs[e] for e in estimators}
    label_pass = _LabelSums(kernel, n_labels, replicates, hessian="neg_hessian" in runs)
    total_calls = label_pass.n_calls(n, M) + sum(r.n_calls(n, replicates, d) for r in runs.values())
    if progress is None and total_calls < PROGRESS_MIN_CALLS:
        progress = False
    mean, var, central4 = ({e: {} for e in estimators} for _ in range(3))
    bar = progress_bar(total_calls, "fishsym.montecarlo", progress, unit="call")
    with bar, math_attention():
        sums = label_pass(h, labels, bar)
        for est, run in runs.items():
            sel = selections[est]
            stats = {
                name: torch.empty(3, n, sel.count(name), dtype=torch.float64, device=x.device)
                for name in sel.names
            }
            for n0, n1, name, k0, X in run.replicate_blocks(x, sums, bar):
                # X: [n1-n0, R, k] replicate estimates of entries k0.. of `name`
                stat = torch.stack(_replicate_stats(X))
                if not bool(torch.isfinite(stat).all()):  # any non-finite replicate
                    raise NonFiniteError(
                        f"estimate: a {est} estimate of {name!r} is not finite (inputs "
                        f"{n0}..{n1 - 1}); check the network output and the family domain"
                    )
                stats[name][:, n0:n1, k0 : k0 + X.shape[-1]] = stat
            for name in sel.names:
                mean[est][name], var[est][name], central4[est][name] = (
                    sel.reshape(name, t) for t in stats[name]
                )
    if reduce_ranks:
        # every rank's per-input rows, in rank order
        for table in (mean, var, central4):
            for est in table:
                table[est] = {k: _dist.all_gather_rows(t) for k, t in table[est].items()}
        n = _dist.all_reduce_count(n, x.device)
    seconds = time.perf_counter() - start
    return MonteCarloEstimate(
        family=kernel.name,
        n_labels=n_labels,
        replicates=replicates,
        n_inputs=n,
        dtype=dtype,
        selection={e: selections[e] for e in estimators},
        mean=mean,
        var=var,
        central4=central4,
        seconds=seconds,
    )


def _replicate_stats(X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``X`` ``[n, R, k]`` → sample mean, unbiased variance, biased 4th central moment
    (in ``X``'s dtype: the deviations are centred first, so float32 keeps ~7 digits)."""
    R = X.shape[1]
    mean = X.mean(1)
    dev = X - mean.unsqueeze(1)
    d2 = dev.mul_(dev)
    return mean, d2.sum(1) / (R - 1), d2.mul_(d2).mean(1)


@dataclass
class _Sums:
    """Per-replicate sums of label derivatives in ``h`` (float64): ``G`` ``[n, R, d]``,
    ``S`` ``[n, R, d, d]`` (outer products of ``∇_hℓ``), ``H`` ``[n, R, d, d]`` or None."""

    G: Tensor
    S: Tensor
    H: Tensor | None


class _LabelSums:
    """``∇_hℓ(y_m)`` (and ``∇²_hℓ(y_m)``) by autograd on ``log_prob``, summed per replicate."""

    def __init__(self, kernel, n_labels: int, replicates: int, hessian: bool):
        self.kernel, self.n_labels, self.replicates, self.hessian = (
            kernel,
            n_labels,
            replicates,
            hessian,
        )
        self.d = kernel.d

        def logp(y, h):
            return kernel.log_prob(y, h)

        if hessian:

            def per_label(y, h):
                return grad(logp, argnums=1)(y, h), hessian_fn(logp, argnums=1)(y, h)
        else:

            def per_label(y, h):
                return grad(logp, argnums=1)(y, h)

        self.per_label = vmap(vmap(per_label, in_dims=(0, None)), in_dims=(0, 0))

    def _step(self, n: int) -> int:
        return max(1, BLOCK_ELEMENTS // (4 * n * self.d * (self.d + 1)))

    def n_calls(self, n: int, M: int) -> int:
        return math.ceil(M / self._step(n))

    def __call__(self, h: Tensor, labels: Tensor, bar) -> _Sums:
        n, M = labels.shape[:2]
        d, R = self.d, self.replicates
        dev = h.device
        G = torch.zeros(n, R, d, dtype=torch.float64, device=dev)
        S = torch.zeros(n, R, d, d, dtype=torch.float64, device=dev)
        H = torch.zeros(n, R, d, d, dtype=torch.float64, device=dev) if self.hessian else None
        step = self._step(n)
        for m0 in range(0, M, step):
            m1 = min(M, m0 + step)
            out = self.per_label(labels[:, m0:m1], h)
            g = (out[0] if self.hessian else out).to(torch.float64)  # [n, L, d]
            rep = torch.arange(m0, m1, device=dev) // self.n_labels
            G.index_add_(1, rep, g)
            S.index_add_(1, rep, g.unsqueeze(-1) * g.unsqueeze(-2))
            if self.hessian:
                H.index_add_(1, rep, out[1].to(torch.float64))
            bar.update(1)
        return _Sums(G, S, H)


class _SquaredScore:
    """``Î₁`` replicates ``u_pᵀ S_r u_p / N`` with the Jacobian ``u`` from ``d`` ``vjp``s."""

    def __init__(self, fmodel, sel: ParamSelection, n_labels: int, d: int):
        self.fmodel, self.sel, self.n_labels, self.d = fmodel, sel, n_labels, d
        self.numel = sum(s.numel() for s in sel.shapes.values())

        def h_of(params, x):
            return fmodel(params, x)

        def jacobian(params, x, basis):
            _, pullback = vjp(lambda p: h_of(p, x), params)
            return vmap(pullback)(basis)[0]  # {name: [d, *shape]}

        self.jacobian = vmap(jacobian, in_dims=(None, 0, None))

    def _input_step(self, d: int) -> int:
        return max(1, BLOCK_ELEMENTS // max(1, d * self.numel))

    def _entry_step(self, n: int, R: int, d: int) -> int:
        return max(1, BLOCK_ELEMENTS // (n * R * d))

    def n_calls(self, n: int, R: int, d: int = 1) -> int:
        return math.ceil(n / self._input_step(self.d))

    def replicate_blocks(self, x: Tensor, sums: _Sums, bar):
        n, R, d = sums.G.shape
        primals = {name: self.fmodel.params[name] for name in self.sel.names}
        basis = torch.eye(d, dtype=self.fmodel.dtype, device=self.fmodel.device)
        step = self._input_step(d)
        iu = torch.triu_indices(d, d)
        pair_weight = torch.where(iu[0] == iu[1], 1.0, 2.0).to(torch.float64)
        for n0 in range(0, n, step):
            n1 = min(n, n0 + step)
            k_step = self._entry_step(n1 - n0, max(R, d * (d + 1) // 2), 1)
            jac = self.jacobian(primals, x[n0:n1], basis)
            # u_pᵀ S_r u_p = Σ_{c≤e} (2 − δ_ce) S_r[c,e] u_p[c] u_p[e]: one matrix product
            # [R, d(d+1)/2] × [d(d+1)/2, k] per input, in the working dtype (S was
            # accumulated in float64)
            S = (sums.S[n0:n1][..., iu[0], iu[1]] * (pair_weight / self.n_labels)).to(
                self.fmodel.dtype
            )
            for name in self.sel.names:
                u = jac[name].reshape(n1 - n0, d, -1)
                if self.sel.indices[name] is not None:
                    u = u[..., self.sel.indices[name]]
                for k0 in range(0, u.shape[-1], k_step):
                    uk = u[..., k0 : k0 + k_step]  # [n, d, k]
                    pairs = torch.cat([uk[:, c : c + 1] * uk[:, c:] for c in range(d)], dim=1)
                    yield n0, n1, name, k0, torch.bmm(S, pairs)  # u_pᵀ S_r u_p / N, [n, R, k]
            bar.update(1)


class _NegHessian:
    """``Î₂`` replicates ``−(G_r·w_p + u_pᵀ H_r u_p)/N`` with ``(u_p, w_p)`` per input and
    selected entry from the engine's verified second-derivative route (reverse over
    reverse, :class:`fishsym.engine.generic.GenericModel`; forward-over-forward is wrong
    through ``layer_norm``)."""

    def __init__(self, fmodel, sel: ParamSelection, n_labels: int):
        self.fmodel, self.sel, self.n_labels = fmodel, sel, n_labels
        self.engine = GenericModel(fmodel)

    def _entry_step(self, name: str, d: int) -> int:
        return max(1, min(self.sel.count(name), self.engine.entry_chunk(1, name, d)))

    def n_calls(self, n: int, R: int, d: int = 1) -> int:
        return sum(
            n * math.ceil(self.sel.count(name) / self._entry_step(name, d))
            for name in self.sel.names
        )

    def replicate_blocks(self, x: Tensor, sums: _Sums, bar):
        n, _, d = sums.G.shape
        for n0 in range(n):
            G, H = sums.G[n0], sums.H[n0]  # [R, d], [R, d, d]
            for name in self.sel.names:
                idx = self.sel.flat_indices(name)
                step = self._entry_step(name, d)
                for k0 in range(0, len(idx), step):
                    pd = self.engine.block(x[n0 : n0 + 1], name, idx[k0 : k0 + step], d)
                    u = pd.jac[0].T.to(torch.float64)  # [k, d]
                    w = pd.hess_diag[0].T.to(torch.float64)
                    total = G @ w.T + torch.einsum("kc,rce,ke->rk", u, H, u)
                    bar.update(1)
                    yield n0, n0 + 1, name, k0, (-total / self.n_labels).unsqueeze(0)  # [1, R, k]


__all__ = ["estimate", "MonteCarloEstimate", "ESTIMATORS", "draw_labels"]
