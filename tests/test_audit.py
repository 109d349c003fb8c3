"""``fishsym.audit``: planted scales, permutations and zeros are reported as such; the
exact truth equals label enumeration; a sampled truth carries its uncertainty into the
verdicts; Adam's second moments read back exactly; bad input is refused by name; the
model is untouched."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import fishsym
from fishsym.auditing import ZERO_NOTE, adam_fisher
from fishsym.errors import (
    ArgumentTypeError,
    DomainError,
    InvalidArgumentError,
    NonFiniteError,
    ShapeError,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _data(n=20):
    return torch.randn(n, 4, generator=_gen(1), dtype=torch.float64)


@pytest.fixture(scope="module")
def exact():
    model, x = _model(), _data()
    res = fishsym.fisher_variances(model, x, "categorical", var2=False, bounds=False)
    return model, x, res.fisher


def test_the_exact_truth_is_label_enumeration(unchanged):
    model, x = _model(), _data()
    before = unchanged.snapshot(model)
    ref = fishsym.reference.exact_moments(model, x, "categorical")
    truth = {n: t.mean(0) for n, t in ref["mean1"].items()}
    res = fishsym.audit(model, x, "categorical", truth)
    unchanged.check(before, model)
    assert res.truth_kind == "exact"
    for name in truth:
        torch.testing.assert_close(res.truth[name], truth[name], rtol=1e-10, atol=1e-15)
    for row in res.rows:
        assert row["rel_error"] < 1e-10 and abs(row["scale"] - 1) < 1e-10
        assert row["spearman"] == pytest.approx(1.0) and row["top_overlap"] == 1.0
        assert row["verdict"] == "matches"


def test_a_planted_scale_is_found_and_nothing_is_left(exact):
    model, x, fisher = exact
    planted = {n: 2 * t for n, t in fisher.items()}
    res = fishsym.audit(model, x, "categorical", planted, truth=fisher)
    for row in res.rows:
        assert row["scale"] == pytest.approx(2.0, rel=1e-12)
        assert row["strength_factor"] == pytest.approx(0.5, rel=1e-12)
        assert row["rel_error"] == pytest.approx(1.0, rel=1e-12)  # ‖2F − F‖ = ‖F‖
        assert row["rel_error_scaled"] < 1e-12
        assert row["verdict"].startswith("right up to a scale: 2×")


def test_a_permutation_loses_the_ranking(exact):
    model, x, fisher = exact
    perm = torch.randperm(fisher["0.weight"].numel(), generator=_gen(3))
    shuffled = {**fisher, "0.weight": fisher["0.weight"].reshape(-1)[perm].reshape(6, 4)}
    res = fishsym.audit(model, x, "categorical", shuffled, truth=fisher)
    row = {r["group"]: r for r in res.rows}["0"]
    assert row["spearman"] < 0.5 and row["top_overlap"] < 1.0
    assert row["verdict"] == "wrong: values and ranking off"
    assert {r["group"]: r for r in res.rows}["2"]["verdict"] == "matches"
    # a monotone distortion keeps the ranking but not the values
    bent = {n: t.sqrt() for n, t in fisher.items()}
    res = fishsym.audit(model, x, "categorical", bent, truth=fisher)
    assert all(r["spearman"] == pytest.approx(1.0) for r in res.rows)
    assert all(r["top_overlap"] == 1.0 for r in res.rows)


def test_an_identically_zero_fisher_is_named(exact):
    model, x, fisher = exact
    zero = {n: torch.zeros_like(t) for n, t in fisher.items()}
    res = fishsym.audit(model, x, "categorical", zero, truth=fisher)
    assert all(r["verdict"] == ZERO_NOTE for r in res.rows)
    assert all(math.isinf(r["rel_error_scaled"]) for r in res.rows)


def test_a_sampled_truth_carries_its_uncertainty(exact):
    model, x, fisher = exact
    res = fishsym.audit(model, x, "categorical", fisher, exact=False, generator=_gen(4))
    assert res.truth_kind == "sampled"
    rows = {r["group"]: r for r in res.rows}
    assert rows["0"]["truth_rel_std"] > 0  # sampled (the head "2" is in closed form)
    for row in res.rows:
        # the exact Fisher against an estimate of it: inside twice its standard error
        assert row["rel_error"] <= max(0.05, 2 * row["truth_rel_std"]), row
        assert row["verdict"].startswith("matches")
    with pytest.raises(InvalidArgumentError, match="generator"):
        fishsym.audit(model, x, "categorical", fisher, exact=False)


def test_a_subset_of_layers_and_the_outputs(exact, tmp_path):
    model, x, fisher = exact
    res = fishsym.audit(model, x, "categorical", {"2.weight": fisher["2.weight"]}, truth=fisher)
    assert [r["group"] for r in res.rows] == ["2", "all"]
    assert res.skipped == ["0.weight", "0.bias", "2.bias"]
    records = res.to_records()
    assert records[0]["entries"] == 18 and isinstance(records[0]["rel_error"], float)
    text = str(res)
    assert "verdict" in text and "matches" in text
    ax = res.plot()
    ax.figure.savefig(tmp_path / "audit.png")


def test_bad_fisher_tensors_are_refused(exact):
    model, x, fisher = exact
    with pytest.raises(ShapeError, match="0.weight"):
        fishsym.audit(model, x, "categorical", {"0.weight": torch.ones(4, 6)}, truth=fisher)
    with pytest.raises(DomainError, match="negative"):
        fishsym.audit(model, x, "categorical", {"0.bias": -torch.ones(6)}, truth=fisher)
    nan = torch.ones(6, dtype=torch.float64)
    nan[2] = math.nan
    with pytest.raises(NonFiniteError):
        fishsym.audit(model, x, "categorical", {"0.bias": nan}, truth=fisher)
    with pytest.raises(InvalidArgumentError, match="not a trainable parameter"):
        fishsym.audit(model, x, "categorical", {"head.weight": torch.ones(3)}, truth=fisher)
    with pytest.raises(ArgumentTypeError):
        fishsym.audit(model, x, "categorical", [fisher["0.bias"]], truth=fisher)
    with pytest.raises(ArgumentTypeError):
        fishsym.audit(model, x, "categorical", {"0.bias": [1.0] * 6}, truth=fisher)
    with pytest.raises(InvalidArgumentError, match="top"):
        fishsym.audit(model, x, "categorical", fisher, truth=fisher, top=0)
    with pytest.raises(ArgumentTypeError, match="truth"):
        fishsym.audit(model, x, "categorical", fisher, truth=[1.0])


def test_adam_second_moments_read_back():
    model, x = _model(), _data()
    y = torch.randint(0, 3, (20,), generator=_gen(5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    with pytest.raises(InvalidArgumentError, match="not been stepped"):
        adam_fisher(opt, model, 20)
    grads = {n: [] for n, _ in model.named_parameters()}
    for step in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[step::3]), y[step::3]).backward()
        for n, p in model.named_parameters():
            grads[n].append(p.grad.detach().clone())
        opt.step()
    got = adam_fisher(opt, model, 20)
    for n, gs in grads.items():
        v = torch.zeros_like(gs[0])
        for g in gs:
            v = 0.99 * v + 0.01 * g * g
        torch.testing.assert_close(got[n], 20 * v / (1 - 0.99**3))
    with pytest.raises(ArgumentTypeError, match="exp_avg_sq"):
        sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sgd.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        sgd.step()
        adam_fisher(sgd, model, 20)
    with pytest.raises(InvalidArgumentError, match="n_data"):
        adam_fisher(opt, model, 0)
