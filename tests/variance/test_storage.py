"""Results you can keep: save / load round trip (every tensor and field), pickle-free
loading, bad files refused, CSV export of the summary."""

import csv

import pytest
import torch
from torch import nn

import fishsym


def _result(per_sample):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return fishsym.fisher_variances(
        model,
        x,
        "categorical",
        per_sample=per_sample,
        estimators=("squared_score", "neg_hessian", "hutchinson"),
    )


def _same(a, b):
    if a is None or b is None:
        assert a is b
        return
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
        return
    assert list(a) == list(b)
    for k in a:
        _same(a[k], b[k])


@pytest.mark.parametrize("per_sample", [False, True])
def test_round_trip(tmp_path, per_sample):
    res = _result(per_sample)
    path = res.save(tmp_path / "res.pt")
    back = fishsym.load(path)
    for attr in (
        "fisher",
        "var1",
        "var2",
        "var_fisher_over_inputs",
        "bounds",
        "mean_bounds",
        "paper_bounds",
        "means",
        "mean",
        "var",
        "bias",
    ):
        _same(getattr(res, attr), getattr(back, attr))
    for attr in (
        "n_inputs",
        "path",
        "per_sample",
        "groups",
        "var2_routes",
        "bounds_method",
        "paper_bounds_method",
        "cost",
    ):
        assert getattr(res, attr) == getattr(back, attr), attr
    assert back.kernel.name == res.kernel.name and back.kernel.sizes == res.kernel.sizes
    assert str(back.summary()) == str(res.summary())
    # the file holds tensors and strings only: it loads with weights_only=True
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "fishsym.FisherVariances" and payload["version"] == 1


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="not a file"):
        fishsym.load(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="not a fishsym result"):
        fishsym.load(other)
    res = _result(False)
    path = res.save(tmp_path / "res.pt")
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, path)
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="version"):
        fishsym.load(path)


def test_csv_export(tmp_path):
    res = _result(False)
    records = res.to_records()
    assert records == [dict(r) for r in res.summary()]
    path = tmp_path / "summary.csv"
    res.summary().to_csv(path)
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["group"] for r in rows] == [r["group"] for r in records]
    assert float(rows[0]["fisher"]) == pytest.approx(records[0]["fisher"], rel=1e-12)
    assert "std_squared_score_bounds_upper" in rows[0]
