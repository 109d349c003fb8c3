"""The exponential-family base class (pure sympy).

A family is declared once, by what defines it (docs/theory.md §1):

    p(y | h) = k(y) · exp( t(y)ᵀ h − F(h) )

with natural parameters ``h ∈ R^d`` (each in a declared interval), sufficient statistic
``t(y) ∈ R^d``, log-partition ``F``, log base measure ``log k`` and the support of ``y``.
Everything else is derived here, once per instance, and cached:

* mean ``η = ∇F`` and Fisher information ``I = ∇²F``;
* cumulant tensors ``κ_k = ∇ᵏF``;
* central moment tensors ``μ_k`` by the moment–cumulant (set-partition) formula;
* moment tensors of ``t`` about an arbitrary point (docs/theory.md §5, empirical Fisher);
* quadratic and quartic forms ``vᵀIv`` and ``μ_4[v,v,v,v]``.

Symmetric tensors are computed one distinct index multiset at a time
(:mod:`fishsym.symbolic.tensors`). This module never imports torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np
import sympy as sp

from fishsym.errors import DomainError, FamilyDefinitionError
from fishsym.symbolic import tensors
from fishsym.symbolic.domain import REALS, Domain
from fishsym.symbolic.support import Support

#: highest cumulant / central moment order the base class derives
MAX_ORDER = 6
#: seed of the random valid parameter at which construction checks the normalisation
NORMALISATION_SEED = 20240205


class ExponentialFamily:
    """An exponential family in canonical form ``k(y)·exp(t(y)ᵀh − F(h))``.

    Parameters
    ----------
    name:
        Registry-style name, e.g. ``"poisson"``; used in messages and records.
    natural_params:
        The natural-parameter symbols ``h`` (length ``d``).
    y:
        The observation: one sympy Symbol, or a sequence of Symbols for a vector ``y``.
    suff_stat:
        ``t(y)``, ``d`` expressions in the observation symbols only.
    log_partition:
        ``F(h)``, an expression in the natural parameters only.
    log_base_measure:
        ``log k(y)``, an expression in the observation symbols only.
    support:
        Where ``y`` lives (:mod:`fishsym.symbolic.support`).
    domain:
        A :class:`Domain` or a mapping symbol → ``sympy.Interval``; parameters not named
        range over the real line.
    sizes:
        Size arguments the family was built with (``{"C": 3}``), for display and kernels.
    check:
        Check the normalisation at one random valid parameter and raise
        :class:`FamilyDefinitionError` if it fails. Cheap at any size: a float64
        log-sum-exp over a finite support, the closed Gaussian integral for densities
        quadratic in ``y``, mpmath series/quadrature for scalar supports
        (:func:`fishsym.symbolic.expectation.normalisation_check`). Where no route exists
        a ``UserWarning`` says so.

    Attributes
    ----------
    construction_check:
        The :class:`~fishsym.symbolic.expectation.NormalisationCheck` of construction
        (route, error, tolerance), or None when built with ``check=False``.
    """

    def __init__(
        self,
        name: str,
        natural_params: Sequence[sp.Symbol],
        y: sp.Symbol | Sequence[sp.Symbol],
        suff_stat: Sequence[sp.Expr] | sp.Matrix,
        log_partition: sp.Expr,
        log_base_measure: sp.Expr,
        support: Support,
        domain: Domain | Mapping[sp.Symbol, sp.Interval] | None = None,
        sizes: Mapping[str, object] | None = None,
        description: str = "",
        check: bool = True,
    ):
        self.name = str(name)
        self.natural_params = tuple(natural_params)
        if not self.natural_params or not all(
            isinstance(s, sp.Symbol) for s in self.natural_params
        ):
            raise FamilyDefinitionError(
                f"{name}: natural_params must be a non-empty sequence of sympy Symbols; "
                f"got {natural_params!r}"
            )
        if len(set(self.natural_params)) != len(self.natural_params):
            raise FamilyDefinitionError(f"{name}: natural_params repeats a symbol")
        if isinstance(y, sp.Symbol):
            self.y = y
            self.obs_symbols = (y,)
        else:
            self.obs_symbols = tuple(y)
            if not self.obs_symbols or not all(isinstance(s, sp.Symbol) for s in self.obs_symbols):
                raise FamilyDefinitionError(
                    f"{name}: y must be a sympy Symbol or a sequence of Symbols; got {y!r}"
                )
            self.y = sp.Matrix(self.obs_symbols)
        # strings are parsed with the declared symbols (their assumptions included), so
        # "log(1 + exp(h))" means the natural parameter h, not a new symbol named h
        names = {str(sym): sym for sym in (*self.natural_params, *self.obs_symbols)}

        def parse(expr):
            return sp.sympify(expr, locals=names) if isinstance(expr, str) else sp.sympify(expr)

        if isinstance(suff_stat, str) or not hasattr(suff_stat, "__iter__"):
            suff_stat = [suff_stat]
        self.suff_stat = sp.Matrix([parse(e) for e in suff_stat])
        self.log_partition = parse(log_partition)
        self.log_base_measure = parse(log_base_measure)
        self.support = support
        self.sizes = dict(sizes or {})
        self.description = description
        if domain is None:
            domain = {}
        if not isinstance(domain, Domain):
            unknown = set(domain) - set(self.natural_params)
            if unknown:
                raise FamilyDefinitionError(
                    f"{name}: the domain must give one interval per natural parameter "
                    f"{self.natural_params}; it names {sorted(map(str, unknown))}, which are not "
                    "natural parameters"
                )
            domain = Domain({s: domain.get(s, REALS) for s in self.natural_params})
        self.domain = domain
        self._validate()
        self._cumulants: dict[tensors.Multiset, sp.Expr] = {}
        self._central: dict[int, dict[tensors.Multiset, sp.Expr]] = {}
        self.construction_check = None
        if check:
            self._check_normalisation()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        name, h, ys = self.name, set(self.natural_params), set(self.obs_symbols)
        d = len(self.natural_params)
        if self.suff_stat.shape[0] != d:
            raise FamilyDefinitionError(
                f"{name}: suff_stat has {self.suff_stat.shape[0]} entries but there are {d} "
                f"natural parameters {self.natural_params}; t(y) and h must have the same length"
            )
        extra = self.log_partition.free_symbols - h
        if extra:
            raise FamilyDefinitionError(
                f"{name}: log_partition must be a function of the natural parameters "
                f"{self.natural_params} alone; it also depends on {sorted(map(str, extra))}"
            )
        extra = self.suff_stat.free_symbols - ys
        if extra:
            raise FamilyDefinitionError(
                f"{name}: suff_stat must be a function of the observation {self.obs_symbols} "
                f"alone; it also depends on {sorted(map(str, extra))}"
            )
        extra = self.log_base_measure.free_symbols - ys
        if extra:
            raise FamilyDefinitionError(
                f"{name}: log_base_measure must be a function of the observation "
                f"{self.obs_symbols} alone; it also depends on {sorted(map(str, extra))}"
            )
        if not isinstance(self.support, Support):
            raise FamilyDefinitionError(
                f"{name}: support must be a fishsym.symbolic.support.Support; got {self.support!r}"
            )
        if self.support.dim != len(self.obs_symbols):
            raise FamilyDefinitionError(
                f"{name}: the support has {self.support.dim} coordinates but y has "
                f"{len(self.obs_symbols)} symbols"
            )
        if set(self.domain.intervals) != h:
            raise FamilyDefinitionError(
                f"{name}: the domain must give one interval per natural parameter "
                f"{self.natural_params}; it names {tuple(self.domain.intervals)}"
            )

    def _check_normalisation(self) -> None:
        """Check ``Σ/∫ p(y|h) = 1`` at one random valid ``h`` (cheap at any size).

        The route and its tolerance are chosen by
        :func:`fishsym.symbolic.expectation.normalisation_check` and the result is kept in
        :attr:`construction_check`. Where no route exists for the support, nothing is
        claimed: a ``UserWarning`` says so and :func:`~fishsym.symbolic.verify_family`
        reports the normalisation as not checked.
        """
        from fishsym.symbolic.expectation import format_values, normalisation_check

        rng = np.random.default_rng(NORMALISATION_SEED)
        values = self.random_natural_params(rng)
        result = normalisation_check(self, values)
        self.construction_check = result
        if result.error is None:
            warnings.warn(
                f"{self.name}: the normalisation was not checked at construction: "
                f"{result.detail}. Run fishsym.symbolic.verify_family on it.",
                UserWarning,
                stacklevel=3,
            )
            return
        if not result.passed:
            diverged = ""
            if np.isinf(result.error):
                diverged = " (the sum/integral diverges or did not converge)"
            because = f"; {result.detail}" if result.detail else ""
            raise FamilyDefinitionError(
                f"{self.name}: the density does not normalise: at {format_values(values)} the "
                f"total mass differs from 1 by {result.error:.3g}{diverged} (route: "
                f"{result.route}, tolerance {result.tol:.1e}{because}). Check log_partition "
                "against suff_stat, log_base_measure and support."
            )

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        """``d``, the number of natural parameters (= length of ``t``)."""
        return len(self.natural_params)

    @cached_property
    def log_density(self) -> sp.Expr:
        """``log p(y|h) = t(y)ᵀh − F(h) + log k(y)``."""
        th = sum(
            (t * h for t, h in zip(self.suff_stat, self.natural_params, strict=True)),
            sp.Integer(0),
        )
        return th - self.log_partition + self.log_base_measure

    @cached_property
    def mean(self) -> sp.Matrix:
        """``η(h) = ∇F(h) = E[t(y)]``, a ``d × 1`` Matrix."""
        return sp.Matrix([self._cumulant_entry((c,)) for c in range(self.dim)])

    @cached_property
    def fisher(self) -> sp.Matrix:
        """``I(h) = ∇²F(h) = Cov[t(y)]``, a symmetric ``d × d`` Matrix."""
        d = self.dim
        return sp.Matrix(d, d, lambda c, e: self._cumulant_entry(tuple(sorted((c, e)))))

    # ------------------------------------------------------------------ cumulants
    def _cumulant_entry(self, ms: tensors.Multiset) -> sp.Expr:
        """``∂^k F / ∂h_{ms}``: each multiset differentiated once, from its prefix."""
        if ms in self._cumulants:
            return self._cumulants[ms]
        if len(ms) == 1:
            val = sp.diff(self.log_partition, self.natural_params[ms[0]])
        else:
            val = sp.diff(self._cumulant_entry(ms[:-1]), self.natural_params[ms[-1]])
        self._cumulants[ms] = val
        return val

    def cumulant_entries(self, k: int) -> dict[tensors.Multiset, sp.Expr]:
        """Distinct entries of ``κ_k`` keyed by sorted index tuple."""
        self._check_order(k, lo=1)
        return {ms: self._cumulant_entry(ms) for ms in tensors.multisets(self.dim, k)}

    def cumulant(self, k: int) -> sp.Array:
        """``κ_k = ∇ᵏF``, a symmetric sympy Array of shape ``(d,)*k`` (``k = 1..6``)."""
        return tensors.to_array(self.cumulant_entries(k), self.dim, k)

    # ------------------------------------------------------------------ central moments
    def central_moment_entries(self, k: int) -> dict[tensors.Multiset, sp.Expr]:
        """Distinct entries of ``μ_k = E[(t−η)^{⊗k}]`` (``k = 0..6``).

        ``μ_k[i_1..i_k] = Σ_π Π_{B∈π} κ_{|B|}[i_B]`` over set partitions ``π`` of the
        ``k`` positions into blocks of size ≥ 2 (docs/theory.md §1).
        """
        self._check_order(k, lo=0)
        if k in self._central:
            return self._central[k]
        partitions = tensors.set_partitions(k, min_block=2)
        out: dict[tensors.Multiset, sp.Expr] = {}
        for ms in tensors.multisets(self.dim, k):
            # k = 0: the one (empty) partition contributes the empty product, μ_0 = 1
            total = sp.Integer(0)
            for part in partitions:
                term = sp.Integer(1)
                for block in part:
                    term *= self._cumulant_entry(tuple(sorted(ms[j] for j in block)))
                total += term
            out[ms] = total
        self._central[k] = out
        return out

    def central_moment(self, k: int) -> sp.Array:
        """``μ_k = E[(t−η)^{⊗k}]``, symmetric Array of shape ``(d,)*k`` (``k = 2..6``)."""
        return tensors.to_array(self.central_moment_entries(k), self.dim, k)

    def moment_about_entries(self, point, k: int) -> dict[tensors.Multiset, sp.Expr]:
        """Distinct entries of ``E[(t − a)^{⊗k}]`` for a point ``a`` (length ``d``).

        With ``δ = η − a``: ``E[((t−η)+δ)^{⊗k}] = Σ_S μ_{|S|}[i_S] Π_{j∉S} δ_{i_j}`` over
        subsets ``S`` of the ``k`` positions (``μ_0 = 1``, ``μ_1 = 0``).
        """
        self._check_order(k, lo=0)
        a = self._as_vector(point, "point")
        delta = [self.mean[c] - a[c] for c in range(self.dim)]
        central = {j: self.central_moment_entries(j) for j in range(k + 1) if j != 1}
        out = {}
        for ms in tensors.multisets(self.dim, k):
            total = sp.Integer(0)
            for subset in tensors.positions_subsets(k):
                if len(subset) == 1:
                    continue
                term = central[len(subset)][tuple(sorted(ms[j] for j in subset))]
                for j in range(k):
                    if j not in subset:
                        term *= delta[ms[j]]
                total += term
            out[ms] = total
        return out

    def moment_about(self, point, k: int) -> sp.Array:
        """``E[(t − a)^{⊗k}]`` about a point ``a`` (symbolic or numeric, length ``d``)."""
        return tensors.to_array(self.moment_about_entries(point, k), self.dim, k)

    def raw_moment(self, k: int) -> sp.Array:
        """``E[t^{⊗k}]`` (moments about the origin)."""
        return self.moment_about([0] * self.dim, k)

    # ------------------------------------------------------------------ forms
    def quadratic_form(self, v) -> sp.Expr:
        """``vᵀ I(h) v`` for a symbolic or numeric vector ``v`` of length ``d``."""
        v = self._as_vector(v, "v")
        return tensors.symmetric_form(self.cumulant_entries(2), self.dim, 2, v)

    def quartic_form(self, v) -> sp.Expr:
        """``μ_4(h)[v, v, v, v] = E[((t−η)ᵀv)⁴]``."""
        return self.central_moment_form(4, v)

    def central_moment_form(self, k: int, v) -> sp.Expr:
        """``μ_k[v, …, v] = E[((t−η)ᵀv)^k]``."""
        v = self._as_vector(v, "v")
        return tensors.symmetric_form(self.central_moment_entries(k), self.dim, k, v)

    def cumulant_form(self, k: int, v) -> sp.Expr:
        """``κ_k[v, …, v]``."""
        v = self._as_vector(v, "v")
        return tensors.symmetric_form(self.cumulant_entries(k), self.dim, k, v)

    # ------------------------------------------------------------------ parameters
    def random_natural_params(self, rng: np.random.Generator, exact: bool = True) -> dict:
        """Random valid natural parameters ``{symbol: value}``, drawn well inside the domain.

        Exact sympy Rationals by default (symbolic checks stay exact); floats with
        ``exact=False``.
        """
        return self.domain.sample(rng, exact=exact)

    def check_natural_params(self, values: Mapping[sp.Symbol, object]) -> None:
        """Raise :class:`DomainError` unless ``values`` is a valid natural parameter."""
        self.domain.check(values, family=self.name)

    def subs_params(self, expr, values: Mapping[sp.Symbol, object]):
        """Substitute natural-parameter values into ``expr`` after checking the domain."""
        self.check_natural_params(values)
        return expr.subs(values) if hasattr(expr, "subs") else expr

    # ------------------------------------------------------------------ helpers
    def _check_order(self, k: int, lo: int) -> None:
        if not isinstance(k, (int, np.integer)) or not lo <= k <= MAX_ORDER:
            raise ValueError(
                f"{self.name}: order k must be an integer in {lo}..{MAX_ORDER}; got {k!r}"
            )

    def _as_vector(self, v, argname: str) -> list:
        if isinstance(v, (sp.MatrixBase, sp.NDimArray)):
            v = list(v)
        try:
            v = [sp.sympify(x) for x in v]
        except TypeError:
            raise ValueError(
                f"{self.name}: {argname} must be a sequence of length {self.dim}"
            ) from None
        if len(v) != self.dim:
            raise ValueError(
                f"{self.name}: {argname} has length {len(v)}; the family has d = {self.dim} "
                "natural parameters"
            )
        return v

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"<ExponentialFamily {self.name}({sizes}) d={self.dim} support={self.support!r}>"


__all__ = ["ExponentialFamily", "DomainError", "FamilyDefinitionError", "MAX_ORDER"]
