"""``fisher_variances``: exact Fisher diagonal, ``V₁``, ``V₂`` and their bounds for every
parameter of a network (docs/theory.md §2, §3, §5, §7).

For one input ``x`` and parameter entry ``θ_i`` with ``u_i = ∂h/∂θ_i``, ``w_i = ∂²h/∂θ_i²``
(delivered by :mod:`fishsym.engine`) and the family's ``I(h)``, ``μ_4(h)``:

    I(θ_i|x) = u_iᵀ I u_i,   V₁ = μ_4[u_i⁴] − I(θ_i|x)²,   V₂ = w_iᵀ I w_i        (§2)

single-label variances (``N = 1``), with the bounds of §3

    ‖u_i‖⁴ λ_min(μ_4) − I(θ_i|x)² ≤ V₁ ≤ ‖u_i‖⁴ λ_max(μ_4) − I(θ_i|x)²
    ‖w_i‖² λ_min(I) ≤ V₂ ≤ ‖w_i‖² λ_max(I)

taken with the family kernel's *certified* spectral values, so every per-input bound
brackets the exact value and so does their mean over inputs; each is rounded outward by
its error bound (``moments.BOUND_ULPS``, ``sums.SUM_ULPS``). ``V₁`` itself is the kernel's
cancellation-free ``Var[((t−η)ᵀu)²]``.

The entry point is a sequence of named steps, each a function below:

    source      the inputs, in memory or streamed, with their labels and padding mask
    model view  a private, cast copy of the user's model (never the model itself)
    engine      u (and w) per input: structured MLP rules, the graph path, or generic
    moments     the family's per-unit factors f, q, r and bounds (variance/moments.py)
    sums        reduced over inputs into per-parameter sums (variance/sums.py)
    result      means, estimator tables, outward rounding, checks: ``FisherVariances``
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from fishsym import engine as _engine
from fishsym import kernels as _kernels
from fishsym.common import (
    ModelView,
    all_finite,
    cast_inputs,
    check_count,
    check_dtype,
    check_memory,
    memory_budget,
    parameter_groups,
)
from fishsym.common import distributed as _dist
from fishsym.common.data import DataSource
from fishsym.common.distributed import use_distributed
from fishsym.common.mask import masked_inputs
from fishsym.common.model import translate_model_errors
from fishsym.common.progress import progress_bar
from fishsym.engine import ParamDerivatives
from fishsym.errors import ArgumentTypeError, InvalidArgumentError, NonFiniteError, ShapeError
from fishsym.variance import estimators as _est
from fishsym.variance import moments as _moments
from fishsym.variance import sums as _sums
from fishsym.variance.moments import BOUND_ULPS, paper_spectrum, unit_moments
from fishsym.variance.result import FisherVariances
from fishsym.variance.sums import SUM_ULPS

#: peak working memory the default chunk size aims at (bytes), structured path
MEMORY_BUDGET = 256 * 2**20
#: a generic-path run projected to take longer than this (seconds) warns with its estimate
GENERIC_WARN_SECONDS = 60.0
#: progress bars appear only for runs that are still going after this many seconds
PROGRESS_DELAY = 2.0


class DerivativeWarning(UserWarning):
    """A note about what ``fisher_variances`` skipped or how long it will take."""


#: the one family resolver (kept under its old name for callers of this module)
resolve_kernel = _kernels.for_output


# --------------------------------------------------------------------------- the entry point
@translate_model_errors
def fisher_variances(
    model: nn.Module,
    inputs,
    family,
    *,
    per_sample: bool = False,
    bounds: bool = True,
    dtype: torch.dtype | None = None,
    chunk_size: int | None = None,
    path: str = "auto",
    progress: bool | None = None,
    output=None,
    max_memory: float | None = None,
    estimators=None,
    labels=None,
    max_inputs: int | None = None,
    distributed: bool | None = None,
    tight_paper_bounds: bool = False,
    var2: bool = True,
    mask=None,
) -> FisherVariances:
    """Exact conditional Fisher diagonal and single-label estimator variances of every
    parameter, averaged over ``inputs`` (docs/theory.md §2, §3, §5, §7).

    For each trainable parameter entry ``θ_i`` and input ``x`` the quantities are
    ``I(θ_i|x) = u_iᵀ I(h) u_i``, the single-label variances ``V₁`` of the squared score
    ``Î₁`` and ``V₂`` of the negative Hessian ``Î₂`` (labels drawn from the model), and
    the spectral bounds on both (``N = 1``).

    Parameters
    ----------
    model:
        An ``nn.Module`` whose output ``[n, d]`` is the natural parameter ``h`` of the
        family. It is never modified (computations use cast copies of its tensors).
        Must be deterministic: Dropout / BatchNorm / RReLU in training mode are rejected.
    inputs:
        ``[n_inputs, ...]``, what ``model`` takes: a tensor, an array, a ``Dataset``, or
        a ``DataLoader`` / iterable of batches ``x`` or ``(x, y)`` (``y``: data labels,
        for the data-label estimators), streamed one batch at a time
        (:mod:`fishsym.common.data`). The result does not depend on the batching.
    family:
        Registered family name (sizes inferred from the model's output dimension), an
        ``ExponentialFamily`` or a family kernel.
    per_sample:
        Keep the per-input values: tensors gain a leading ``[n_inputs]`` axis
        (``P × n_inputs`` memory per quantity).
    bounds:
        Also compute the bounds of docs/theory.md §3.
    dtype:
        Working dtype; ``torch.float64`` by default, ``torch.float32`` on request.
    chunk_size:
        Inputs processed at a time (default: chosen to bound peak memory).
    path:
        ``"auto"`` (the structured path for supported ``nn.Sequential`` MLPs, else the
        graph path of any ``torch.func``-traceable model; ``res.path`` says which),
        ``"structured"``, ``"graph"`` or ``"generic"`` (one forward-over-forward pass per
        parameter entry and input: slow, for cross-checks).
    progress:
        Show a progress bar: ``None`` shows one only on a terminal or in a notebook, for
        runs still going after ``PROGRESS_DELAY`` seconds.
    output:
        Selector of the natural parameters from the model's output, for models that
        return a tuple, dict or HuggingFace-style object (``lambda out: out.logits``).
    estimators:
        The estimators whose exact mean, bias and variance (as estimates of the mean
        Fisher over ``inputs``, one draw) fill ``res.mean``, ``res.var``, ``res.bias``
        (docs/theory.md §9): any of ``"squared_score"``, ``"neg_hessian"``,
        ``"hutchinson"``, ``"hutchinson_batch"``, ``"batched_score"``,
        ``"merging_recipe"``, and with ``labels`` the data-label estimators
        ``"empirical"`` and ``"batched_score_data"``. ``var1``/``var2`` are always there
        (``var2`` unless ``var2=False``). Default: ``("squared_score", "neg_hessian")``,
        without ``"neg_hessian"`` when ``var2=False``.
    labels:
        Data labels, one per input (``[n_inputs, *obs_shape]``), for the data-label
        estimators and in-memory ``inputs`` (a stream brings its own).
    max_inputs:
        Use at most this many inputs (the first ones read).
    tight_paper_bounds:
        Also use the matricisation of ``M = μ₄ − I⊗I`` (``d ≤ 16``) for the certified
        ``λ̃(M)`` of ``res.paper_bounds`` (Theorem 4.1, eq. 8), besides Cor. 4.2 and
        Thm. 5.2 (:mod:`fishsym.kernels.moment_spectrum`); costs a ``d² × d²``
        eigenproblem and a local search per input.
    distributed:
        Under an initialised ``torch.distributed`` process group, each rank passes its
        own inputs and gets the result over all ranks' inputs (sums and counts are
        all-reduced; :mod:`fishsym.common.distributed`). ``None``: whenever a group with
        more than one rank is initialised; ``False``: this rank's inputs only.
    var2:
        ``False`` skips ``V₂`` and everything built on it (``w_i = ∂²h/∂θ_i²``: the
        structured recursion, curvature sources and second-order passes — on MNIST-4L
        half the work; on a transformer hours of per-entry passes): ``res.var2`` is
        ``None``, ``res.skipped`` names it, the ``"neg_hessian"`` bounds and estimator are
        absent, and the summary says "skipped". The Fisher, ``V₁`` and every other
        estimator are unchanged.
    mask:
        Padding mask ``[n_inputs, *factors]`` for an output with factor axes
        ``[n, *factors, d]`` (tokens: ``[n, T]``, e.g. a tokenizer's ``attention_mask``):
        true (or 1) where a position counts, false (0) at padding. A masked position is
        an absent factor (docs/theory.md §11): it adds nothing to any number. Needs the
        inputs in memory; data labels at masked positions are ignored (any value, e.g.
        a tokenizer's ``-100``).
    max_memory:
        Bytes the result may take (default: half of this machine's memory); a
        ``per_sample`` request over it is refused before anything is allocated. When
        given, it is also the engine's working-memory budget (inputs and parameter
        entries are chunked to stay within it; default ``MEMORY_BUDGET``).

    Returns
    -------
    FisherVariances
        ``fisher``, ``var1``, ``var2`` (dicts name → tensor shaped like the parameter, or
        ``[n_inputs, *shape]``), ``bounds``, ``bounds_method``, ``var_fisher_over_inputs``.

    Raises
    ------
    ShapeError, NonFiniteError, DomainError, UnsupportedModelError, MemoryBudgetError
        Output dimension ≠ family dimension; NaN/inf inputs or parameters (or results);
        natural parameters outside the family's domain; stochastic modules, a final
        Softmax/Sigmoid (probabilities instead of natural parameters), no trainable
        parameter; a ``per_sample`` result over ``max_memory``.
    """
    req = _Request.check(
        per_sample, bounds, tight_paper_bounds, var2, dtype, chunk_size, estimators, max_memory
    )
    # source: the inputs (a tensor, dataset or stream), their labels and padding mask
    inputs, layout = masked_inputs(inputs, mask, model)
    source = DataSource(inputs, max_inputs=max_inputs, labels=labels)
    reduce_ranks = use_distributed(distributed)
    # model view: a private cast copy; its probe on the first batch gives the output shape
    view = _model_view(model, req.dtype, output, layout)
    stream = source.batches()
    first_x, first_y = next(stream)
    first_x = cast_inputs(first_x, req.dtype, view.device)
    out_dim = view.probe(first_x)
    # engine: u (and w) of every parameter entry per input, and the family on the output
    eng, kernel = _engine_and_kernel(view, first_x, first_y, family, out_dim, path, req)
    # family moments, reduced into sums over inputs (every rank's, under distributed)
    acc = _Accumulator(eng, kernel, view, source, out_dim, first_x.shape[0], req)
    acc.run(itertools.chain([(first_x, first_y)], stream), progress)
    if reduce_ranks:
        acc.reduce_ranks()
    # result: means, estimator tables, outward-rounded bounds, finiteness
    return _result(acc, eng.path, req)


@dataclass(frozen=True)
class _Request:
    """What the caller asked for, checked: the flags, the working dtype, the estimators
    whose tables are made, and the extra per-input quantities they need."""

    per_sample: bool
    bounds: bool
    tight_paper_bounds: bool
    var2: bool
    dtype: torch.dtype
    chunk_size: int | None
    estimators: tuple[str, ...]
    max_memory: float | None

    @property
    def extra(self) -> list[str]:
        return sorted({q for e in self.estimators for q in _est.EXTRA_QUANTITIES.get(e, ())})

    @property
    def label_estimators(self) -> list[str]:
        """The requested estimators that use the data labels."""
        return [e for e in self.estimators if e in _est.DATA_LABEL_ESTIMATORS]

    @classmethod
    def check(
        cls, per_sample, bounds, tight_paper_bounds, var2, dtype, chunk_size, estimators, max_memory
    ) -> _Request:
        dtype = check_dtype(dtype)
        if chunk_size is not None:
            chunk_size = check_count(chunk_size, "chunk_size")
        for flag, value in (
            ("per_sample", per_sample),
            ("bounds", bounds),
            ("tight_paper_bounds", tight_paper_bounds),
        ):
            if not isinstance(value, bool):
                raise ArgumentTypeError(f"{flag} must be True or False; got {value!r}")
        if not isinstance(var2, bool):
            raise ArgumentTypeError(f"var2 must be True or False; got {var2!r}")
        if estimators is None:
            estimators = ("squared_score", "neg_hessian") if var2 else ("squared_score",)
        estimators = _check_estimators(estimators)
        if not var2 and "neg_hessian" in estimators:
            raise InvalidArgumentError(
                'estimator "neg_hessian" is the negative Hessian, whose variance is V₂: it '
                "needs var2=True (var2=False skips every second derivative)"
            )
        return cls(
            per_sample, bounds, tight_paper_bounds, var2, dtype, chunk_size, estimators, max_memory
        )


def _model_view(model, dtype, output, layout) -> ModelView:
    """The private copy every derivative is taken on. A view made by another entry point
    (``diagonal_fisher``'s exact route) is cast, and keeps what its probe decided about
    the model's hooks."""
    if isinstance(model, ModelView):
        return model.cast(dtype)
    return ModelView(model, dtype, output, mask_layout=layout)


def _engine_and_kernel(view, first_x, first_y, family, out_dim, path, req: _Request):
    """The engine for ``path`` (``"auto"``: the structured path where it applies, else the
    graph path), prepared on the first batch, and the family kernel on the output."""
    eng = _engine.select(view, path)
    eng.second_order = req.var2
    if view.frozen:
        warnings.warn(
            f"skipping {len(view.frozen)} parameter(s) with requires_grad=False: "
            f"{', '.join(view.frozen)}",
            DerivativeWarning,
            stacklevel=4,
        )
    kernel = _kernels.for_output(family, out_dim, view.out_shape)
    if req.label_estimators and first_y is None:
        raise InvalidArgumentError(
            f"estimators {req.label_estimators} use the data labels: pass labels=, one per "
            "input, or batches (x, y)"
        )
    try:
        eng.prepare(first_x)
    except ShapeError as err:
        if path != "auto" or eng.path != "structured":
            raise
        # a Linear applied per position ([n, extra…, features]) is not the structured
        # MLP's [n, features]: the graph path handles it
        eng = _engine.GraphModel(view)
        eng.fallback_reason = str(err)
        eng.second_order = req.var2
        eng.prepare(first_x)
    return eng, kernel


class _Accumulator:
    """The sums over inputs of every quantity, per parameter: for each chunk of inputs,
    the engine's blocks of ``u`` (and ``w``), their family moments
    (:func:`~fishsym.variance.moments.batched_moments`) and the reduction of each block
    into its parameter's sums (:class:`~fishsym.variance.sums.Sums`)."""

    def __init__(self, eng, kernel, view, source, out_dim: int, n_first: int, req: _Request):
        self.eng, self.kernel, self.view, self.source, self.req = eng, kernel, view, source, req
        self.out_dim = out_dim
        # working memory of the engine: the user's max_memory when given
        work = (
            MEMORY_BUDGET if req.max_memory is None else memory_budget(req.max_memory, view.device)
        )
        self.chunk = req.chunk_size or eng.default_chunk(req.dtype, work, out_dim)
        self.known = source.known_length()
        self.names = eng.param_names()
        shapes = {name: view.params[name].shape for name in self.names}
        self.n_entries = sum(s.numel() for s in shapes.values())
        self.n_quantities = len(_sums.quantities(req.bounds, req.var2))
        self.budget = memory_budget(req.max_memory, view.device)
        self.per_input_bytes = self.n_entries * self.n_quantities * torch.finfo(req.dtype).bits // 8
        rows = self.known or n_first
        self.check_rows(rows)
        self.sums = _sums.Sums(
            shapes, rows, req.dtype, req.per_sample, req.bounds, view.device, req.extra, req.var2
        )
        self.methods: dict[str, set[str]] = {}
        self.routes: dict[str, set[str]] = {}
        self.n_inputs = 0

    def check_rows(self, n_rows: int) -> None:
        """Refuse a ``per_sample`` result over the memory budget before allocating it."""
        req = self.req
        check_memory(
            self.per_input_bytes * (n_rows if req.per_sample else 1),
            self.budget,
            f"fisher_variances(per_sample={req.per_sample}) for {n_rows} inputs × "
            f"{self.n_entries:,} parameter entries × {self.n_quantities} quantities",
            f"At most {max(0, self.budget // self.per_input_bytes):,} inputs fit "
            "per_sample=True; pass fewer inputs (max_inputs=), per_sample=False (input "
            "averages), or a larger max_memory.",
        )

    def run(self, batches, progress) -> None:
        """Read every batch ``(x, y)`` (the first already cast) into the sums."""
        eng, req = self.eng, self.req
        clock = _sums.CostClock(self.n_entries * self.known if self.known else None)
        bar = self._progress_bar(progress)
        with torch.no_grad() if eng.no_grad else contextlib.nullcontext():
            for index, (xb, yb) in enumerate(batches):
                if index:
                    xb = cast_inputs(xb, req.dtype, self.view.device)
                if req.label_estimators and yb is None:
                    raise InvalidArgumentError(
                        f"estimators {req.label_estimators} use the data labels: batch "
                        f"{index} has none"
                    )
                tb = None
                if req.label_estimators:
                    yb = _labels_at_padding(self.view, xb, yb.to(self.view.device))
                    tb = self.kernel.suff_stat(yb, req.dtype)
                for start in range(0, xb.shape[0], self.chunk):
                    local = slice(start, min(start + self.chunk, xb.shape[0]))
                    self._chunk(xb[local], None if tb is None else tb[local], local, clock, bar)
                self.n_inputs += xb.shape[0]
        bar.close()
        self.sums.trim(self.n_inputs)

    def _chunk(self, x, data_t, local: slice, clock, bar) -> None:
        """One chunk of inputs: ``h`` and the engine's blocks, their moments, the sums."""
        eng, kernel, req, sums = self.eng, self.kernel, self.req, self.sums
        rows = slice(self.n_inputs + local.start, self.n_inputs + local.stop)
        if req.per_sample:
            self.check_rows(rows.stop)
            sums.ensure(rows.stop)
        h, batches = eng.batches(x, self.out_dim)
        _moments.check_h(kernel, h, rows)
        spectrum = None
        if req.bounds:
            # the bounds use only the certified fields: skip the local search
            spectrum = kernel.spectrum(h, local=req.tight_paper_bounds)
            paper = paper_spectrum(kernel, h, spectrum)
            for key, how in {**spectrum.methods, **paper}.items():
                self.methods.setdefault(key, set()).add(str(how))
        n_steps = eng.steps(x.shape[0], self.chunk, self.out_dim)
        # an engine whose batches differ in cost (the layer-rule blocks come after one
        # backward pass for the whole chunk) is timed per chunk of inputs
        per_batch = getattr(eng, "uniform_batches", True)
        units = 0
        for batch in batches:
            moments = _moments.batched_moments(kernel, h, batch, spectrum, req.extra, data_t)
            for pd, m in zip(batch, moments, strict=True):
                sums.add(pd, m, rows)
                self.routes.setdefault(pd.name, set()).add(_route(eng, pd))
            bar.update(1 if self.source.in_memory else x.shape[0] / n_steps)
            units += sum(pd.n_units() for pd in batch)
            if per_batch:
                _warn_cost(clock.tick(units), eng, self.n_entries, self.known)
                units = 0
        if not per_batch:
            _warn_cost(clock.tick(units), eng, self.n_entries, self.known)

    def _progress_bar(self, progress):
        if self.source.in_memory:
            n, chunk = self.known, self.chunk
            total = sum(
                self.eng.steps(min(chunk, n - s), chunk, self.out_dim) for s in range(0, n, chunk)
            )
            return progress_bar(
                total, "fisher_variances", progress, delay=PROGRESS_DELAY, unit="step"
            )
        # a stream: count inputs (the steps per batch are known only as batches arrive)
        return progress_bar(
            self.known,
            "fisher_variances",
            progress,
            delay=PROGRESS_DELAY,
            unit="input",
            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} inputs [{elapsed}<{remaining}]",
        )

    def reduce_ranks(self) -> None:
        """Every rank's sums over its own inputs, summed: the result over all inputs."""
        self.n_inputs = self.sums.reduce_ranks(self.n_inputs, self.view.device)
        self.methods = _dist.union_of_sets(self.methods)
        self.routes = _dist.union_of_sets(self.routes)


def _labels_at_padding(view, x, y):
    """Data labels ``y`` ``[n, *factors, *obs]`` with those at padding positions (any value
    there: a tokenizer's ``-100``) replaced by a label read at a position that counts. A
    padding position is an absent factor, its output detached (docs/theory.md §11): it adds
    nothing whatever its label, but the family checks every label it is given."""
    if view.mask_layout is None:
        return y
    _, mask = view.split_mask(x)
    if tuple(y.shape[: mask.dim()]) != tuple(mask.shape):
        return y  # labels of another shape: the family's check names what it needs
    keep = mask.reshape(-1)
    if bool(keep.all()) or not bool(keep.any()):
        return y
    rows = y.reshape(keep.numel(), *y.shape[mask.dim() :])
    filler = rows[int(keep.nonzero()[0, 0])]
    where = keep.reshape(-1, *([1] * (rows.dim() - 1)))
    return torch.where(where, rows, filler).reshape(y.shape)


def _warn_cost(estimate: float | None, eng, n_entries: int, known: int | None) -> None:
    """Warn once the projected time of the run is over ``GENERIC_WARN_SECONDS``."""
    if estimate is not None and estimate > GENERIC_WARN_SECONDS:
        warnings.warn(
            f"{eng.path} path: about {estimate:.0f} s in all for {n_entries:,} parameter "
            f"entries × {known} inputs ({eng.cost_note}; measured on the steps done so far)",
            DerivativeWarning,
            stacklevel=6,
        )


def _result(acc: _Accumulator, path: str, req: _Request) -> FisherVariances:
    """The result of the sums: :func:`_finish`, the ``V₂`` routes, and each estimator's
    cost in labels and passes."""
    names = acc.names
    res = _finish(
        acc.sums,
        acc.kernel,
        names,
        req.per_sample,
        req.bounds,
        acc.methods,
        acc.n_inputs,
        path,
        req.dtype,
        req.estimators,
        req.var2,
    )
    if req.var2:
        res.var2_routes.update({name: " + ".join(sorted(acc.routes[name])) for name in names})
    else:
        res.var2_routes.update(dict.fromkeys(names, SKIPPED_ROUTE))
        res.skipped = ("var2",)
    factors = getattr(acc.kernel, "T", 1)
    res.cost = {e: _est.cost(e, acc.n_inputs, acc.out_dim, factors) for e in req.estimators}
    return res


def _check_estimators(estimators) -> tuple[str, ...]:
    if isinstance(estimators, str):
        estimators = (estimators,)
    try:
        names = tuple(estimators)
    except TypeError:
        raise ArgumentTypeError(
            f"estimators must be a sequence of names from {_est.ESTIMATOR_NAMES}; got "
            f"{estimators!r}"
        ) from None
    if "soft_recipe" in names:
        raise InvalidArgumentError(
            'estimator "soft_recipe" (the gradient of Σ_y p̄_y log p_y with p̄ = p detached, '
            "squared) is identically zero: that gradient is Σ_y p_y ∇log p_y = ∇Σ_y p_y = 0 "
            'for every input, so it reports a Fisher of 0. Use "merging_recipe" (the '
            'gradient of Σ_y √p̄_y log p_y) or "squared_score" instead'
        )
    bad = [e for e in names if e not in _est.ESTIMATOR_NAMES]
    if bad or not names:
        raise InvalidArgumentError(
            f"estimators must name at least one of {_est.ESTIMATOR_NAMES}; got {list(names)}"
        )
    return tuple(dict.fromkeys(names))


def _route(eng, pd: ParamDerivatives) -> str:
    """How the block's ``w`` was obtained: its own ``route``, the structural zero of a
    block without ``hess_diag``, or the engine's ``var2_route``."""
    route = getattr(pd, "route", None)
    if route is not None:
        return route
    return "structural zero" if pd.hess_diag is None else eng.var2_route


#: the route reported for every parameter when ``var2=False``
SKIPPED_ROUTE = "skipped (var2=False)"


def _finish(
    sums: _sums.Sums,
    kernel,
    names,
    per_sample,
    bounds,
    methods,
    n_inputs,
    path,
    dtype,
    estimators,
    var2=True,
):
    data = sums.data
    per_input = {q: {name: data[name][q] for name in names} for q in sums.quantities}
    if per_sample:
        means = {q: {name: t.mean(0) for name, t in per_input[q].items()} for q in sums.quantities}
        tables = _est.estimator_moments(means, n_inputs, estimators)
        var_x = {name: per_input["fisher"][name].var(0, unbiased=False) for name in names}
        reported = per_input
    else:
        # the sums are ours alone: divide them in place (no second parameter-sized
        # tensor per quantity)
        means = {
            q: {name: t.div_(n_inputs) for name, t in per_input[q].items()} for q in sums.quantities
        }
        # before the buffer of the mean of I² is reused below
        tables = _est.estimator_moments(means, n_inputs, estimators)
        # population variance over the given inputs, in the buffer of the mean of I² (used
        # nowhere else); the clamp removes round-off below zero
        var_x = {
            name: means["fisher_sq"][name]
            .addcmul_(means["fisher"][name], means["fisher"][name], value=-1)
            .clamp_min_(0)
            for name in names
        }
        reported = means
    if bounds:
        # the bounds are sums (or means) of non-negative terms: round them outward
        eps = torch.finfo(dtype).eps
        for q in (b for b in _sums.BOUNDS if b in sums.quantities):
            sign = 1 if q.endswith("upper") else -1
            for name in names:
                means[q][name].mul_(1 + sign * (_sums.SUM_ULPS + n_inputs) * eps)
                if per_sample:  # per-input values: no sum, only the z⁴ roundings
                    per_input[q][name].mul_(1 + sign * _sums.SUM_ULPS * eps)
    for q in (q for q in ("fisher", "var1", "var2", *_sums.BOUNDS) if q in sums.quantities):
        for name in names:
            t = reported[q][name]
            if not all_finite(t):
                raise NonFiniteError(
                    f"{q} of parameter {name!r} is not finite (overflow in {dtype}?); "
                    "check the model's outputs and try dtype=torch.float64"
                )
    result_bounds = bounds_method = paper_bounds = paper_method = None
    if bounds:
        result_bounds = {
            "squared_score": {"lower": reported["var1_lower"], "upper": reported["var1_upper"]},
        }
        if var2:
            result_bounds["neg_hessian"] = {
                "lower": reported["var2_lower"],
                "upper": reported["var2_upper"],
            }

        def how(key):
            return " + ".join(sorted(methods.get(key, {"unspecified"})))

        bounds_method = {
            "squared_score": {"lower": how("mu4_min_lower"), "upper": how("mu4_max_upper")},
        }
        paper_bounds = {
            "fisher": {"lower": reported["fisher_lower"], "upper": reported["fisher_upper"]},
            "squared_score": {"lower": reported["pvar1_lower"], "upper": reported["pvar1_upper"]},
        }
        paper_method = {
            "fisher": {"lower": how("fisher_min"), "upper": how("fisher_max")},
            "squared_score": {"lower": how("m_min_lower"), "upper": how("m_max_upper")},
        }
        if var2:
            bounds_method["neg_hessian"] = {"lower": how("fisher_min"), "upper": how("fisher_max")}
            paper_bounds["neg_hessian"] = result_bounds["neg_hessian"]
            paper_method["neg_hessian"] = bounds_method["neg_hessian"]
    res = FisherVariances(
        fisher=reported["fisher"],
        var1=reported["var1"],
        var2=reported["var2"] if var2 else None,
        bounds=result_bounds,
        bounds_method=bounds_method,
        var_fisher_over_inputs=var_x,
        per_sample=per_sample,
        kernel=kernel,
        n_inputs=n_inputs,
        path=path,
        groups=parameter_groups(names),
        means={q: means[q] for q in ("fisher", "var1", "var2") if q in means},
        mean_bounds=None
        if not bounds
        else {
            "squared_score": {"lower": means["var1_lower"], "upper": means["var1_upper"]},
            **(
                {"neg_hessian": {"lower": means["var2_lower"], "upper": means["var2_upper"]}}
                if var2
                else {}
            ),
        },
    )
    res.mean, res.var, res.bias = tables["mean"], tables["var"], tables["bias"]
    res.paper_bounds, res.paper_bounds_method = paper_bounds, paper_method
    return res


__all__ = [
    "fisher_variances",
    "resolve_kernel",
    "unit_moments",
    "paper_spectrum",
    "DerivativeWarning",
    "BOUND_ULPS",
    "SUM_ULPS",
]
