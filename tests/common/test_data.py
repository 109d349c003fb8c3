"""Datasets and data loaders: every entry point gives the tensor path's result on a stream
of batches (any batching), caps at ``max_inputs``, and refuses bad batches by name."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import fishsym
from fishsym.common.data import DataSource
from fishsym.errors import ArgumentTypeError, InvalidArgumentError, ShapeError
from fishsym.montecarlo import estimate
from fishsym.variance.empirical import empirical_fisher_exact

#: sums over differently batched inputs agree to round-off (float64, sums of ≤ 40 terms)
RTOL = 1e-12


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _cnn():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 3)
    ).double()


def _data(shape, n=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=0)


@pytest.mark.parametrize("make,shape", [(_mlp, (4,)), (_cnn, (1, 6, 6))])
@pytest.mark.parametrize("batch_size", [1, 5, 16])
def test_loader_equals_tensor(make, shape, batch_size):
    model = make()
    x, y = _data(shape)
    kw = dict(estimators=("squared_score", "neg_hessian", "hutchinson", "empirical"))
    ref = fishsym.fisher_variances(model, x, "categorical", labels=y, **kw)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    res = fishsym.fisher_variances(model, loader, "categorical", **kw)
    assert res.n_inputs == ref.n_inputs == x.shape[0]
    for q in ("fisher", "var1", "var2"):
        _close(getattr(res, q), getattr(ref, q))
    # mean(I²) − mean(I)² cancels: an absolute error of order n·eps·mean(I²)
    for k, v in ref.var_fisher_over_inputs.items():
        tol = (x.shape[0] + 8) * torch.finfo(torch.float64).eps * (v + ref.fisher[k] ** 2)
        assert bool(((res.var_fisher_over_inputs[k] - v).abs() <= tol).all())
    for e in kw["estimators"]:
        _close(res.var[e], ref.var[e])
    for side in ("lower", "upper"):
        _close(res.bounds["squared_score"][side], ref.bounds["squared_score"][side])


def test_per_sample_stream_of_unknown_length():
    model = _mlp()
    x, _ = _data((4,))

    def batches():  # a generator: no length known before reading
        for start in range(0, x.shape[0], 7):
            yield x[start : start + 7]

    ref = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    res = fishsym.fisher_variances(model, batches(), "categorical", per_sample=True)
    assert res.fisher["0.weight"].shape == (x.shape[0], 6, 4)
    _close(res.var1, ref.var1)
    _close(res.fisher, ref.fisher)


def test_per_sample_stream_grows_by_doubling_only_when_full():
    """64 batches of one input: the per-input store grows to room for the inputs read (a
    store that grew on every batch would need 2⁶⁴ rows)."""
    model = _mlp()
    x, _ = _data((4,), n=64)
    res = fishsym.fisher_variances(model, (x[i : i + 1] for i in range(64)), "categorical",
                                   per_sample=True, bounds=False)  # fmt: skip
    ref = fishsym.fisher_variances(model, x, "categorical", per_sample=True, bounds=False)
    assert res.fisher["0.weight"].shape == (64, 6, 4)
    _close(res.fisher, ref.fisher)


def test_max_inputs_caps_every_kind_of_input():
    model = _mlp()
    x, y = _data((4,))
    ref = fishsym.fisher_variances(model, x[:10], "categorical")
    for data in (x, x.numpy(), DataLoader(TensorDataset(x, y), batch_size=4), TensorDataset(x)):
        res = fishsym.fisher_variances(model, data, "categorical", max_inputs=10)
        assert res.n_inputs == 10
        _close(res.fisher, ref.fisher)


def test_map_style_dataset_of_single_examples():
    class Digits(Dataset):  # one (x, y) example per index, as torchvision datasets
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], int(self.y[i])

    model = _mlp()
    x, y = _data((4,), n=300)
    ref = fishsym.fisher_variances(model, x, "categorical", labels=y, estimators=("empirical",))
    res = fishsym.fisher_variances(model, Digits(x, y), "categorical", estimators=("empirical",))
    _close(res.var["empirical"], ref.var["empirical"])


def test_empirical_fisher_exact_reads_labels_from_batches():
    model = _mlp()
    x, y = _data((4,))
    kernel = "categorical"
    ref = empirical_fisher_exact(model, x, kernel, labels=y)
    res = empirical_fisher_exact(model, DataLoader(TensorDataset(x, y), batch_size=8), kernel)
    assert res.n_inputs == ref.n_inputs
    _close(res.emp_mean, ref.emp_mean)
    _close(res.emp_var, ref.emp_var)


def test_empirical_fisher_exact_truncates_its_labels_with_max_inputs():
    """``max_inputs`` cuts the in-memory labels (and teacher outputs) with the inputs."""
    model = _mlp()
    x, y = _data((4,), n=10)
    ref = empirical_fisher_exact(model, x[:4], "categorical", labels=y[:4])
    res = empirical_fisher_exact(model, x, "categorical", labels=y, max_inputs=4)
    assert res.n_inputs == ref.n_inputs == 4
    _close(res.emp_mean, ref.emp_mean)
    _close(res.emp_var, ref.emp_var)
    teacher = torch.randn(10, 3, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    ref = empirical_fisher_exact(model, x[:4], "categorical", teacher_h=teacher[:4])
    res = empirical_fisher_exact(model, x, "categorical", teacher_h=teacher, max_inputs=4)
    _close(res.emp_mean, ref.emp_mean)


def test_sampling_routes_read_loaders_into_memory():
    model = _mlp()
    x, y = _data((4,), n=12)
    loader = DataLoader(TensorDataset(x, y), batch_size=5)
    a = estimate(model, x, "categorical", 1, 4, torch.Generator().manual_seed(3))
    b = estimate(model, loader, "categorical", 1, 4, torch.Generator().manual_seed(3))
    _close(a.mean["squared_score"], b.mean["squared_score"])
    kw = dict(generator=torch.Generator().manual_seed(4), exact=False, max_labels=64)
    c = fishsym.diagonal_fisher(model, x, "categorical", **kw)
    kw["generator"] = torch.Generator().manual_seed(4)
    d = fishsym.diagonal_fisher(model, loader, "categorical", **kw)
    _close(c.value, d.value)


def test_bad_streams_are_refused_by_name():
    model = _mlp()
    x, y = _data((4,))
    with pytest.raises(ShapeError, match="batch 1 has inputs of shape"):
        fishsym.fisher_variances(model, iter([x[:3], x[:3, :2]]), "categorical")
    with pytest.raises(ArgumentTypeError, match="batch 0 is a dict"):
        fishsym.fisher_variances(model, [{"x": x}].__iter__(), "categorical")
    with pytest.raises(InvalidArgumentError, match="labels= goes with in-memory"):
        fishsym.fisher_variances(model, DataLoader(TensorDataset(x)), "categorical", labels=y)
    with pytest.raises(InvalidArgumentError, match="batch 0 has none|use the data labels"):
        fishsym.fisher_variances(
            model, DataLoader(TensorDataset(x)), "categorical", estimators=("empirical",)
        )
    with pytest.raises(ShapeError, match="yielded no batch"):
        fishsym.fisher_variances(model, iter([]), "categorical")
    with pytest.raises(ArgumentTypeError, match="iterable / DataLoader"):
        DataSource(object())
    with pytest.raises(ShapeError, match="labels of shape"):
        list(DataSource(iter([(x[:3], y[:2])])).batches())
    once = DataSource(iter([x]))
    list(once.batches())
    with pytest.raises(InvalidArgumentError, match="read already"):
        list(once.batches())


def test_known_length():
    x, y = _data((4,))
    assert DataSource(x).known_length() == 37
    assert DataSource(DataLoader(TensorDataset(x), batch_size=8)).known_length() == 37
    loader = DataLoader(TensorDataset(x), batch_size=8, drop_last=True)
    assert DataSource(loader).known_length() == 32
    assert DataSource(loader, max_inputs=5).known_length() == 5
    assert DataSource(iter([x])).known_length() is None


# --------------------------------------------------------------------------- issue 23 A6, C12
def _small():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=torch.Generator().manual_seed(1))
    return model, x, y


@pytest.mark.parametrize("first", [torch.float32, torch.float64])
def test_streams_of_mixed_dtype_equal_the_tensor(first):
    """A6: a float32 batch then a float64 batch (or the reverse) give the in-memory result
    on the same numbers, on every entry point (each batch is cast to the working dtype)."""
    model, x, y = _small()
    x = x.float().double()  # numbers that both dtypes hold exactly
    other = torch.float64 if first == torch.float32 else torch.float32

    def stream():
        return iter([x[:5].to(first), x[5:].to(other)])

    for path in ("structured", "graph"):
        ref = fishsym.fisher_variances(model, x, "categorical", path=path)
        res = fishsym.fisher_variances(model, stream(), "categorical", path=path)
        for name in ref.fisher:
            torch.testing.assert_close(res.fisher[name], ref.fisher[name], rtol=1e-13, atol=0)
            torch.testing.assert_close(res.var1[name], ref.var1[name], rtol=1e-13, atol=0)
    gen = torch.Generator
    a = fishsym.diagonal_fisher(
        model, stream(), "categorical", exact=False, max_labels=4, generator=gen().manual_seed(0)
    )
    b = fishsym.diagonal_fisher(
        model, x, "categorical", exact=False, max_labels=4, generator=gen().manual_seed(0)
    )
    for name in a.value:
        torch.testing.assert_close(a.value[name], b.value[name], rtol=1e-13, atol=0)


def test_a_list_of_batch_pairs_is_a_stream():
    """C12: a Python list of (x, y) tuples is read as batches with their labels."""
    model, x, y = _small()
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    a = empirical_fisher_exact(model, batches, "categorical")
    b = empirical_fisher_exact(model, DataLoader(TensorDataset(x, y), batch_size=4), "categorical")
    for name in b.emp_mean:
        torch.testing.assert_close(a.emp_mean[name], b.emp_mean[name], rtol=1e-13, atol=0)
    res = fishsym.fisher_variances(model, batches, "categorical")
    ref = fishsym.fisher_variances(model, x, "categorical")
    torch.testing.assert_close(res.fisher["0.weight"], ref.fisher["0.weight"], rtol=1e-13, atol=0)


def test_bad_data_labels_are_refused_by_name():
    """C12: float and NaN labels for the data-label estimators gave a raw TypeError."""
    model, x, y = _small()
    for estimator in ("empirical", "batched_score_data"):
        with pytest.raises(ArgumentTypeError, match="integer"):
            fishsym.fisher_variances(
                model, x, "categorical", labels=y.double() + 0.5, estimators=(estimator,)
            )
    bad = y.double()
    bad[0] = float("nan")
    with pytest.raises(fishsym.errors.NonFiniteError, match="NaN"):
        empirical_fisher_exact(model, [(x, bad)], "categorical")
    with pytest.raises(ArgumentTypeError, match="integer"):
        empirical_fisher_exact(model, [(x, y.double() + 0.5)], "categorical")


def test_a_huge_loader_is_refused_before_it_is_read():
    """C12: diagonal_fisher holds its inputs for the rounds; a loader that would not fit is
    refused after its first batch, before the rest is read."""
    model, x, y = _small()
    read = []

    class Counting(Dataset):
        def __len__(self):
            return 10**7

        def __getitem__(self, i):
            read.append(i)
            return x[i % 10]

    loader = DataLoader(Counting(), batch_size=5)
    with pytest.raises(fishsym.errors.MemoryBudgetError, match="max_inputs"):
        fishsym.diagonal_fisher(
            model,
            loader,
            "categorical",
            generator=torch.Generator().manual_seed(0),
            max_memory=10**8,
        )
    assert len(read) == 5
