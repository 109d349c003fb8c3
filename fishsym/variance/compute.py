"""``fisher_variances``: exact Fisher diagonal, ``V₁``, ``V₂`` and their bounds for every
parameter of a network (docs/theory.md §2, §3, §5, §7).

For one input ``x`` and parameter entry ``θ_i`` with ``u_i = ∂h/∂θ_i``, ``w_i = ∂²h/∂θ_i²``
(delivered by :mod:`fishsym.engine`) and the family's ``I(h)``, ``μ_4(h)``:

    I(θ_i|x) = u_iᵀ I u_i,   V₁ = μ_4[u_i⁴] − I(θ_i|x)²,   V₂ = w_iᵀ I w_i        (§2)

single-label variances (``N = 1``), with the bounds of §3

    ‖u_i‖⁴ λ_min(μ_4) − I(θ_i|x)² ≤ V₁ ≤ ‖u_i‖⁴ λ_max(μ_4) − I(θ_i|x)²
    ‖w_i‖² λ_min(I) ≤ V₂ ≤ ‖w_i‖² λ_max(I)

taken with the family kernel's *certified* spectral values (``mu4_min_lower``,
``mu4_max_upper``, ``fisher_min``, ``fisher_max``), so every per-input bound brackets
the exact value and so does their mean over inputs. Floating point cannot move a bound
to the wrong side: the spectral values, the per-input bounds and their sums over inputs
are each rounded outward by their error bound (``BOUND_ULPS``, ``SUM_ULPS``), and a
variance is never negative, so each per-input bound is ``max(0, ·)``. ``V₁`` itself is
the kernel's cancellation-free ``Var[((t−η)ᵀu)²]`` (``μ₄ − I²`` cancels where the squared
score hardly varies).

Linear layers factorise, ``u = g_a z_b`` and ``w = s_a z_b²`` (§7): the per-unit numbers
``f_a = g_aᵀ I g_a``, ``q_a = μ_4[g_a⁴] − f_a²``, ``r_a = s_aᵀ I s_a`` (and the bounds'
``‖g_a‖⁴``, ``‖s_a‖²``) are computed once per input and unit, and the sums over inputs
are matrix products ``Fᵀ Z²`` and ``[Q | R | F² | …]ᵀ Z⁴`` — one per layer and chunk of
inputs, never a per-parameter-per-input tensor unless ``per_sample=True``.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import warnings

import torch
from torch import Tensor, nn

from fishsym import engine as _engine
from fishsym import kernels as _kernels
from fishsym.common import (
    ModelView,
    cast_inputs,
    check_count,
    check_dtype,
    check_memory,
    memory_budget,
    parameter_groups,
)
from fishsym.common import distributed as _dist
from fishsym.common.data import DataSource
from fishsym.common.mask import masked_inputs
from fishsym.common.distributed import use_distributed
from fishsym.common.model import translate_model_errors
from fishsym.common.progress import progress_bar
from fishsym.engine import ParamDerivatives
from fishsym.errors import (
    ArgumentTypeError,
    DomainError,
    InvalidArgumentError,
    NonFiniteError,
    ShapeError,
)
from fishsym.variance import estimators as _est
from fishsym.variance.result import FisherVariances

#: peak working memory the default chunk size aims at (bytes), structured path
MEMORY_BUDGET = 256 * 2**20
#: a generic-path run projected to take longer than this (seconds) warns with its estimate
GENERIC_WARN_SECONDS = 60.0
#: progress bars appear only for runs that are still going after this many seconds
PROGRESS_DELAY = 2.0

#: per-input quantities summed over inputs, and the power of the layer input z they carry
_POWER2 = ("fisher", "fisher_lower", "fisher_upper")
_POWER4 = (
    "var1",
    "fisher_sq",
    "var1_lower",
    "var1_upper",
    "var2",
    "var2_lower",
    "var2_upper",
    "pvar1_lower",
    "pvar1_upper",
)
#: the bounds: ours ("exact_fisher" form: ‖u‖⁴λ(μ₄) − I²) and the paper's Theorem 4.1
#: (eq. 7 for I, eq. 8 ‖u‖⁴λ̃(M) for V₁; eq. 9 for V₂ is the same in both)
_BOUNDS = (
    "var1_lower",
    "var1_upper",
    "var2_lower",
    "var2_upper",
    "fisher_lower",
    "fisher_upper",
    "pvar1_lower",
    "pvar1_upper",
)


class DerivativeWarning(UserWarning):
    """A note about what ``fisher_variances`` skipped or how long it will take."""


# --------------------------------------------------------------------------- the family
#: the one family resolver (kept under its old name for callers of this module)
resolve_kernel = _kernels.for_output


def unit_moments(
    kernel, h: Tensor, jac: Tensor, hess_diag: Tensor | None, spectrum=None
) -> dict[str, Tensor | None]:
    """Per input and unit (or parameter entry), the factors of §2–§3 before the layer input.

    Parameters: ``h`` ``[n, c]``; ``jac`` (``g``) and ``hess_diag`` (``s``) ``[n, c, a]``;
    ``spectrum`` the kernel's spectrum at ``h`` (``None``: no bounds).

    Returns ``[n, a]`` tensors: ``fisher`` ``f = gᵀIg``, ``var1`` ``q = μ_4[g⁴] − f²``,
    ``fisher_sq`` ``f²``, and with a spectrum ``var1_lower/upper`` ``‖g‖⁴λ(μ_4) − f²``;
    when ``hess_diag`` is given also ``var2`` ``r = sᵀIs`` and with a spectrum
    ``var2_lower/upper`` ``‖s‖²λ(I)``. A parameter ``θ = (a, b)`` with layer input ``z``
    then has ``I = f z_b²`` and every other quantity ``· z_b⁴``.

    Where the spectral value of a lower bound is exactly zero for every input
    (``λ_min(μ_4) = 0``, ``λ_min(I) = 0`` for over-complete categorical heads), the entry
    is ``None``: the bound is then ``−f²`` resp. ``0`` and costs nothing to reduce.
    """
    out = _jac_moments(kernel, h, jac, spectrum)
    if hess_diag is not None:
        out.update(_hess_moments(kernel, h, hess_diag, spectrum))
    return out


#: per-input bounds are rounded outward by ``(BOUND_ULPS + d)·eps`` times the size of the
#: terms they are formed from (``‖g‖⁴λ``, ``f²`` and ``‖g‖²f``, which bounds the error of
#: ``f²`` from the rounding of the centred residuals): a sum of ``d`` products has relative
#: error ``≤ d·eps/2``, and the few operations around it are covered by ``BOUND_ULPS``
BOUND_ULPS = 16
#: sums over inputs (and the division by their number) of the non-negative per-input
#: bounds are rounded outward by ``(n + SUM_ULPS)·eps`` relative (a recursive or blocked
#: sum of ``n`` non-negative terms has relative error ``≤ (n − 1)·eps/2``; ``z⁴`` adds two
#: roundings and the mean one)
SUM_ULPS = 8


def _jac_moments(kernel, h, jac, spectrum) -> dict[str, Tensor | None]:
    # V₁ = Var[((t−η)ᵀg)²] in the kernel's cancellation-free form (μ₄ − f² is not), with f
    # from the same pass where the kernel shares it
    f, var1 = kernel.quadratic_and_var_squared(h, jac)
    f_sq = f * f
    out: dict[str, Tensor | None] = {"fisher": f, "fisher_sq": f_sq, "var1": var1}
    if spectrum is not None:
        # ‖g‖² as a batched dot product: no jac-sized temporary (4× faster than squaring)
        g2 = torch.einsum("nca,nca->na", jac, jac)
        g4 = g2 * g2
        margin = (BOUND_ULPS + jac.shape[1]) * torch.finfo(jac.dtype).eps
        slack = g2 * f + f_sq
        hi = spectrum.mu4_max_upper[:, None]
        # a variance is never negative, so max(0, ·) keeps a valid bound on either side
        out["var1_upper"] = (g4 * hi - f_sq + margin * (g4 * hi.abs() + slack)).clamp_min(0)
        lo = spectrum.mu4_min_lower
        if bool((lo <= 0).all()):
            out["var1_lower"] = None  # ‖g‖⁴λ_min − f² ≤ 0: the bound is the zero bound
        else:
            lo = lo[:, None]
            out["var1_lower"] = (g4 * lo - f_sq - margin * (g4 * lo.abs() + slack)).clamp_min(0)
        # Theorem 4.1 as stated: eq. (7) ‖u‖²λ(I) brackets I(θ|x), eq. (8) ‖u‖⁴λ̃(M), M =
        # μ₄ − I⊗I, brackets V₁ (certified λ̃(M) values of :func:`paper_spectrum`)
        out["fisher_upper"] = g2 * spectrum.fisher_max[:, None] * (1 + margin)
        out["fisher_lower"] = _lower(g2, spectrum.fisher_min, margin)
        out["pvar1_upper"] = g4 * spectrum.m_max_upper[:, None] * (1 + 2 * margin)
        out["pvar1_lower"] = _lower(g4, spectrum.m_min_lower, 2 * margin)
    return out


def _lower(norm: Tensor, value: Tensor, margin: float) -> Tensor | None:
    """``max(0, norm·value)`` rounded down, per input and unit — or ``None`` (the zero
    bound, nothing to reduce) where ``value ≤ 0`` for every input (``λ_min(I) = 0`` and
    ``λ̃_min(M) = 0`` for over-complete categorical heads)."""
    if bool((value <= 0).all()):
        return None
    return (norm * value[:, None] * (1 - margin)).clamp_min(0)


def paper_spectrum(kernel, h: Tensor, spectrum) -> dict[str, str]:
    """The methods of the certified ``m_min_lower ≤ λ̃_min(M)`` and ``m_max_upper ≥
    λ̃_max(M)``, ``M = μ₄ − I⊗I`` (docs/theory.md §3), which every kernel spectrum carries
    (:mod:`fishsym.kernels.moment_spectrum`: Cor. 4.2, Thm. 5.2 for categorical heads, and
    with ``local=True`` the matricisation), attaching them first to a spectrum without."""
    if getattr(spectrum, "m_max_upper", None) is None:
        from fishsym.kernels.moment_spectrum import attach_m_spectrum

        attach_m_spectrum(kernel, h, spectrum, local=False)
    return {k: spectrum.methods[k] for k in ("m_min_lower", "m_max_upper")}


def _hess_moments(kernel, h, hess_diag, spectrum) -> dict[str, Tensor | None]:
    out: dict[str, Tensor | None] = {"var2": kernel.quadratic(h, hess_diag)}
    if spectrum is not None:
        s2 = torch.einsum("nca,nca->na", hess_diag, hess_diag)
        margin = (BOUND_ULPS + hess_diag.shape[1]) * torch.finfo(hess_diag.dtype).eps
        out["var2_upper"] = s2 * spectrum.fisher_max[:, None] * (1 + margin)
        out["var2_lower"] = _lower(s2, spectrum.fisher_min, margin)
    return out


def _batched_moments(
    kernel, h: Tensor, blocks: list[ParamDerivatives], spectrum, extra=(), data_t=None
) -> list[dict]:
    """:func:`unit_moments` of every block, with one kernel call for all the distinct
    ``jac`` tensors (concatenated along the unit axis) and one for all ``hess_diag``."""

    def concatenated(tensors):
        # [n, c, Σa] stored with c innermost, so that the kernels' reductions over c run
        # over contiguous memory; the one copy of the engine's [n, c, a] tensors
        return torch.cat([t.transpose(1, 2) for t in tensors], 1).transpose(1, 2)

    def split(moments, tensors):
        parts, start = [], 0
        for t in tensors:
            stop = start + t.shape[2]
            parts.append({q: None if m is None else m[:, start:stop] for q, m in moments.items()})
            start = stop
        return parts

    jacs = list({id(pd.jac): pd.jac for pd in blocks}.values())
    hesses = list(
        {id(pd.hess_diag): pd.hess_diag for pd in blocks if pd.hess_diag is not None}.values()
    )
    all_jac = concatenated(jacs)
    jac_moments = _jac_moments(kernel, h, all_jac, spectrum)
    jac_moments.update(_est.extra_unit_moments(kernel, h, all_jac, extra, data_t))
    jac_parts = split(jac_moments, jacs)
    by_jac = dict(zip(map(id, jacs), jac_parts, strict=True))
    by_hess = {}
    if hesses:
        hm = _hess_moments(kernel, h, concatenated(hesses), spectrum)
        by_hess = dict(zip(map(id, hesses), split(hm, hesses), strict=True))
    return [
        {**by_jac[id(pd.jac)], **(by_hess[id(pd.hess_diag)] if pd.hess_diag is not None else {})}
        for pd in blocks
    ]


# --------------------------------------------------------------------------- accumulation
def _quantities(bounds: bool, var2: bool) -> list[str]:
    """The per-input quantities summed: without ``bounds`` no bound, without ``var2``
    nothing of ``V₂``."""
    return [
        q
        for q in _POWER2 + _POWER4
        if (bounds or q not in _BOUNDS) and (var2 or not q.startswith("var2"))
    ]


class _Sums:
    """Running sums over inputs (or per-input values with ``per_sample``) of every
    quantity, per parameter, shaped like the parameter."""

    def __init__(
        self,
        shapes: dict[str, torch.Size],
        n_inputs: int,
        dtype: torch.dtype,
        per_sample: bool,
        bounds: bool,
        device: torch.device,
        extra=(),
        var2: bool = True,
    ):
        self.names = list(shapes)
        self.per_sample = per_sample
        self.quantities = _quantities(bounds, var2)
        self.quantities += [q for q in extra if q not in self.quantities]
        lead = (n_inputs,) if per_sample else ()
        self.data = {
            name: {
                q: torch.zeros((*lead, *shape), dtype=dtype, device=device) for q in self.quantities
            }
            for name, shape in shapes.items()
        }

    def ensure(self, n_rows: int) -> None:
        """Room for ``n_rows`` per-input rows (a stream of unknown length grows them by
        doubling)."""
        if not self.per_sample:
            return
        for store in self.data.values():
            for q, t in store.items():
                if t.shape[0] < n_rows:
                    grown = t.new_zeros(max(n_rows, 2 * t.shape[0]), *t.shape[1:])
                    grown[: t.shape[0]] = t
                    store[q] = grown

    def trim(self, n_rows: int) -> None:
        """Drop per-input rows beyond the ``n_rows`` inputs read."""
        if self.per_sample:
            for store in self.data.values():
                for q in store:
                    store[q] = store[q][:n_rows]

    def reduce_ranks(self, n_local: int, device) -> int:
        """Sum (or, per input, gather in rank order) the sums across ranks; return the
        number of inputs over all ranks."""
        if self.per_sample:
            for store in self.data.values():
                for q in store:
                    store[q] = _dist.all_gather_rows(store[q])
        else:
            _dist.all_reduce_sum([t for store in self.data.values() for t in store.values()])
        return _dist.all_reduce_count(n_local, device)

    def add(self, pd: ParamDerivatives, moments: dict[str, Tensor | None], rows: slice) -> None:
        """Reduce one block's per-unit moments into its parameter's sums: the block knows
        its own factorisation (:meth:`ParamDerivatives.reduce`)."""
        pd.reduce(
            self.data[pd.name],
            moments,
            rows,
            self.per_sample,
            power2=_POWER2 + _est.POWER2,
            power1=_est.POWER1,
        )


class _CostClock:
    """Projects a run's total time once, from its throughput (parameter entries × inputs
    per second) measured after the first step, which also pays for one-time work (the
    tracing of vectorised transforms) and would overstate the cost."""

    #: blocks timed (after the first) before the projection is made
    BLOCKS = 2

    def __init__(self, total_units: int | None):
        self.total = total_units
        self.done = 0
        self.blocks = 0
        self.start: float | None = None
        self.warm_units = 0
        self.t0 = time.perf_counter()
        self.reported = False

    def tick(self, units: int) -> float | None:
        """Record a finished block of ``units``; return the projected total seconds once."""
        now = time.perf_counter()
        self.done += units
        self.blocks += 1
        if self.blocks == 1:
            self.start, self.warm_units = now, self.done
            return None
        if self.total is None or self.reported or self.blocks <= self.BLOCKS:
            return None
        if self.done >= self.total:
            return None
        self.reported = True
        rate = (self.done - self.warm_units) / max(now - self.start, 1e-9)
        return (now - self.t0) + (self.total - self.done) / rate


def _warn_cost(estimate: float | None, eng, n_entries: int, known: int | None) -> None:
    """Warn once the projected time of the run is over ``GENERIC_WARN_SECONDS``."""
    if estimate is not None and estimate > GENERIC_WARN_SECONDS:
        warnings.warn(
            f"{eng.path} path: about {estimate:.0f} s in all for {n_entries:,} parameter "
            f"entries × {known} inputs ({eng.cost_note}; measured on the steps done so far)",
            DerivativeWarning,
            stacklevel=3,
        )


def _check_h(kernel, h: Tensor, rows: slice) -> None:
    if h.dim() != 2 or h.shape[1] != kernel.d:
        raise ShapeError(
            f"the model output for inputs {rows.start}..{rows.stop - 1} has shape "
            f"{tuple(h.shape)}; family {kernel.name!r} needs [n_inputs, {kernel.d}]"
        )
    try:
        kernel.check_h(h)
    except (DomainError, NonFiniteError, ShapeError) as err:
        raise type(err)(
            f"the model output (natural parameters h) for inputs {rows.start}..{rows.stop - 1} "
            f"is not valid for family {kernel.name!r}: {err}"
        ) from err


def _all_finite(t: Tensor) -> bool:
    # one pass over t: NaN and ±inf propagate into the sum; only a sum that overflows
    # from finite terms needs the elementwise check
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _groups(names: list[str]) -> dict[str, list[str]]:
    """Module path → its parameter names (:func:`fishsym.common.parameter_groups`)."""
    return parameter_groups(names)


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
        inputs in memory; data labels at masked positions must still be valid labels.
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
            'estimator "neg_hessian" is the negative Hessian, whose variance is V₂: it needs '
            "var2=True (var2=False skips every second derivative)"
        )
    extra = sorted({q for e in estimators for q in _est.EXTRA_QUANTITIES.get(e, ())})
    inputs, layout = masked_inputs(inputs, mask, model)
    source = DataSource(inputs, max_inputs=max_inputs, labels=labels)
    reduce_ranks = use_distributed(distributed)
    # a view made by another entry point (diagonal_fisher's exact route) keeps what its
    # probe decided about the model's hooks
    view = (
        model.cast(dtype)
        if isinstance(model, ModelView)
        else ModelView(model, dtype, output, mask_layout=layout)
    )
    stream = source.batches()
    first_x, first_y = next(stream)
    first_x = cast_inputs(first_x, dtype, view.device)
    out_dim = view.probe(first_x)
    eng = _engine.select(view, path)
    eng.second_order = var2
    if view.frozen:
        warnings.warn(
            f"skipping {len(view.frozen)} parameter(s) with requires_grad=False: "
            f"{', '.join(view.frozen)}",
            DerivativeWarning,
            stacklevel=2,
        )
    kernel = _kernels.for_output(family, out_dim, view.out_shape)
    wanted_labels = [e for e in estimators if e in _est.DATA_LABEL_ESTIMATORS]
    if wanted_labels and first_y is None:
        raise InvalidArgumentError(
            f"estimators {wanted_labels} use the data labels: pass labels=, one per input, "
            "or batches (x, y)"
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
        eng.second_order = var2
        eng.prepare(first_x)
    # working memory of the engine: the user's max_memory when given
    work = MEMORY_BUDGET if max_memory is None else memory_budget(max_memory, view.device)
    chunk = chunk_size or eng.default_chunk(dtype, work, out_dim)
    known = source.known_length()

    names = eng.param_names()
    shapes = {name: view.params[name].shape for name in names}
    n_quantities = len(_quantities(bounds, var2))
    n_entries = sum(s.numel() for s in shapes.values())
    itemsize = torch.finfo(dtype).bits // 8
    budget = memory_budget(max_memory, view.device)
    per_input_bytes = n_entries * n_quantities * itemsize

    def check_rows(n_rows):
        check_memory(
            per_input_bytes * (n_rows if per_sample else 1),
            budget,
            f"fisher_variances(per_sample={per_sample}) for {n_rows} inputs × "
            f"{n_entries:,} parameter entries × {n_quantities} quantities",
            f"At most {max(0, budget // per_input_bytes):,} inputs fit per_sample=True; pass "
            "fewer inputs (max_inputs=), per_sample=False (input averages), or a larger "
            "max_memory.",
        )

    check_rows(known or first_x.shape[0])
    sums = _Sums(
        shapes, known or first_x.shape[0], dtype, per_sample, bounds, view.device, extra, var2
    )
    methods: dict[str, set[str]] = {}
    routes: dict[str, set[str]] = {}

    if source.in_memory:
        n = known
        total = sum(eng.steps(min(chunk, n - s), chunk, out_dim) for s in range(0, n, chunk))
        bar = progress_bar(total, "fisher_variances", progress, delay=PROGRESS_DELAY, unit="step")
    else:
        # a stream: count inputs (the steps per batch are known only as batches arrive)
        bar = progress_bar(
            known,
            "fisher_variances",
            progress,
            delay=PROGRESS_DELAY,
            unit="input",
            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} inputs [{elapsed}<{remaining}]",
        )
    clock = _CostClock(n_entries * known if known else None)
    n_inputs = 0
    with torch.no_grad() if eng.no_grad else contextlib.nullcontext():
        for index, (xb, yb) in enumerate(itertools.chain([(first_x, first_y)], stream)):
            xb = xb if index == 0 else cast_inputs(xb, dtype, view.device)
            if wanted_labels and yb is None:
                raise InvalidArgumentError(
                    f"estimators {wanted_labels} use the data labels: batch {index} has none"
                )
            tb = None if not wanted_labels else kernel.suff_stat(yb.to(view.device), dtype)
            for start in range(0, xb.shape[0], chunk):
                local = slice(start, min(start + chunk, xb.shape[0]))
                rows = slice(n_inputs + local.start, n_inputs + local.stop)
                if per_sample:
                    check_rows(rows.stop)
                    sums.ensure(rows.stop)
                h, batches = eng.batches(xb[local], out_dim)
                _check_h(kernel, h, rows)
                spectrum = None
                if bounds:
                    # the bounds use only the certified fields: skip the local search
                    spectrum = kernel.spectrum(h, local=tight_paper_bounds)
                    paper = paper_spectrum(kernel, h, spectrum)
                    for key, how in {**spectrum.methods, **paper}.items():
                        methods.setdefault(key, set()).add(str(how))
                n_steps = eng.steps(local.stop - local.start, chunk, out_dim)
                # an engine whose batches differ in cost (the layer-rule blocks come after
                # one backward pass for the whole chunk) is timed per chunk of inputs
                per_batch = getattr(eng, "uniform_batches", True)
                units = 0
                for batch in batches:
                    for pd, moments in zip(
                        batch,
                        _batched_moments(
                            kernel, h, batch, spectrum, extra, None if tb is None else tb[local]
                        ),
                        strict=True,
                    ):
                        sums.add(pd, moments, rows)
                        routes.setdefault(pd.name, set()).add(_route(eng, pd))
                    bar.update(1 if source.in_memory else (local.stop - local.start) / n_steps)
                    units += sum(pd.n_units() for pd in batch)
                    if per_batch:
                        _warn_cost(clock.tick(units), eng, n_entries, known)
                        units = 0
                if not per_batch:
                    _warn_cost(clock.tick(units), eng, n_entries, known)
                    units = 0
            n_inputs += xb.shape[0]
    bar.close()
    sums.trim(n_inputs)
    if reduce_ranks:
        # every rank's sums over its own inputs, summed: the result over all inputs
        n_inputs = sums.reduce_ranks(n_inputs, view.device)
        methods, routes = _dist.union_of_sets(methods), _dist.union_of_sets(routes)
    res = _finish(
        sums,
        kernel,
        names,
        per_sample,
        bounds,
        methods,
        n_inputs,
        eng.path,
        dtype,
        estimators,
        var2,
    )
    if var2:
        res.var2_routes.update({name: " + ".join(sorted(routes[name])) for name in names})
    else:
        res.var2_routes.update(dict.fromkeys(names, SKIPPED_ROUTE))
        res.skipped = ("var2",)
    factors = getattr(kernel, "T", 1)
    res.cost = {e: _est.cost(e, n_inputs, out_dim, factors) for e in estimators}
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
    sums: _Sums, kernel, names, per_sample, bounds, methods, n_inputs, path, dtype, estimators,
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
        for q in (b for b in _BOUNDS if b in sums.quantities):
            sign = 1 if q.endswith("upper") else -1
            for name in names:
                means[q][name].mul_(1 + sign * (SUM_ULPS + n_inputs) * eps)
                if per_sample:  # per-input values: no sum, only the z⁴ roundings
                    per_input[q][name].mul_(1 + sign * SUM_ULPS * eps)
    for q in (q for q in ("fisher", "var1", "var2", *_BOUNDS) if q in sums.quantities):
        for name in names:
            t = reported[q][name]
            if not _all_finite(t):
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
        groups=_groups(names),
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


__all__ = ["fisher_variances", "resolve_kernel", "unit_moments", "DerivativeWarning"]
