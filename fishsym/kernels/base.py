"""The kernel interface: batched torch evaluations of one exponential family.

:class:`FamilyKernel` validates every argument (shapes, dtypes, finiteness, the
natural-parameter domain, the label support) and then calls the private ``_method`` of
its subclass: :class:`fishsym.kernels.generic.GenericKernel` (lambdified from the
symbolic family) or a structured kernel (e.g. the ``O(C)`` categorical one). Outputs are
checked to be finite, so an overflow is reported (:class:`NonFiniteError`, with advice)
instead of propagating as NaN.

Under ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``, …) the value checks run on
the unwrapped tensors (all vectorised entries at once), so a label outside the support or
an ``h`` outside the domain is reported there too.

Shapes (docs/theory.md §1): ``h`` is ``[..., d]``; labels are ``[..., *obs_shape]``; a batch of
vectors ``v`` is ``[..., d, K]``. Leading batch shapes broadcast.
"""

from __future__ import annotations

import torch

from fishsym.errors import DomainError, NonFiniteError, ShapeError
from fishsym.kernels.spectrum import FIELDS, LOCAL_FIELDS, Spectrum, round_outward


def _wrapped(x: torch.Tensor) -> bool:
    """True for tensors inside a ``torch.func`` transform (no ``.item()`` allowed)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(x)


def _unwrap(x: torch.Tensor) -> torch.Tensor:
    """The plain tensor under every ``torch.func`` wrapper (a vmapped tensor unwraps to all
    its batch entries), on which value checks may run."""
    f = torch._C._functorch
    while f.is_functorch_wrapped_tensor(x):
        if f.is_batchedtensor(x):
            # keep the trailing (per-example) axes in place: the batch axis goes first
            x = f.get_unwrapped(x).movedim(f.maybe_get_bdim(x), 0)
        else:
            x = f.get_unwrapped(x)
    return x


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry is finite, without a full-size temporary in the common case.

    ``torch.isfinite(x).all()`` allocates ``x``-sized temporaries (≈ 1.7 GB for a 1 GB
    ``v``); a sum propagates NaN/inf, so it is checked first, and the elementwise test
    runs only when the sum is not finite (NaN/inf present, or a finite overflow).
    """
    with torch.no_grad():
        if bool(torch.isfinite(x.sum())):
            return True
        return bool(torch.isfinite(x).all())


def broadcast_batch(*shapes, names=("h", "y")) -> torch.Size:
    """``torch.broadcast_shapes`` raising :class:`ShapeError` that names the arguments."""
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError:
        described = ", ".join(
            f"{n} batch shape {tuple(s)}" for n, s in zip(names, shapes, strict=False)
        )
        raise ShapeError(f"batch shapes do not broadcast: {described}") from None


class FamilyKernel:
    """Batched torch kernels of the exponential family ``k(y)·exp(t(y)ᵀh − F(h))``.

    Attributes
    ----------
    name : str
        The family's (registry) name.
    d : int
        Number of natural parameters.
    obs_shape : tuple
        Shape of one label: ``()`` for scalar and class-index labels, ``(m,)`` otherwise.
    label_dtype : torch.dtype
        ``torch.int64`` for discrete families; continuous families sample labels in the
        dtype of ``h`` and report ``torch.float64`` here.
    discrete : bool
        Whether the labels are integers.
    intervals : list of (lo, hi, lo_open, hi_open)
        The natural-parameter domain, one interval per coordinate of ``h``.
    """

    name: str
    d: int
    obs_shape: tuple
    label_dtype: torch.dtype
    discrete: bool

    def __init__(self, name: str, d: int, obs_shape: tuple, discrete: bool, intervals, sizes):
        self.name = name
        self.d = int(d)
        self.obs_shape = tuple(obs_shape)
        self.discrete = bool(discrete)
        self.label_dtype = torch.int64 if discrete else torch.float64
        self.intervals = list(intervals)
        self.sizes = dict(sizes)

    @property
    def family(self):
        """The symbolic :class:`~fishsym.symbolic.ExponentialFamily` behind this kernel."""
        raise NotImplementedError

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"<{type(self).__name__} {self.name}({sizes}) d={self.d} obs_shape={self.obs_shape}>"

    def _describe(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"{self.name}({sizes})"

    # ------------------------------------------------------------------ checks
    def check_h(self, h: torch.Tensor) -> None:
        """Raise unless ``h`` ``[..., d]`` is a finite, floating, in-domain natural parameter.

        Raises :class:`TypeError` (not a floating tensor), :class:`ShapeError` (last
        dimension not ``d``), :class:`NonFiniteError` (NaN/inf, or ``F(h)``/``η(h)``
        overflowing in ``h``'s dtype), :class:`DomainError` (outside the declared domain,
        e.g. a Gamma ``h₂ ≥ 0``).
        """
        self._h(h)
        hv = _unwrap(h)
        self._finite(self._log_partition(hv), "the log-partition F(h)", hv)
        self._finite(self._mean(hv), "the mean η(h)", hv)

    def _h(self, h, argname: str = "h") -> torch.Tensor:
        if not isinstance(h, torch.Tensor):
            raise TypeError(
                f"{self._describe()}: {argname} must be a torch.Tensor of shape [..., {self.d}]; "
                f"got {type(h).__name__}"
            )
        if not h.is_floating_point():
            raise TypeError(
                f"{self._describe()}: {argname} must have a floating dtype (float32 or float64); "
                f"got {h.dtype}"
            )
        if h.ndim < 1 or h.shape[-1] != self.d:
            raise ShapeError(
                f"{self._describe()}: {argname} must have shape [..., d] with d = {self.d} natural "
                f"parameters; got shape {tuple(h.shape)}"
            )
        value = _unwrap(h)
        if not all_finite(value):
            raise NonFiniteError(
                f"{self._describe()}: {argname} contains NaN or infinite entries; natural "
                "parameters must be finite"
            )
        for j, (lo, hi, lo_open, hi_open) in enumerate(self.intervals):
            if lo is None and hi is None:
                continue  # the whole real line (every logit of a categorical head)
            col = value[..., j]
            bad = torch.zeros_like(col, dtype=torch.bool)
            if lo is not None:
                bad |= (col <= lo) if lo_open else (col < lo)
            if hi is not None:
                bad |= (col >= hi) if hi_open else (col > hi)
            if bool(bad.any()):
                value = col[bad].flatten()[0].item()
                lb = "(" if lo_open else "["
                rb = ")" if hi_open else "]"
                lo_s = "-oo" if lo is None else f"{lo:g}"
                hi_s = "oo" if hi is None else f"{hi:g}"
                raise DomainError(
                    f"{self._describe()}: {argname}[..., {j}] = {value:g} lies outside the "
                    f"natural-parameter domain; valid values satisfy {argname}[..., {j}] ∈ "
                    f"{lb}{lo_s}, {hi_s}{rb}"
                )
        return h

    def _finite(self, out: torch.Tensor, what: str, h: torch.Tensor) -> torch.Tensor:
        if all_finite(_unwrap(out)):
            return out
        h = _unwrap(h)
        hint = (
            " Use float64 (h.double())" if h.dtype != torch.float64 else " Use"
        ) + " smaller |h| (e.g. a bounded output layer)."
        raise NonFiniteError(
            f"{self._describe()}: {what} overflows (NaN or inf) in {h.dtype} at finite h "
            f"(max |h| = {h.abs().max().item():.4g}).{hint}"
        )

    def _v(self, v, h: torch.Tensor) -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            raise TypeError(
                f"{self._describe()}: v must be a torch.Tensor of shape [..., {self.d}, K]; "
                f"got {type(v).__name__}"
            )
        if v.is_complex() or v.dtype == torch.bool:
            raise TypeError(f"{self._describe()}: v must be a real tensor; got {v.dtype}")
        if v.ndim < 2 or v.shape[-2] != self.d:
            raise ShapeError(
                f"{self._describe()}: v must have shape [..., d, K] with d = {self.d} (one column "
                f"per vector); got shape {tuple(v.shape)}"
            )
        broadcast_batch(h.shape[:-1], v.shape[:-2], names=("h", "v"))
        v = v.to(h.dtype)
        if not all_finite(_unwrap(v)):
            raise NonFiniteError(f"{self._describe()}: v contains NaN or infinite entries")
        return v

    def _n_generator(self, n, generator, device) -> int:
        if (
            isinstance(n, bool)
            or not isinstance(n, int)
            and not (isinstance(n, torch.Tensor) and n.ndim == 0 and not n.is_floating_point())
        ):
            raise TypeError(
                f"{self._describe()}: n must be a positive int (number of draws); got {n!r}"
            )
        n = int(n)
        if n < 1:
            raise ShapeError(f"{self._describe()}: n must be a positive number of draws; got {n}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                f"{self._describe()}: generator must be a torch.Generator (fishsym never uses "
                f"global random state), e.g. torch.Generator().manual_seed(0); got {generator!r}"
            )
        if torch.device(generator.device).type != torch.device(device).type:
            raise TypeError(
                f"{self._describe()}: generator is on {generator.device} but h is on {device}; "
                f"create it with torch.Generator(device=h.device)"
            )
        return n

    def _labels(self, y, argname: str = "y") -> torch.Tensor:
        """Check the dtype, trailing shape and support of labels ``[..., *obs_shape]``."""
        if not isinstance(y, torch.Tensor):
            raise TypeError(
                f"{self._describe()}: {argname} must be a torch.Tensor of labels "
                f"[..., {', '.join(map(str, self.obs_shape)) or ''}]; got {type(y).__name__}"
            )
        if y.is_complex():
            raise TypeError(f"{self._describe()}: {argname} must be real; got {y.dtype}")
        k = len(self.obs_shape)
        if y.ndim < k or tuple(y.shape[y.ndim - k :]) != self.obs_shape:
            raise ShapeError(
                f"{self._describe()}: {argname} must have shape [..., *obs_shape] with obs_shape "
                f"{self.obs_shape}; got shape {tuple(y.shape)}"
            )
        self._check_label_dtype(y, argname)
        self._check_support(_unwrap(y), argname)
        return y

    def _check_label_dtype(self, y: torch.Tensor, argname: str) -> None:
        """Discrete labels: integer/bool dtype, or floats holding integers (checked in support)."""

    def _check_support(self, y: torch.Tensor, argname: str) -> None:
        raise NotImplementedError

    def _support_error(self, y: torch.Tensor, bad: torch.Tensor, argname: str, valid: str):
        if bool(bad.any()):
            idx = bad.nonzero()[0].tolist()
            raise DomainError(
                f"{self._describe()}: {argname}{idx} = {y[tuple(idx)].tolist()} is not in the "
                f"support; valid labels: {valid}"
            )

    # ------------------------------------------------------------------ public API
    def suff_stat(self, y: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``t(y)``. Labels ``[..., *obs_shape]`` → ``[..., d]``.

        ``dtype``: output dtype; default ``y``'s dtype when floating, else ``torch.float64``
        (exact for integer labels and any ``t``; cast down where wanted).
        """
        y = self._labels(y)
        if dtype is None:
            dtype = y.dtype if y.is_floating_point() else torch.float64
        return self._suff_stat(y, dtype)

    def log_prob(self, y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``log p(y|h) = t(y)ᵀh − F(h) + log k(y)`` (docs/theory.md §1).

        ``y`` ``[..., *obs_shape]``, ``h`` ``[..., d]``; batch shapes broadcast.
        Returns ``[...]`` in ``h``'s dtype, differentiable in ``h`` (autograd, torch.func).
        """
        h = self._h(h)
        y = self._labels(y)
        broadcast_batch(y.shape[: y.ndim - len(self.obs_shape)], h.shape[:-1])
        return self._finite(self._log_prob(y, h), "log p(y|h)", h)

    def log_partition(self, h: torch.Tensor) -> torch.Tensor:
        """``F(h)``, ``[..., d]`` → ``[...]`` (numerically stable where known)."""
        h = self._h(h)
        return self._finite(self._log_partition(h), "the log-partition F(h)", h)

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        """``η(h) = ∇F(h) = E[t]``, ``[..., d]`` → ``[..., d]``."""
        h = self._h(h)
        return self._finite(self._mean(h), "the mean η(h)", h)

    def fisher(self, h: torch.Tensor) -> torch.Tensor:
        """``I(h) = ∇²F(h) = Cov[t]``, ``[..., d]`` → ``[..., d, d]`` (materialised on request)."""
        h = self._h(h)
        return self._finite(self._fisher(h), "the Fisher information I(h)", h)

    def fisher_diagonal(self, h: torch.Tensor) -> torch.Tensor:
        """The diagonal ``I(h)_aa = Var[t_a]``, ``[..., d]`` → ``[..., d]``, without the
        ``d × d`` matrix: the closed-form Fisher of a final Linear layer (``u = e_a z_b``)
        needs only this (:func:`fishsym.diagonal_fisher`)."""
        h = self._h(h)
        return self._finite(self._fisher_diagonal(h), "the diagonal of I(h)", h)

    def quadratic(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``vᵀ I(h) v`` per column: ``h`` ``[..., d]``, ``v`` ``[..., d, K]`` → ``[..., K]``."""
        h = self._h(h)
        v = self._v(v, h)
        return self._finite(self._quadratic(h, v), "the quadratic form vᵀI(h)v", h)

    def cubic(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``μ_3(h)[v,v,v] = κ_3(h)[v,v,v] = E[((t−η)ᵀv)³]`` per column (docs/theory.md §5, the
        shifted moments of the empirical Fisher): ``h`` ``[..., d]``, ``v`` ``[..., d, K]`` →
        ``[..., K]``. (An extension of the kernel contract.)"""
        h = self._h(h)
        v = self._v(v, h)
        return self._finite(self._cubic(h, v), "the cubic form μ_3(h)[v³]", h)

    def quartic(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``μ_4(h)[v,v,v,v] = E[((t−η)ᵀv)⁴]`` per column (docs/theory.md §2):
        ``h`` ``[..., d]``, ``v`` ``[..., d, K]`` → ``[..., K]``."""
        h = self._h(h)
        v = self._v(v, h)
        return self._finite(self._quartic(h, v), "the quartic form μ_4(h)[v⁴]", h)

    def var_squared(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``Var_y[((t−η)ᵀv)²] = μ_4(h)[v⁴] − (vᵀI(h)v)² = κ_4[v⁴] + 2(vᵀIv)²`` per column
        — the single-label variance ``V₁`` of the squared score along ``v`` (docs/theory.md §2)
        — in a form that cannot cancel: ``μ_4 − I²`` subtracts two nearly equal numbers
        wherever ``((t−η)ᵀv)²`` hardly varies (a categorical head at ``p₀ = ½``, a
        Bernoulli head at ``h ≈ 0``) and can come out negative. ``h`` ``[..., d]``, ``v``
        ``[..., d, K]`` → ``[..., K]``, never negative."""
        h = self._h(h)
        v = self._v(v, h)
        return self._finite(self._var_squared(h, v), "the variance Var[((t−η)ᵀv)²]", h)

    def quadratic_and_var_squared(self, h: torch.Tensor, v: torch.Tensor):
        """``(vᵀI(h)v, Var_y[((t−η)ᵀv)²])`` per column — the Fisher and ``V₁`` factors of
        one set of vectors (:meth:`quadratic`, :meth:`var_squared`), checked once and, where
        a kernel shares work between them (the categorical centred residuals), computed in
        one pass. ``h`` ``[..., d]``, ``v`` ``[..., d, K]`` → two ``[..., K]``."""
        h = self._h(h)
        v = self._v(v, h)
        f, var = self._quadratic_and_var_squared(h, v)
        return (
            self._finite(f, "the quadratic form vᵀI(h)v", h),
            self._finite(var, "the variance Var[((t−η)ᵀv)²]", h),
        )

    def root_t(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``Rᵀv`` per column for the factor ``R`` (``R Rᵀ = I(h)``) of the Hutchinson /
        detach-and-mix estimator (docs/theory.md §9): ``∂_iψ = ξᵀRᵀu_i`` for the probe
        ``ξ``. Categorical heads use the recipe's ``Rᵀ = diag(√p) − √p pᵀ`` (so
        ``(Rᵀv)_y = √p_y (v_y − pᵀv)``); other families the symmetric square root of
        ``I(h)`` (``√I`` for one natural parameter). ``h`` ``[..., d]``, ``v``
        ``[..., d, K]`` → ``[..., r, K]``."""
        h = self._h(h)
        v = self._v(v, h)
        return self._finite(self._root_t(h, v), "the factor Rᵀv", h)

    def sample(self, h: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` i.i.d. labels from ``p(y|h)``: ``[n, ..., *obs_shape]``.

        Integer labels (``torch.int64``) for discrete families, ``h``'s dtype otherwise.
        Uses only ``generator`` (never global random state).
        """
        h = self._h(h)
        n = self._n_generator(n, generator, h.device)
        return self._sample(h, n, generator)

    def support_labels(self) -> torch.Tensor:
        """All labels ``[S, *obs_shape]`` of a finite support (``torch.int64``).

        Raises :class:`fishsym.errors.InfiniteSupportError` for infinite supports.
        """
        return self._support_labels()

    def spectrum(self, h: torch.Tensor, *, local: bool = True) -> Spectrum:
        """Extreme eigenvalues of ``I(h)`` and certified bounds / local values for ``μ_4(h)``
        (docs/theory.md §3); every field ``[...]``, methods in :attr:`Spectrum.methods`.

        ``local=False`` skips the search for the local values ``mu4_max_local`` and
        ``mu4_min_local`` (a multi-start power iteration: most of the cost, and no bound
        needs them); they are then ``None`` and their methods say
        :data:`~fishsym.kernels.spectrum.NOT_COMPUTED`. The certified fields are the same
        either way.
        """
        if not isinstance(local, bool):
            raise TypeError(
                f"{self._describe()}: local must be True (also search the local μ_4 values) "
                f"or False (certified fields only); got {local!r}"
            )
        h = self._h(h)
        spec = round_outward(self._spectrum(h, local), self.d)
        for name in FIELDS:
            value = getattr(spec, name)
            if value is None and not local and name in LOCAL_FIELDS:
                continue
            self._finite(value, f"spectrum field {name}", h)
        # the values behind the paper's Theorem 4.1: λ̃(M), M = μ₄ − I⊗I (docs/theory.md §3)
        from fishsym.kernels.moment_spectrum import attach_m_spectrum

        attach_m_spectrum(self, h, spec, local)
        return spec

    # ------------------------------------------------------------------ to implement
    def _suff_stat(self, y, dtype):
        raise NotImplementedError

    def _log_prob(self, y, h):
        raise NotImplementedError

    def _log_partition(self, h):
        raise NotImplementedError

    def _mean(self, h):
        raise NotImplementedError

    def _fisher(self, h):
        raise NotImplementedError

    #: identity columns per call of the default :meth:`_fisher_diagonal`
    DIAGONAL_CHUNK = 64

    def _fisher_diagonal(self, h):
        # eᵀ_a I e_a through the quadratic form, a chunk of identity columns at a time
        # (shared by the whole batch: no [..., d, d] tensor); O(d) overrides where known
        eye = torch.eye(self.d, dtype=h.dtype, device=h.device)
        parts = [
            self._quadratic(h, eye[:, i : i + self.DIAGONAL_CHUNK])
            for i in range(0, self.d, self.DIAGONAL_CHUNK)
        ]
        return torch.cat(parts, -1)

    def _quadratic(self, h, v):
        return torch.einsum("...ce,...cK,...eK->...K", self._fisher(h), v, v)

    def _cubic(self, h, v):
        raise NotImplementedError

    def _quadratic_and_var_squared(self, h, v):
        return self._quadratic(h, v), self._var_squared(h, v)

    def _var_squared(self, h, v):
        raise NotImplementedError

    def _root_t(self, h, v):
        fisher = self._fisher(h)
        if self.d == 1:
            return fisher[..., :1, :1].clamp_min(0).sqrt() * v
        evals, evecs = torch.linalg.eigh(fisher)
        root = (evecs * evals.clamp_min(0).sqrt()[..., None, :]) @ evecs.transpose(-1, -2)
        return root @ v

    def _quartic(self, h, v):
        raise NotImplementedError

    def _sample(self, h, n, generator):
        raise NotImplementedError

    def _support_labels(self):
        raise NotImplementedError

    def _spectrum(self, h, local):
        raise NotImplementedError


class StructuredKernel(FamilyKernel):
    """A hand-written kernel of a registered family. Its symbolic family is built lazily
    from the registry on first access (building it is expensive for large sizes, e.g.
    categorical with ``C = 1000``), or given at construction."""

    def __init__(self, name, d, obs_shape, discrete, intervals, sizes, family=None):
        super().__init__(name, d, obs_shape, discrete, intervals, sizes)
        self._family = family

    @property
    def family(self):
        if self._family is None:
            from fishsym.symbolic import families

            self._family = families.get(self.name, **self.sizes)
        return self._family


def stable_logsumexp(x: torch.Tensor) -> torch.Tensor:
    """``log Σ_k exp x_k`` over the last axis, written so that autograd's *second*
    derivatives are accurate too: ``x_m + logsumexp(x − x_m)`` with ``m`` the (detached)
    arg-max. The shifted top entry is exactly 0 with an exactly zero tangent, so the
    Hessian-vector products ``p ⊙ (ẋ − pᵀẋ)`` never form ``1 − p_m`` by subtraction:
    plain ``logsumexp`` gives ``p_m − p_m² = 0`` for a confident output (logits
    ``(40, 0)``) where the true curvature is ``p_m·p_other ≈ 4e−18``."""
    top = x.gather(-1, x.detach().argmax(-1, keepdim=True))
    return top[..., 0] + torch.logsumexp(x - top, -1)


def stable_softplus(h: torch.Tensor) -> torch.Tensor:
    """``log(1 + eʰ)`` as :func:`stable_logsumexp` of ``(0, h)``: exact for large ``|h|``
    (``torch.nn.functional.softplus`` linearises above 20) and with accurate autograd
    second derivatives ``σ(h)σ(−h)`` at saturation."""
    return stable_logsumexp(torch.stack([torch.zeros_like(h), h], -1))


def interval_bounds(interval) -> tuple:
    """``(lo, hi, lo_open, hi_open)`` of a sympy Interval (``None`` for infinite ends)."""
    lo, hi = interval.inf, interval.sup
    return (
        None if lo.is_infinite else float(lo),
        None if hi.is_infinite else float(hi),
        bool(interval.left_open),
        bool(interval.right_open),
    )


REAL_LINE = (None, None, True, True)
