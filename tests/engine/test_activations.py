"""σ, σ', σ'' of every activation rule against the module's forward and autograd."""

import pytest
import torch
from torch import nn

from fishsym.engine import activations

#: float64 closed forms vs autograd of the module: both round differently, a few ulp
RTOL = 1e-12
ATOL = 1e-14

MODULES = [
    nn.Sigmoid(),
    nn.Tanh(),
    nn.ReLU(),
    nn.LeakyReLU(),
    nn.LeakyReLU(negative_slope=0.3),
    nn.Softplus(),
    nn.Softplus(beta=2.0, threshold=1.5),
    nn.ELU(),
    nn.ELU(alpha=0.7),
    nn.GELU(),
    nn.GELU(approximate="tanh"),
    nn.SiLU(),
    nn.LogSigmoid(),
    nn.Identity(),
]


def _points():
    # both branches of every piecewise rule, away from the kinks (measure zero)
    gen = torch.Generator().manual_seed(0)
    a = torch.empty(200, dtype=torch.float64).uniform_(-4, 4, generator=gen)
    return a[a.abs() > 1e-3]


def _autograd(module, a):
    a = a.clone().requires_grad_(True)
    z = module(a)
    (d1,) = torch.autograd.grad(z.sum(), a, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), a, allow_unused=True) if d1.requires_grad else (None,)
    return z.detach(), d1.detach(), torch.zeros_like(a) if d2 is None else d2


@pytest.mark.parametrize("module", MODULES, ids=lambda m: repr(m))
def test_rule_matches_autograd(module):
    a = _points()
    z, d1, d2 = activations.RULES[type(module)](module, a)
    z_ref, d1_ref, d2_ref = _autograd(module, a)
    torch.testing.assert_close(z, z_ref, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(
        torch.ones_like(a) if d1 is None else d1, d1_ref, rtol=RTOL, atol=ATOL
    )
    torch.testing.assert_close(
        torch.zeros_like(a) if d2 is None else d2, d2_ref, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("module", [nn.ReLU(), nn.LeakyReLU(0.2), nn.Identity()], ids=repr)
def test_piecewise_linear_rules_are_structurally_flat(module):
    _, _, d2 = activations.RULES[type(module)](module, _points())
    assert d2 is None


def test_softplus_threshold_branch_is_linear():
    module = nn.Softplus(beta=2.0, threshold=1.5)
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)  # beta·a = 2, 4, 6 > 1.5
    z, d1, d2 = activations.softplus(module, a)
    assert (
        torch.equal(z, a)
        and torch.equal(d1, torch.ones_like(a))
        and torch.equal(d2, torch.zeros_like(a))
    )


@pytest.mark.parametrize(
    "chain",
    [
        [nn.Tanh(), nn.Sigmoid()],
        [nn.Softplus(beta=0.5), nn.ELU(0.4), nn.Identity()],
        [nn.ReLU(), nn.GELU()],
        [nn.Identity(), nn.SiLU()],
    ],
    ids=lambda c: "-".join(type(m).__name__ for m in c),
)
def test_compose_is_the_chain_rule(chain):
    a = _points()
    out = (a, None, None)
    for module in chain:
        out = activations.compose(out, activations.RULES[type(module)], module)
    z_ref, d1_ref, d2_ref = _autograd(nn.Sequential(*chain), a)
    z, d1, d2 = out
    torch.testing.assert_close(z, z_ref, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(
        torch.ones_like(a) if d1 is None else d1, d1_ref, rtol=RTOL, atol=ATOL
    )
    torch.testing.assert_close(
        torch.zeros_like(a) if d2 is None else d2, d2_ref, rtol=RTOL, atol=ATOL
    )


def test_unknown_gelu_approximation_is_rejected():
    module = nn.GELU()
    module.approximate = "cubic"
    with pytest.raises(ValueError, match="approximate"):
        activations.gelu(module, _points())
