"""The structured pass (docs/theory.md §7) against autograd on its definitions.

``G_l = ∂h/∂a_l`` is checked against the autograd Jacobian of the network's tail (the
modules after Linear layer ``l``) at ``a_l``, and ``S_l[c, a] = ∂²h_c/∂a_l[a]²`` against
the diagonal of the autograd Hessian of that tail — neither uses the inter-layer
Jacobian formula the engine implements.
"""

import warnings

import pytest
import torch
from torch import nn

from fishsym import nets
from fishsym.engine import GenericModel, GenericPathWarning, GraphModel, StructuredMLP, select
from fishsym.errors import ShapeError, UnsupportedModelError

#: float64, same quantity by two different sequences of float operations
RTOL = 1e-10
ATOL = 1e-13

ACTIVATIONS = sorted(nets.ACTIVATIONS)


def _split(model: nn.Sequential, linear_index: int):
    """Modules up to and including the ``linear_index``-th Linear, and the rest."""
    mods = list(model)
    seen = -1
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            seen += 1
            if seen == linear_index:
                return nn.Sequential(*mods[: i + 1]), nn.Sequential(*mods[i + 1 :])
    raise IndexError(linear_index)


def _autograd_g_s(model, x, linear_index):
    head, tail = _split(model, linear_index)
    a = head(x).detach()
    g, s = [], []
    for a_n in a:
        g.append(torch.autograd.functional.jacobian(lambda v: tail(v[None])[0], a_n))
        d = g[-1].shape[0]
        s.append(
            torch.stack(
                [
                    torch.diagonal(
                        torch.autograd.functional.hessian(lambda v, c=c: tail(v[None])[0, c], a_n)
                    )
                    for c in range(d)
                ]
            )
        )
    return torch.stack(g), torch.stack(s)


def _weight_derivs(engine, x, linear_index):
    _, pds = engine.derivatives(x)
    weights = [pd for pd in pds if pd.name.endswith("weight")]
    return weights[linear_index]


def _model(widths, activation, seed, tail_activation=None):
    model = nets.mlp(widths, activation, torch.Generator().manual_seed(seed), torch.float64)
    if tail_activation is not None:
        model.append(tail_activation)
    return model


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_g_and_s_match_autograd(activation, depth):
    widths = [4, 5, 4, 3, 5][:depth] + [3]
    model = _model(widths, activation, seed=depth)
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    engine = StructuredMLP(model)
    torch.testing.assert_close(engine.output(x), model(x), rtol=RTOL, atol=ATOL)
    for l in range(depth):
        pd = _weight_derivs(engine, x, l)
        g_ref, s_ref = _autograd_g_s(model, x, l)
        torch.testing.assert_close(pd.jac, g_ref, rtol=RTOL, atol=ATOL)
        s = torch.zeros_like(g_ref) if pd.hess_diag is None else pd.hess_diag
        torch.testing.assert_close(s, s_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("tail", [nn.Sigmoid(), nn.Softplus(beta=1.5), nn.Tanh()], ids=repr)
def test_trailing_activation(tail):
    model = _model([3, 4, 4, 2], "gelu", seed=3, tail_activation=tail)
    x = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    engine = StructuredMLP(model)
    for l in range(3):
        pd = _weight_derivs(engine, x, l)
        g_ref, s_ref = _autograd_g_s(model, x, l)
        torch.testing.assert_close(pd.jac, g_ref, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(pd.hess_diag, s_ref, rtol=RTOL, atol=ATOL)


def test_last_layer_and_relu_nets_have_structurally_zero_w():
    x = torch.randn(2, 4, dtype=torch.float64)
    _, pds = StructuredMLP(_model([4, 5, 5, 3], "tanh", 0)).derivatives(x)
    assert [pd.hess_diag is None for pd in pds] == [False, False, False, False, True, True]
    for act in ("relu", "leaky_relu", "identity"):
        _, pds = StructuredMLP(_model([4, 5, 5, 3], act, 0)).derivatives(x)
        assert all(pd.hess_diag is None for pd in pds)


def test_structured_equals_generic_on_mixed_modules():
    model = (
        nn.Sequential(
            nn.Flatten(),
            nn.Tanh(),
            nn.Linear(6, 5),
            nn.Dropout(0.3),
            nn.Sequential(nn.SiLU(), nn.Linear(5, 5)),
            nn.Softplus(beta=0.7, threshold=3.0),
            nn.ELU(alpha=0.5),
            nn.Flatten(),
            nn.Linear(5, 4, bias=False),
            nn.Linear(4, 3),
            nn.LeakyReLU(0.1),
            nn.Linear(3, 2),
        )
        .double()
        .eval()
    )
    x = torch.randn(3, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    structured, generic = StructuredMLP(model), GenericModel(model)
    assert (
        structured.param_names()
        == generic.param_names()
        == [n for n, _ in model.named_parameters()]
    )
    h, pds = structured.derivatives(x)
    torch.testing.assert_close(h, model(x), rtol=RTOL, atol=ATOL)
    for pd in pds:
        u, w = pd.expanded()
        ref = generic.block(x, pd.name, slice(0, pd.shape.numel()))
        torch.testing.assert_close(u, ref.jac, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(w, ref.hess_diag, rtol=RTOL, atol=ATOL)


def test_frozen_parameters_are_skipped():
    model = _model([3, 4, 2], "sigmoid", 0)
    model[0].weight.requires_grad_(False)
    engine = StructuredMLP(model)
    assert engine.param_names() == ["0.bias", "2.weight", "2.bias"]
    _, pds = engine.derivatives(torch.randn(2, 3, dtype=torch.float64))
    assert [pd.name for pd in pds] == engine.param_names()


def test_model_is_not_modified():
    model = nets.mlp([3, 4, 2], "tanh")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    StructuredMLP(model, torch.float64).derivatives(torch.randn(2, 3))
    after = model.state_dict()
    assert all(
        after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items()
    )


@pytest.mark.parametrize(
    "model, name",
    [
        (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4).eval(), nn.Linear(4, 2)), "'1'"),
        (
            nn.Sequential(
                nn.Linear(3, 4), nn.Sequential(nn.Tanh(), nn.Hardswish()), nn.Linear(4, 2)
            ),
            "'1.1'",
        ),
        (nn.Sequential(nn.Linear(3, 4), nn.Flatten(0), nn.Linear(4, 2)), "'1'"),
        (nn.Sequential(nn.Conv1d(1, 1, 2), nn.Flatten(), nn.Linear(2, 2)), "'0'"),
    ],
)
def test_unsupported_module_is_named(model, name):
    with pytest.raises(UnsupportedModelError, match=name):
        StructuredMLP(model)
    engine = select(model, torch.float64, "auto")
    assert isinstance(engine, GraphModel)
    assert name in engine.fallback_reason
    with pytest.raises(UnsupportedModelError, match=name):
        select(model, torch.float64, "structured")


def test_shared_layer_is_unsupported():
    lin = nn.Linear(3, 3)
    with pytest.raises(UnsupportedModelError, match="twice"):
        StructuredMLP(nn.Sequential(lin, nn.Tanh(), lin))


def test_non_sequential_falls_back():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 2)

        def forward(self, x):
            return self.body(x)

    engine = select(Net(), torch.float64)
    assert isinstance(engine, GraphModel) and "Net" in engine.fallback_reason
    assert isinstance(select(Net(), torch.float64, "generic"), GenericModel)


def test_flatten_merging_the_batch_axis_is_rejected():
    engine = StructuredMLP(nn.Sequential(nn.Flatten(0), nn.Linear(6, 2)))
    with pytest.raises(UnsupportedModelError, match="batch axis"):
        engine.features(torch.randn(1, 6))


def test_input_width_mismatch_is_a_shape_error():
    engine = StructuredMLP(nets.mlp([3, 2]))
    with pytest.raises(ShapeError, match="expects"):
        engine.features(torch.randn(4, 5))


@pytest.mark.parametrize(
    "module",
    [nn.Dropout(0.5), nn.AlphaDropout(0.2), nn.BatchNorm1d(4), nn.RReLU()],
    ids=lambda m: type(m).__name__,
)
def test_training_mode_stochastic_modules_are_rejected(module):
    model = nn.Sequential(nn.Linear(3, 4), module, nn.Linear(4, 2)).train()
    with pytest.raises(UnsupportedModelError, match="model.eval()"):
        select(model, torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenericPathWarning)
        select(model.eval(), torch.float64)  # fine once in evaluation mode


def test_dropout_with_p_zero_is_deterministic_in_training_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.0), nn.Linear(4, 2)).train()
    assert isinstance(select(model, torch.float64), StructuredMLP)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("curved", [1, 2, 3, 4, 5])
def test_every_inter_layer_factor_against_the_label_oracle(activation, curved):
    """Issue 23 E: a broken inter-layer factor of the V₂ recursion for layers three or more
    apart (``∂a_m/∂z_l`` with ``l ≤ m − 3``) passed the suite, whose networks had at most
    three curved layers. With 1–5 curved layers every branch of the recursion runs; Fisher,
    V₁ and V₂ are held to label enumeration with autograd (float64), in chunks of 2 inputs
    across 5 (every chunk boundary crossed, a last partial chunk)."""
    import sys
    from pathlib import Path

    import fishsym

    sys.path.insert(0, str(Path(__file__).parents[1] / "variance"))
    from conftest import reference

    widths = [3, 4, 3, 5, 4, 3][: curved + 1] + [3]
    model = _model(widths, activation, seed=10 + curved)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    truth = reference(model, x, "categorical")
    res = fishsym.fisher_variances(model, x, "categorical", path="structured", chunk_size=2)
    assert res.path == "structured"
    for name in truth["fisher"]:
        for key in ("fisher", "var1", "var2"):
            torch.testing.assert_close(
                getattr(res, key)[name], truth[key][name].mean(0), rtol=1e-10, atol=1e-16
            )
