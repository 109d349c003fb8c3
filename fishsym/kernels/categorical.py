"""Structured ``O(C)`` kernels of the categorical family and its relatives (docs/theory.md §4).

With ``p = softmax(h)`` and one-hot ``t``:

* ``I = diag(p) − ppᵀ``, so ``vᵀIv = Σ_c p_c (v_c − pᵀv)²``;
* ``μ_4[v⁴] = E[((t−p)ᵀv)⁴] = Σ_c p_c (v_c − pᵀv)⁴``;

both evaluated in the centred form (no cancellation between power sums) in ``O(C)`` per
vector, never building ``I`` (``C²``) or ``μ_4`` (``C⁴``). The centred residuals
``v − pᵀv`` are formed in chunks of the batch so that no temporary exceeds
``max(size of v, CHUNK_ELEMENTS)`` elements: memory stays linear in ``C``.

Spectrum (``λ_max(I)`` exactly via the secular equation of the rank-one downdate
``diag(p) − ppᵀ``, the certified quartic bound, ``λ_min = 0`` for the over-complete form)
is in :func:`categorical_fisher_max` and :meth:`CategoricalKernel._spectrum`.

The same helpers give the minimal categorical form (``t`` = the first ``C − 1``
coordinates of the one-hot vector: ``(t_min − η)ᵀv = (t − p)ᵀ(v, 0)``) and the
multinomial with ``n`` trials (a sum of ``n`` independent one-hot vectors: cumulants
scale by ``n``, so ``μ_4^{(n)}[v⁴] = n·μ_4[v⁴] + 3n(n−1)·(vᵀIv)²``).
"""

from __future__ import annotations

import math

import torch

from fishsym.errors import ArgumentTypeError
from fishsym.kernels import samplers
from fishsym.kernels.base import (
    REAL_LINE,
    StructuredKernel,
    _wrapped,
    broadcast_batch,
    stable_logsumexp,
)
from fishsym.kernels.spectrum import (
    FIELDS,
    Spectrum,
    certified_only,
    power_iteration,
    power_label,
    starts,
)
from fishsym.kernels.stable import softmax_complement

#: largest temporary (in elements) of the centred residuals ``v − pᵀv``: 2²⁰ elements
#: (8 MiB in float64). Kept below glibc's largest mmap threshold (32 MiB) so that the
#: temporaries are recycled from the heap instead of being mapped and page-faulted anew
#: for every chunk, which cost several times the arithmetic in the benchmark. A chunk
#: holds at least one batch element, so one ``C × K`` slice larger than this is whole.
CHUNK_ELEMENTS = 2**20

#: bisection steps of the secular equation. Steps split the bracket at its geometric
#: mean once its left end is positive (arithmetic halving before), so the *relative*
#: width halves in log-scale each step: about log2(hi/root) halvings reach the root's
#: scale, then 53 steps give float64 resolution. 128 steps cover roots down to 2⁻⁶⁴ of
#: the initial bracket end with full relative accuracy.
SECULAR_STEPS = 128


# ---------------------------------------------------------------------- O(C) forms
def _centred_power_sum(p: torch.Tensor, v: torch.Tensor, power) -> torch.Tensor:
    """``Σ_c p_c (v_c − pᵀv)^power`` (``power`` 2, 3 or 4) per column, or with
    ``power="var"`` the variance ``Σ_c p_c (r_c² − f)²`` of ``r² = ((t−p)ᵀv)²``
    (``f = Σ_c p_c r_c²``): ``p`` ``[..., C]``, ``v`` ``[..., C, K]`` → ``[..., K]``.

    The residual of the most likely class ``m`` is formed without cancellation,
    ``r_m = Σ_{c≠m} p_c (v_m − v_c) = q_m v_m − Σ_{c≠m} p_c v_c`` with ``q_m = Σ_{c≠m} p_c``
    (not ``v_m − pᵀv``, which is ``v_m(1 − p_m) − …`` with ``1 − p_m`` lost for a confident
    output); the other classes have ``p_c ≤ ½`` and ``r_c = v_c − pᵀv``.

    The batch is processed in chunks gathered from broadcast views, so a ``v`` shared by
    the whole batch is never copied per batch element; temporaries stay within
    ``max(C·K, CHUNK_ELEMENTS)`` elements (see :data:`CHUNK_ELEMENTS`): memory is the
    input and output plus ``O(C·K)``, time ``O(batch·C·K)``.
    """
    batch = broadcast_batch(p.shape[:-1], v.shape[:-2], names=("h", "v"))
    C, K = v.shape[-2], v.shape[-1]
    B = batch.numel()
    step = max(1, CHUNK_ELEMENTS // max(1, C * K))

    def centred(pc, vc):
        # batch shapes of pc and vc may differ (broadcast): work on the common one
        shape = broadcast_batch(pc.shape[:-1], vc.shape[:-2], names=("h", "v"))
        pc = pc.expand(*shape, C)
        vc = vc.expand(*shape, C, K)
        top = pc.argmax(-1, keepdim=True)  # [..., 1]
        p_rest = pc.scatter(-1, top, 0.0)  # p with the top class zeroed
        rest = torch.einsum("...c,...cK->...K", p_rest, vc)  # Σ_{c≠m} p_c v_c
        top_k = top[..., None].expand(*shape, 1, K)
        v_top = vc.gather(-2, top_k)  # [..., 1, K]
        m = rest + pc.gather(-1, top) * v_top[..., 0, :]
        r = vc - m[..., None, :]
        # only the top row is replaced: q_m v_m − Σ_{c≠m} p_c v_c
        r_top = p_rest.sum(-1, keepdim=True)[..., None] * v_top - rest[..., None, :]
        r.scatter_(-2, top_k, r_top)  # in place: r is a fresh tensor
        # products, not pow (several times slower on CPU), and in place: one [.., C, K]
        # temporary besides the result (r is ours), which matters where large blocks
        # come from the system allocator each time
        if power == 3:
            return torch.einsum("...c,...cK->...K", pc, (r * r).mul_(r))
        rk = r.mul_(r)
        if power in ("var", "both"):
            f = torch.einsum("...c,...cK->...K", pc, rk)
            dev = rk.sub_(f[..., None, :])
            var = torch.einsum("...c,...cK->...K", pc, dev.mul_(dev))
            return var if power == "var" else torch.stack([f, var], -2)
        if power == 4:
            rk = rk.mul_(rk)
        return torch.einsum("...c,...cK->...K", pc, rk)

    if step >= B:
        return centred(p, v)
    p_flat = p.expand(*batch, C).reshape(B, C)
    if v.ndim == 2:  # one set of vectors for the whole batch: broadcast inside each chunk
        chunks = (centred(p_flat[i : i + step], v) for i in range(0, B, step))
    elif tuple(v.shape[:-2]) == tuple(batch):  # one set per batch element: slice views
        v_flat = v.reshape(B, C, K)
        chunks = (centred(p_flat[i : i + step], v_flat[i : i + step]) for i in range(0, B, step))
    else:  # partial broadcasting: gather each chunk's rows from the broadcast view
        ve = v.expand(*batch, C, K)

        def gathered(i):
            rows = torch.unravel_index(torch.arange(i, min(B, i + step), device=p.device), batch)
            return centred(p_flat[i : i + step], ve[rows])

        chunks = (gathered(i) for i in range(0, B, step))
    out = torch.cat(list(chunks), 0)
    return out.reshape(*batch, 2, K) if power == "both" else out.reshape(*batch, K)


def categorical_quadratic(p, v):
    """``vᵀ(diag(p) − ppᵀ)v = Σ_c p_c (v_c − pᵀv)²``, ``[..., K]``."""
    return _centred_power_sum(p, v, 2)


def categorical_cubic(p, v):
    """``μ_3[v³] = Σ_c p_c (v_c − pᵀv)³``, ``[..., K]``."""
    return _centred_power_sum(p, v, 3)


def categorical_quartic(p, v):
    """``μ_4[v⁴] = Σ_c p_c (v_c − pᵀv)⁴``, ``[..., K]`` (docs/theory.md §4)."""
    return _centred_power_sum(p, v, 4)


def categorical_var_squared(p, v):
    """``Var[((t−p)ᵀv)²] = Σ_c p_c ((v_c − pᵀv)² − f)²`` with ``f = vᵀIv``: ``V₁`` along
    ``v``, centred twice so it is never negative (``μ_4 − f²`` cancels, e.g. at
    ``p = (½, ⅙, ⅙, ⅙)`` where it is exactly 0), ``[..., K]``."""
    return _centred_power_sum(p, v, "var")


def categorical_quadratic_and_var_squared(p, v):
    """``(vᵀIv, Var[((t−p)ᵀv)²])`` from one pass over the centred residuals (the two
    forms above, without forming them twice), each ``[..., K]``."""
    both = _centred_power_sum(p, v, "both")
    return both[..., 0, :], both[..., 1, :]


def categorical_fisher(p, q=None):
    """``diag(p) − ppᵀ``, ``[..., C, C]`` (materialised only when asked).

    ``q = 1 − p`` may be passed computed without cancellation (:func:`softmax_complement`): the
    diagonal ``p_c(1 − p_c)`` of a confident class (``p_c ≈ 1``) is then accurate to
    rounding instead of to ``eps/(1 − p_c)``.
    """
    diag = torch.diag_embed(p * (1 - p) if q is None else p * q)
    eye = torch.eye(p.shape[-1], dtype=torch.bool, device=p.device)
    return torch.where(eye, diag, -p[..., :, None] * p[..., None, :])


def categorical_root_t(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(Rᵀv)_y = √p_y (v_y − pᵀv)`` per column, ``Rᵀ = diag(√p) − √p pᵀ`` (``RRᵀ =
    diag p − ppᵀ``): the factor of the Fisher-merging / Hutchinson recipe
    ``ψ = Σ_y ξ_y √p̄_y log p_y`` (docs/theory.md §9)."""
    mean = (p[..., :, None] * v).sum(-2, keepdim=True)
    return p.sqrt()[..., :, None] * (v - mean)


def _apply3_rows(p, v):
    """``μ_4[v, v, v, ·]`` and ``vᵀIv``-pieces for row vectors ``v`` ``[..., S, C]``.

    With ``r = v − (pᵀv)1``: ``μ_4[v,v,v,·] = p⊙r³ − p·Σ_c p_c r_c³``
    (``∂/∂v`` of ``Σ p r⁴`` over 4, using ``Σ_c p_c r_c = 0``). Returns ``(apply3, r)``.
    """
    pe = p[..., None, :]
    r = v - (v * pe).sum(-1, keepdim=True)
    pr3 = pe * r**3
    return pr3 - pe * pr3.sum(-1, keepdim=True), r


def _apply2_rows(p, v):
    """``μ_4[v, v, ·, ·] = Σ_c p_c r_c² (e_c − p)(e_c − p)ᵀ`` for rows ``v`` ``[..., S, C]``
    → ``[..., S, C, C]`` (for the Newton polish of small ``C`` only)."""
    pe = p[..., None, :]
    r = v - (v * pe).sum(-1, keepdim=True)
    w = pe * r * r
    pp = (p[..., :, None] * p[..., None, :])[..., None, :, :]
    return (
        torch.diag_embed(w)
        - w[..., :, None] * pe[..., None, :]
        - pe[..., :, None] * w[..., None, :]
        + w.sum(-1)[..., None, None] * pp
    )


def secular_root(p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, rest=None) -> torch.Tensor:
    """Root in ``[lo, hi]`` of the secular equation of ``diag(p) − ppᵀ``, by bisection.

    The eigenvalues ``λ`` of ``diag(p) − ppᵀ`` (``p ≥ 0``, ``Σ_c p_c = 1 − rest``) are the
    roots of ``f(λ) = 1 − Σ_c p_c²/(p_c − λ)`` (``det(D − λ − ppᵀ) = det(D − λ)·f(λ)``).
    Between consecutive poles ``f`` decreases strictly (``∂f/∂λ = −Σ p_c²/(p_c − λ)²``),
    so a bracket with ``f(lo) ≥ 0 ≥ f(hi)`` holds exactly one root. We evaluate ``f`` in
    the equivalent form ``f(λ) = rest − λ·Σ_c p_c/(p_c − λ)`` (from
    ``p²/(p−λ) = p + λp/(p−λ)``), which avoids the cancellation ``1 − (≈1)`` that ruins
    ``f`` for confident outputs. ``rest``: ``0`` for the over-complete categorical, ``p_C``
    for the minimal form. ``O(C)`` per step, vectorised over the batch ``[...]``.

    A step is an elementwise function of ``(lo, hi)``, so once a step changes no bracket
    of the batch, none of the remaining steps would either: the loop stops there with
    the result of all :data:`SECULAR_STEPS` steps (typically after about 25 steps in
    float32 and 55 in float64, when the brackets are one rounding unit wide).
    """
    hi = torch.maximum(hi, lo)  # rounding can cross a bracket that is exact in theory
    rest = torch.zeros_like(lo) if rest is None else rest
    may_stop = not _wrapped(lo)  # no data-dependent control flow under torch.func
    positive = p > 0
    ones = torch.ones_like(p)
    for _ in range(SECULAR_STEPS):
        mid = torch.where(
            lo > 0, lo * torch.sqrt(hi / lo.clamp_min(torch.finfo(lo.dtype).tiny)), hi / 2
        )
        gap = p - mid[..., None]
        on_pole = gap == 0
        hit = on_pole & positive  # a pole hit exactly: f = −∞ just left of it
        ratio = torch.where(positive, p / torch.where(on_pole, ones, gap), 0)
        f = rest - mid * ratio.sum(-1)
        right = (f > 0) & ~hit.any(-1)
        new_lo = torch.where(right, mid, lo)
        new_hi = torch.where(right, hi, mid)
        fixed = may_stop and torch.equal(new_lo, lo) and torch.equal(new_hi, hi)
        lo, hi = new_lo, new_hi
        if fixed:
            break
    return torch.where(
        lo > 0, lo * torch.sqrt(hi / lo.clamp_min(torch.finfo(lo.dtype).tiny)), hi / 2
    )


def categorical_fisher_max(p: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
    """``λ_max(diag(p) − ppᵀ)`` exactly, ``[..., C]`` → ``[...]`` (``O(C)`` per step).

    Interlacing puts the root in ``[p_(2), p_(1)]`` (the two largest probabilities), and
    docs/theory.md §4 gives ``max_c p_c(1−p_c) ≤ λ_max ≤ min(p_(1), 2·max_c p_c(1−p_c), 1 − ‖p‖²)``;
    the bracket is the intersection. Ties ``p_(1) = p_(2)`` give ``λ_max = p_(1)``.
    ``q = 1 − p`` (optional, computed without cancellation) sharpens the bracket for
    confident outputs; ``1 − ‖p‖² = Σ_c p_c q_c``.
    """
    q = 1 - p if q is None else q
    top = torch.topk(p, 2, dim=-1).values
    pq = p * q
    lo = torch.maximum(top[..., 1], pq.amax(-1))
    hi = torch.minimum(torch.minimum(top[..., 0], 2 * pq.amax(-1)), pq.sum(-1))
    return secular_root(p, lo, hi)


def _class_log_prob(y, h):
    """``log p_y = h_y − F(h)`` with the stable ``F`` of :func:`stable_logsumexp` (accurate
    second derivatives by autograd for confident outputs, where ``log_softmax`` gives
    ``p − p² = 0``): ``y`` ``[...]`` class indices, ``h`` ``[..., C]`` → ``[...]``."""
    batch = broadcast_batch(y.shape, h.shape[:-1])
    hb = h.expand(*batch, h.shape[-1])
    h_y = hb.gather(-1, y.long().expand(batch)[..., None])[..., 0]
    return h_y - stable_logsumexp(hb)


# ---------------------------------------------------------------------- kernels
class _SoftmaxKernel(StructuredKernel):
    """Shared parts of the categorical-type kernels: discrete, all-real logits."""

    def __init__(self, name, d, obs_shape, sizes, family=None):
        super().__init__(name, d, obs_shape, True, [REAL_LINE] * d, sizes, family)

    def _check_label_dtype(self, y, argname):
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ArgumentTypeError(
                f"{self._describe()}: {argname} must be an integer tensor (e.g. torch.int64); "
                f"got {y.dtype}"
            )


class CategoricalKernel(_SoftmaxKernel):
    """Categorical with ``C`` classes, over-complete logits ``h``; labels are class indices."""

    def __init__(self, C: int, family=None):
        if isinstance(C, bool) or int(C) != C or C < 2:
            raise ValueError(f"categorical: C must be an integer ≥ 2; got {C!r}")
        self.C = int(C)
        super().__init__("categorical", self.C, (), {"C": self.C}, family)

    def _check_support(self, y, argname):
        self._support_error(y, (y < 0) | (y >= self.C), argname, f"class indices 0..{self.C - 1}")

    def _support_labels(self):
        return torch.arange(self.C, dtype=torch.int64)

    def _suff_stat(self, y, dtype):
        return torch.nn.functional.one_hot(y.long(), self.C).to(dtype)

    def _log_prob(self, y, h):
        return _class_log_prob(y, h)

    def _log_partition(self, h):
        return stable_logsumexp(h)

    def _mean(self, h):
        return torch.softmax(h, -1)

    def _fisher(self, h):
        return categorical_fisher(*softmax_complement(h))

    def _fisher_diagonal(self, h):
        p, q = softmax_complement(h)  # p_c(1 − p_c) with 1 − p_c free of cancellation
        return p * q

    def _quadratic(self, h, v):
        return categorical_quadratic(torch.softmax(h, -1), v)

    def _cubic(self, h, v):
        return categorical_cubic(torch.softmax(h, -1), v)

    def _root_t(self, h, v):
        return categorical_root_t(torch.softmax(h, -1), v)

    def _quartic(self, h, v):
        return categorical_quartic(torch.softmax(h, -1), v)

    def _var_squared(self, h, v):
        return categorical_var_squared(torch.softmax(h, -1), v)

    def _quadratic_and_var_squared(self, h, v):
        return categorical_quadratic_and_var_squared(torch.softmax(h, -1), v)

    def _sample(self, h, n, generator):
        return samplers.categorical(self, h, n, generator)

    def _spectrum(self, h, local):
        p, q = softmax_complement(h)
        fisher_max = categorical_fisher_max(p, q)
        # certified: ((t−p)ᵀv)⁴ ≤ ‖t−p‖²‖v‖²((t−p)ᵀv)², so μ_4[v⁴] ≤ max_c‖e_c − p‖²·vᵀIv
        # ≤ (1 − 2·p_min + ‖p‖²)·λ_max(I)·‖v‖⁴ (docs/theory.md §4)
        upper = (1 - 2 * p.amin(-1) + (p * p).sum(-1)) * fisher_max
        # λ_min(μ_4) = 0 exactly: μ_4[v⁴] = E[((t−p)ᵀv)⁴] ≥ 0 for every v, and for
        # v = 1/√C, (t−p)ᵀ1 = Σ_c t_c − Σ_c p_c = 1 − 1 = 0 for every label, so the
        # value 0 is attained. Likewise λ_min(I) = 0 (I·1 = p − p·(pᵀ1) = 0, I ⪰ 0).
        zero = torch.zeros_like(fisher_max)
        methods = {
            "fisher_min": "closed-form (I·1 = 0, I ⪰ 0)",
            "fisher_max": f"secular-equation-bisection(steps={SECULAR_STEPS})",
            "mu4_max_upper": "categorical-certified (1 − 2·p_min + ‖p‖²)·λ_max(I)",
            "mu4_max_local": _power_label(self.C),
            "mu4_min_lower": "closed-form (ones vector: μ_4[1⁴] = 0, μ_4 ⪰ 0)",
            "mu4_min_local": "closed-form (ones vector: μ_4[1⁴] = 0, μ_4 ⪰ 0)",
        }
        if not local:
            return certified_only(zero, fisher_max, upper, zero, methods)
        local_max = self._power_max(p)
        return Spectrum(zero, fisher_max, upper, local_max, zero, zero, methods)

    def _power_max(self, p):
        def apply3(v):
            return _apply3_rows(p, v)[0]

        def form4(v):
            r = _apply3_rows(p, v)[1]
            return (p[..., None, :] * r**4).sum(-1)

        return power_iteration(
            apply3,
            form4,
            starts(self.C, p.shape[:-1], p, _extreme_starts(p)),
            torch.zeros_like(p[..., 0]),
            True,
            apply2=lambda v: _apply2_rows(p, v),
        )


def _extreme_starts(p):
    """Structured starts ``e_c − p`` for the least and the most likely class, ``[..., 2, C]``
    (the least likely class attains the ``max_c ‖e_c − p‖²`` of the certified bound)."""
    C = p.shape[-1]
    idx = torch.stack([p.argmin(-1), p.argmax(-1)], -1)
    return torch.nn.functional.one_hot(idx, C).to(p.dtype) - p[..., None, :]


def _power_label(d):
    return power_label(d, extra_starts=2)


class CategoricalMinimalKernel(_SoftmaxKernel):
    """Categorical, minimal form: ``C − 1`` logits against the last class; labels 0..C−1.

    Everything reduces to the over-complete form at ``p = softmax((h, 0))`` with vectors
    padded by a zero coordinate, since ``t_min = (e_y)_{1..C−1}``.
    """

    def __init__(self, C: int, family=None):
        if isinstance(C, bool) or int(C) != C or C < 2:
            raise ValueError(f"categorical_minimal: C must be an integer ≥ 2; got {C!r}")
        self.C = int(C)
        super().__init__("categorical_minimal", self.C - 1, (), {"C": self.C}, family)

    def _p(self, h):
        return torch.softmax(torch.cat([h, torch.zeros_like(h[..., :1])], -1), -1)

    def _pad(self, v):
        return torch.cat([v, torch.zeros_like(v[..., :1, :])], -2)

    def _root_t(self, h, v):
        # ψ = Σ_y ξ_y √p̄_y log p_y over all C classes, with the last logit fixed at 0
        return categorical_root_t(self._p(h), self._pad(v))

    def _check_support(self, y, argname):
        self._support_error(y, (y < 0) | (y >= self.C), argname, f"class indices 0..{self.C - 1}")

    def _support_labels(self):
        return torch.arange(self.C, dtype=torch.int64)

    def _suff_stat(self, y, dtype):
        return torch.nn.functional.one_hot(y.long(), self.C)[..., : self.C - 1].to(dtype)

    def _log_prob(self, y, h):
        return _class_log_prob(y, torch.cat([h, torch.zeros_like(h[..., :1])], -1))

    def _log_partition(self, h):
        return stable_logsumexp(torch.cat([h, torch.zeros_like(h[..., :1])], -1))

    def _mean(self, h):
        return self._p(h)[..., :-1]

    def _fisher(self, h):
        p, q = softmax_complement(torch.cat([h, torch.zeros_like(h[..., :1])], -1))
        return categorical_fisher(p[..., :-1], q[..., :-1])

    def _fisher_diagonal(self, h):
        p, q = softmax_complement(torch.cat([h, torch.zeros_like(h[..., :1])], -1))
        return (p * q)[..., :-1]

    def _quadratic(self, h, v):
        return categorical_quadratic(self._p(h), self._pad(v))

    def _cubic(self, h, v):
        return categorical_cubic(self._p(h), self._pad(v))

    def _quartic(self, h, v):
        return categorical_quartic(self._p(h), self._pad(v))

    def _var_squared(self, h, v):
        return categorical_var_squared(self._p(h), self._pad(v))

    def _sample(self, h, n, generator):
        return samplers.categorical_minimal(self, h, n, generator)

    def _spectrum(self, h, local):
        p, q = softmax_complement(torch.cat([h, torch.zeros_like(h[..., :1])], -1))
        pt, qt = p[..., :-1], q[..., :-1]  # the C−1 modelled probabilities, Σ = 1 − p_C
        d = self.d
        if d == 1:  # C = 2: a Bernoulli in disguise, every quantity is a closed form
            fisher = pt[..., 0] * qt[..., 0]
            mu4 = fisher * (1 - 3 * fisher)
            closed = dict.fromkeys(FIELDS, "closed-form (d = 1)")
            if not local:
                return certified_only(fisher, fisher.clone(), mu4, mu4.clone(), closed)
            return Spectrum(
                fisher, fisher.clone(), mu4, mu4.clone(), mu4.clone(), mu4.clone(), closed
            )
        else:
            low2 = torch.topk(pt, 2, dim=-1, largest=False).values
            top2 = torch.topk(pt, 2, dim=-1).values
            # I_min = diag(p̃) − p̃p̃ᵀ is a rank-one downdate too; interlacing brackets its
            # extreme eigenvalues by [0, p̃_min] (f(0) = 1 − Σp̃ = p_C ≥ 0) and [p̃_(2), p̃_(1)]
            rest = p[..., -1]
            # I_min is PSD with diagonal p̃q̃ and Gershgorin rows ≤ 2p̃_c q̃_c, as for the
            # over-complete form: λ_max ∈ [max p̃q̃, min(2·max p̃q̃, Σ p̃q̃)] as well
            pq = pt * qt
            lo_max = torch.maximum(top2[..., 1], pq.amax(-1))
            hi_max = torch.minimum(torch.minimum(top2[..., 0], 2 * pq.amax(-1)), pq.sum(-1))
            fisher_min = secular_root(pt, torch.zeros_like(low2[..., 0]), low2[..., 0], rest)
            fisher_max = secular_root(pt, lo_max, hi_max, rest)
        # sup_y ‖t(y) − η‖²: labels c < C give 1 − 2p_c + ‖p̃‖², the last class gives ‖p̃‖²
        radius2 = (pt * pt).sum(-1) + (1 - 2 * pt.amin(-1)).clamp_min(0)
        upper = radius2 * fisher_max
        lower = fisher_min.clamp_min(0) ** 2
        power = power_label(d)
        secular = f"secular-equation-bisection(steps={SECULAR_STEPS})"
        methods = {
            "fisher_min": secular,
            "fisher_max": secular,
            "mu4_max_upper": "bounded-support-certified max_y‖t(y)−η‖²·λ_max(I)",
            "mu4_max_local": power,
            "mu4_min_lower": "jensen λ_min(I)²",
            "mu4_min_local": power,
        }
        if not local:
            return certified_only(fisher_min, fisher_max, upper, lower, methods)

        def apply3(v):
            return _apply3_rows(p, torch.cat([v, torch.zeros_like(v[..., :1])], -1))[0][..., :-1]

        def form4(v):
            r = _apply3_rows(p, torch.cat([v, torch.zeros_like(v[..., :1])], -1))[1]
            return (p[..., None, :] * r**4).sum(-1)

        def apply2(v):
            return _apply2_rows(p, torch.cat([v, torch.zeros_like(v[..., :1])], -1))[..., :-1, :-1]

        v0 = starts(d, h.shape[:-1], h)
        max_local = power_iteration(apply3, form4, v0, torch.zeros_like(upper), True, apply2=apply2)
        min_local = power_iteration(apply3, form4, v0, 3 * upper, False, apply2=apply2)
        return Spectrum(fisher_min, fisher_max, upper, max_local, lower, min_local, methods)


class MultinomialKernel(_SoftmaxKernel):
    """Multinomial with ``n`` trials over ``C`` classes (over-complete logits); labels are
    count vectors ``[..., C]`` summing to ``n``."""

    def __init__(self, n: int, C: int, family=None):
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"multinomial: n must be a positive integer; got {n!r}")
        if isinstance(C, bool) or int(C) != C or C < 2:
            raise ValueError(f"multinomial: C must be an integer ≥ 2; got {C!r}")
        self.n, self.C = int(n), int(C)
        super().__init__("multinomial", self.C, (self.C,), {"n": self.n, "C": self.C}, family)

    def _check_label_dtype(self, y, argname):
        if y.dtype == torch.bool:
            raise TypeError(f"{self._describe()}: {argname} must hold counts; got {y.dtype}")

    def _check_support(self, y, argname):
        bad = (y < 0).any(-1) | (y.sum(-1) != self.n)
        if y.is_floating_point():
            bad |= (y != torch.floor(y)).any(-1) | ~torch.isfinite(y).all(-1)
        self._support_error(
            y,
            bad,
            argname,
            f"non-negative integer count vectors of length {self.C} summing to n = {self.n}",
        )

    def _support_labels(self):
        from fishsym.symbolic.support import FiniteSupport

        return torch.tensor(FiniteSupport.compositions(self.n, self.C).points, dtype=torch.int64)

    def _suff_stat(self, y, dtype):
        return y.to(dtype)

    def _log_prob(self, y, h):
        yf = y.to(h.dtype)
        log_k = torch.lgamma(torch.tensor(self.n + 1.0, dtype=h.dtype)) - torch.lgamma(yf + 1).sum(
            -1
        )
        return (yf * h).sum(-1) - self.n * stable_logsumexp(h) + log_k

    def _log_partition(self, h):
        return self.n * stable_logsumexp(h)

    def _mean(self, h):
        return self.n * torch.softmax(h, -1)

    def _fisher(self, h):
        return self.n * categorical_fisher(*softmax_complement(h))

    def _fisher_diagonal(self, h):
        p, q = softmax_complement(h)
        return self.n * (p * q)

    def _quadratic(self, h, v):
        return self.n * categorical_quadratic(torch.softmax(h, -1), v)

    def _root_t(self, h, v):
        return math.sqrt(self.n) * categorical_root_t(torch.softmax(h, -1), v)

    def _cubic(self, h, v):
        # μ_3 = κ_3, and cumulants of a sum of n independent one-hot vectors scale by n
        return self.n * categorical_cubic(torch.softmax(h, -1), v)

    def _quartic(self, h, v):
        p = torch.softmax(h, -1)
        q = categorical_quadratic(p, v)
        return self.n * categorical_quartic(p, v) + 3 * self.n * (self.n - 1) * q * q

    def _var_squared(self, h, v):
        # a sum of n i.i.d. one-hot residuals X_j: Var[(ΣX_j)²] = n·Var[X²] + 2n(n−1)f²
        p = torch.softmax(h, -1)
        q = categorical_quadratic(p, v)
        return self.n * categorical_var_squared(p, v) + 2 * self.n * (self.n - 1) * q * q

    def _sample(self, h, n, generator):
        return samplers.multinomial(self, h, n, generator)

    def _spectrum(self, h, local):
        p, q = softmax_complement(h)
        n = self.n
        lam = categorical_fisher_max(p, q)
        # μ_4^{(n)}[v⁴] = n·μ_4[v⁴] + 3n(n−1)(vᵀIv)², each term bounded by its categorical
        # certified bound (I the one-trial Fisher information)
        upper = n * (1 - 2 * p.amin(-1) + (p * p).sum(-1)) * lam + 3 * n * (n - 1) * lam * lam
        zero = torch.zeros_like(lam)
        methods = {
            "fisher_min": "closed-form (I·1 = 0, I ⪰ 0)",
            "fisher_max": f"n × secular-equation-bisection(steps={SECULAR_STEPS})",
            "mu4_max_upper": "multinomial-certified n(1 − 2p_min + ‖p‖²)λ + 3n(n−1)λ²",
            "mu4_max_local": _power_label(self.C),
            "mu4_min_lower": "closed-form (ones vector: μ_4[1⁴] = 0, μ_4 ⪰ 0)",
            "mu4_min_local": "closed-form (ones vector: μ_4[1⁴] = 0, μ_4 ⪰ 0)",
        }
        if not local:
            return certified_only(zero, n * lam, upper, zero, methods)

        def apply3(v):
            a3, r = _apply3_rows(p, v)
            pe = p[..., None, :]
            quad = (pe * r * r).sum(-1, keepdim=True)
            return n * a3 + 3 * n * (n - 1) * quad * pe * r

        def form4(v):
            r = _apply3_rows(p, v)[1]
            pe = p[..., None, :]
            quad = (pe * r * r).sum(-1)
            return n * (pe * r**4).sum(-1) + 3 * n * (n - 1) * quad * quad

        def apply2(v):
            # n·B_cat + n(n−1)(Q·I + 2(Iv)(Iv)ᵀ), with Iv = p⊙r (as Σ_c p_c r_c = 0)
            r = _apply3_rows(p, v)[1]
            pe = p[..., None, :]
            quad = (pe * r * r).sum(-1)[..., None, None]
            iv = pe * r
            fisher = categorical_fisher(p)[..., None, :, :]
            return n * _apply2_rows(p, v) + n * (n - 1) * (
                quad * fisher + 2 * iv[..., :, None] * iv[..., None, :]
            )

        local_max = power_iteration(
            apply3,
            form4,
            starts(self.C, p.shape[:-1], p, _extreme_starts(p)),
            zero,
            True,
            apply2=apply2,
        )
        return Spectrum(zero, n * lam, upper, local_max, zero, zero, methods)


__all__ = [
    "CategoricalKernel",
    "CategoricalMinimalKernel",
    "MultinomialKernel",
    "categorical_quadratic",
    "categorical_cubic",
    "categorical_quartic",
    "categorical_var_squared",
    "categorical_fisher",
    "categorical_fisher_max",
    "secular_root",
]
