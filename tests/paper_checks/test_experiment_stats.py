"""z-score helpers: thresholds, degenerate standard errors, exact zeros."""

import math

import pytest
import torch

from fishsym.montecarlo.compare import ROUND_RTOL, ZERO_RTOL, bonferroni_threshold, z_scores, z_test


def test_bonferroni_threshold_values():
    assert bonferroni_threshold(1, 0.05) == pytest.approx(1.959964, abs=1e-6)
    assert bonferroni_threshold(10, 0.05) == pytest.approx(2.807034, abs=1e-6)
    assert bonferroni_threshold(100, 1e-3) > bonferroni_threshold(10, 1e-3)
    with pytest.raises(ValueError, match="alpha"):
        bonferroni_threshold(3, 1.5)
    with pytest.raises(ValueError, match="n_tests"):
        bonferroni_threshold(0, 0.1)


def test_z_scores_plain_and_degenerate():
    est = torch.tensor([1.0, 2.0, 5.0, 0.0])
    exact = torch.tensor([0.0, 2.0, 4.0, 0.0])
    se = torch.tensor([0.5, 0.0, 0.0, 0.0])
    z = z_scores(est, exact, se)
    assert z[0] == pytest.approx(2.0)
    assert z[1] == 0  # no spread, equal values
    # no spread and different values: the rounding term 1e-12·4 makes |z| enormous
    assert z[2] > 1e9
    assert z[3] == 0


def test_rounding_term_in_quadrature():
    exact = torch.tensor([1.0], dtype=torch.float64)
    est = exact + 3 * ROUND_RTOL
    z = z_scores(est, exact, torch.tensor([0.0], dtype=torch.float64))
    assert float(z) == pytest.approx(3.0, rel=1e-3)


def test_exact_zero_variances():
    exact = torch.tensor([0.0, 0.0, 1.0])
    mean_sq = torch.tensor([1.0, 1.0, 1.0])
    est = torch.tensor([0.1 * ZERO_RTOL, 10 * ZERO_RTOL, 1.0])
    z = z_scores(est, exact, torch.tensor([1e-30, 1e-30, 0.1]), zero_scale=mean_sq)
    assert z[0] == 0 and math.isinf(float(z[1])) and z[2] == 0


def test_z_test_calibration():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2000, generator=gen, dtype=torch.float64)
    good = z_test(z, 1e-3)
    assert good.passed and good.n_tests == 2000
    assert 0.02 < good.frac_above_2 < 0.08
    bad = z_test(z + 5, 1e-3)
    assert not bad.passed
    assert "max|z|" in bad.describe()
    with pytest.raises(ValueError):
        z_test(torch.zeros(0), 0.1)
