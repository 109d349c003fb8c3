"""Shared helpers of the kernel tests, exposed as the ``kt`` fixture."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
import torch

from fishsym.symbolic.support import (
    Circle,
    FiniteSupport,
    NonNegativeIntegers,
    PositiveReals,
    ProductSupport,
    RealLine,
    UnitInterval,
)

#: digits of the symbolic reference values (far beyond float64)
DIGITS = 30

#: example labels of infinite supports (finite supports use all their labels)
_EXAMPLES = {
    NonNegativeIntegers: [0, 1, 3, 7],
    PositiveReals: [0.375, 1.75, 4.5],
    UnitInterval: [0.125, 0.5, 0.8125],
    RealLine: [-1.25, 0.0, 0.625],
    Circle: [-2.5, 0.0, 1.25, 7.0],  # 7 > π: any representative of an angle is a label
}


def h_tensor(fam, values, dtype=torch.float64) -> torch.Tensor:
    """Natural parameters ``{symbol: value}`` → tensor ``[d]``."""
    return torch.tensor([float(values[s]) for s in fam.natural_params], dtype=dtype)


def sym_float(expr) -> float:
    return float(sp.N(expr, DIGITS))


def random_h(fam, rng, n, dtype=torch.float64) -> torch.Tensor:
    """``n`` random valid natural parameters ``[n, d]`` (exactly representable values)."""
    return torch.stack([h_tensor(fam, fam.random_natural_params(rng), dtype) for _ in range(n)])


def example_obs(fam) -> list[tuple]:
    """Valid observations as tuples of the family's ``obs_symbols`` values."""
    sup = fam.support
    if isinstance(sup, FiniteSupport):
        return list(sup.points)
    if isinstance(sup, ProductSupport):
        cols = [_EXAMPLES[type(f)] for f in sup.factors]
        return [tuple(c[i % len(c)] for c in cols) for i in range(3)]
    return [(x,) for x in _EXAMPLES[type(sup)]]


def obs_to_label(kernel, obs: tuple):
    """An observation tuple → the kernel's label representation (class index for the
    categorical families, scalar or vector otherwise)."""
    if kernel.name in ("categorical", "categorical_minimal") and kernel.obs_shape == ():
        return obs.index(1)
    return obs[0] if kernel.obs_shape == () else list(obs)


def labels_tensor(kernel, obs_list, dtype=None):
    vals = [obs_to_label(kernel, o) for o in obs_list]
    if dtype is None:
        floaty = any(
            isinstance(x, float) for v in vals for x in (v if isinstance(v, list) else [v])
        )
        dtype = torch.float64 if floaty or not kernel.discrete else torch.int64
    return torch.tensor(vals, dtype=dtype)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Norm-wise relative error ``‖a − b‖_∞ / ‖b‖_∞`` (absolute when ``b = 0``)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


@pytest.fixture
def kt():
    return SimpleNamespace(
        h_tensor=h_tensor,
        sym_float=sym_float,
        random_h=random_h,
        example_obs=example_obs,
        labels_tensor=labels_tensor,
        obs_to_label=obs_to_label,
        rel_err=rel_err,
        rng=lambda seed=0: np.random.default_rng(seed),
    )
