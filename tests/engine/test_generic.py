"""The generic torch.func path: blocks, slicing, shapes (its values are checked against
brute-force autograd in tests/variance)."""

import pytest
import torch
from torch import nn

from fishsym.engine import GenericModel, generic

#: float64, the same derivatives evaluated in different vectorised batches
RTOL = 1e-12


def _cnn():
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Softplus(), nn.Flatten(), nn.Linear(8, 3)).double()
    return model


def test_blocks_cover_every_entry_once_and_agree_with_one_big_block():
    model = _cnn()
    x = torch.randn(3, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    engine = GenericModel(model)
    for name, p in model.named_parameters():
        whole = engine.block(x, name, slice(0, p.numel()))
        pieces = [b for b in engine.blocks(x, entry_chunk=3) if b.name == name]
        assert [b.entries.start for b in pieces] == list(range(0, p.numel(), 3))
        torch.testing.assert_close(
            torch.cat([b.jac for b in pieces], 2), whole.jac, rtol=RTOL, atol=0
        )
        torch.testing.assert_close(
            torch.cat([b.hess_diag for b in pieces], 2), whole.hess_diag, rtol=RTOL, atol=1e-15
        )
        assert whole.jac.shape == (3, 3, p.numel())


def test_jac_is_the_directional_derivative():
    model = _cnn()
    x = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    engine = GenericModel(model)
    block = engine.block(x, "3.weight", slice(5, 9))
    eps = 1e-6
    params = {n: p.detach() for n, p in model.named_parameters()}

    def h_at(shift):
        weight = params["3.weight"] + shift
        return torch.func.functional_call(model, {**params, "3.weight": weight}, (x,))

    for j, entry in enumerate(range(5, 9)):
        step = torch.zeros(3, 8, dtype=torch.float64)
        step.view(-1)[entry] = eps
        fd = (h_at(step) - h_at(-step)) / (2 * eps)
        # central differences: error O(eps²·h''') plus round-off O(1e-16/eps)
        torch.testing.assert_close(block.jac[:, :, j], fd, rtol=0, atol=1e-8)
    # h is affine in the last layer's weight
    assert torch.equal(block.hess_diag, torch.zeros_like(block.hess_diag))


def test_scalar_output_model_gives_one_column():
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)).double()
    engine = GenericModel(model)
    assert engine.output(torch.randn(4, 3, dtype=torch.float64)).shape == (4, 1)


def test_frozen_parameters_are_constants():
    model = _cnn()
    model[0].bias.requires_grad_(False)
    engine = GenericModel(model)
    assert engine.param_names() == ["0.weight", "3.weight", "3.bias"]
    assert engine.n_entries() == 8 + 24 + 3


def test_entry_chunk_respects_both_limits(monkeypatch):
    monkeypatch.setattr(generic, "GENERIC_BATCH", 64)
    monkeypatch.setattr(generic, "GENERIC_ELEMENTS", 1000)
    engine = GenericModel(nn.Linear(30, 10).double())  # weight: 300 entries
    assert engine.entry_chunk(2, "weight") == 1  # 1000 // (2·300)
    assert engine.entry_chunk(2, "bias", d=4) == 32  # forward route: d outputs per pass
    engine.route = "reverse-over-reverse"
    assert engine.entry_chunk(2, "bias", d=4) == 8  # 64 // (2·4): one pass per output
    assert engine.entry_chunk(2, "bias") == 32  # 64 // 2, and 2·32·10 ≤ 1000
    assert engine.entry_chunk(200, "bias") == 1


def test_model_and_dtype():
    model = _cnn().float()
    engine = GenericModel(model, torch.float64)
    x = torch.randn(2, 1, 3, 3)
    assert engine.output(x).dtype == torch.float64
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("entries", [slice(0, 1), slice(7, 8)])
def test_single_entry_blocks(entries):
    model = _cnn()
    x = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    block = GenericModel(model).block(x, "0.weight", entries)
    assert block.jac.shape == (2, 3, 1) and block.entries == entries
