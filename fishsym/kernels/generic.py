"""Generic kernels generated from a family's symbolic expressions.

**Design choice: runtime generation + per-process cache.** Each expression the kernels
need — ``F(h)``, the mean ``η(h)``, the distinct entries of ``I(h)`` and of ``μ_4(h)``,
``t(y)`` and ``log k(y)`` — is turned into a torch function with
``sympy.lambdify(..., modules="torch", cse=True)`` (common-subexpression elimination
across all entries of one object) the first time it is needed. The generated functions
live on the kernel object, and :func:`fishsym.kernels.get` caches kernel objects, so a
family is generated once per process. We generate at run time rather than ahead of time
because user-defined families must work too and because the symbolic layer is the single
source of truth: there are no generated files that could go stale.

Before printing, expressions are rewritten into functions torch has: ``log n!`` →
``lgamma(n+1)``, ``log binomial(a, b)`` → ``lgamma`` terms, ``I_n`` → ``I₀``, ``I₁`` by
recurrence (``torch.special.i0``/``i1``), ``polygamma(k, x)`` →
``torch.special.polygamma`` (sympy's torch printer only knows ``digamma``), except the
trigamma, printed as the Hurwitz zeta ``ζ(2, x)`` because torch's own trigamma is accurate
to only about 5e-10 in float64.

Symmetric tensors are evaluated one distinct index multiset at a time (docs/theory.md §1):
``I`` from its ``d(d+1)/2`` entries; the quartic form as
``μ_4[v⁴] = Σ_{multisets (a≤b≤c≤e)} mult·μ_4[a,b,c,e]·v_a v_b v_c v_e``. This is meant
for small ``d``; structured kernels (:mod:`fishsym.kernels.categorical`, …) replace it
where it is wasteful.
"""

from __future__ import annotations

import itertools
from functools import cached_property

import sympy as sp
import torch
from sympy.printing.pytorch import TorchPrinter

from fishsym.errors import InfiniteSupportError, NonFiniteError, NoSamplerError, ShapeError
from fishsym.kernels import samplers
from fishsym.kernels.base import (
    FamilyKernel,
    _unwrap,
    interval_bounds,
    stable_logsumexp,
    stable_softplus,
)
from fishsym.kernels.numeric import numeric_of, user_sampler
from fishsym.kernels.spectrum import (
    FIELDS,
    Spectrum,
    certified_only,
    dense_mu4_spectrum,
    power_label,
)
from fishsym.symbolic import tensors
from fishsym.symbolic.support import (
    FiniteSupport,
    NonNegativeIntegers,
    PositiveReals,
    ProductSupport,
    RealLine,
    UnitInterval,
)


class TorchLgamma(sp.Function):
    """``log Γ(x)`` left unevaluated (sympy turns ``loggamma`` of a positive integer-valued
    argument back into ``log(gamma(x))``, which torch cannot evaluate)."""

    nargs = 1


class _Printer(TorchPrinter):
    """sympy's torch printer plus ``polygamma`` of any order and :class:`TorchLgamma`."""

    def _print_TorchLgamma(self, expr):
        return f"torch.lgamma({self._print(expr.args[0])})"

    def _print_loggamma(self, expr):
        return f"torch.lgamma({self._print(expr.args[0])})"

    def _print_besseli(self, expr):
        order, x = expr.args
        if order not in (0, 1):
            raise NotImplementedError(f"besseli of order {order} (rewritten to orders 0, 1)")
        return f"torch.special.i{int(order)}({self._print(x)})"

    def _print_polygamma(self, expr):
        order, x = expr.args
        if not order.is_Integer or order < 0:
            raise NotImplementedError(f"polygamma of non-integer order {order}")
        if order == 0:
            return f"torch.special.digamma({self._print(x)})"
        if order == 1:
            # torch's trigamma is accurate to only ~5e-10 relative in float64; the Hurwitz
            # zeta ψ₁(x) = ζ(2, x) is accurate to ~1e-16 (checked against mpmath)
            x_s = self._print(x)
            return f"torch.special.zeta(torch.full_like({x_s}, 2.0), {x_s})"
        return f"torch.special.polygamma({int(order)}, {self._print(x)})"


def _torchable(expr: sp.Expr) -> sp.Expr:
    """Rewrite factorials, binomials and gammas into ``log Γ`` (torch.lgamma)."""
    expr = sp.sympify(expr)

    def lg(x):
        return sp.loggamma(x) if x.is_number else TorchLgamma(x)

    def log_of(arg):
        if isinstance(arg, sp.factorial):
            return lg(arg.args[0] + 1)
        if isinstance(arg, sp.gamma):
            return lg(arg.args[0])
        if isinstance(arg, sp.binomial):
            a, b = arg.args
            return lg(a + 1) - lg(b + 1) - lg(a - b + 1)
        return None

    expr = expr.replace(
        lambda e: isinstance(e, sp.log) and log_of(e.args[0]) is not None,
        lambda e: log_of(e.args[0]),
    )
    expr = expr.replace(
        lambda e: isinstance(e, (sp.factorial, sp.gamma, sp.binomial)),
        lambda e: sp.exp(log_of(e)),
    )
    # torch has I₀ and I₁ only: I_n = I_{n−2} − (2(n−1)/x)·I_{n−1} down to them (the
    # derivatives of a von Mises F bring I₂ … I₄; the recurrence loses digits for x ≪ n,
    # which is why the von Mises family has a structured kernel)
    expr = expr.replace(
        lambda e: isinstance(e, sp.besseli) and e.args[0].is_Integer and abs(e.args[0]) >= 2,
        lambda e: _besseli_low(abs(int(e.args[0])), e.args[1]),
    )
    # constant sub-expressions such as log(6) would be printed as torch.log(6) on a
    # Python int: evaluate them to (30-digit) floats first
    return expr.replace(
        lambda e: isinstance(e, sp.Function) and e.is_number,
        lambda e: sp.Float(e.evalf(30), 30),
    )


def _besseli_low(n: int, x: sp.Expr) -> sp.Expr:
    """``I_n(x)`` in terms of ``I₀(x)``, ``I₁(x)`` by the three-term recurrence."""
    lo, hi = sp.besseli(0, x), sp.besseli(1, x)
    for k in range(1, n):
        lo, hi = hi, lo - 2 * k / x * hi
    return hi


def lambdify(args, exprs):
    """``sympy.lambdify(args, [exprs], modules="torch", cse=True)`` after :func:`_torchable`."""
    return sp.lambdify(
        list(args),
        [_torchable(e) for e in exprs],
        modules="torch",
        printer=_Printer,
        cse=True,
        dummify=True,
    )


def stack_columns(values, batch_shape, like: torch.Tensor) -> torch.Tensor:
    """Stack lambdify outputs (tensors or Python constants) into ``[*batch_shape, len]``."""
    cols = []
    for val in values:
        if isinstance(val, torch.Tensor):
            cols.append(torch.broadcast_to(val.to(like.dtype), batch_shape))
        else:
            cols.append(torch.full(batch_shape, float(val), dtype=like.dtype, device=like.device))
    return torch.stack(cols, -1)


class GenericKernel(FamilyKernel):
    """Kernels lambdified from any :class:`~fishsym.symbolic.ExponentialFamily`.

    Registered families get stable closed forms of ``F`` where the symbolic one overflows
    (``softplus``, ``logsumexp``, ``log(−expm1(h))``; each tested against the lambdified
    ``F``) and a dedicated sampler (:mod:`fishsym.kernels.samplers`). User-defined families
    are sampled by enumeration when their support is finite; otherwise :meth:`sample`
    raises :class:`~fishsym.errors.NoSamplerError`.
    """

    def __init__(self, family, stable: bool = True):
        self._family = family
        self.registry_name = getattr(family, "registry_name", None)
        self.numeric = numeric_of(self.registry_name)
        self.class_index = self.numeric.class_index
        if self.class_index:
            obs_shape = ()
        else:
            m = len(family.obs_symbols)
            obs_shape = () if m == 1 else (m,)
        intervals = [interval_bounds(family.domain.intervals[s]) for s in family.natural_params]
        super().__init__(
            self.registry_name or family.name,
            family.dim,
            obs_shape,
            family.support.discrete,
            intervals,
            family.sizes,
        )
        self.use_stable = stable

    @property
    def family(self):
        return self._family

    # ------------------------------------------------------------------ generated code
    @cached_property
    def _gen_log_partition(self):
        return lambdify(self._family.natural_params, [self._family.log_partition])

    @cached_property
    def _gen_mean(self):
        return lambdify(self._family.natural_params, list(self._family.mean))

    @cached_property
    def _fisher_multisets(self):
        return list(tensors.multisets(self.d, 2))

    @cached_property
    def _gen_fisher(self):
        entries = self._family.cumulant_entries(2)
        return lambdify(self._family.natural_params, [entries[ms] for ms in self._fisher_multisets])

    @cached_property
    def _mu3_multisets(self):
        return list(tensors.multisets(self.d, 3))

    @cached_property
    def _gen_mu3(self):
        entries = self._family.central_moment_entries(3)
        return lambdify(self._family.natural_params, [entries[ms] for ms in self._mu3_multisets])

    @cached_property
    def _mu3_terms(self):
        idx = torch.tensor(self._mu3_multisets, dtype=torch.long).reshape(-1, 3)
        mult = torch.tensor(
            [tensors.multiplicity(ms) for ms in self._mu3_multisets], dtype=torch.float64
        )
        return idx, mult

    @cached_property
    def _mu4_multisets(self):
        return list(tensors.multisets(self.d, 4))

    @cached_property
    def _gen_mu4(self):
        entries = self._family.central_moment_entries(4)
        return lambdify(self._family.natural_params, [entries[ms] for ms in self._mu4_multisets])

    @cached_property
    def _gen_suff_stat(self):
        return lambdify(self._family.obs_symbols, list(self._family.suff_stat))

    @cached_property
    def _gen_log_base_measure(self):
        return lambdify(self._family.obs_symbols, [self._family.log_base_measure])

    def _eval(self, fn, h: torch.Tensor) -> torch.Tensor:
        return stack_columns(fn(*h.unbind(-1)), h.shape[:-1], h)

    def _full_index(self, multisets, k: int) -> torch.Tensor:
        """Index into the distinct-entry list for every ordered index tuple, ``(d,)*k``."""
        pos = {ms: i for i, ms in enumerate(multisets)}
        flat = [pos[tuple(sorted(idx))] for idx in itertools.product(range(self.d), repeat=k)]
        return torch.tensor(flat, dtype=torch.long)

    @cached_property
    def _fisher_index(self):
        return self._full_index(self._fisher_multisets, 2)

    @cached_property
    def _mu4_index(self):
        return self._full_index(self._mu4_multisets, 4)

    @cached_property
    def _mu4_terms(self):
        """``(idx [M, 4], mult [M])`` of the distinct multisets of order 4."""
        idx = torch.tensor(self._mu4_multisets, dtype=torch.long).reshape(-1, 4)
        mult = torch.tensor(
            [tensors.multiplicity(ms) for ms in self._mu4_multisets], dtype=torch.float64
        )
        return idx, mult

    # ------------------------------------------------------------------ labels
    def _obs_columns(self, y: torch.Tensor, dtype) -> list[torch.Tensor]:
        """The observation coordinates (the family's ``obs_symbols``) as ``[...]`` tensors."""
        if self.class_index:
            C = self._family.sizes["C"]
            return list(torch.nn.functional.one_hot(y.long(), C).to(dtype).unbind(-1))
        y = y.to(dtype)
        return [y] if self.obs_shape == () else list(y.unbind(-1))

    def _check_label_dtype(self, y, argname):
        if self.class_index:
            if y.is_floating_point() or y.dtype == torch.bool:
                raise TypeError(
                    f"{self._describe()}: {argname} must hold integer class indices "
                    f"(e.g. torch.int64); got {y.dtype}"
                )
        elif not self.discrete and y.dtype == torch.bool:
            raise TypeError(f"{self._describe()}: {argname} must be real-valued; got {y.dtype}")

    def _check_support(self, y, argname):
        if self.class_index:
            C = self._family.sizes["C"]
            self._support_error(y, (y < 0) | (y >= C), argname, f"class indices 0..{C - 1}")
            return
        support = self._family.support
        cols = [y] if self.obs_shape == () else list(y.unbind(-1))
        if isinstance(support, ProductSupport):
            factors = support.factors
        else:
            factors = None
        if isinstance(support, FiniteSupport):
            pts = torch.tensor(support.points, dtype=torch.float64, device=y.device)
            yy = y.to(torch.float64).reshape(*y.shape[: y.ndim - len(self.obs_shape)], -1)
            ok = (yy[..., None, :] == pts).all(-1).any(-1)
            shown = list(support.points)[:6]
            valid = ", ".join(str(p[0] if len(p) == 1 else p) for p in shown)
            if len(support.points) > 6:
                valid += f", … ({len(support.points)} labels)"
            self._support_error(yy, ~ok, argname, valid)
            return
        for j, col in enumerate(cols):
            factor = factors[j] if factors is not None else support
            bad, valid = _outside(factor, col)
            if bad is not None:
                where = argname if self.obs_shape == () else f"{argname}[..., {j}]"
                self._support_error(col, bad, where, valid)

    def _support_labels(self):
        if self.class_index:
            return torch.arange(self._family.sizes["C"], dtype=torch.int64)
        support = self._family.support
        points = _finite_points(support)
        if points is None:
            raise InfiniteSupportError(
                f"{self._describe()}: the support {support!r} is infinite, so its labels cannot "
                "be enumerated; support_labels() needs a finite support"
            )
        out = torch.tensor(points, dtype=torch.int64)
        return out[:, 0] if self.obs_shape == () else out

    # ------------------------------------------------------------------ kernels
    def _suff_stat(self, y, dtype):
        cols = self._obs_columns(y, dtype)
        like = torch.empty((), dtype=dtype, device=y.device)
        return stack_columns(self._gen_suff_stat(*cols), cols[0].shape, like)

    def _log_base_measure(self, y, dtype):
        cols = self._obs_columns(y, dtype)
        like = torch.empty((), dtype=dtype, device=y.device)
        return stack_columns(self._gen_log_base_measure(*cols), cols[0].shape, like)[..., 0]

    def _log_prob(self, y, h):
        if self.use_stable and self.numeric.log_prob is not None:
            return self.numeric.log_prob(y, h, self.sizes)
        t = self._suff_stat(y, h.dtype)
        return (t * h).sum(-1) - self._log_partition(h) + self._log_base_measure(y, h.dtype)

    def _log_partition(self, h):
        if self.use_stable and self.numeric.log_partition is not None:
            return self.numeric.log_partition(h, self.sizes)
        return self.lambdified_log_partition(h)

    def lambdified_log_partition(self, h: torch.Tensor) -> torch.Tensor:
        """``F(h)`` straight from the lambdified symbolic expression (no stabilisation)."""
        return self._eval(self._gen_log_partition, h)[..., 0]

    def _mean(self, h):
        return self._eval(self._gen_mean, h)

    def _fisher(self, h):
        entries = self._eval(self._gen_fisher, h)
        return entries[..., self._fisher_index.to(h.device)].reshape(*h.shape[:-1], self.d, self.d)

    def _quadratic(self, h, v):
        fisher = self._fisher(h)
        q = torch.einsum("...ce,...cK,...eK->...K", fisher, v, v)
        # I(h) = ∇²F is PSD for every valid family; a user family declared with
        # check=False and a non-convex F would otherwise give a negative "Fisher
        # information" without a word. Allowance: the rounding of the d² products
        scale = torch.einsum("...ce,...cK,...eK->...K", fisher.abs(), v.abs(), v.abs())
        bad = _unwrap(q) < -(4 * self.d + 16) * torch.finfo(q.dtype).eps * _unwrap(scale)
        if bool(bad.any()):
            from fishsym.errors import FamilyDefinitionError

            hv = _unwrap(h).expand(*bad.shape[:-1], self.d)[bad.any(-1)][0].tolist()
            raise FamilyDefinitionError(
                f"{self._describe()}: vᵀI(h)v = {_unwrap(q)[bad].flatten()[0].item():.4g} < 0 at "
                f"h = {hv}: I(h) = ∇²F(h) is not positive semi-definite, so F is not a valid "
                "log-partition (not convex there). Check the family's F (was it built with "
                "check=False?)"
            )
        return q

    def mu4_tensor(self, h: torch.Tensor) -> torch.Tensor:
        """The dense ``μ_4(h)``, ``[..., d, d, d, d]`` — for small ``d`` only (spectra, tests)."""
        h = self._h(h)
        return self._mu4_dense(h)

    def _mu4_dense(self, h):
        entries = self._eval(self._gen_mu4, h)
        d = self.d
        return entries[..., self._mu4_index.to(h.device)].reshape(*h.shape[:-1], d, d, d, d)

    def _cubic(self, h, v):
        entries = self._eval(self._gen_mu3, h)  # [..., M]
        idx, mult = self._mu3_terms
        idx = idx.to(h.device)
        prod = v[..., idx[:, 0], :] * v[..., idx[:, 1], :] * v[..., idx[:, 2], :]
        return torch.einsum("...m,...mK->...K", entries * mult.to(h.device, h.dtype), prod)

    def _quartic(self, h, v):
        entries = self._eval(self._gen_mu4, h)  # [..., M]
        idx, mult = self._mu4_terms
        idx = idx.to(h.device)
        prod = (
            v[..., idx[:, 0], :]
            * v[..., idx[:, 1], :]
            * v[..., idx[:, 2], :]
            * v[..., idx[:, 3], :]
        )
        coef = entries * mult.to(h.device, h.dtype)
        return torch.einsum("...m,...mK->...K", coef, prod)

    @cached_property
    def _gen_kappa4(self):
        entries = self._family.cumulant_entries(4)
        return lambdify(self._family.natural_params, [entries[ms] for ms in self._mu4_multisets])

    def _var_squared(self, h, v):
        # κ_4[v⁴] + 2(vᵀIv)²: no μ_4 − I² cancellation (both terms are positive for the
        # count and positive-real families; logit families have structured kernels)
        entries = self._eval(self._gen_kappa4, h)
        idx, mult = self._mu4_terms
        idx = idx.to(h.device)
        prod = (
            v[..., idx[:, 0], :]
            * v[..., idx[:, 1], :]
            * v[..., idx[:, 2], :]
            * v[..., idx[:, 3], :]
        )
        kappa4 = torch.einsum("...m,...mK->...K", entries * mult.to(h.device, h.dtype), prod)
        q = self._quadratic(h, v)
        return (kappa4 + 2 * q * q).clamp_min(0)

    def _sample(self, h, n, generator):
        sampler = self.numeric.sampler
        if sampler is not None:
            return sampler(self, h, n, generator)
        user = user_sampler(self._family.name)
        if user is not None:
            return self._checked_user_labels(user(h, n, generator), h, n)
        if _finite_points(self._family.support) is not None:
            return samplers.enumeration(self, h, n, generator)
        raise NoSamplerError(
            f"{self._describe()}: no sampler is available for this family: its support "
            f"{self._family.support!r} is infinite and it is not a registered family with a "
            "dedicated sampler. Finite supports are sampled by enumeration; give it one with "
            f"fishsym.kernels.register_sampler({self._family.name!r}, sampler), "
            "sampler(h, n, generator) -> labels [n, ..., *obs_shape]."
        )

    def _checked_user_labels(self, y, h, n):
        want = (n, *h.shape[:-1], *self.obs_shape)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != want:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ShapeError(
                f"the sampler registered for {self._family.name!r} returned {got}; it must "
                f"return labels [n, ..., *obs_shape] = {want} for h of shape {tuple(h.shape)}"
            )
        if y.is_floating_point() and not bool(torch.isfinite(y).all()):
            raise NonFiniteError(
                f"the sampler registered for {self._family.name!r} returned NaN or inf labels"
            )
        return y.to(h.device)

    def _spectrum(self, h, local):
        fisher = self._fisher(h)
        eig = torch.linalg.eigvalsh((fisher + fisher.transpose(-1, -2)) / 2)
        fisher_min, fisher_max = eig[..., 0], eig[..., -1]
        if self.d == 1:
            mu4 = self._eval(self._gen_mu4, h)[..., 0]
            exact = dict.fromkeys(FIELDS, "closed-form (d = 1: μ_4[v⁴] = μ_4·v⁴)")
            if not local:
                return certified_only(fisher[..., 0, 0], fisher[..., 0, 0], mu4, mu4, exact)
            return Spectrum(fisher[..., 0, 0], fisher[..., 0, 0], mu4, mu4, mu4, mu4, exact)
        upper, max_local, lower, min_local = dense_mu4_spectrum(
            self._mu4_dense(h), fisher_min, local=local
        )
        power = power_label(self.d)
        methods = {
            "fisher_min": "eigvalsh",
            "fisher_max": "eigvalsh",
            "mu4_max_upper": "matricisation-eigvalsh",
            "mu4_max_local": power,
            "mu4_min_lower": "max(matricisation-eigvalsh, jensen λ_min(I)²)",
            "mu4_min_local": power,
        }
        if not local:
            return certified_only(fisher_min, fisher_max, upper, lower, methods)
        return Spectrum(fisher_min, fisher_max, upper, max_local, lower, min_local, methods)


def _finite_points(support):
    if isinstance(support, FiniteSupport):
        return list(support.points)
    if isinstance(support, ProductSupport) and support.finite:
        factor_points = [_finite_points(f) for f in support.factors]
        return [sum(combo, ()) for combo in itertools.product(*factor_points)]
    return None


def _outside(support, col: torch.Tensor):
    """``(bad mask, description of valid labels)`` of one coordinate, or ``(None, "")``."""
    if isinstance(support, FiniteSupport):
        pts = torch.tensor([p[0] for p in support.points], dtype=torch.float64, device=col.device)
        bad = ~torch.isin(col.to(torch.float64), pts)
        return bad, "{" + ", ".join(str(p[0]) for p in support.points) + "}"
    if isinstance(support, NonNegativeIntegers):
        if col.is_floating_point():
            bad = ~torch.isfinite(col) | (col < 0) | (col != torch.floor(col))
        else:
            bad = col < 0
        return bad, "non-negative integers 0, 1, 2, …"
    if isinstance(support, PositiveReals):
        return ~torch.isfinite(col) | (col <= 0), "finite reals y > 0"
    if isinstance(support, UnitInterval):
        return ~((col > 0) & (col < 1)), "reals in the open interval (0, 1)"
    if isinstance(support, RealLine):
        if col.is_floating_point():
            return ~torch.isfinite(col), "finite reals"
        return None, ""
    return None, ""


softplus = stable_softplus


def _logsumexp_with_zero(h):
    zero = torch.zeros_like(h[..., :1])
    return stable_logsumexp(torch.cat([h, zero], -1))


def _log1mexp(h):
    """``log(1 − eʰ)`` for ``h < 0`` without cancellation (``log(−expm1(h))``)."""
    return torch.log(-torch.expm1(h))


#: labels from which the Poisson log-probability is taken in its deviance form
POISSON_STABLE_FROM = 64


def _poisson_log_prob(y, h, sizes):
    """``log p(y) = y·h − eʰ − log y!`` without cancelling huge terms: for ``y ≥``
    :data:`POISSON_STABLE_FROM` it is ``−λ·φ(y/λ) − ½log(2πy) − ρ(y)`` with ``λ = eʰ``,
    ``φ(r) = r log r − r + 1 ≥ 0`` (the deviance, by its series near ``r = 1``) and
    ``ρ(y) = log y! − (y log y − y + ½ log 2πy)`` by Stirling's series. The plain form
    gives +1024 at ``y = ⌊e⁴⁰⌋, h = 40`` (exact −20.9): its three terms are ~10¹⁹."""
    hh = h[..., 0]
    yf = y.to(h.dtype)
    plain = yf * hh - torch.exp(hh) - torch.lgamma(yf + 1)
    big = yf >= POISSON_STABLE_FROM
    if not bool(_unwrap(big).any()):  # value check on the plain tensor (vmap-safe)
        return plain
    ys = torch.where(big, yf, torch.full_like(yf, float(POISSON_STABLE_FROM)))
    lam = torch.exp(hh)
    t = (ys - lam) / lam  # r − 1
    # φ = (1 + t)·log1p(t) − t, which cancels for small t: there Σ_{k≥2} (−t)^k/(k(k−1))
    series = sum((-t) ** k / (k * (k - 1)) for k in range(2, 10))
    phi = torch.where(t.abs() < 1e-3, series, (1 + t) * torch.log1p(t) - t)
    inv = 1 / ys
    rho = inv / 12 - inv**3 / 360 + inv**5 / 1260 - inv**7 / 1680
    stable = -lam * phi - 0.5 * torch.log(2 * torch.pi * ys) - rho
    return torch.where(big, stable, plain)
