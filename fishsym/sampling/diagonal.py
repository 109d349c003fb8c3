"""``diagonal_fisher``: a diagonal Fisher with error bars, at any scale (docs/theory.md §5, §9).

The estimate is of the **mean Fisher over the given inputs**, ``F̄_i = (1/n) Σ_n
I(θ_i|x_n)``. It is built from *rounds*: in each round every input gets one draw — a label
from the model for the squared score ``Î₁`` (``(∂_iℓ)²``), or a Rademacher probe for the
Hutchinson estimator (``(∂_i ξᵀR̄ᵀh)²``) — and one squared per-input gradient of
``ψ_n = c_nᵀh_n``, formed layer by layer from one backward pass of the batch
(:mod:`fishsym.engine.sumsq`, docs/theory.md §12; ``vmap(grad)`` for parameters no layer
rule covers). The round's estimate is the
mean over the inputs; rounds are independent, so their mean is unbiased and their
spread gives a standard error without any model assumption. The interval is Student-t
with Hall's (1992) skewness correction (:func:`interval`): squared scores of rare labels
are strongly right-skewed, and the plain t-interval then misses the truth from below far
more often than its nominal rate says (measured on a 1,000-class head at 1,024 rounds:
90 % plain, 95 % corrected).

``estimator="auto"`` runs a pilot of both for a few rounds and keeps, per parameter group,
the one with the smaller estimated variance (both cost one backward pass per input and
round); rounds are added until, in every group, the **median entry's** relative error
at ``confidence`` (Student-t on the rounds) is at most ``rel_error``, or ``max_labels``
rounds are spent — the report says which (never before :data:`MIN_ROUNDS` rounds: a
t-interval on fewer rounds of skewed squared scores covers less than its nominal rate).
An entry whose rounds never differed although its mean is positive (with many classes, a
label never drawn) counts as unresolved, never as exact (its standard error is ``inf``
and its interval ``[0, inf)``): the squared score's sample variance cannot see events it
has not sampled, so with many classes and few labels the Hutchinson estimator (every
class contributes to every probe) is both chosen and reliable. Where the exact route is
cheap (``exact="auto"``: few outputs and a small model) the exact Fisher is returned
instead, with zero error, and the report says so.

**The head in closed form** (``exact_head=True``). Where the model's output is, provably,
the output of one final ``nn.Linear`` (``h = W z + b``: :meth:`ModelView.linear_head`),
its entries have ``u = e_a z_b``, so the label (or probe) can be integrated out exactly:
``E_y[(∂ℓ/∂W[a,b])²] = I(h)_aa z_b²`` — the conditional expectation of either estimator
given the input (Rao–Blackwell), at the cost of one forward pass, with zero error. This
matters most where sampling is least reliable: the head row of a rare class ``a`` is hit
only when that class is drawn (``p_a ≈ 10⁻⁴`` over 6,000 draws: about one hit), a
low-count event for which no interval from the rounds is valid (measured: the squared
score's 95 % intervals cover 91.7 % of a bare 1,000-class head's entries at 128 rounds).
The other parameters are sampled as described; their intervals cover at the nominal rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import vjp

from fishsym import kernels as _kernels
from fishsym.common import (
    ModelView,
    cast_inputs,
    check_choice,
    check_count,
    check_dtype,
    check_generator,
    check_positive,
    check_probability,
    math_attention,
    memory_budget,
    parameter_groups,
)
from fishsym.common import distributed as _dist
from fishsym.common.data import materialise
from fishsym.common.distributed import use_distributed
from fishsym.common.mask import pack_mask
from fishsym.common.model import translate_model_errors
from fishsym.common.tables import text_table
from fishsym.engine.sumsq import SquaredGradientSums
from fishsym.errors import InvalidArgumentError

#: the sampling estimators (both one backward pass per input and round)
SAMPLED = ("squared_score", "hutchinson")
#: rounds of the pilot that chooses the estimator
PILOT_ROUNDS = 16
#: fewest rounds behind a "reached" answer: squared scores are skewed (rare labels), and
#: a Student-t interval on fewer rounds covers less than its nominal rate (measured:
#: 85 % at 32 rounds, 93.5 % at 128, 94.7 % at 512 on a saturated 5-class MLP)
MIN_ROUNDS = 64
#: the exact route (``exact="auto"``) costs ``d`` reverse passes per input, sampling at
#: least ``MIN_ROUNDS`` (two estimators in the pilot): exact when ``d`` is at most this
EXACT_MAX_OUTPUTS = 128
#: the held inputs may take ``1/INPUT_SHARE`` of the memory budget (the rest: the model's
#: per-sample gradients and the running moments)
INPUT_SHARE = 4


#: the exact entries (the exact route, the closed-form head) are computed in float64; their
#: interval is the value widened by this many float64 ulps of its size — the rounding of the
#: forward pass, the family's ``I(h)`` and the sum over inputs (each a few ulps per
#: operation, amplified by at most the model's conditioning) — plus the rounding of the
#: result to the working dtype. Not certified: a model whose float64 forward pass loses
#: more than ``EXACT_ULPS`` ulps can fall outside it.
EXACT_ULPS = 4096


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t with ``dof`` degrees of freedom
    (``scipy.stats.t.ppf``: exact at every ``dof``; ``inf`` for ``dof ≤ 0``)."""
    from scipy import stats

    if dof <= 0:
        return math.inf
    return float(stats.t.ppf(p, dof))


def exact_margin(value: Tensor, dtype: torch.dtype) -> Tensor:
    """The half-width of the interval of an exact entry ``value``: :data:`EXACT_ULPS` float64
    ulps of its size and one rounding to ``dtype`` (:data:`EXACT_ULPS`)."""
    rel = EXACT_ULPS * torch.finfo(torch.float64).eps + torch.finfo(dtype).eps
    return value.abs() * rel


def interval(
    mean: Tensor, stderr: Tensor, skewness: Tensor, rounds: int, confidence: float
) -> tuple[Tensor, Tensor]:
    """Skewness-corrected Student-t interval for a mean of ``rounds`` replicates
    (Hall 1992, *On the removal of skewness by transformation*, JRSS B 54).

    The studentised mean ``T = (x̄ − μ)/s_x̄`` of right-skewed replicates (sample skewness
    ``γ``) has mean ``≈ −γ/(2√r)`` and skewness ``≈ −2γ/√r``; the monotone map
    ``g(T) = ((1 + aT/3)³ − 1)/a + a/6`` with ``a = γ/√r`` removes both to order ``1/√r``,
    so ``g(T)`` is referred to the t quantile ``q``: ``μ ∈ [x̄ − s_x̄ g⁻¹(q),
    x̄ − s_x̄ g⁻¹(−q)]`` with ``g⁻¹(y) = (3/a)(∛(1 + a(y − a/6)) − 1)``. At ``γ = 0`` it is
    the t-interval ``x̄ ∓ q s_x̄``. A Fisher entry is never negative: ``lower ≥ 0``.
    Returns ``(lower, upper)`` shaped like ``mean``.
    """
    q = t_quantile((1 + confidence) / 2, rounds - 1) if rounds > 1 else math.inf
    a = skewness / math.sqrt(max(rounds, 1))
    tiny = a.abs() < 1e-8  # g⁻¹(y) → y − a/6 as a → 0 (the cube root would cancel)

    def g_inv(y: float) -> Tensor:
        z = 1 + a * (y - a / 6)
        root = z.sign() * z.abs().pow(1 / 3)
        safe = torch.where(tiny, torch.ones_like(a), a)
        return torch.where(tiny, y - a / 6, 3 / safe * (root - 1))

    if math.isinf(q):
        inf = torch.full_like(mean, math.inf)
        return torch.zeros_like(mean), inf
    # 0·inf is nan: an unresolved entry (stderr inf) gets [0, inf)
    lower = torch.where(stderr.isinf(), 0.0, mean - stderr * g_inv(q))
    upper = torch.where(stderr.isinf(), math.inf, mean - stderr * g_inv(-q))
    exact = stderr == 0
    lower = torch.where(exact, mean, lower).clamp_min(0)
    upper = torch.where(exact, mean, upper)
    return lower, upper


@dataclass
class DiagonalFisher:
    """The result of :func:`diagonal_fisher`.

    Attributes
    ----------
    value:
        ``{name: tensor}`` shaped like the parameters: the estimate of the mean Fisher.
    stderr:
        ``{name: tensor}``: standard errors (zero on the exact route; ``inf`` where
        ``unresolved``).
    skewness:
        ``{name: tensor}``: sample skewness of each entry's round estimates (zero on the
        exact route), which :meth:`ci` corrects for.
    unresolved:
        ``{name: bool tensor}``: entries with a positive mean whose rounds never differed
        (a label never drawn): nothing is known about their error.
    rounds:
        Draws per input used, per parameter group.
    rounding:
        ``{name: tensor}``: the half-width of the interval of an exact entry (the exact
        route, the closed-form head: computed in float64, :func:`exact_margin`); zero for
        sampled entries, whose rounding is far below their standard error.
    estimators:
        The estimator used per group (``"exact"`` on the exact route,
        ``"closed-form head"`` for the final Linear layer with ``exact_head``).
    status:
        Per group: ``"reached"`` (the target error), ``"budget spent"`` or ``"exact"``.
    """

    value: dict[str, Tensor]
    stderr: dict[str, Tensor]
    groups: dict[str, list[str]]
    rounding: dict[str, Tensor] = field(default_factory=dict)
    skewness: dict[str, Tensor] = field(default_factory=dict)
    unresolved: dict[str, Tensor] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)
    estimators: dict[str, str] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    achieved: dict[str, float] = field(default_factory=dict)
    rel_error: float = 0.1
    confidence: float = 0.95
    n_inputs: int = 0

    def ci(self, confidence: float = 0.95) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(lower, upper)`` dicts at ``confidence``: the skewness-corrected Student-t
        interval on the rounds (:func:`interval`; a Fisher entry is never negative, so
        ``lower ≥ 0``; ``[0, inf)`` where ``unresolved``); for exact entries (the exact
        route, the closed-form head) the value ± its rounding margin
        (:attr:`rounding`, :func:`exact_margin`)."""
        confidence = check_probability(confidence, "confidence")
        lower, upper = {}, {}
        for group, names in self.groups.items():
            rounds = self.rounds.get(group, 0)
            for n in names:
                margin = self.rounding.get(n)
                if self.status.get(group) == "exact":
                    lower[n], upper[n] = self.value[n] - margin, self.value[n] + margin
                else:
                    lower[n], upper[n] = interval(
                        self.value[n], self.stderr[n], self.skewness[n], rounds, confidence
                    )
                    if margin is not None:
                        lower[n], upper[n] = lower[n] - margin, upper[n] + margin
                lower[n] = lower[n].clamp_min(0)
        return lower, upper

    def report(self) -> str:
        """Per layer: estimator, draws per input, achieved relative error of the median
        entry at the requested confidence, and whether the target was reached."""
        head = ["group", "estimator", "draws/input", "median rel. error", "unresolved", "status"]
        body = [
            [
                g or "(model)",
                self.estimators[g],
                str(self.rounds[g]),
                f"{100 * self.achieved[g]:.3g}%",
                str(sum(int(self.unresolved[n].sum()) for n in names)),
                self.status[g],
            ]
            for g, names in self.groups.items()
        ]
        return text_table(
            f"diagonal Fisher (mean over {self.n_inputs} inputs): target {self.rel_error:.0%} "
            f"relative error of each layer's median entry at {self.confidence:.0%} confidence",
            head,
            body,
        )

    def __str__(self) -> str:
        return self.report()


class _Sampler:
    """One round of per-sample squared gradients, for each sampling estimator."""

    def __init__(
        self,
        view: ModelView,
        kernel,
        x: Tensor,
        generator: torch.Generator,
        reduce_ranks: bool = False,
        n_total: int | None = None,
        names: list[str] | None = None,
        h: Tensor | None = None,
    ):
        self.view, self.kernel, self.x, self.gen = view, kernel, x, generator
        self.reduce_ranks = reduce_ranks
        self.n_total = x.shape[0] if n_total is None else n_total
        # the parameters differentiated (the others, e.g. a closed-form head, stay fixed)
        self.names = list(view.params) if names is None else list(names)
        if h is None:
            with math_attention():
                h = view.outputs(x)
        self.h = h
        self._root = None  # the probe's map, made on the first Hutchinson round
        self.sums = SquaredGradientSums(view, self.names)

    def _probe_map(self):
        """``(pull, r)``: ``ξ ↦ R̄ξ`` and the probe length ``r``. ``∂ψ/∂h = R̄ξ`` is the
        transpose of the (linear) map ``v ↦ R̄ᵀv``, by one vector-Jacobian product — O(d)
        per input for the categorical factor, no d × d. Made only when a Hutchinson round
        needs it: its closure holds several output-sized tensors (a language model's
        ``[n, T·V]``)."""
        if self._root is None:
            h = self.h
            zeros = torch.zeros(*h.shape, 1, dtype=h.dtype, device=h.device)
            rows, pull = vjp(lambda v: self.kernel.root_t(h, v), zeros)
            self._root = (pull, rows.shape[1])
        return self._root

    def round(self, estimator: str) -> dict[str, Tensor]:
        """``{name: mean over inputs of (∂_i ψ_n)²}`` for one fresh draw per input, with
        ``ψ_n = c_nᵀh_n``: ``c_n = t(y_n) − η_n = ∇_h log p(y_n|h_n)`` for a sampled label,
        ``c_n = R̄ξ_n`` for a probe (docs/theory.md §9); the sums of squares layer by
        layer (:class:`fishsym.engine.sumsq.SquaredGradientSums`, §12)."""
        n = self.x.shape[0]
        if estimator == "squared_score":
            labels = self.kernel.sample(self.h, 1, self.gen)[0]
            cot = self.kernel.suff_stat(labels, self.h.dtype) - self.kernel.mean(self.h)
        else:
            pull, r = self._probe_map()
            xi_signs = torch.randint(0, 2, (n, r), generator=self.gen).to(self.h) * 2 - 1
            cot = pull(xi_signs[..., None])[0][..., 0]  # R̄ξ
        with math_attention():
            total = self.sums(self.x, cot)
        if self.reduce_ranks:
            # the round's estimate over every rank's inputs (each drew its own labels)
            _dist.all_reduce_sum(list(total.values()))
        # the sums are this round's own: divided in place (no second parameter-sized copy)
        return {name: t.div_(self.n_total) for name, t in total.items()}


@translate_model_errors
def diagonal_fisher(
    model: nn.Module,
    inputs,
    family,
    *,
    rel_error: float = 0.1,
    confidence: float = 0.95,
    estimator: str = "auto",
    max_labels: int | None = None,
    generator: torch.Generator,
    exact: bool | str = "auto",
    dtype: torch.dtype | None = None,
    output=None,
    max_inputs: int | None = None,
    distributed: bool | None = None,
    exact_head: bool = True,
    max_memory: float | None = None,
    mask=None,
) -> DiagonalFisher:
    """A diagonal Fisher (mean over ``inputs``) with standard errors and a stated accuracy.

    Parameters
    ----------
    model, inputs, family, output, max_inputs, mask:
        As for :func:`fishsym.fisher_variances` (a ``Dataset`` or ``DataLoader`` is read
        into memory once: every round revisits every input). An output with factor axes
        ``[n, *factors, d]`` (tokens) is one label per position, drawn given the data
        prefix (teacher forcing, docs/theory.md §11); the closed-form head is summed over
        the positions.
    distributed:
        Under an initialised ``torch.distributed`` group (``None``: whenever one with more
        than one rank is), each rank passes its own inputs; every round's estimate is
        summed over the ranks, each rank drawing from its own stream
        (:func:`fishsym.common.distributed.rank_generator`), so every rank returns the
        same estimate of the mean Fisher over all ranks' inputs.
    rel_error, confidence:
        Target: in every parameter group, the relative error of the median entry at
        ``confidence`` (Student-t on the rounds) at most ``rel_error``.
    estimator:
        ``"auto"`` (per group, the lower-variance of ``"squared_score"`` and
        ``"hutchinson"`` from a pilot), or one of them.
    max_labels:
        The most draws per input (rounds); default ``10 000``.
    generator:
        Every label and probe is drawn from it (no global random state).
    exact:
        ``"auto"`` takes the exact route (:func:`fishsym.fisher_variances`) when it costs
        fewer passes than sampling would (``d ≤ EXACT_MAX_OUTPUTS``); ``True`` always,
        ``False`` never.
    max_memory:
        Bytes this call may plan to use (default: half of this machine's memory); the
        inputs, held in memory for the rounds, may take ``1/INPUT_SHARE`` of it — a
        larger stream is refused before it is read.
    exact_head:
        Give the final ``nn.Linear`` layer, where ``h = W z + b`` is proved
        (:meth:`fishsym.common.ModelView.linear_head`), its exact Fisher in closed form,
        ``mean_n I(h_n)_aa z_{n,b}²`` (zero error; ``estimators[group] ==
        "closed-form head"``), and sample only the other parameters; ``False`` samples
        every parameter.
    """
    rel_error = check_positive(rel_error, "rel_error")
    confidence = check_probability(confidence, "confidence")
    estimator = check_choice(estimator, ("auto", *SAMPLED), "estimator")
    max_labels = 10_000 if max_labels is None else check_count(max_labels, "max_labels", 2)
    check_generator(generator)
    if exact not in (True, False, "auto"):
        raise InvalidArgumentError(f"exact must be True, False or 'auto'; got {exact!r}")
    if not isinstance(exact_head, bool):
        raise InvalidArgumentError(f"exact_head must be True or False; got {exact_head!r}")
    dtype = check_dtype(dtype)
    # every round revisits every input: a stream is held in memory, refused up front
    # where it would not fit
    x, _ = materialise(
        inputs, max_inputs=max_inputs, max_bytes=memory_budget(max_memory) // INPUT_SHARE
    )
    reduce_ranks = use_distributed(distributed)
    n_total = _dist.all_reduce_count(x.shape[0], x.device) if reduce_ranks else x.shape[0]
    x, layout = pack_mask(x, mask) if mask is not None else (x, None)
    view = ModelView(model, dtype, output=output, mask_layout=layout)
    x = cast_inputs(x, dtype, view.device)
    d = view.probe(x)
    kernel = _kernels.for_output(family, d, view.out_shape)
    groups = parameter_groups(list(view.params))
    result = DiagonalFisher(
        {}, {}, groups, rel_error=rel_error, confidence=confidence, n_inputs=n_total
    )
    if exact is True or (exact == "auto" and d <= EXACT_MAX_OUTPUTS):
        from fishsym.variance import fisher_variances

        # in float64 whatever the working dtype: its interval is the rounding margin alone
        res = fisher_variances(
            view,
            x,
            kernel,
            dtype=torch.float64,
            output=output,
            bounds=False,
            distributed=distributed,
            var2=False,  # the Fisher alone: no second derivative
        )
        result.value = {n: t.to(dtype) for n, t in res.fisher.items()}
        result.rounding = {n: exact_margin(t, dtype) for n, t in res.fisher.items()}
        result.stderr = {n: torch.zeros_like(t) for n, t in result.value.items()}
        result.skewness = {n: torch.zeros_like(t) for n, t in res.fisher.items()}
        result.unresolved = {
            n: torch.zeros_like(t, dtype=torch.bool) for n, t in res.fisher.items()
        }
        for g in groups:
            result.rounds[g], result.estimators[g] = 0, "exact"
            result.status[g], result.achieved[g] = "exact", 0.0
        return result

    head = None
    if exact_head:
        # proved and evaluated in float64 (its interval is the rounding margin alone); the
        # sampled rounds use the working view and its h
        view64 = view.cast(torch.float64)
        head = view64.linear_head(x.to(torch.float64) if x.is_floating_point() else x)
        if reduce_ranks and not _dist.all_agree(head is not None, x.device):
            head = None  # proved on some ranks' inputs only: every rank samples the head
    if head is not None:
        _closed_form_head(result, head, kernel, groups, n_total, reduce_ranks, dtype)
        # the rest is sampled (a group keeps only its entries outside the head)
        rest = {g: [n for n in names if n not in head.names] for g, names in groups.items()}
        groups = {g: names for g, names in rest.items() if names}
        if not groups:
            return result
    sampled = [n for names in groups.values() for n in names]
    gen = _dist.rank_generator(generator) if reduce_ranks else generator
    sampler = _Sampler(view, kernel, x, gen, reduce_ranks, n_total, sampled)
    wanted = SAMPLED if estimator == "auto" else (estimator,)

    # running mean and sums of squared and cubed deviations per entry (Welford's and
    # Pébay's one-pass updates: r·mean² subtracted from a sum of squares would cancel to
    # zero where the rounds hardly differ)
    def fresh():
        return {e: {n: torch.zeros_like(view.params[n]) for n in sampled} for e in wanted}

    means, m2, m3 = fresh(), fresh(), fresh()
    rounds = dict.fromkeys(wanted, 0)

    def run(e):
        est = sampler.round(e)
        rounds[e] += 1
        r = rounds[e]
        for n, t in est.items():
            delta = t - means[e][n]
            step = delta / r
            spread = delta * step * (r - 1)
            m3[e][n] += spread * step * (r - 2) - 3 * step * m2[e][n]
            m2[e][n] += spread
            means[e][n] += step

    def moments(e, names):
        """``(mean, variance, skewness, unresolved)`` per entry of ``names`` under ``e``;
        an unresolved entry (rounds never differed although the mean is positive: its
        sample variance 0 says nothing — a label class never drawn, say) never counts as
        exact."""
        r = rounds[e]
        mean = {n: means[e][n] for n in names}
        var = {n: m2[e][n] / (r - 1) for n in names}
        biased = {n: m2[e][n] / r for n in names}
        skew = {
            n: torch.where(biased[n] > 0, m3[e][n] / r / biased[n].clamp_min(1e-300) ** 1.5, 0.0)
            for n in names
        }
        unknown = {n: (var[n] == 0) & (mean[n] > 0) for n in names}
        return mean, var, skew, unknown

    def stderr_of(e, names):
        mean, var, skew, unknown = moments(e, names)
        se = {n: torch.where(unknown[n], math.inf, (var[n] / rounds[e]).sqrt()) for n in names}
        return mean, se, skew, unknown

    for e in wanted:
        for _ in range(min(PILOT_ROUNDS, max_labels)):
            run(e)

    choice = {}
    for g, names in groups.items():
        totals = {e: sum(float(moments(e, names)[1][n].sum()) for n in names) for e in wanted}
        # an estimator with unresolved entries in the pilot is chosen only if all are
        unresolved = {e: sum(int(u.sum()) for u in moments(e, names)[3].values()) for e in wanted}
        trusted = [e for e in wanted if unresolved[e] == 0] or list(wanted)
        choice[g] = min(trusted, key=lambda e: totals[e])
    needed = sorted(set(choice.values()))
    if len(wanted) > 1 and max_labels > PILOT_ROUNDS:
        # the pilot chose the estimator whose rounds happened to vary less: kept, they would
        # understate its variance (measured: 93.6 % coverage on 5-entry groups), so the
        # estimate starts afresh from rounds independent of the choice
        for e in needed:
            rounds[e] = 0
            for store in (means, m2, m3):
                for n in sampled:
                    store[e][n].zero_()

    def median_error(g):
        """The median over the group's positive entries of the larger half-width of the
        interval (:func:`interval`) relative to the estimate; unresolved entries count
        as infinitely uncertain."""
        e, names = choice[g], groups[g]
        mean, se, skew, _ = stderr_of(e, names)
        m = torch.cat([mean[n].reshape(-1) for n in names])
        positive = m > 0
        if not bool(positive.any()):
            return 0.0
        se = torch.cat([se[n].reshape(-1) for n in names])[positive]
        skew = torch.cat([skew[n].reshape(-1) for n in names])[positive]
        m = m[positive]
        lower, upper = interval(m, se, skew, rounds[e], confidence)
        width = torch.maximum(upper - m, m - lower)
        return float((width / m).median())

    while True:
        pending = [
            g
            for g in groups
            if median_error(g) > rel_error or rounds[choice[g]] < min(MIN_ROUNDS, max_labels)
        ]
        if not pending or all(rounds[choice[g]] >= max_labels for g in pending):
            break
        # enough rounds at once to reach the target at the current error, at most doubling
        for e in needed:
            if not any(choice[g] == e for g in pending) or rounds[e] >= max_labels:
                continue
            worst = max(median_error(g) for g in pending if choice[g] == e)
            if math.isfinite(worst):
                more = math.ceil(rounds[e] * ((worst / rel_error) ** 2 - 1))
            else:
                more = rounds[e]
            more = max(1, MIN_ROUNDS - rounds[e], min(more, rounds[e]))
            more = min(more, max_labels - rounds[e])
            for _ in range(more):
                run(e)
    for g, names in groups.items():
        e = choice[g]
        mean, se, skew, unknown = stderr_of(e, names)
        for n in names:
            result.value[n] = mean[n]
            result.rounding[n] = torch.zeros_like(mean[n])
            result.stderr[n] = se[n]
            result.skewness[n] = skew[n]
            result.unresolved[n] = unknown[n]
        result.rounds[g], result.estimators[g] = rounds[e], e
        result.achieved[g] = median_error(g)
        result.status[g] = "reached" if result.achieved[g] <= rel_error else "budget spent"
    return result


def _closed_form_head(result, head, kernel, groups, n_total, reduce_ranks, dtype) -> None:
    """Fill ``result`` for the head's parameters: ``mean_n Σ_t I(h_nt)_aa z_{nt,b}²``
    (weight) and ``mean_n Σ_t I(h_nt)_aa`` (bias; ``t`` over the positions of a factored
    output, one position otherwise), summed over every rank's inputs, from the float64
    ``head`` and returned in ``dtype`` with its rounding margin; the head's group is
    marked exact when all of its parameters are the head's."""
    diag = kernel.fisher_diagonal(head.h)  # [n, T·d]
    z = head.z if head.z.dim() == 3 else head.z[:, None, :]  # [n, T, in]
    diag = diag.reshape(z.shape[0], z.shape[1], -1)  # [n, T, d]: Σ_t I(h_t)_aa z_tb² (§11)
    if head.mask is not None:
        diag = diag * head.mask[..., None]  # padding: an absent factor
    sums = {}
    if head.weight is not None:
        sums[head.weight] = torch.einsum("ntc,ntb->cb", diag, z * z)
    if head.bias is not None:
        sums[head.bias] = diag.sum((0, 1))
    if reduce_ranks:
        _dist.all_reduce_sum(list(sums.values()))
    for name, total in sums.items():
        exact = total / n_total
        value = exact.to(dtype)
        result.rounding[name] = exact_margin(exact, dtype)
        result.value[name] = value
        result.stderr[name] = torch.zeros_like(value)
        result.skewness[name] = torch.zeros_like(value)
        result.unresolved[name] = torch.zeros_like(value, dtype=torch.bool)
    for g, names in groups.items():
        if set(names) <= set(sums):
            result.rounds[g], result.estimators[g] = 0, "closed-form head"
            result.status[g], result.achieved[g] = "exact", 0.0


__all__ = [
    "DiagonalFisher",
    "EXACT_ULPS",
    "diagonal_fisher",
    "exact_margin",
    "interval",
    "t_quantile",
]
