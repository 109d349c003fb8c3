"""Sums of squared per-input gradients layer by layer (docs/theory.md §12), held in
float64 to per-sample ``vmap(grad)`` of ``ψ_n = c_nᵀh_n`` over the whole model, for every
layer rule and every reason to fall back; and to BackPACK's ``BatchGrad`` on a CNN where
BackPACK is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import grad, vmap

from fishsym.common import ModelView
from fishsym.engine.sumsq import INPUT_CHUNK, SquaredGradientSums
from fishsym.nets import gpt2

sys.path.insert(0, str(Path(__file__).parent))
from layer_models import Outside, Tokens, eval_bn  # noqa: E402

#: float64 agreement of two summation orders (relative to the largest entry)
RTOL = 1e-12


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _oracle(view, x, cot):
    def psi(ps, xi, ci):
        return (view.single(ps, xi) * ci).sum()

    g = vmap(grad(psi), in_dims=(None, 0, 0))(view.params, x, cot)
    return {n: t.pow(2).sum(0) for n, t in g.items()}


def _check(model, x, expect_vmap=(), hooks=None):
    torch.manual_seed(0)
    model = model.double()
    view = ModelView(model, torch.float64)
    view.probe(x)
    engine = SquaredGradientSums(view)
    cot = torch.randn(view.outputs(x).shape, generator=_gen(1), dtype=torch.float64)
    got, want = engine(x, cot), _oracle(view, x, cot)
    for n in want:
        scale = want[n].abs().max()
        assert float(scale) > 0, n
        assert float((got[n] - want[n]).abs().max()) <= RTOL * float(scale), n
    vmapped = {n for n, r in engine.routes.items() if r == "vmap(grad)"}
    assert vmapped == set(expect_vmap), engine.routes
    # a second round on the same inputs (checked already: no batch gradient formed)
    cot = torch.randn(cot.shape, generator=_gen(2), dtype=torch.float64)
    got, want = engine(x, cot), _oracle(view, x, cot)
    for n in want:
        assert float((got[n] - want[n]).abs().max()) <= RTOL * float(want[n].abs().max()), n
    return engine


class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, stride=2, dilation=1)
        self.conv_b = nn.Conv2d(3, 3, 2, dilation=2, bias=False)
        self.gn = nn.GroupNorm(1, 3)
        self.c1 = nn.Conv1d(3, 4, 2, stride=2, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.bn2 = nn.BatchNorm2d(3)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        a = torch.tanh(self.bn2(self.gn(self.conv(x))))
        a = torch.tanh(self.conv_b(a))
        b = torch.tanh(self.bn(self.c1(a.flatten(2))))
        return self.head(b.mean(-1))


def test_convolutions_and_norms():
    x = torch.randn(5, 2, 9, 9, generator=_gen(0), dtype=torch.float64)
    _check(eval_bn(Convs()), x)


def test_embeddings_positions_and_repeated_layers():
    ids = torch.randint(0, 7, (6, 5), generator=_gen(0))
    ids[0, :2] = 0  # the padding row gets no gradient
    _check(Tokens(), ids)


def test_one_position_linear_and_chunks():
    """The GEMM rule (nothing per input) over more inputs than one chunk."""
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4))
    x = torch.randn(INPUT_CHUNK + 5, 3, generator=_gen(0), dtype=torch.float64)
    _check(model, x)


def test_what_no_rule_covers_takes_vmap():
    x = torch.randn(7, 3, generator=_gen(0), dtype=torch.float64)
    # lin.weight: its rule fails the batch-gradient check on the first call
    _check(Outside(), x, expect_vmap={"scale", "lin.weight"})


def test_tied_weights_and_output_changing_hooks_take_vmap():
    model = gpt2(vocab=6, width=4, layers=1, heads=2, context=3, tie_embeddings=True)
    ids = torch.randint(0, 6, (4, 3), generator=_gen(0))
    # the tied embedding (the position embedding, fed arange(T) without a batch axis, is
    # a broadcast layer: expanded to the batch, by its rule)
    _check(model, ids, expect_vmap={"wte.weight"})
    hooked = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    hooked[0].register_forward_hook(lambda m, a, out: 2 * out)
    x = torch.randn(5, 3, generator=_gen(0), dtype=torch.float64)
    _check(hooked, x, expect_vmap={"0.weight", "0.bias", "2.weight", "2.bias"})


def test_decoder_attention_projections():
    model = gpt2(vocab=9, width=8, layers=2, heads=2, context=5)
    ids = torch.randint(0, 9, (4, 5), generator=_gen(0))
    engine = _check(model, ids)
    assert engine.routes["blocks.0.attn.qkv.weight"] == "layer rule"
    assert engine.broadcast == {"wpe"}


class PositionsReduced(nn.Module):
    """A position embedding whose output is reduced over its first axis: expanding it to
    the batch would change h, so it must take vmap(grad)."""

    def __init__(self):
        super().__init__()
        self.pe = nn.Embedding(4, 3)
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        p = self.pe(torch.arange(4))
        return self.lin(torch.tanh(x + p.mean(0)))


def test_broadcast_layers_are_expanded_only_where_h_stays_the_same():
    x = torch.randn(5, 3, generator=_gen(0), dtype=torch.float64)
    engine = _check(PositionsReduced(), x, expect_vmap={"pe.weight"})
    assert not engine.broadcast


def test_against_backpack_batchgrad():
    backpack = pytest.importorskip("backpack")
    from backpack.extensions import BatchGrad

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
    ).double()  # fmt: skip
    x = torch.randn(6, 1, 8, 8, generator=_gen(0), dtype=torch.float64)
    view = ModelView(model, torch.float64)
    view.probe(x)
    cot = torch.randn(6, 5, generator=_gen(1), dtype=torch.float64)
    got = SquaredGradientSums(view)(x, cot)
    extended = backpack.extend(model)
    with backpack.backpack(BatchGrad()):
        (extended(x) * cot).sum().backward()
    for name, p in model.named_parameters():
        want = p.grad_batch.pow(2).sum(0)
        assert float((got[name] - want).abs().max()) <= RTOL * float(want.abs().max()), name


def test_blocks_of_inputs_and_rows(monkeypatch):
    """Per-input gradients in blocks (inputs, then output rows) when a layer's exceed
    LAYER_ELEMENTS: the same sums."""
    import fishsym.engine.sumsq as sumsq

    monkeypatch.setattr(sumsq, "LAYER_ELEMENTS", 7)
    ids = torch.randint(0, 7, (5, 4), generator=_gen(0))
    _check(Tokens(), ids)
    monkeypatch.setattr(sumsq, "LAYER_ELEMENTS", 40)
    _check(Tokens(), ids)


class _DeadOutput(nn.Module):
    """A layer whose output never reaches h, its weight read outside it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        self.lin(x)  # computed, never used
        return self.out(torch.tanh(x @ self.lin.weight.T))


def test_a_gradient_that_comes_without_its_layer_is_checked_at_the_end():
    """The layer's δ never arrives (its output is unused), but its weight has a batch
    gradient from elsewhere: the check, made after the backward pass, moves the weight to
    vmap(grad); the bias (no gradient at all) keeps its rule and its sum of zero."""
    model = _DeadOutput().double()
    x = torch.randn(6, 3, generator=_gen(0), dtype=torch.float64)
    view = ModelView(model, torch.float64)
    view.probe(x)
    engine = SquaredGradientSums(view)
    for seed in (1, 2):  # the checked call, then one on the same inputs
        cot = torch.randn(view.outputs(x).shape, generator=_gen(seed), dtype=torch.float64)
        got, want = engine(x, cot), _oracle(view, x, cot)
        for n in want:
            scale = float(want[n].abs().max())
            assert float((got[n] - want[n]).abs().max()) <= RTOL * max(scale, 1.0), n
        assert float(want["lin.bias"].abs().max()) == 0.0
    assert engine.routes == {
        "lin.weight": "vmap(grad)",
        "lin.bias": "layer rule",
        "out.weight": "layer rule",
        "out.bias": "layer rule",
    }
