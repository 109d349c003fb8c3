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


def _tamper(tmp_path, change, name="res.pt", per_sample=False):
    """A saved result whose payload ``change`` alters (in place), saved again."""
    import json

    path = _result(per_sample).save(tmp_path / name)
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta"])
    out = change(payload, meta)
    if out is not False:
        payload["meta"] = json.dumps(meta) if not isinstance(out, str) else out
    torch.save(payload, path)
    return path


def _drop(d, key):
    d.pop(key)


DAMAGED = {
    "metadata not JSON": (lambda p, m: "{not json", "not JSON"),
    "metadata not an object": (lambda p, m: "[1, 2]", "not a JSON object"),
    "missing n_inputs": (lambda p, m: _drop(m, "n_inputs"), "no 'n_inputs'"),
    "missing params": (lambda p, m: _drop(m, "params"), "no 'params'"),
    "wrong type": (lambda p, m: m.update(per_sample="yes"), "'per_sample' must be a bool"),
    "heavy family": (lambda p, m: m.update(sizes={"C": 10**12}), "family size"),
    "missing tensor": (lambda p, m: _drop(p["tensors"], "fisher/0.weight"), "missing"),
    "unknown entry": (lambda p, m: p["tensors"].update({"evil/0.weight": torch.zeros(4, 3)}),
                      "unknown entry"),
    "no tensors": (lambda p, m: p.update(tensors={}), "no tensors"),
    "tensors not a dict": (lambda p, m: p.update(tensors=[1]), "no tensors"),
    "empty tensor": (lambda p, m: p["tensors"].update({"var1/0.weight": torch.zeros(0)}),
                     "empty"),
    "NaN": (lambda p, m: p["tensors"]["var1/0.weight"].fill_(float("nan")), "NaN or inf"),
    "inf": (lambda p, m: p["tensors"]["var2/2.bias"].fill_(float("inf")), "NaN or inf"),
    "shape disagrees": (lambda p, m: p["tensors"].update({"var1/0.weight": torch.zeros(3, 4,
                        dtype=torch.float64)}), "shape"),
    "integer tensor": (lambda p, m: p["tensors"].update({"var1/0.weight": torch.zeros(4, 3,
                       dtype=torch.int64)}), "floating-point"),
    "unknown parameter": (lambda p, m: p["tensors"].update({"var1/9.weight": torch.zeros(4, 3,
                          dtype=torch.float64)}), "not in 'params'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_or_crafted_files_are_refused(tmp_path, case):
    """Issue 23 D13: raw KeyError / JSONDecodeError / AttributeError before; empty,
    non-finite and mis-shaped tensors and a crafted heavy family accepted. Every check
    runs against the file's own metadata and raises InvalidArgumentError."""
    change, words = DAMAGED[case]
    path = _tamper(tmp_path, change)
    with pytest.raises(fishsym.errors.InvalidArgumentError, match=words):
        fishsym.load(path)


def test_a_user_family_of_a_registered_name_is_not_silently_rebuilt(tmp_path):
    """Issue 23 D13: a result computed with a user family named like a registered one was
    loaded with the registered family. The file carries the family's signature."""
    from fishsym.variance.storage import family_signature

    def other_family(payload, meta):
        meta["family_signature"] = "t(y) | log(1 + exp(h)) + h² | 0"

    path = _tamper(tmp_path, other_family)
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="not the registered one"):
        fishsym.load(path)
    res = _result(False)
    assert family_signature(res.kernel) is not None
    good = res.save(tmp_path / "good.pt")
    assert family_signature(fishsym.load(good).kernel) == family_signature(res.kernel)


def test_no_code_runs_from_a_file(tmp_path):
    """A pickle that would run code is refused by torch.load(weights_only=True)."""
    import pickle

    ran = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(ran), "w"))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "fishsym.FisherVariances", "x": Evil()}, f)
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="not a fishsym result"):
        fishsym.load(path)
    assert not ran.exists()
