"""Training loop semantics and per-layer summaries, against hand computations."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fishsym.experiments.training import (
    BOUND_RTOL,
    bracket_violations,
    group_summary,
    layer_groups,
    nll_loss,
    one_hot_targets,
    train_over_epochs,
)
from fishsym.nets import mlp


def test_callback_runs_before_training_and_after_each_epoch():
    gen = torch.Generator().manual_seed(0)
    model = mlp((3, 4, 2), "tanh", gen)
    x = torch.randn(20, 3, generator=gen)
    y = torch.randint(0, 2, (20,), generator=gen)
    seen = []

    def callback(epoch, net):
        seen.append(epoch)
        return epoch * 10

    hist = train_over_epochs(
        model,
        x,
        y,
        nll_loss("categorical"),
        epochs=3,
        batch_size=8,
        lr=1e-2,
        generator=torch.Generator().manual_seed(1),
        callback=callback,
    )
    assert seen == [0, 1, 2, 3]
    assert hist.records == [0, 10, 20, 30]
    assert len(hist.loss) == 4
    assert hist.settings["optimizer"] == "Adam"


def test_training_is_reproducible():
    def run():
        gen = torch.Generator().manual_seed(0)
        model = mlp((3, 4, 2), "sigmoid", gen)
        x = torch.randn(16, 3, generator=gen)
        y = torch.randn(16, 2, generator=gen)
        train_over_epochs(
            model,
            x,
            y,
            nll_loss("gaussian"),
            epochs=2,
            batch_size=4,
            lr=1e-2,
            generator=torch.Generator().manual_seed(5),
        )
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    assert torch.equal(run(), run())


def test_bad_training_arguments():
    model = mlp((2, 2), "tanh")
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="lr"):
        train_over_epochs(
            model,
            x,
            y,
            nll_loss("categorical"),
            epochs=1,
            batch_size=2,
            lr=0.0,
            generator=torch.Generator(),
        )
    with pytest.raises(TypeError, match="Generator"):
        train_over_epochs(
            model, x, y, nll_loss("categorical"), epochs=1, batch_size=2, lr=0.1, generator=None
        )
    with pytest.raises(ValueError, match="categorical"):
        nll_loss("poisson")


def test_losses_are_the_negative_log_likelihoods():
    gen = torch.Generator().manual_seed(2)
    h = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 1, 0])
    manual = -(h.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(h, 1)).mean()
    torch.testing.assert_close(nll_loss("categorical")(h, y), manual)
    t = one_hot_targets(y, 3, torch.float64)
    assert t.shape == (5, 3) and bool((t.sum(1) == 1).all())
    torch.testing.assert_close(nll_loss("gaussian")(h, t), 0.5 * ((h - t) ** 2).sum(1).mean())


def test_layer_groups():
    model = mlp((3, 4, 5, 2), "relu")
    groups = layer_groups(model)
    assert [g.name for g in groups] == ["layer 1", "layer 2", "layer 3"]
    assert groups[2].params == ("4.weight", "4.bias")
    with pytest.raises(ValueError, match="Linear"):
        layer_groups(nn.Sequential(nn.ReLU()))


def _fake_result(model, seed):
    """A FisherVariances-shaped object with known values (no engine involved)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {n: p.shape for n, p in model.named_parameters()}

    def rand():
        return {
            n: torch.rand(s, generator=gen, dtype=torch.float64) + 0.1 for n, s in shapes.items()
        }

    fisher, var1, var2 = rand(), rand(), rand()
    last = list(shapes)[-2:]
    for n in last:
        var2[n] = torch.zeros(shapes[n], dtype=torch.float64)
    bounds = {
        "squared_score": {
            "lower": {n: 0.5 * v for n, v in var1.items()},
            "upper": {n: 2 * v for n, v in var1.items()},
        },
        "neg_hessian": {
            "lower": {n: 0.25 * v for n, v in var2.items()},
            "upper": {n: 3 * v for n, v in var2.items()},
        },
    }
    return SimpleNamespace(fisher=fisher, var1=var1, var2=var2, bounds=bounds)


def test_group_summary_matches_hand_computation():
    model = mlp((3, 4, 2), "sigmoid")
    res = _fake_result(model, 0)
    rows = group_summary(res, layer_groups(model))
    assert len(rows) == 2
    names = ("0.weight", "0.bias")
    fisher = torch.cat([res.fisher[n].reshape(-1) for n in names])
    var1 = torch.cat([res.var1[n].reshape(-1) for n in names])
    var2 = torch.cat([res.var2[n].reshape(-1) for n in names])
    r = rows[0]
    assert r["n_params"] == 16
    assert r["fisher"] == pytest.approx(float(fisher.mean()))
    assert r["std1"] == pytest.approx(math.sqrt(float(var1.mean())))
    assert r["rel_std2"] == pytest.approx(math.sqrt(float(var2.mean())) / float(fisher.mean()))
    assert r["median_rel_std1"] == pytest.approx(float((var1.sqrt() / fisher).median()))
    assert r["log_ratio1"] == pytest.approx(math.log(2.0))
    assert r["log_ratio2"] == pytest.approx(math.log(3.0))
    assert r["violations1"] == 0 and r["violations2"] == 0
    assert r["lower_var"] == ("neg_hessian" if var2.mean() < var1.mean() else "squared_score")
    assert not r["var2_zero"]
    last = rows[1]
    assert last["var2_zero"] and math.isnan(last["log_ratio2"]) and last["std2"] == 0


def test_bracket_violations():
    var = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert BOUND_RTOL == 0  # outward-rounded bounds need no allowance (issue 9.3)
    lower = torch.tensor([0.5, 2.0 * (1 + 2**-52), 3.5, 1.0], dtype=torch.float64)
    upper = torch.tensor([1.0, 3.0, 4.0, math.inf], dtype=torch.float64)
    # entry 0: on its upper bound (ok); 1: lower bound one ulp above var (violation);
    # 2: lower bound above var (violation); 3: infinite upper bound (counted)
    assert bracket_violations(var, lower, upper) == 3
    assert bracket_violations(var[:1], lower[:1], upper[:1]) == 0
    assert bracket_violations(torch.tensor([float("nan")]), torch.zeros(1), torch.ones(1)) == 1
