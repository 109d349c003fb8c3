"""Heavy tier (``-m montecarlo``): MNIST-4L trained on the bundled digits (2 and 10 epochs).

* exact enumeration (``exact_moments``) agrees with the engine to 1e-10 relative on
  sampled entries of every layer;
* Monte Carlo agrees with both, for both estimators and every layer, at false-alarm
  rate :data:`FALSE_ALARM` (Bonferroni over all z-scores of a report);
* the last layer's ``Î₂`` has zero variance, to float32 rounding.

Run with ``python -m pytest -m montecarlo tests/montecarlo -q -s`` to see the reports.
"""

from __future__ import annotations

import pytest
import torch

import fishsym
from fishsym.data import mnist_tensors
from fishsym.montecarlo import compare, estimate
from fishsym.nets import mnist_mlp, train_classifier
from fishsym.reference import exact_moments, sample_params

pytestmark = pytest.mark.montecarlo

#: see tests/reference/test_exact_moments.py: relative to |value| + (I + √V) for the
#: means, |value| + (I + √V)² for the variances
RTOL = 1e-10
#: probability that a correct implementation fails one compare() assertion
FALSE_ALARM = 1e-3
N_INPUTS = 8
ENTRIES_PER_LAYER = 50
N_LABELS = 64
REPLICATES = 1000


@pytest.fixture(scope="module", params=[2, 10], ids=["2-epochs", "10-epochs"])
def trained(request):
    """2 epochs (test accuracy ≈ 78 %, median max-probability ≈ 0.55) and 10 epochs
    (≈ 92 %, ≈ 0.98: confident outputs, where rare labels carry Î₁'s variance)."""
    x_train, y_train, x_test, _ = mnist_tensors(8000, 2000)
    net = mnist_mlp(generator=torch.Generator().manual_seed(0))
    train_classifier(
        net, x_train, y_train, epochs=request.param, generator=torch.Generator().manual_seed(1)
    )
    inputs = x_test[:N_INPUTS]
    params = sample_params(net, ENTRIES_PER_LAYER, torch.Generator().manual_seed(2))
    engine = fishsym.fisher_variances(
        net, inputs, "categorical", per_sample=True, bounds=False, dtype=torch.float64
    )
    reference = exact_moments(net, inputs, "categorical", params=params)
    return net, inputs, params, engine, reference


def test_enumeration_matches_engine(trained):
    _, _, params, engine, reference = trained
    checked = 0
    for key, table, var_table, power in (
        ("mean1", engine.fisher, engine.var1, 1),
        ("mean2", engine.fisher, engine.var2, 1),
        ("var1", engine.var1, engine.var1, 2),
        ("var2", engine.var2, engine.var2, 2),
    ):
        for name, idx in params.items():

            def pick(t, idx=idx):
                return t.reshape(N_INPUTS, -1)[:, idx]

            expect = pick(table[name])
            scale = (
                pick(engine.fisher[name]).abs() + pick(var_table[name]).clamp(min=0).sqrt()
            ) ** power
            got = reference[key][name]
            bad = (got - expect).abs() > RTOL * (expect.abs() + scale)
            assert not bool(bad.any()), (key, name, got[bad][:3], expect[bad][:3])
            checked += got.numel()
    groups = {name.split(".")[0] for name in params}
    assert groups == {"0", "2", "4", "6"}
    print(
        f"\nenumeration == engine on {checked} sampled values (4 layers × "
        f"{ENTRIES_PER_LAYER} entries × {N_INPUTS} inputs × 4 moments), rtol {RTOL:g}"
    )


def test_monte_carlo_matches_exact(trained):
    net, inputs, params, engine, reference = trained
    mc = estimate(
        net,
        inputs,
        "categorical",
        N_LABELS,
        REPLICATES,
        torch.Generator().manual_seed(3),
        params=params,
    )
    for exact, label in ((reference, "exact_moments"), (engine, "fisher_variances")):
        report = compare(mc, exact, false_alarm=FALSE_ALARM)
        print(f"\n[MNIST-4L; MC float32 vs {label}; {mc.seconds:.1f} s]\n{report}")
        assert report.passed
        for g in report.groups:
            if g.group == "6" and g.estimator == "neg_hessian":
                assert g.n_zero == g.n_values and g.zero_violations == 0
            else:
                assert g.n_tested > 0, (g.group, g.estimator)


def test_monte_carlo_all_entries_squared_score(trained):
    """Î₁ for all 242,762 parameters of 2 inputs against the engine."""
    net, inputs, _, engine, _ = trained
    mc = estimate(
        net,
        inputs[:2],
        "categorical",
        N_LABELS,
        400,
        torch.Generator().manual_seed(4),
        estimators=("squared_score",),
    )
    sub = _FirstInputs(engine, 2)
    report = compare(mc, sub, false_alarm=FALSE_ALARM)
    print(f"\n[MNIST-4L Î₁, all parameters, 2 inputs; {mc.seconds:.1f} s]\n{report}")
    assert report.passed
    assert all(g.n_tested > 0 for g in report.groups)


class _FirstInputs:
    """A per-sample FisherVariances restricted to its first n inputs."""

    def __init__(self, fv, n):
        self.per_sample = True
        self.fisher = {k: v[:n] for k, v in fv.fisher.items()}
        self.var1 = {k: v[:n] for k, v in fv.var1.items()}
        self.var2 = {k: v[:n] for k, v in fv.var2.items()}
