"""Regression tests of issue 9 shared by every numeric entry point: the user's model is
never modified, tied weights are exact, outputs must be natural parameters, stochastic
models and oversized requests are refused up front, and awkward inputs give the right
result or a FishsymError naming the argument.

Every test here failed on the tree before the fix (the issue's reproductions).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import fishsym
from fishsym import montecarlo, reference
from fishsym.errors import (
    ArgumentTypeError,
    FishsymError,
    InvalidArgumentError,
    MemoryBudgetError,
    ShapeError,
    UnsupportedModelError,
)

#: float64 agreement of two exact routes to the same derivatives (fast vs reference)
RTOL = 1e-10


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def tied_mlp():
    torch.manual_seed(0)
    lin = nn.Linear(5, 5)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), lin, nn.Tanh(), lin, nn.Linear(5, 4)).double()


def bn_cnn():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)
    ).double().eval()


def _calls(x):
    gen = _gen(3)
    return {
        "fisher_variances": lambda m: fishsym.fisher_variances(m, x, "categorical"),
        "fisher_variances_generic": lambda m: fishsym.fisher_variances(
            m, x, "categorical", path="generic"
        ),
        "exact_moments": lambda m: reference.exact_moments(m, x, "categorical"),
        "estimate": lambda m: montecarlo.estimate(m, x, "categorical", 2, 3, gen),
    }


@pytest.mark.parametrize("entry", list(_calls(None)))
@pytest.mark.parametrize("make", [tied_mlp, bn_cnn], ids=["tied", "bn_cnn"])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_no_entry_point_modifies_the_model(entry, make, unchanged):
    """Regression (issue 9.1): functional_call on a module used twice left its weights as
    plain tensors with requires_grad=False."""
    model = make()
    # a user hook, a grad and a frozen parameter: all must survive untouched
    calls = []
    model.register_forward_hook(lambda mod, inp, out: calls.append(1))
    next(model.parameters()).grad = torch.ones_like(next(model.parameters()))
    x = torch.randn(3, 3, dtype=torch.float64, generator=_gen()) if make is tied_mlp else (
        torch.randn(3, 1, 3, 3, dtype=torch.float64, generator=_gen())
    )
    before = unchanged.snapshot(model)
    _calls(x)[entry](model)
    unchanged.check(before, model)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path", ["auto", "generic"])
def test_tied_weights_are_exact_on_the_generic_path(path):
    """``h`` is not affine in a parameter used twice: the second derivative sees both uses.
    The engine (the graph path by default, whose proof must not declare the tied weight a
    structural zero; and the generic path, reverse over reverse) must equal the reference
    (double backward of ℓ)."""
    model = tied_mlp()
    x = torch.randn(3, 3, dtype=torch.float64, generator=_gen(1))
    res = fishsym.fisher_variances(model, x, "categorical", per_sample=True, path=path)
    assert res.path == ("graph" if path == "auto" else "generic")
    exact = reference.exact_moments(model, x, "categorical")
    for name in res.fisher:
        torch.testing.assert_close(res.fisher[name], exact["mean1"][name], rtol=RTOL, atol=1e-14)
        torch.testing.assert_close(res.var1[name], exact["var1"][name], rtol=RTOL, atol=1e-14)
        torch.testing.assert_close(res.var2[name], exact["var2"][name], rtol=RTOL, atol=1e-14)
    assert float(res.var2["2.weight"].abs().max()) > 0  # both uses curve it
    assert res.var2_routes["2.weight"] != "structural zero"


def test_structured_path_refuses_tied_weights():
    with pytest.raises(UnsupportedModelError, match="twice|shared"):
        fishsym.fisher_variances(tied_mlp(), torch.randn(2, 3), "categorical", path="structured")


# --------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("squash", [nn.Softmax(-1), nn.LogSoftmax(-1), nn.Sigmoid()], ids=repr)
@pytest.mark.parametrize("entry", ["fisher_variances", "exact_moments", "estimate"])
def test_final_squashing_module_is_refused(squash, entry):
    """Regression (issue 9.7): probabilities were silently taken as natural parameters."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3), squash).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match="logits"):
        _calls(x)[entry](model)


class _TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits, "hidden": torch.tanh(logits)}


def test_dict_output_needs_a_selector_and_then_gives_the_right_numbers():
    """Regression (issue 9.10): a dict output raised AttributeError."""
    net = _TupleNet()
    x = torch.randn(3, 3, dtype=torch.float64, generator=_gen(2))
    with pytest.raises(UnsupportedModelError, match="output="):
        fishsym.fisher_variances(net, x, "categorical")
    with pytest.raises(UnsupportedModelError, match="output="):
        reference.exact_moments(net, x, "categorical")
    pick = lambda out: out["logits"]  # noqa: E731
    res = fishsym.fisher_variances(net, x, "categorical", output=pick, per_sample=True)
    plain = fishsym.fisher_variances(net.body, x, "categorical", per_sample=True)
    exact = reference.exact_moments(net, x, "categorical", output=pick)
    mc = montecarlo.estimate(net, x, "categorical", 1, 4, _gen(), output=pick)
    assert set(mc.mean1) == set(exact["mean1"])
    for name, ref in plain.fisher.items():
        torch.testing.assert_close(res.fisher["body." + name], ref, rtol=RTOL, atol=0)
        torch.testing.assert_close(exact["var2"]["body." + name], plain.var2[name],
                                   rtol=RTOL, atol=1e-15)


def test_one_dimensional_input_gets_a_shape_error_not_a_family_error():
    """Regression (issue 9.10): a 1-D input was read as C = 1 ("C must be ≥ 2")."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    for call in _calls(torch.randn(3, dtype=torch.float64)).values():
        with pytest.raises(ShapeError, match="unsqueeze"):
            call(model)


def test_no_trainable_parameter_is_a_clear_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    model.requires_grad_(False)
    for call in _calls(torch.randn(2, 3, dtype=torch.float64)).values():
        with pytest.raises(UnsupportedModelError, match="requires_grad"):
            call(model)


class _TokenNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 3)
        self.head = nn.Linear(3, 4)

    def forward(self, ids):
        return self.head(torch.tanh(self.emb(ids).mean(1)))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_integer_token_ids_stay_integer():
    """Regression (issue 9.10): token ids were cast to float and nn.Embedding failed."""
    net = _TokenNet().double()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    res = fishsym.fisher_variances(net, ids, "categorical", per_sample=True)
    exact = reference.exact_moments(net, ids, "categorical")
    for name in res.fisher:
        torch.testing.assert_close(res.fisher[name], exact["mean1"][name], rtol=RTOL, atol=1e-15)
        torch.testing.assert_close(res.var2[name], exact["var2"][name], rtol=RTOL, atol=1e-15)
    montecarlo.estimate(net, ids, "categorical", 1, 3, _gen())


def test_nested_list_inputs_keep_float64_precision():
    """Regression (issue 9.10): lists went through float32 (1.8e−7 error in float64)."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.tensor([[0.1, 0.2, 1 / 3], [1.1, -0.7, 2 / 3]], dtype=torch.float64)
    as_tensor = fishsym.fisher_variances(model, x, "categorical")
    as_list = fishsym.fisher_variances(model, x.tolist(), "categorical")
    as_array = fishsym.fisher_variances(model, x.numpy(), "categorical")
    for name in as_tensor.fisher:
        assert torch.equal(as_list.fisher[name], as_tensor.fisher[name])
        assert torch.equal(as_array.fisher[name], as_tensor.fisher[name])


# --------------------------------------------------------------------------- stochastic
@pytest.mark.parametrize("entry", ["exact_moments", "estimate"])
def test_training_mode_batchnorm_and_dropout_are_refused_before_running(entry, unchanged):
    """Regression (issue 9.8): exact_moments / estimate ran training-mode BatchNorm (raw
    functorch error) and changed its running statistics."""
    for model in (
        nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).double(),
        nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 3)).double(),
    ):
        model.train()
        before = unchanged.snapshot(model)
        with pytest.raises(UnsupportedModelError, match="eval"):
            _calls(torch.randn(4, 3, dtype=torch.float64))[entry](model)
        unchanged.check(before, model)


# --------------------------------------------------------------------------- memory
def test_per_sample_request_over_memory_is_refused_with_what_fits():
    """Regression (issue 9.9): per_sample=True on MNIST-4L with 2,000 inputs (~31 GB)
    ended in a raw allocator error."""
    model = fishsym.nets.mnist_mlp()
    x = torch.zeros(2000, 784)
    with pytest.raises(MemoryBudgetError, match=r"At most [\d,]+ inputs fit"):
        fishsym.fisher_variances(model, x, "categorical", per_sample=True, max_memory=2e9)
    assert issubclass(MemoryBudgetError, FishsymError)


def test_exact_moments_over_memory_is_refused_with_what_fits():
    """Regression (issue 9.9): exact_moments on all MNIST-4L parameters passed 7 GB."""
    model = fishsym.nets.mnist_mlp()
    with pytest.raises(MemoryBudgetError, match=r"At most [\d,]+ entries fit"):
        reference.exact_moments(model, torch.zeros(64, 784), "categorical", max_memory=2e9)


def test_monte_carlo_over_memory_is_refused():
    model = nn.Sequential(nn.Linear(3, 50)).double()
    with pytest.raises(MemoryBudgetError, match="replicates"):
        montecarlo.estimate(model, torch.zeros(4, 3), "categorical", 1, 10**6, _gen(),
                            max_memory=1e8)


# --------------------------------------------------------------------------- arguments
def test_bad_arguments_are_fishsym_errors_naming_the_argument():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    gen = _gen()
    cases = [
        (lambda: montecarlo.estimate(model, x, "categorical", None, 3, gen), "n_labels"),
        (lambda: montecarlo.estimate(model, x, "categorical", 1.5, 3, gen), "n_labels"),
        (lambda: montecarlo.estimate(model, x, "categorical", 1, 3, gen, dtype=torch.int64),
         "dtype"),
        (lambda: fishsym.fisher_variances(model, x, "categorical", dtype=torch.int64), "dtype"),
        (lambda: fishsym.fisher_variances(model, x, "categorical", chunk_size=True),
         "chunk_size"),
        (lambda: fishsym.fisher_variances(model, x, "categorical", path="fast"), "path"),
        (lambda: fishsym.fisher_variances(model, x, 3), "family"),
        (lambda: fishsym.fisher_variances(model, x, "categorical", output=3), "output"),
        (lambda: fishsym.fisher_variances(model, [["a", "b", "c"]], "categorical"), "inputs"),
        (lambda: fishsym.fisher_variances(model, x, "categorical", progress="yes"), "progress"),
    ]
    for call, argname in cases:
        with pytest.raises(FishsymError, match=argname):
            call()
    with pytest.raises(ShapeError, match="independent_bernoulli"):
        fishsym.fisher_variances(model, x, "bernoulli")


def test_one_label_per_estimate_is_allowed_and_right():
    """Regression (issue 9.12): n_labels=1 (BackPACK's and laplace-torch's default) was
    refused. The replicates of one-label estimates have the single-label variance."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(2, 3, dtype=torch.float64, generator=_gen(5))
    mc = montecarlo.estimate(model, x, "categorical", 1, 4000, _gen(6))
    exact = reference.exact_moments(model, x, "categorical")
    report = montecarlo.compare(mc, exact)
    assert report.passed, report
    assert mc.n_labels == 1


def test_invalid_count_and_probability_helpers():
    from fishsym.common import check_count, check_probability

    with pytest.raises(ArgumentTypeError):
        check_count(True, "n")
    with pytest.raises(InvalidArgumentError):
        check_count(0, "n")
    assert check_count(3.0, "n") == 3
    import numpy as np

    assert check_probability(np.float32(0.5), "prob") == 0.5
    with pytest.raises(ArgumentTypeError):
        check_probability(True, "prob")
    assert math.isclose(check_probability(0.95, "prob"), 0.95)
