"""``fisher_variances(var2=False)`` (issue 24 item 3): the Fisher, ``V₁`` and every other
estimator without a single second derivative, on every path — equal to the full run,
with ``V₂`` reported as skipped (never as zero); ``diagonal_fisher``'s exact route uses
it."""

import pytest
import torch
from torch import nn

import fishsym
from fishsym.errors import ArgumentTypeError, InvalidArgumentError

#: the same sums with and without the second-order work: round-off only
RTOL = 1e-12


class _LayerNormNet(nn.Module):
    """Second-order passes on the graph path (LayerNorm's normalisation)."""

    def __init__(self):
        super().__init__()
        self.a, self.ln, self.b = nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.ln(self.a(x))))


MODELS = {
    "MLP": lambda: nn.Sequential(
        nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Sigmoid(), nn.Linear(5, 3)
    ),
    "CNN": lambda: nn.Sequential(
        nn.Unflatten(1, (1, 2, 2)), nn.Conv2d(1, 2, 2, padding=1), nn.Tanh(), nn.Flatten(),
        nn.Linear(18, 3),
    ),
    "LayerNorm": _LayerNormNet,
}  # fmt: skip
X = torch.randn(9, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
OTHERS = ("squared_score", "hutchinson", "batched_score", "merging_recipe")


def _close(a, b):
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=RTOL, atol=1e-300)


@pytest.mark.parametrize("path", ["auto", "graph", "generic"])
@pytest.mark.parametrize("model", list(MODELS))
def test_without_v2_everything_else_is_unchanged(model, path, unchanged):
    torch.manual_seed(0)
    net = MODELS[model]().double()
    before = unchanged.snapshot(net)
    full = fishsym.fisher_variances(
        net, X, "categorical", path=path, estimators=(*OTHERS, "neg_hessian")
    )
    lean = fishsym.fisher_variances(net, X, "categorical", path=path, var2=False, estimators=OTHERS)
    unchanged.check(before, net)
    assert lean.path == full.path
    _close(lean.fisher, full.fisher)
    _close(lean.var1, full.var1)
    for est in OTHERS:
        _close(lean.mean[est], full.mean[est])
        _close(lean.var[est], full.var[est])
    for kind in ("lower", "upper"):
        _close(lean.bounds["squared_score"][kind], full.bounds["squared_score"][kind])
    # V₂ is absent and said to be: never a zero that looks like a value
    assert lean.var2 is None and lean.skipped == ("var2",)
    assert "neg_hessian" not in lean.bounds and "neg_hessian" not in lean.paper_bounds
    assert set(lean.var2_routes.values()) == {"skipped (var2=False)"}
    assert "skipped" in str(lean.summary())
    with pytest.raises(InvalidArgumentError, match="var2=False"):
        lean.relative_error(1, estimators=["neg_hessian"])
    with pytest.raises(InvalidArgumentError, match="var2=False"):
        lean.variance("neg_hessian")


def test_no_second_derivative_is_taken(monkeypatch):
    """Nothing of V₂ runs: the moments of w, the structured recursion's σ'' terms, the
    graph path's curvature sources and second-order passes are never reached."""
    import fishsym.engine.generic as generic
    import fishsym.variance.moments as moments

    def forbidden(*args, **kwargs):
        raise AssertionError("a second derivative was computed")

    monkeypatch.setattr(moments, "hess_moments", forbidden)
    monkeypatch.setattr(fishsym.engine.graph.curvature, "second_derivative", forbidden)
    real_block = generic.GenericModel.block

    def first_order_only(self, *args, **kwargs):
        assert not self.second_order
        return real_block(self, *args, **kwargs)

    monkeypatch.setattr(generic.GenericModel, "block", first_order_only)
    for model in MODELS.values():
        torch.manual_seed(0)
        net = model().double()
        for path in ("auto", "graph", "generic"):
            fishsym.fisher_variances(net, X, "categorical", path=path, var2=False)
        # diagonal_fisher's exact route needs the Fisher alone
        est = fishsym.diagonal_fisher(net, X, "categorical", generator=torch.Generator())
        assert set(est.estimators.values()) == {"exact"}


def test_bad_requests_are_refused():
    net = MODELS["MLP"]().double()
    with pytest.raises(InvalidArgumentError, match="neg_hessian"):
        fishsym.fisher_variances(net, X, "categorical", var2=False, estimators=("neg_hessian",))
    with pytest.raises(ArgumentTypeError, match="var2"):
        fishsym.fisher_variances(net, X, "categorical", var2="no")


def test_a_result_without_v2_round_trips(tmp_path):
    net = MODELS["MLP"]().double()
    res = fishsym.fisher_variances(net, X, "categorical", var2=False)
    back = fishsym.load(res.save(tmp_path / "lean.pt"))
    assert back.var2 is None and back.skipped == ("var2",)
    _close(back.fisher, res.fisher)
