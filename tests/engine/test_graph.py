"""The graph path (docs/theory.md §10) on real architectures, against independent oracles:
label enumeration + double backward of ``ℓ`` (``reference.exact_moments``, float64,
rtol 1e−10), Monte Carlo within its stated confidence; and the soundness of its
structural-zero proof (a curved or tied network is never declared zero)."""

import copy

import pytest
import torch
from torch import nn

import fishsym
from fishsym import engine, reference
from fishsym.common import ModelView
from fishsym.engine.graph import (
    CURVATURE_SOURCES,
    SECOND_ORDER,
    STRUCTURAL_ZERO,
    GraphModel,
    analyse,
    trace,
)
from fishsym.montecarlo import compare, estimate

#: both routes are exact float64 autodiff; they differ by rounding only
RTOL = 1e-10
#: family-wise false-alarm rate of the Monte Carlo comparison (seeded: it either always
#: passes or always fails; a correct implementation fails with this probability)
FALSE_ALARM = 1e-3


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randomise(model, seed, scale=0.6):
    gen = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
        for name, b in model.named_buffers():
            if "running_var" in name:
                b.copy_(torch.rand(b.shape, generator=gen, dtype=b.dtype) + 0.5)
            elif "running_mean" in name:
                b.copy_(torch.randn(b.shape, generator=gen, dtype=b.dtype) * 0.3)
    return model.double().eval()


def cnn(act=nn.Tanh, d=3):
    return nn.Sequential(
        nn.Conv2d(1, 2, 3),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(2, 3, 3, padding=1),
        act(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, d),
    )


class Residual(nn.Module):
    """Two residual blocks with BatchNorm (evaluation mode) and an activation."""

    def __init__(self, act=nn.Tanh, d=3):
        super().__init__()
        self.stem = nn.Linear(4, 5)
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.Linear(5, 5), nn.BatchNorm1d(5), act()) for _ in range(2)]
        )
        self.act = act()
        self.head = nn.Linear(5, d)

    def forward(self, x):
        z = self.act(self.stem(x))
        for block in self.blocks:
            z = z + block(z)
        return self.head(z)


class ResCNN(nn.Module):
    """A ResNet-style convolutional block: conv-BN-ReLU twice around a skip connection."""

    def __init__(self, act=nn.ReLU, d=3):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2)
        self.act = act()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, d)

    def forward(self, x):
        z = self.act(self.stem(x))
        y = self.act(self.bn1(self.conv1(z)))
        y = self.bn2(self.conv2(y))
        z = self.act(z + y)
        return self.head(self.pool(z).flatten(1))


class GroupNormCNN(nn.Module):
    """Convolution, GroupNorm (two groups) and an activation."""

    def __init__(self, act=nn.SiLU, d=3):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.norm = nn.GroupNorm(2, 4)
        self.act = act()
        self.head = nn.Linear(4, d)

    def forward(self, x):
        return self.head(self.act(self.norm(self.conv(x))).mean((2, 3)))


class TinyTransformer(nn.Module):
    """Token ids → embedding (+ learned positions) → one encoder layer → mean → head."""

    def __init__(self, vocab=6, length=4, width=4, d=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.zeros(length, width))
        self.enc = nn.TransformerEncoderLayer(width, 2, 6, dropout=0.0, batch_first=True)
        self.head = nn.Linear(width, d)

    def forward(self, ids):
        return self.head(self.enc(self.emb(ids) + self.pos).mean(1))


class LayerNormNet(nn.Module):
    def __init__(self, d=3, act=torch.relu):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.norm = nn.LayerNorm(5)
        self.b = nn.Linear(5, d)
        self.act = act

    def forward(self, x):
        return self.b(self.act(self.norm(self.a(x))))


class EmbeddingBag(nn.Module):
    def __init__(self, d=3):
        super().__init__()
        self.emb = nn.Embedding(7, 3)
        self.head = nn.Linear(3, d)

    def forward(self, ids):
        return self.head(torch.tanh(self.emb(ids).sum(1)))


class LinearToConv(nn.Module):
    """A bias-free Linear layer feeding a convolution: a curved source with more units
    than the layer above it (the forward-mode branch of the factorised layers)."""

    def __init__(self, d=3):
        super().__init__()
        self.a = nn.Linear(4, 6, bias=False)
        self.conv = nn.Conv1d(1, 3, 3)
        self.head = nn.Linear(12, d)

    def forward(self, x):
        z = torch.tanh(self.a(x))
        return self.head(torch.sigmoid(self.conv(z.unsqueeze(1))).flatten(1))


def _images(n, seed=1, size=10):
    return torch.randn(n, 1, size, size, generator=_gen(seed), dtype=torch.float64)


CASES = {
    "cnn-tanh": (lambda: cnn(nn.Tanh), lambda: _images(3)),
    "cnn-relu": (lambda: cnn(nn.ReLU), lambda: _images(3)),
    "cnn-gelu": (lambda: cnn(nn.GELU), lambda: _images(2)),
    "residual-tanh": (
        lambda: Residual(nn.Tanh),
        lambda: torch.randn(3, 4, generator=_gen(2), dtype=torch.float64),
    ),
    "residual-relu": (
        lambda: Residual(nn.ReLU),
        lambda: torch.randn(3, 4, generator=_gen(2), dtype=torch.float64),
    ),
    "rescnn-relu": (lambda: ResCNN(nn.ReLU), lambda: _images(2, size=4)),
    "rescnn-silu": (lambda: ResCNN(nn.SiLU), lambda: _images(2, size=4)),
    "layernorm": (
        lambda: LayerNormNet(),
        lambda: torch.randn(3, 4, generator=_gen(3), dtype=torch.float64),
    ),
    "layernorm-tanh": (
        lambda: LayerNormNet(act=torch.tanh),
        lambda: torch.randn(3, 4, generator=_gen(3), dtype=torch.float64),
    ),
    "groupnorm": (lambda: GroupNormCNN(), lambda: _images(2, size=5)),
    "linear-to-conv": (
        lambda: LinearToConv(),
        lambda: torch.randn(3, 4, generator=_gen(6), dtype=torch.float64),
    ),
    "transformer": (
        lambda: TinyTransformer(),
        lambda: torch.randint(0, 6, (2, 4), generator=_gen(4)),
    ),
    "embedding": (lambda: EmbeddingBag(), lambda: torch.randint(0, 7, (3, 2), generator=_gen(5))),
}

#: the route the proof must find per parameter group (the head after the last curved
#: operation is always a structural zero)
EXPECTED = {
    "cnn-tanh": {"0": CURVATURE_SOURCES, "3": CURVATURE_SOURCES, "7": STRUCTURAL_ZERO},
    "cnn-relu": {"0": STRUCTURAL_ZERO, "3": STRUCTURAL_ZERO, "7": STRUCTURAL_ZERO},
    "cnn-gelu": {"0": CURVATURE_SOURCES, "3": CURVATURE_SOURCES, "7": STRUCTURAL_ZERO},
    "residual-tanh": {
        "stem": CURVATURE_SOURCES,
        "blocks.0.1": CURVATURE_SOURCES,
        "head": STRUCTURAL_ZERO,
    },
    "residual-relu": {
        "stem": STRUCTURAL_ZERO,
        "blocks.0.1": STRUCTURAL_ZERO,
        "head": STRUCTURAL_ZERO,
    },
    "rescnn-relu": {"stem": STRUCTURAL_ZERO, "bn1": STRUCTURAL_ZERO, "head": STRUCTURAL_ZERO},
    "rescnn-silu": {"stem": CURVATURE_SOURCES, "bn2": CURVATURE_SOURCES, "head": STRUCTURAL_ZERO},
    "layernorm": {"a": SECOND_ORDER, "norm": STRUCTURAL_ZERO, "b": STRUCTURAL_ZERO},
    "layernorm-tanh": {"a": SECOND_ORDER, "norm": CURVATURE_SOURCES, "b": STRUCTURAL_ZERO},
    "groupnorm": {"conv": SECOND_ORDER, "norm": CURVATURE_SOURCES, "head": STRUCTURAL_ZERO},
    "linear-to-conv": {"a": CURVATURE_SOURCES, "conv": CURVATURE_SOURCES, "head": STRUCTURAL_ZERO},
    "transformer": {
        "enc.self_attn": SECOND_ORDER,
        "enc.norm2": STRUCTURAL_ZERO,
        "head": STRUCTURAL_ZERO,
    },
    "embedding": {"emb": CURVATURE_SOURCES, "head": STRUCTURAL_ZERO},
}


def _close(got, want, what):
    scale = max(float(want.abs().max()), 1e-300)
    err = float((got - want).abs().max())
    assert err <= RTOL * scale + 1e-15, f"{what}: |Δ| = {err:.2e}, scale {scale:.2e}"


@pytest.mark.parametrize("case", list(CASES))
def test_graph_path_equals_label_enumeration(case):
    make, inputs = CASES[case]
    model, x = _randomise(make(), seed=len(case)), inputs()
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    assert res.path == "graph"
    exact = reference.exact_moments(model, x, "categorical")
    for name in res.fisher:
        _close(res.fisher[name], exact["mean1"][name], f"I of {name}")
        _close(res.var1[name], exact["var1"][name], f"V1 of {name}")
        _close(res.var2[name], exact["var2"][name], f"V2 of {name}")
    for group, route in EXPECTED[case].items():
        assert res.methods[group].startswith(route), (group, res.methods[group])
    for name, route in res.var2_routes.items():
        if route == STRUCTURAL_ZERO:  # a proved zero is exactly zero in the oracle too
            assert float(exact["var2"][name].abs().max()) <= 1e-12 * float(
                exact["mean1"][name].abs().max() ** 2 + 1e-300
            ), name


@pytest.mark.parametrize("family", ["gaussian", "bernoulli", "poisson"])
def test_other_heads_on_a_cnn(family):
    d = 1 if family in ("bernoulli", "poisson") else 2
    model = _randomise(cnn(nn.Tanh, d=d), seed=11, scale=0.4)
    x = _images(2, seed=12)
    res = fishsym.fisher_variances(model, x, family, per_sample=True)
    exact = reference.exact_moments(model, x, family)
    for name in res.fisher:
        _close(res.fisher[name], exact["mean1"][name], f"I of {name}")
        _close(res.var1[name], exact["var1"][name], f"V1 of {name}")
        _close(res.var2[name], exact["var2"][name], f"V2 of {name}")


def test_graph_path_equals_the_structured_path_on_mlps():
    """Every Linear layer of an MLP is factorised on the graph path too (u = G z, w = S z²):
    the two engines agree to rounding, and the graph engine forms no per-parameter
    Jacobian for them."""
    from fishsym import nets

    model = nets.mlp([5, 7, 6, 4], "sigmoid", _gen(7), torch.float64)
    x = torch.randn(4, 5, generator=_gen(8), dtype=torch.float64)
    graph = fishsym.fisher_variances(model, x, "categorical", per_sample=True, path="graph")
    fast = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    assert fast.path == "structured" and graph.path == "graph"
    for name in fast.fisher:
        for q in ("fisher", "var1", "var2"):
            _close(getattr(graph, q)[name], getattr(fast, q)[name], f"{q} of {name}")
    eng = GraphModel(model)
    eng.analyse(x)
    assert {lay.weight for lay in eng.analysis.linear} == {"0.weight", "2.weight", "4.weight"}


# --------------------------------------------------------------------------- soundness
def _routes(model, x):
    eng = GraphModel(_randomise(model, seed=3))
    eng.analyse(x)
    return eng.routes


def test_curved_and_tied_networks_are_never_declared_zero():
    x = torch.randn(2, 4, dtype=torch.float64)
    assert STRUCTURAL_ZERO not in {
        r for n, r in _routes(Residual(nn.Tanh), x).items() if not n.startswith("head")
    }
    lin = nn.Linear(4, 4)
    tied = nn.Sequential(lin, nn.ReLU(), lin, nn.ReLU(), nn.Linear(4, 3))  # ReLU, but tied
    assert _routes(tied, x)["0.weight"] == SECOND_ORDER
    gelu = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 3))
    assert _routes(gelu, x)["0.weight"] == CURVATURE_SOURCES


class _Square(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 3)

    def forward(self, x):
        z = self.a(x)
        return self.b(z * z)  # a product of two activations: not elementwise curvature


class _Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.g = nn.Linear(4, 4)
        self.b = nn.Linear(4, 3)

    def forward(self, x):  # a gated unit: a(x) ⊙ g(x), each linear in its own weights
        return self.b(torch.relu(self.a(x)) * self.g(x))


def test_products_and_gates():
    x = torch.randn(2, 4, dtype=torch.float64)
    routes = _routes(_Square(), x)
    assert routes["a.weight"] == SECOND_ORDER and routes["b.weight"] == STRUCTURAL_ZERO
    gate = _routes(_Gate(), x)  # each factor depends on a different parameter: still zero
    assert set(gate.values()) == {STRUCTURAL_ZERO}
    for model in (_Square(), _Gate()):
        model = _randomise(model, seed=4)
        res = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
        exact = reference.exact_moments(model, x, "categorical")
        for name in res.var2:
            _close(res.var2[name], exact["var2"][name], f"V2 of {name}")


def test_unknown_operations_fall_to_second_order_passes():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 3)

        def forward(self, x):
            return self.b(torch.cumprod(self.a(x), dim=-1))

    x = torch.randn(2, 4, dtype=torch.float64)
    gm = trace(ModelView(Odd().double(), torch.float64), x[0])
    analysis = analyse(gm, ["a.weight", "a.bias", "b.weight", "b.bias"])
    assert analysis.routes["a.weight"] == SECOND_ORDER
    assert any("cumprod" in op for op in analysis.unknown)


# --------------------------------------------------------------------------- Monte Carlo
@pytest.mark.parametrize("case", ["cnn-tanh", "transformer"])
def test_monte_carlo_agrees(case):
    make, inputs = CASES[case]
    model, x = _randomise(make(), seed=21), inputs()
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True, bounds=False)
    mc = estimate(model, x, "categorical", 4, 400, _gen(22))
    report = compare(mc, res, false_alarm=FALSE_ALARM)
    assert report.passed, report.format()
    assert sum(g.n_tested for g in report.groups) > 0


def test_the_model_is_untouched(unchanged):
    model = _randomise(ResCNN(nn.SiLU), seed=5)
    model.stem.register_forward_hook(lambda m, i, o: None)
    before = unchanged.snapshot(model)
    fishsym.fisher_variances(model, _images(2, size=4), "categorical")
    unchanged.check(before, model)


class _HFStyle(nn.Module):
    """Returns a dict, like a HuggingFace model's output."""

    def __init__(self):
        super().__init__()
        self.body = cnn(nn.Tanh)

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits, "hidden": logits.detach() * 0}


def test_output_selector_on_the_graph_path():
    model = _randomise(_HFStyle(), seed=31)
    x = _images(2, seed=32)
    with pytest.raises(fishsym.errors.UnsupportedModelError, match="output="):
        fishsym.fisher_variances(model, x, "categorical")
    res = fishsym.fisher_variances(
        model, x, "categorical", per_sample=True, output=lambda out: out["logits"]
    )
    assert res.path == "graph" and res.methods["body.7"] == STRUCTURAL_ZERO
    exact = reference.exact_moments(model, x, "categorical", output=lambda out: out["logits"])
    for name in res.fisher:
        _close(res.fisher[name], exact["mean1"][name], f"I of {name}")
        _close(res.var1[name], exact["var1"][name], f"V1 of {name}")
        _close(res.var2[name], exact["var2"][name], f"V2 of {name}")


def test_long_second_order_passes_are_announced(monkeypatch):
    from fishsym.engine.graph import model as graph

    monkeypatch.setattr(graph, "SECOND_ORDER_WARN_SECONDS", 0.0)
    model, x = _randomise(TinyTransformer(), seed=41), CASES["transformer"][1]()
    with pytest.warns(engine.GenericPathWarning, match="second-order passes for"):
        fishsym.fisher_variances(model, x, "categorical")


@pytest.mark.parametrize("act", [nn.Tanh, nn.Sigmoid, nn.ReLU])
def test_sequential_cnn_against_backpack_per_label(act):
    """A second, independent oracle for Sequential CNNs: BackPACK's per-sample gradients
    (BatchGrad) and diagonal Hessians (BatchDiagHessian) of the loss of every label,
    weighted by the model's probabilities (BackPACK is a test peer, not a dependency)."""
    backpack = pytest.importorskip("backpack")
    from backpack.extensions import BatchDiagHessian, BatchGrad

    # no AvgPool2d: BackPACK's average-pooling derivative builds a float32 kernel and fails
    # in float64 (BackPACK 1.7.1)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(2, 2, 3, padding=1),
        act(),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 3),
    )
    model = _randomise(net, seed=51)
    x = _images(3, seed=52)
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    bp = backpack.extend(copy.deepcopy(model))
    loss_fn = backpack.extend(nn.CrossEntropyLoss(reduction="sum"))
    with torch.no_grad():
        p = torch.softmax(model(x), -1)  # [n, C]
    grads, hessians = [], []
    for y in range(p.shape[1]):
        bp.zero_grad()
        loss = loss_fn(bp(x), torch.full((x.shape[0],), y))
        with backpack.backpack(BatchGrad(), BatchDiagHessian()):
            loss.backward()
        grads.append({n: q.grad_batch.detach().clone() for n, q in bp.named_parameters()})
        hessians.append({n: q.diag_h_batch.detach().clone() for n, q in bp.named_parameters()})
    for name in res.fisher:
        g = torch.stack([gr[name] for gr in grads], 1)  # [n, C, *shape]: −∂ℓ
        h = torch.stack([he[name] for he in hessians], 1)  # −∂²ℓ
        w = p.reshape(*p.shape, *([1] * (g.dim() - 2)))
        fisher = (w * g**2).sum(1)
        var1 = (w * g**4).sum(1) - fisher**2
        mean2 = (w * h).sum(1)
        var2 = (w * h**2).sum(1) - mean2**2
        _close(res.fisher[name], fisher, f"I of {name}")
        _close(res.var1[name], var1, f"V1 of {name}")
        if float(var2.abs().max()) > 0 or float(res.var2[name].abs().max()) > 0:
            scale = max(float(fisher.abs().max()) ** 2, float(var2.abs().max()))
            assert float((res.var2[name] - var2).abs().max()) <= 1e-9 * scale, name


# --------------------------------------------------------------------------- kept traces
#: read by Scaled.forward: a change no fingerprint sees, only the kept graph's re-run
OUTSIDE_SCALE = [1.0]


class Scaled(nn.Module):
    """A tanh network with a batch norm (buffers baked into the graph), a plain float
    attribute and a module-level value in its forward."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.out = nn.Linear(4, 3)
        self.temperature = 1.0

    def forward(self, x):
        a = torch.tanh(self.bn(self.lin(x)) * OUTSIDE_SCALE[0])
        return self.out(a) / self.temperature


def _analysed(model, x):
    from fishsym.common import ModelView

    view = ModelView(model, torch.float64)
    view.probe(x)
    engine = GraphModel(view)
    engine.analyse(x)
    return engine


def test_the_trace_is_kept_per_model_and_redone_when_the_model_changes(unchanged):
    torch.manual_seed(0)
    model = Scaled().double().eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    before = unchanged.snapshot(model)
    assert _analysed(model, x).retraced
    assert not _analysed(model, x).retraced  # the same model again: kept
    first = fishsym.fisher_variances(model, x, "categorical", path="graph")
    again = fishsym.fisher_variances(model, x, "categorical", path="graph")
    for name in first.fisher:
        assert torch.equal(first.fisher[name], again.fisher[name])
        assert torch.equal(first.var2[name], again.var2[name])
    unchanged.check(before, model)
    with torch.no_grad():
        model.out.weight.mul_(1.5)  # parameters are the graph's inputs: still kept
    assert not _analysed(model, x).retraced

    def changed(edit):
        edit()
        assert _analysed(model, x).retraced, edit
        res = fishsym.fisher_variances(model, x, "categorical", path="graph")
        exact = fishsym.reference.exact_moments(model, x, "categorical")
        for name in exact["mean1"]:
            for got, want in ((res.fisher[name], exact["mean1"][name]),
                              (res.var2[name], exact["var2"][name])):  # fmt: skip
                torch.testing.assert_close(got, want.mean(0), rtol=1e-9, atol=1e-14)

    changed(lambda: setattr(model, "temperature", 0.5))  # a plain attribute
    changed(lambda: model.bn.running_var.mul_(3.0))  # a buffer baked into the graph
    changed(lambda: OUTSIDE_SCALE.__setitem__(0, 2.0))  # nothing a fingerprint sees
    OUTSIDE_SCALE[0] = 1.0
