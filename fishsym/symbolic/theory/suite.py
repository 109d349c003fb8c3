"""Entry points: :func:`check_theory`, the user-defined inverse Gaussian example, the whole
suite and its summary table.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import sympy as sp

from fishsym.errors import ArgumentTypeError, InvalidArgumentError, UnsupportedModelError
from fishsym.symbolic import families as _registry
from fishsym.symbolic import models as _models
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.models import SymbolicModel
from fishsym.symbolic.records import CheckResult
from fishsym.symbolic.theory.bounds import _is_categorical, check_bounds, check_categorical_spectrum
from fishsym.symbolic.theory.claims import (
    _identity_claim,
    check_affine,
    check_decomposition,
    check_empirical,
)
from fishsym.symbolic.theory.closed_forms import CLOSED_FORMS, ClosedForms
from fishsym.symbolic.theory.companions import check_companions
from fishsym.symbolic.theory.constants import CLAIMS, N_POINTS
from fishsym.symbolic.theory.estimators import check_estimators


def _as_family(fam) -> ExponentialFamily:
    if isinstance(fam, ExponentialFamily):
        return fam
    if isinstance(fam, str):
        return _registry.get(fam)
    raise TypeError(f"fam must be an ExponentialFamily or a registered family name; got {fam!r}")


def _as_model(model, d: int, activation: str | None) -> SymbolicModel:
    if isinstance(model, SymbolicModel):
        if model.d != d:
            raise UnsupportedModelError(
                f"model has d = {model.d} outputs but the family has d = {d} natural parameters"
            )
        return model
    if model not in _models.MODELS:
        raise UnsupportedModelError(
            f"model must be one of {', '.join(_models.MODELS)} or a SymbolicModel; got {model!r}"
        )
    if model == "glm":
        return _models.build("glm", d)
    return _models.build(model, d, activation=activation or "sigma")


def check_theory(
    fam,
    model="glm",
    *,
    activation: str | None = None,
    claims: Iterable[int] = CLAIMS,
    seed: int = 0,
    n_points: int = N_POINTS,
    closed_forms: ClosedForms = CLOSED_FORMS,
) -> list[CheckResult]:
    """Prove the estimator theory of docs/theory.md §1–§5 for a family and a symbolic model.

    Parameters
    ----------
    fam:          an :class:`ExponentialFamily` or a registered name (default sizes)
    model:        ``"glm"``, ``"mlp1"``, ``"mlp2"`` or a :class:`SymbolicModel` with
                  ``d = fam.dim`` outputs
    activation:   for the networks: one of :data:`fishsym.symbolic.models.ACTIVATIONS`
                  (default: the placeholder ``"sigma"``, i.e. any smooth activation)
    claims:       which of the claims 1–9 (module docstring) to check
    seed:         seeds the random exact points (claims 5, 6, 9)
    n_points:     number of random exact points of the bound checks
    closed_forms: the formulas under test (:class:`ClosedForms`)

    Returns
    -------
    list[CheckResult]: one record per checked statement (``claim``, ``family``,
    ``method`` — ``"symbolic-simplify"``, ``"symbolic-sos-certificate"`` or
    ``"exact-rational-points"`` —, ``passed``, ``detail``).
    """
    fam = _as_family(fam)
    m = _as_model(model, fam.dim, activation)
    if isinstance(claims, (int, np.integer)) and not isinstance(claims, bool):
        claims = (int(claims),)
    try:
        claims = set(claims)
    except TypeError:
        raise ArgumentTypeError(
            f"claims must be a claim number or an iterable of them, among {CLAIMS}; "
            f"got {claims!r}"
        ) from None
    unknown = claims - set(CLAIMS)
    if unknown or not claims:
        raise InvalidArgumentError(
            f"claims must be among {CLAIMS} (at least one); got {sorted(claims)}"
        )
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise InvalidArgumentError(
            f"n_points must be an integer ≥ 1 (random exact points of the bound checks; with "
            f"none, nothing would be checked); got {n_points!r}"
        )
    out: list[CheckResult] = []
    for claim in (1, 2, 3):
        if claim in claims:
            out.append(_identity_claim(fam, m, claim, closed_forms))
    if 4 in claims:
        out += check_affine(fam, m, closed_forms)
    if 5 in claims:
        out += check_bounds(fam, m, seed=seed, n_points=n_points)
        if _is_categorical(fam):
            out += check_categorical_spectrum(fam, seed=seed, n_points=n_points)
    if 6 in claims:
        out.append(check_decomposition(fam, m, closed_forms, seed=seed))
    if 7 in claims:
        out += check_empirical(fam, m, closed_forms)
    if 8 in claims:
        out += check_estimators(fam, m, closed_forms)
    if 9 in claims:
        out += check_companions(fam, m, seed=seed, n_points=min(n_points, 2))
    return out


def inverse_gaussian() -> ExponentialFamily:
    """A user-defined family, declared directly (not registered): the inverse Gaussian.

    ``p(y) = √(λ/(2πy³)) exp(−λ(y−m)²/(2m²y))`` on ``y > 0``; ``t = (y, 1/y)``,
    ``h = (−λ/(2m²), −λ/2)`` (both < 0), ``F(h) = −2√(h₁h₂) − ½ log(−2h₂)``,
    ``log k = −½ log(2π) − (3/2) log y``. Its tensors involve ``√(h₁h₂)``: the bound
    checks enclose them rigorously.
    """
    from fishsym.symbolic.domain import NEGATIVE, natural_symbol
    from fishsym.symbolic.support import PositiveReals

    h1, h2 = natural_symbol("h1", NEGATIVE), natural_symbol("h2", NEGATIVE)
    y = sp.Symbol("y", positive=True)
    return ExponentialFamily(
        "inverse_gaussian",
        (h1, h2),
        y,
        (y, 1 / y),
        -2 * sp.sqrt(h1 * h2) - sp.log(-2 * h2) / 2,
        -sp.log(2 * sp.pi) / 2 - sp.Rational(3, 2) * sp.log(y),
        PositiveReals(),
        domain={h1: NEGATIVE, h2: NEGATIVE},
        description="user-defined example: t = (y, 1/y)",
    )


#: (model, activation, claims) run by :func:`check_theory_suite` for every family: all
#: claims for the GLM and the placeholder-activation networks (any smooth σ), and the
#: model-dependent claims for concrete activations
#: the companions (claim 9) run on the GLM and the one-hidden-layer net: they are checks at
#: exact points of statements about the vectors u_i, w_i, which mlp2 adds nothing new to
#: (tests/symbolic/test_theory.py runs every claim on mlp2 too), and cost ~25 s there
SUITE_MODELS = (
    ("glm", None, CLAIMS),
    ("mlp1", "sigma", CLAIMS),
    ("mlp2", "sigma", tuple(c for c in CLAIMS if c != 9)),
    ("mlp1", "sigmoid", (1, 2, 4)),
    ("mlp1", "tanh", (1, 2, 4)),
    ("mlp1", "softplus", (1, 2, 4)),
    ("mlp2", "sigmoid", (1, 2)),
)


def check_theory_suite(
    family_names: Iterable[str] | None = None,
    models: Sequence[tuple[str, str | None, Iterable[int]]] = SUITE_MODELS,
    user_family: bool = True,
    seed: int = 0,
) -> list[CheckResult]:
    """The whole symbolic theorem suite: :func:`check_theory` for every registered family
    (default sizes), each model of ``models``, plus the user-defined
    :func:`inverse_gaussian` example. Returns all records (see :func:`summary_table`)."""
    fams = [
        _registry.get(n) for n in (family_names if family_names is not None else _registry.names())
    ]
    if user_family:
        fams.append(inverse_gaussian())
    out: list[CheckResult] = []
    for fam in fams:
        for model, act, claims in models:
            out += check_theory(fam, model, activation=act, claims=claims, seed=seed)
    return out


def summary_table(records: Iterable[CheckResult]) -> str:
    """One line per family, one column per claim: ✓ (all records passed), ✗ (a record
    failed) or · (not checked), with the record counts."""
    records = list(records)
    fams = list(dict.fromkeys(r.family for r in records))
    width = max(len(f) for f in fams) if fams else 6
    lines = [f"{'family':<{width}}  " + "  ".join(str(c) for c in CLAIMS) + "   records"]
    for f in fams:
        mine = [r for r in records if r.family == f]
        cells = []
        for c in CLAIMS:
            rs = [r for r in mine if r.claim.startswith(f"{c}.")]
            cells.append("·" if not rs else "✓" if all(r.passed for r in rs) else "✗")
        n_ok = sum(r.passed for r in mine)
        lines.append(f"{f:<{width}}  " + "  ".join(cells) + f"   {n_ok}/{len(mine)} passed")
    return "\n".join(lines)
