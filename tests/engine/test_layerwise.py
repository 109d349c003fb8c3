"""Per-input Jacobians layer by layer (docs/theory.md §12, the exact route): every block
of ``u`` held in float64 to ``vmap(jacrev)`` of the whole model, for every layer rule
(Linear on one position and over positions, convolutions over many output pixels and on
one, Embedding with a padding row, LayerNorm/GroupNorm/BatchNorm affine weights, a layer
called twice), in blocks of rows under a small budget, and for every reason to fall back
(a weight also read outside its layer, tied weights, hooks that change the output, a
position embedding without the batch axis). Then ``fisher_variances`` on the graph path
against label enumeration (``reference.exact_moments``) with the layer rules in use."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import jacrev, vmap

import fishsym
from fishsym.common import ModelView
from fishsym.engine.graph import GraphModel
from fishsym.engine.graph import model as graph_module
from fishsym.engine.layerwise import LAYER_RULE, PER_INPUT_JACOBIAN, LayerJacobians
from fishsym.nets import gpt2

sys.path.insert(0, str(Path(__file__).parent))
from layer_models import Outside, eval_bn  # noqa: E402

#: float64 agreement of two summation orders (relative to the largest entry)
RTOL = 1e-12


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _oracle(view, x):
    """``u`` ``{name: [n, d, numel]}`` by ``vmap(jacrev)`` of the whole model."""
    jac = vmap(jacrev(view.single), in_dims=(None, 0))(view.params, x)
    return {n: t.reshape(x.shape[0], -1, view.params[n].numel()) for n, t in jac.items()}


def _dense(view, lists, n, d):
    """The blocks' ``u`` written into dense ``[n, d, numel]`` tensors (zero where no block
    covers an entry: an embedding row no input uses)."""
    out = {}
    for blocks in lists:
        for pd in blocks:
            u, _ = pd.expanded()
            full = out.setdefault(
                pd.name, torch.zeros(n, d, view.params[pd.name].numel(), dtype=u.dtype)
            )
            entries = slice(None) if pd.entries is None else pd.entries
            full[:, :, entries] = u
    return out


def _check(model, x, expect_jacobian=(), budget=2**24):
    model = model.double()
    view = ModelView(model, torch.float64)
    view.probe(x)
    engine = LayerJacobians(view, list(view.params))
    engine.per_input_bytes(x)
    d = view.outputs(x).shape[1]
    got = _dense(view, list(engine.blocks(x, d, budget)), x.shape[0], d)
    want = _oracle(view, x)
    routes = engine.routes
    assert {n for n, r in routes.items() if r == PER_INPUT_JACOBIAN} == set(expect_jacobian), routes
    assert set(got) == {n for n, r in routes.items() if r == LAYER_RULE}
    for name, u in got.items():
        scale = float(want[name].abs().max())
        assert scale > 0, name
        assert float((u - want[name]).abs().max()) <= RTOL * scale, name
    return engine


class Convs(nn.Module):
    """Convolutions over many pixels (stride, dilation, padding), GroupNorm and batch norms
    in evaluation mode, a residual addition, and a convolution whose output is one pixel
    (the outer-product form)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, stride=2)
        self.gn = nn.GroupNorm(1, 3)
        self.bn2 = nn.BatchNorm2d(3)
        self.conv_b = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.c1 = nn.Conv1d(3, 4, 2, stride=2, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.last = nn.Conv2d(3, 5, 5)  # 5×5 input, 5×5 kernel: one output pixel
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        a = torch.relu(self.bn2(self.gn(self.conv(x))))
        a = torch.relu(a + self.conv_b(a))
        b = torch.tanh(self.bn(self.c1(a.flatten(2)))).mean(-1)
        return self.head(b) + self.last(a).flatten(1)[:, :3]


class Tokens(nn.Module):  # LayerNorm with a bias (test_sumsq's has none)
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4, padding_idx=0)
        self.lin = nn.Linear(4, 4)
        self.ln = nn.LayerNorm(4)
        self.out = nn.Linear(4, 3)

    def forward(self, ids):
        e = self.emb(ids)
        e = torch.tanh(self.lin(e)) + torch.tanh(self.lin(2 * e))  # a layer called twice
        return self.out(self.ln(e))  # [n, T, 3]: a Linear over positions


def test_convolutions_norms_and_one_pixel():
    x = torch.randn(5, 2, 10, 10, generator=_gen(0), dtype=torch.float64)
    engine = _check(eval_bn(Convs()), x)
    assert not engine.routes.get("head.weight") == PER_INPUT_JACOBIAN


def test_embeddings_positions_and_a_layer_called_twice():
    ids = torch.randint(0, 7, (6, 5), generator=_gen(0))
    ids[0, :2] = 0  # the padding row gets no gradient
    _check(Tokens(), ids)


@pytest.mark.parametrize("budget", [1, 300])
def test_blocks_of_rows_under_a_small_budget(budget):
    """One output row (or embedding row) per block: the same ``u``."""
    ids = torch.randint(0, 7, (4, 3), generator=_gen(1))
    _check(Tokens(), ids, budget=budget)
    x = torch.randn(3, 2, 10, 10, generator=_gen(0), dtype=torch.float64)
    _check(eval_bn(Convs()), x, budget=budget)


def test_a_weight_read_outside_its_layer_fails_the_check():
    x = torch.randn(7, 3, generator=_gen(0), dtype=torch.float64)
    _check(Outside(), x, expect_jacobian={"scale", "lin.weight"})


def test_tied_weights_hooks_and_position_embeddings_take_the_jacobian():
    model = gpt2(vocab=6, width=4, layers=1, heads=2, context=3, tie_embeddings=True)
    ids = torch.randint(0, 6, (3, 3), generator=_gen(0))  # n = T: sizes that coincide
    _check(model, ids, expect_jacobian={"wte.weight", "wpe.weight"})
    hooked = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    hooked[0].register_forward_hook(lambda m, a, out: 2 * out)
    x = torch.randn(5, 3, generator=_gen(0), dtype=torch.float64)
    names = {"0.weight", "0.bias", "2.weight", "2.bias"}
    view = ModelView(hooked.double(), torch.float64)
    view.probe(x)
    assert view.hooks_change_output
    assert set(LayerJacobians(view, names).routes.values()) == {PER_INPUT_JACOBIAN}


class SmallResNet(nn.Module):
    """A CIFAR-style residual network in evaluation mode: ReLU, batch norms, a strided
    shortcut, global pooling; every ``w`` is a structural zero."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(4)
        self.a = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.bna = nn.BatchNorm2d(6)
        self.b = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bnb = nn.BatchNorm2d(6)
        self.short = nn.Conv2d(4, 6, 1, stride=2, bias=False)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = torch.relu(self.bn0(self.stem(x)))
        z = torch.relu(self.bna(self.a(y)))
        z = torch.relu(self.bnb(self.b(z)) + self.short(y))
        return self.fc(z.mean((2, 3)))


@pytest.mark.parametrize("var2", [True, False])
def test_fisher_variances_on_the_layer_rules_against_enumeration(var2, unchanged, monkeypatch):
    # the rules on a model this small (vmap(jacrev) is faster below the threshold)
    monkeypatch.setattr(graph_module, "LAYERWISE_MIN_NUMBERS", 0)
    model = eval_bn(SmallResNet()).double()
    before = unchanged.snapshot(model)
    x = torch.randn(5, 3, 6, 6, generator=_gen(0), dtype=torch.float64)
    res = fishsym.fisher_variances(model, x, "categorical", path="graph", var2=var2)
    unchanged.check(before, model)
    exact = fishsym.reference.exact_moments(model, x, "categorical")
    view = ModelView(model, torch.float64)
    view.probe(x)
    engine = GraphModel(view)
    engine.second_order = var2
    engine.prepare(x)
    routes = engine.jacobian_routes
    assert engine.uniform_batches is False
    assert routes["stem.weight"] == routes["b.weight"] == routes["bna.weight"] == LAYER_RULE
    for name in exact["mean1"]:
        pairs = (res.fisher[name], exact["mean1"][name]), (res.var1[name], exact["var1"][name])
        for got, per_input in pairs:
            want = per_input.mean(0)  # fisher_variances averages over the inputs
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14, msg=name)
        if var2:
            assert res.var2_routes[name] == "structural zero"
            assert float(res.var2[name].abs().max()) == 0.0


def test_small_models_keep_the_per_input_jacobian():
    """Below ``LAYERWISE_MIN_NUMBERS`` the graph path keeps ``vmap(jacrev)`` (faster there)."""
    model = eval_bn(SmallResNet()).double()
    x = torch.randn(2, 3, 6, 6, generator=_gen(0), dtype=torch.float64)
    view = ModelView(model, torch.float64)
    view.probe(x)
    engine = GraphModel(view)
    engine.prepare(x)
    assert engine.layerwise is None
    assert set(engine.jacobian_routes.values()) == {PER_INPUT_JACOBIAN, "factorised Linear"}


def test_an_exact_route_that_cannot_fit_is_refused_before_allocating():
    """A language model's exact Fisher has d = T·V outputs per input: refused up front with
    the estimate (and what to do instead), not an out-of-memory crash."""
    from fishsym.errors import MemoryBudgetError

    model = gpt2(vocab=50257, width=8, layers=1, heads=2, context=64)
    ids = torch.randint(0, 50257, (2, 64), generator=_gen(0))
    with pytest.raises(MemoryBudgetError, match="diagonal_fisher"):
        fishsym.fisher_variances(model, ids, "categorical", var2=False, dtype=torch.float32)


class InPlace(nn.Module):
    """Batch norms followed by ReLU(inplace=True), as torchvision's ResNets write them: the
    in-place operation must not move a recorded layer output's gradient past itself."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(3, 4)

    def forward(self, x):
        return self.head(self.relu(self.bn(self.conv(x))).mean((2, 3)))


def test_in_place_activations_after_a_layer():
    x = torch.randn(4, 2, 5, 5, generator=_gen(0), dtype=torch.float64)
    _check(eval_bn(InPlace()), x)  # every layer keeps its rule, u equal to vmap(jacrev)


def test_the_cost_clock_times_whole_chunks_on_the_layer_rules(monkeypatch):
    """Mutation audit (issue 23, variance/compute.py): an engine whose lists of blocks
    differ in cost (the layer rules: one backward pass per chunk, then a list per layer
    block) is timed per chunk of inputs, and its projection is still made — once."""
    import warnings

    from fishsym.variance import DerivativeWarning, compute

    monkeypatch.setattr(graph_module, "LAYERWISE_MIN_NUMBERS", 0)
    monkeypatch.setattr(compute, "GENERIC_WARN_SECONDS", 0.0)
    model = eval_bn(SmallResNet()).double()
    x = torch.randn(5, 3, 6, 6, generator=_gen(0), dtype=torch.float64)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fishsym.fisher_variances(
            model, x, "categorical", path="graph", var2=False, chunk_size=1, bounds=False
        )
    cost = [
        w for w in seen if issubclass(w.category, DerivativeWarning) and "in all" in str(w.message)
    ]
    assert len(cost) == 1, [str(w.message) for w in seen]
    assert "graph path: about" in str(cost[0].message)
