"""``diagonal_fisher`` is a stage of its own (fishsym.sampling); the old module path
still imports, and says where it moved."""

import importlib
import sys

import pytest

import fishsym
import fishsym.montecarlo
import fishsym.sampling


def test_one_diagonal_fisher_under_every_name():
    assert fishsym.diagonal_fisher is fishsym.sampling.diagonal_fisher
    assert fishsym.montecarlo.diagonal_fisher is fishsym.sampling.diagonal_fisher
    assert fishsym.DiagonalFisher is fishsym.sampling.DiagonalFisher


def test_the_old_module_path_warns_and_still_works():
    sys.modules.pop("fishsym.montecarlo.diagonal", None)
    with pytest.warns(DeprecationWarning, match="fishsym.sampling.diagonal"):
        old = importlib.import_module("fishsym.montecarlo.diagonal")
    assert old.diagonal_fisher is fishsym.sampling.diagonal_fisher
    assert old.t_quantile is fishsym.sampling.diagonal.t_quantile
