"""Every registered family's numeric side is declared in one file
(fishsym/kernels/family_specs/<name>.py), discovered on import, and used by the kernels."""

import pytest
import torch

from fishsym import kernels
from fishsym.errors import NoSamplerError
from fishsym.symbolic import families


def test_every_registered_family_has_exactly_one_declaration_file():
    from pathlib import Path

    files = {p.stem for p in Path(kernels.family_specs.__file__).parent.glob("*.py")} - {
        "__init__"
    }
    assert files == set(families.names()) == set(kernels.declared())


@pytest.mark.parametrize("name", families.names())
def test_the_declared_specialisations_are_the_ones_used(name):
    spec = kernels.numeric_of(name)
    k = kernels.get(name)
    if spec.kernel is not None:
        assert not isinstance(k, kernels.GenericKernel)
    else:
        assert isinstance(k, kernels.GenericKernel) and k.numeric is spec
    # every registered family can be sampled: a dedicated sampler or its finite support
    assert spec.sampler is not None or k.family.support.finite


def test_a_user_family_on_an_infinite_support_gets_a_clear_error():
    import sympy as sp

    from fishsym.symbolic import ExponentialFamily, natural_symbol
    from fishsym.symbolic.support import NonNegativeIntegers

    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    fam = ExponentialFamily("my_poisson", (h,), y, (y,), sp.exp(h), -sp.log(sp.factorial(y)),
                            NonNegativeIntegers())
    k = kernels.get(fam)
    with pytest.raises(NoSamplerError, match="no sampler"):
        k.sample(torch.zeros(2, 1, dtype=torch.float64), 3, torch.Generator().manual_seed(0))
