"""fishsym.kernels — batched torch kernels of exponential families (symbolic → torch).

    kernel = fishsym.kernels.get("categorical", C=10)      # or get(family_object)
    kernel.log_prob(y, h); kernel.mean(h); kernel.fisher(h)
    kernel.quadratic(h, v); kernel.quartic(h, v)            # v: [..., d, K] → [..., K]
    kernel.sample(h, n, generator); kernel.spectrum(h); kernel.check_h(h)

**How kernels are made (the design choice).** Generic kernels are generated at run time
from the family's symbolic expressions with ``sympy.lambdify(..., modules="torch",
cse=True)`` (:mod:`fishsym.kernels.generic`) and cached: :func:`get` returns one kernel
object per family per process, and each generated function is built once, on first use.
No generated source is stored, so nothing can go stale and user-defined families work
the same way as registered ones.

Where the generic tensor form is wasteful or overflows, a registered family declares a
hand-written structured kernel in its numeric declaration
(``fishsym/kernels/family_specs/<name>.py``, with its sampler and stable forms), which the
tests hold to the lambdified one (float64, random valid parameters):

* ``categorical``, ``categorical_minimal``, ``multinomial`` — ``O(C)`` quadratic and
  quartic forms, never ``C²``/``C⁴`` (:mod:`fishsym.kernels.categorical`);
* ``gaussian`` — ``I = σ²Id``, ``μ_4[v⁴] = 3σ⁴‖v‖⁴`` (:mod:`fishsym.kernels.gaussian`);
* ``bernoulli``, ``binomial``, ``independent_bernoulli`` — closed forms in ``σ(±h)``
  (:mod:`fishsym.kernels.bernoulli`).

All kernels accept float32 and float64 ``h`` (outputs follow ``h``'s dtype), any leading
batch shape, CPU or CUDA tensors. See :class:`fishsym.kernels.base.FamilyKernel` for the
methods and their shapes, and docs/theory.md §1–§4 for the mathematics.
"""

from __future__ import annotations

import math

from fishsym.kernels.base import FamilyKernel
from fishsym.kernels.bernoulli import BinomialKernel, IndependentBernoulliKernel
from fishsym.kernels.categorical import (
    CategoricalKernel,
    CategoricalMinimalKernel,
    MultinomialKernel,
)
from fishsym.kernels.gaussian import GaussianKernel
from fishsym.kernels.generic import GenericKernel
from fishsym.kernels.numeric import (
    NumericFamily,
    declare,
    declared,
    numeric_of,
    register_sampler,
)
from fishsym.kernels.product import ProductKernel
from fishsym.kernels.spectrum import Spectrum
from fishsym.symbolic import families
from fishsym.symbolic.family import ExponentialFamily

_BY_NAME: dict[tuple, FamilyKernel] = {}
_BY_FAMILY: dict[int, tuple[ExponentialFamily, FamilyKernel]] = {}
_GENERIC: dict[int, tuple[ExponentialFamily, GenericKernel]] = {}


def _name_key(name: str, sizes: dict) -> tuple[tuple, dict]:
    defaults = families.size_arguments(name)  # raises UnknownFamilyError
    unknown = set(sizes) - set(defaults)
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"
        raise TypeError(
            f"family {name!r} got unexpected size argument(s) {sorted(unknown)}; "
            f"valid size arguments (with defaults): {valid}"
        )
    args = {**defaults, **sizes}
    return (name, tuple(sorted(args.items()))), args


def get(fam_or_name, **sizes) -> FamilyKernel:
    """The (cached) kernel of a family: a registered name plus its size arguments, or an
    :class:`~fishsym.symbolic.ExponentialFamily` (registered or user-defined).

    >>> get("categorical", C=10).d
    10

    Registered families whose numeric declaration (:mod:`fishsym.kernels.family_specs`) names a
    structured kernel get it; every other family gets the lambdified :class:`GenericKernel`. Raises
    :class:`~fishsym.errors.UnknownFamilyError` for unknown names and :class:`TypeError`
    for unknown size arguments or a non-family argument.
    """
    if isinstance(fam_or_name, FamilyKernel):
        if sizes:
            raise TypeError("size arguments are only accepted with a family name")
        return fam_or_name
    if isinstance(fam_or_name, str):
        key, args = _name_key(fam_or_name, sizes)
        if key not in _BY_NAME:
            structured = numeric_of(fam_or_name).kernel
            if structured is not None:
                _BY_NAME[key] = structured(**args)
            else:
                _BY_NAME[key] = GenericKernel(families.get(fam_or_name, **args))
        return _BY_NAME[key]
    if isinstance(fam_or_name, ExponentialFamily):
        if sizes:
            raise TypeError(
                f"size arguments {sorted(sizes)} are only accepted with a family name; the "
                f"family object {fam_or_name!r} already has its sizes"
            )
        fam = fam_or_name
        if id(fam) in _BY_FAMILY:
            return _BY_FAMILY[id(fam)][1]
        name = getattr(fam, "registry_name", None)
        kernel = None
        if name is not None and name in families.names():
            try:
                key, args = _name_key(
                    name, {k: v for k, v in fam.sizes.items() if k in families.size_arguments(name)}
                )
            except TypeError:
                key = None
            if key is not None and families.get(name, **args) is fam:
                kernel = _BY_NAME.get(key)
                if kernel is None:
                    structured = numeric_of(name).kernel
                    if structured is not None:
                        kernel = structured(**args, family=fam)
                    else:
                        kernel = GenericKernel(fam)
                    _BY_NAME[key] = kernel
                elif getattr(kernel, "_family", fam) is None:
                    kernel._family = fam
        if kernel is None:
            kernel = GenericKernel(fam)
        _BY_FAMILY[id(fam)] = (fam, kernel)
        return kernel
    raise TypeError(
        "fishsym.kernels.get expects a registered family name (one of "
        f"{', '.join(families.names())}) or an ExponentialFamily; got {type(fam_or_name).__name__}"
    )


def for_output(family, out_dim: int, out_shape=None) -> FamilyKernel:
    """The kernel of ``family`` for a network with ``out_dim`` outputs — the one family
    resolver of every numeric entry point.

    ``family`` is a registered name (its size argument is inferred from the outputs as
    the registry declares: ``output_size`` ``"C"`` or ``"d"`` takes the number of outputs,
    ``"C_minus_1"`` that number plus one, ``None`` means a fixed size), an
    :class:`~fishsym.symbolic.ExponentialFamily`, or a kernel (used as it is).

    **Factor axes (docs/theory.md §11).** With the model's ``out_shape`` (the output
    without its batch axis) ``[*factors, d]``, the family acts on the last axis and every
    other axis is an independent factor (tokens, pixels): the kernel is the
    :class:`~fishsym.kernels.product.ProductKernel` of ``Π factors`` copies of the family
    of ``d`` outputs — never one distribution over all ``out_dim`` outputs (for a
    categorical that would be one label among ``out_dim`` classes, a different model). A
    coordinate-wise family (:func:`is_coordinatewise`) is the same model either way and is
    kept as one kernel over all outputs.

    Raises :class:`~fishsym.errors.UnknownFamilyError` for an unknown name,
    :class:`~fishsym.errors.ArgumentTypeError` for an argument of another type, and
    :class:`~fishsym.errors.ShapeError` when the outputs do not fit the family (with a
    hint at the family that would, e.g. ``"bernoulli"`` with 6 outputs) or when the factor
    axes are ambiguous (a kernel over all outputs of a factored output, not coordinate-wise).
    """
    from fishsym.errors import ShapeError
    from fishsym.kernels.product import ProductKernel

    out_shape = None if out_shape is None else tuple(int(s) for s in out_shape)
    factors = out_shape[:-1] if out_shape is not None and len(out_shape) > 1 else ()
    if math.prod(factors) <= 1:
        return _kernel_for(family, out_dim)
    if isinstance(family, ProductKernel):
        if family.factor_shape != factors or family.base.d != out_shape[-1]:
            raise ShapeError(
                f"the model's output has shape [n, {', '.join(map(str, out_shape))}] "
                f"(factors {list(factors)}, d = {out_shape[-1]}) but the product kernel has "
                f"factors {list(family.factor_shape)} and d = {family.base.d} per factor"
            )
        return family
    if _is_kernel(family):
        if family.d == out_dim:
            if is_coordinatewise(family):
                return family  # the same model as the product of its coordinates
            raise ShapeError(
                f"ambiguous factor axes: the model's output has shape "
                f"[n, {', '.join(map(str, out_shape))}], read as {math.prod(factors)} "
                f"independent factors of axes {list(factors)} with the family on the last "
                f"axis (d = {out_shape[-1]}), but the kernel {family.name!r} has d = "
                f"{family.d}, one distribution over all {out_dim} outputs (for a "
                f"categorical: one label among {out_dim} classes, docs/theory.md §11). Pass "
                f"the kernel of one factor (d = {out_shape[-1]}), or, if one distribution "
                f"over all outputs is meant, flatten the output: "
                f"output=lambda out: out.flatten(1)"
            )
        return ProductKernel(_kernel_for(family, out_shape[-1]), factors)
    per_factor = _kernel_for(family, out_shape[-1])
    if is_coordinatewise(per_factor):
        whole = _kernel_for(family, out_dim) if isinstance(family, str) else None
        if whole is not None and whole.d == out_dim:
            return whole
    return ProductKernel(per_factor, factors)


def _is_kernel(family) -> bool:
    return isinstance(family, FamilyKernel) or all(
        hasattr(family, attr) for attr in ("log_prob", "d", "check_h")
    )


def _kernel_for(family, out_dim: int) -> FamilyKernel:
    """The kernel of ``family`` for ``out_dim`` natural parameters (no factor axes)."""
    from fishsym.errors import ArgumentTypeError, ShapeError

    if isinstance(family, str):
        size = families.entry(family).output_size  # raises UnknownFamilyError
        sizes = {}
        if size in ("C", "d"):
            sizes = {size: out_dim}
        elif size == "C_minus_1":
            sizes = {"C": out_dim + 1}
        try:
            kernel = get(family, **sizes)
        except (ValueError, TypeError) as err:
            raise ShapeError(
                f"the model has {out_dim} output(s), which does not fit family {family!r} "
                f"(inferred sizes {sizes}): {err}{_hint(family, out_dim)}"
            ) from err
    elif _is_kernel(family):
        kernel = family  # a kernel, or an object that behaves like one
    elif isinstance(family, ExponentialFamily):
        kernel = get(family)
    else:
        raise ArgumentTypeError(
            "family must be a registered family name (one of "
            f"{', '.join(families.names())}), an ExponentialFamily or a family kernel; "
            f"got {type(family).__name__}"
        )
    if kernel.d != out_dim:
        raise ShapeError(
            f"the model has {out_dim} output(s) but family {kernel.name!r} has d = {kernel.d} "
            "natural parameters; the model's output must be the natural parameter h"
            f"{_hint(kernel.name, out_dim)}"
        )
    return kernel


_COORDINATEWISE: dict[str, bool] = {}


def is_coordinatewise(kernel) -> bool:
    """Whether the family of ``kernel`` is a product over its coordinates,
    ``F(h) = Σ_c f_c(h_c)`` (independent Bernoulli, isotropic Gaussian): then ``d``
    outputs read as one family are the same model as the same outputs read per factor
    (docs/theory.md §11). Decided on the symbolic log-partition of the family (for a
    registered family, at a small size: the structure does not depend on it); ``False``
    where the kernel has no symbolic family."""
    import sympy as sp

    name = getattr(kernel, "name", None)
    registered = isinstance(name, str) and name in families.names()
    if registered and name in _COORDINATEWISE:
        return _COORDINATEWISE[name]
    fam = None
    if registered:
        size = families.entry(name).output_size
        small = {"C": 3, "d": 3, "C_minus_1": 3}.get(size) if size else None
        try:
            fam = families.get(name, **({} if small is None else {size.split("_")[0]: small}))
        except Exception:  # noqa: BLE001 - keep the kernel's own family
            fam = None
    if fam is None:
        # the kernel's own symbolic family — never built here for a registered family,
        # whose lazy family at the model's size (a 50,257-class categorical) is huge
        fam = getattr(kernel, "family", None)
    if fam is None:
        return False
    symbols = set(fam.natural_params)
    separable = all(
        len(term.free_symbols & symbols) <= 1
        for term in sp.Add.make_args(sp.expand(fam.log_partition))
    )
    if registered:
        _COORDINATEWISE[name] = separable
    return separable


def _hint(name: str, out_dim: int) -> str:
    if name == "bernoulli" and out_dim > 1:
        return (
            f' — for {out_dim} binary labels use family="independent_bernoulli", '
            f'for one label out of {out_dim} classes family="categorical"'
        )
    if name in ("binomial", "poisson", "exponential", "geometric", "negative_binomial") and (
        out_dim > 1
    ):
        return f" — {name!r} has one natural parameter per input; the model outputs {out_dim}"
    if name == "gaussian_meanvar" and out_dim != 2:
        return " — the learned-variance Gaussian needs 2 outputs (μ/σ², −1/(2σ²)) per input"
    return ""


def generic(fam_or_name, **sizes) -> GenericKernel:
    """The lambdified :class:`GenericKernel` of a family, even where :func:`get` returns a
    structured kernel: the reference the structured kernels are tested against (cached)."""
    fam = families.get(fam_or_name, **sizes) if isinstance(fam_or_name, str) else fam_or_name
    if not isinstance(fam, ExponentialFamily):
        raise TypeError(f"expected a family name or an ExponentialFamily; got {type(fam).__name__}")
    if id(fam) not in _GENERIC:
        _GENERIC[id(fam)] = (fam, GenericKernel(fam))
    return _GENERIC[id(fam)][1]


__all__ = [
    "register_sampler",
    "get",
    "generic",
    "FamilyKernel",
    "GenericKernel",
    "Spectrum",
    "CategoricalKernel",
    "CategoricalMinimalKernel",
    "MultinomialKernel",
    "GaussianKernel",
    "BinomialKernel",
    "IndependentBernoulliKernel",
    "NumericFamily",
    "declare",
    "declared",
    "for_output",
    "is_coordinatewise",
    "ProductKernel",
    "numeric_of",
]

# every registered family's numeric declaration (one file each) registers on import
from fishsym.kernels import family_specs as _family_specs  # noqa: E402,F401
