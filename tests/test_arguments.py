"""Regression tests of issue 9's unclear errors and unsafe requests outside the numeric
entry points: the symbolic registry, result methods, progress output and packaging.
Each failed on the tree before the fix."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
from torch import nn

import fishsym
from fishsym.errors import ArgumentTypeError, FishsymError, InvalidArgumentError, MemoryBudgetError
from fishsym.symbolic import ExponentialFamily, families, natural_symbol
from fishsym.symbolic.support import FiniteSupport

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, sizes, fits", [
    ("multinomial", {"n": 40, "C": 10}, "n = 14"),
    ("independent_bernoulli", {"d": 32}, "d = 19"),
])
def test_huge_supports_are_refused_before_they_are_built(name, sizes, fits):
    """Regression (issue 9.9): these built supports of 2·10⁹ and 4·10⁹ labels eagerly."""
    with pytest.raises(MemoryBudgetError, match=fits):
        families.get(name, **sizes)
    # the numeric kernel needs no support and works at this size
    k = fishsym.kernels.get(name, **sizes)
    h = torch.zeros(3, k.d, dtype=torch.float64)
    assert k.var_squared(h, torch.ones(3, k.d, 1, dtype=torch.float64)).shape == (3, 1)


def test_size_argument_of_the_wrong_type_is_named():
    """Regression (issue 9.10): families.get(C=[3]) raised a raw TypeError (unhashable)."""
    with pytest.raises(ArgumentTypeError, match="size argument C"):
        families.get("categorical", C=[3])


def test_log_partition_given_as_a_string_uses_the_declared_symbols():
    """Regression (issue 9.11): a string F was rejected as "depending on h" (a new symbol
    named h without the declared assumptions)."""
    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    fam = ExponentialFamily("bern", (h,), y, "y", "log(1 + exp(h))", 0,
                            FiniteSupport.integer_range(0, 1))
    assert sp.simplify(fam.fisher[0, 0] - sp.exp(h) / (1 + sp.exp(h)) ** 2) == 0


def test_samples_needed_is_finite_where_fisher_squared_underflows():
    """Regression (issue 9.11): I > 0 with I² below the smallest double gave inf labels."""
    from fishsym.variance import chebyshev_labels

    fisher = torch.tensor([1e-170], dtype=torch.float64)  # I² = 1e-340 underflows to 0
    var = torch.tensor([1e-300], dtype=torch.float64)  # √v/I = 1e20
    need = chebyshev_labels(var, fisher, 0.1, 0.95)
    want = (1e-150 / 1e-170) ** 2 / (0.05 * 0.01)
    assert math.isfinite(need.item()) and need.item() == pytest.approx(want, rel=1e-12, abs=0)


def test_rel_error_and_prob_take_real_numbers_only():
    """Regression (issue 9.11): rel_error=True was accepted as 1.0 and np.float32(0.1)
    rejected."""
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 3)).double()
    res = fishsym.fisher_variances(model, torch.randn(2, 2, dtype=torch.float64), "categorical")
    with pytest.raises(ArgumentTypeError, match="rel_error"):
        res.samples_needed(rel_error=True)
    with pytest.raises(InvalidArgumentError, match="prob"):
        res.samples_needed(prob=1.5)
    a = res.samples_needed(rel_error=np.float32(0.1))
    b = res.samples_needed(rel_error=0.1)
    for est in a:
        for name in a[est]:
            torch.testing.assert_close(a[est][name], b[est][name], rtol=1e-6, atol=0)
    assert isinstance(res.summary(rel_error=np.float64(0.2)), list)


def test_progress_bars_stay_out_of_logs():
    """Regression (issue 9.13): progress bars printed into non-terminal logs (CI, files)."""
    code = (
        "import torch, fishsym, warnings; warnings.simplefilter('ignore');"
        "from torch import nn;"
        "m = nn.Sequential(nn.Conv1d(1, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(4, 3)).double();"
        "import fishsym.variance.compute as c; c.PROGRESS_DELAY = 0.0;"
        "fishsym.fisher_variances(m, torch.randn(3, 1, 3, dtype=torch.float64), 'categorical')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert "fisher_variances" not in out.stderr and "it/s" not in out.stderr, out.stderr


def test_packaging_declares_what_the_tests_need_and_a_licence():
    """Regression (issue 9.13): the [test] extra lacked matplotlib, which the paper-check
    tests need; pyproject said MIT but there was no LICENSE file."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(req.startswith("matplotlib") for req in meta["optional-dependencies"]["test"])
    assert meta["license"]["text"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_every_new_error_is_a_fishsym_error():
    for cls in (ArgumentTypeError, InvalidArgumentError, MemoryBudgetError):
        assert issubclass(cls, FishsymError)
