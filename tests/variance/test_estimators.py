"""The estimators of docs/theory.md §9, exactly: ``fisher_variances(estimators=...)`` against
brute force — plain autograd on the written-out estimator for **every** label combination
and **every** Rademacher sign vector (``2^C`` per input, ``2^{nC}`` for the batch probe),
float64 — and against Monte Carlo within its stated confidence."""

import itertools
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

import fishsym
from fishsym.montecarlo.compare import bonferroni_threshold
from fishsym.variance.estimators import DATA_LABEL_ESTIMATORS, ESTIMATOR_NAMES

#: the estimators with labels from the model or probes (no data labels needed)
MODEL_ESTIMATORS = tuple(e for e in ESTIMATOR_NAMES if e not in DATA_LABEL_ESTIMATORS)

#: both routes are exact float64 autodiff; they differ by rounding only
RTOL = 1e-10
#: family-wise false-alarm rate of the Monte Carlo test (seeded: it either always passes or
#: always fails; a correct implementation fails with this probability)
MC_ALPHA = 1e-3


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def mlp(widths=(3, 4, 3)):
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers[:-1]).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=_gen(p.numel()), dtype=torch.float64))
    return model


def cnn():
    model = nn.Sequential(nn.Conv1d(1, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(4, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=_gen(p.numel() + 7), dtype=torch.float64))
    return model


MODELS = {
    "mlp": (mlp, lambda: torch.randn(2, 3, generator=_gen(1), dtype=torch.float64)),
    "cnn": (cnn, lambda: torch.randn(2, 1, 3, generator=_gen(2), dtype=torch.float64)),
}


# --------------------------------------------------------------------------- brute force
def _grad_of(model, scalar):
    """∇_θ scalar(h(θ)) as one flat vector (plain autograd on a functional call)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p):
        return scalar(lambda x: functional_call(model, p, (x,)))

    g = grad(f)(params)
    return torch.cat([g[k].reshape(-1) for k in params])


def brute_force(model, x):
    """Exact mean and variance of each estimator (one draw), by enumeration."""
    n = x.shape[0]
    with torch.no_grad():
        p = torch.softmax(model(x), -1)  # p̄, detached
    C = p.shape[1]
    signs = [torch.tensor(s, dtype=torch.float64) for s in itertools.product([-1, 1], repeat=C)]
    out = {}

    # squared score, one model label per input: per-input moments, independent inputs
    per_mean, per_var = [], []
    for i in range(n):
        sq = []
        for y in range(C):
            g = _grad_of(model, lambda h, i=i, y=y: torch.log_softmax(h(x[i : i + 1]), -1)[0, y])
            sq.append(g * g)
        sq = torch.stack(sq)
        m = (p[i, :, None] * sq).sum(0)
        per_mean.append(m)
        per_var.append((p[i, :, None] * sq * sq).sum(0) - m * m)
    fisher = torch.stack(per_mean).mean(0)
    out["squared_score"] = (fisher, torch.stack(per_var).sum(0) / n**2)

    # Hutchinson, one probe per input: ψ_i = Σ_y ξ_y √p̄_y log p_y
    def psi(h, i, xi):
        return (xi * p[i].sqrt() * torch.log_softmax(h(x[i : i + 1]), -1)[0]).sum()

    per_mean, per_var = [], []
    for i in range(n):
        sq = torch.stack([_grad_of(model, lambda h, i=i, s=s: psi(h, i, s)) ** 2 for s in signs])
        per_mean.append(sq.mean(0))
        per_var.append(sq.pow(2).mean(0) - sq.mean(0) ** 2)
    out["hutchinson"] = (torch.stack(per_mean).mean(0), torch.stack(per_var).sum(0) / n**2)

    # Hutchinson, one probe for the batch: every sign vector of all n·C entries
    vals = []
    for combo in itertools.product(signs, repeat=n):
        g = _grad_of(model, lambda h, c=combo: sum(psi(h, i, c[i]) for i in range(n)))
        vals.append(g * g / n)
    vals = torch.stack(vals)
    out["hutchinson_batch"] = (vals.mean(0), vals.pow(2).mean(0) - vals.mean(0) ** 2)

    # batched squared score: every label combination, weighted by the model
    vals, weights = [], []
    for ys in itertools.product(range(C), repeat=n):
        g = _grad_of(
            model,
            lambda h, ys=ys: sum(
                torch.log_softmax(h(x[i : i + 1]), -1)[0, ys[i]] for i in range(n)
            ),
        )
        vals.append(g * g / n)
        weights.append(math.prod(float(p[i, ys[i]]) for i in range(n)))
    vals, w = torch.stack(vals), torch.tensor(weights, dtype=torch.float64)[:, None]
    mean = (w * vals).sum(0)
    out["batched_score"] = (mean, (w * vals * vals).sum(0) - mean * mean)

    # the merging recipe: the gradient of Σ_{n,y} √p̄ log p, squared (deterministic)
    ones = torch.ones(C, dtype=torch.float64)
    g = _grad_of(model, lambda h: sum(psi(h, i, ones) for i in range(n)))
    out["merging_recipe"] = (g * g / n, torch.zeros_like(g))

    # the argmax ("hard") label: the squared score at the most probable class (deterministic)
    hard = p.argmax(1)
    sq = [
        _grad_of(model, lambda h, i=i: torch.log_softmax(h(x[i : i + 1]), -1)[0, hard[i]]) ** 2
        for i in range(n)
    ]
    out["argmax_label"] = (torch.stack(sq).mean(0), torch.zeros_like(g))
    return fisher, out


def _flat(d):
    return torch.cat([t.reshape(-1) for t in d.values()])


@pytest.mark.parametrize("case", list(MODELS))
def test_every_estimator_equals_enumeration_of_labels_and_probes(case):
    make, inputs = MODELS[case]
    model, x = make(), inputs()
    res = fishsym.fisher_variances(model, x, "categorical", estimators=MODEL_ESTIMATORS)
    fisher, want = brute_force(model, x)
    torch.testing.assert_close(_flat(res.fisher), fisher, rtol=RTOL, atol=1e-14)
    for est, (mean, var) in want.items():
        got_mean, got_var = _flat(res.mean[est]), _flat(res.var[est])
        scale_m, scale_v = float(mean.abs().max()), float(var.abs().max())
        assert float((got_mean - mean).abs().max()) <= RTOL * scale_m, est
        assert float((got_var - var).abs().max()) <= RTOL * max(scale_v, scale_m**2), est
        torch.testing.assert_close(_flat(res.bias[est]), got_mean - fisher, rtol=RTOL, atol=1e-14)
    # Î₂ as an estimate of the mean Fisher: V₂ of each input over n²
    n = x.shape[0]
    for name in res.var2:
        torch.testing.assert_close(res.var["neg_hessian"][name], res.var2[name] / n)
    # the recipe and the argmax label are biased; every other estimator is unbiased
    assert float(_flat(res.bias["merging_recipe"]).abs().max()) > 1e-3
    assert float(_flat(res.bias["argmax_label"]).abs().max()) > 1e-3
    assert float(_flat(res.bias["hutchinson_batch"]).abs().max()) <= 1e-14


def test_hutchinson_is_never_worse_than_twice_the_squared_fisher():
    """Var Î₃ = 2 Σ_{j≠k} a_j² a_k² ≤ 2 I² per input (docs/theory.md §9), and a head with
    one natural parameter makes the probe irrelevant: zero variance."""
    model, x = mlp(), MODELS["mlp"][1]()
    res = fishsym.fisher_variances(
        model, x, "categorical", estimators=("hutchinson",), per_sample=True
    )
    for name in res.fisher:
        per_input_var = res.var["hutchinson"][name] * x.shape[0]
        bound = 2 * (res.fisher[name] ** 2).mean(0)
        assert bool((per_input_var <= bound * (1 + 1e-12)).all())
    scalar = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)).double()
    one = fishsym.fisher_variances(scalar, x, "bernoulli", estimators=("hutchinson",))
    assert all(float(v.abs().max()) == 0 for v in one.var["hutchinson"].values())


@pytest.mark.parametrize("family, d", [("gaussian", 2), ("poisson", 1), ("categorical_minimal", 2)])
def test_other_families_by_enumerating_probes(family, d):
    """Hutchinson with the family's factor R (R Rᵀ = I): enumeration of every probe on
    ψ = ξᵀ R̄ᵀ h written out with the kernel's own root (identity for the unit Gaussian)."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, d)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.7)
    x = MODELS["mlp"][1]()
    res = fishsym.fisher_variances(model, x, family, estimators=("hutchinson", "hutchinson_batch"))
    kernel = res.kernel
    with torch.no_grad():
        h = model(x)
        eye = torch.eye(d, dtype=torch.float64).expand(x.shape[0], d, d)
        rt = kernel.root_t(h, eye)  # [n, r, d]: Rᵀ e_c
    r = rt.shape[1]
    signs = [torch.tensor(s, dtype=torch.float64) for s in itertools.product([-1, 1], repeat=r)]
    n = x.shape[0]
    per_mean, per_var = [], []
    for i in range(n):
        sq = torch.stack(
            [
                _grad_of(model, lambda f, i=i, s=s: s @ rt[i] @ f(x[i : i + 1])[0]) ** 2
                for s in signs
            ]
        )
        per_mean.append(sq.mean(0))
        per_var.append(sq.pow(2).mean(0) - sq.mean(0) ** 2)
    mean, var = torch.stack(per_mean).mean(0), torch.stack(per_var).sum(0) / n**2
    scale = float(mean.abs().max())
    assert float((_flat(res.mean["hutchinson"]) - mean).abs().max()) <= RTOL * scale
    assert float((_flat(res.var["hutchinson"]) - var).abs().max()) <= RTOL * scale**2


def test_monte_carlo_agrees():
    """Probes drawn with a seeded generator: the sample mean of each estimate lies within
    its exact standard error (Bonferroni over entries and estimators)."""
    model, x = cnn(), MODELS["cnn"][1]()
    res = fishsym.fisher_variances(
        model, x, "categorical", estimators=("hutchinson", "hutchinson_batch", "batched_score")
    )
    gen, R, n = _gen(5), 1500, x.shape[0]
    params = {k: v.detach() for k, v in model.named_parameters()}
    with torch.no_grad():
        p = torch.softmax(model(x), -1)

    def grads(weights):  # ∇ Σ_{n,y} weights[n, y] log p_y(x_n): one backward pass
        def f(q):
            return (weights * torch.log_softmax(functional_call(model, q, (x,)), -1)).sum()

        g = grad(f)(params)
        return torch.cat([g[k].reshape(-1) for k in params])

    draws = {"hutchinson": [], "hutchinson_batch": [], "batched_score": []}
    for _ in range(R):
        xi = torch.randint(0, 2, p.shape, generator=gen, dtype=torch.float64) * 2 - 1
        per = torch.stack(
            [
                grads(
                    torch.zeros_like(p).index_copy(0, torch.tensor([i]), (xi * p.sqrt())[i : i + 1])
                )
                for i in range(n)
            ]
        )
        draws["hutchinson"].append((per**2).mean(0))
        draws["hutchinson_batch"].append(grads(xi * p.sqrt()) ** 2 / n)
        y = torch.multinomial(p, 1, generator=gen)[:, 0]
        draws["batched_score"].append(grads(nn.functional.one_hot(y, 3).double()) ** 2 / n)
    threshold = bonferroni_threshold(3 * len(_flat(res.fisher)), MC_ALPHA)
    for est, values in draws.items():
        values = torch.stack(values)
        se = (_flat(res.var[est]) / R).sqrt()
        z = (values.mean(0) - _flat(res.mean[est])) / se
        assert float(z.abs().max()) <= threshold, est


def test_bad_estimator_names():
    model, x = mlp(), MODELS["mlp"][1]()
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="hutchinson"):
        fishsym.fisher_variances(model, x, "categorical", estimators=("hutchinsn",))
    with pytest.raises(fishsym.errors.ArgumentTypeError):
        fishsym.fisher_variances(model, x, "categorical", estimators=3)


@pytest.mark.parametrize("case", list(MODELS))
def test_data_label_estimators_equal_autograd(case):
    """The empirical Fisher and the batched score with fixed data labels: deterministic,
    computed by plain autograd on the written-out estimators."""
    make, inputs = MODELS[case]
    model, x = make(), inputs()
    labels = torch.tensor([2, 0])
    res = fishsym.fisher_variances(
        model,
        x,
        "categorical",
        labels=labels,
        estimators=("squared_score", "empirical", "batched_score_data"),
    )
    n = x.shape[0]
    per = [
        _grad_of(model, lambda h, i=i: torch.log_softmax(h(x[i : i + 1]), -1)[0, labels[i]])
        for i in range(n)
    ]
    empirical = torch.stack([g * g for g in per]).mean(0)
    batched = sum(per) ** 2 / n
    for est, want in (("empirical", empirical), ("batched_score_data", batched)):
        got = _flat(res.mean[est])
        assert float((got - want).abs().max()) <= RTOL * float(want.abs().max()), est
        assert float(_flat(res.var[est]).abs().max()) == 0
        torch.testing.assert_close(_flat(res.bias[est]), got - _flat(res.fisher))
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="labels="):
        fishsym.fisher_variances(model, x, "categorical", estimators=("empirical",))
    with pytest.raises(fishsym.errors.ShapeError, match="one data label per input"):
        fishsym.fisher_variances(
            model, x, "categorical", labels=torch.tensor([1]), estimators=("empirical",)
        )


@pytest.mark.parametrize("family, d", [("bernoulli", 1), ("binomial", 1), ("categorical", 3)])
def test_argmax_label_on_other_families_and_tokens(family, d):
    """The squared score at the most probable label, against autograd at that label: a
    finite support enumerated (Bernoulli, binomial), and per position for an output with a
    factor axis (docs/theory.md §11)."""
    from fishsym import kernels

    torch.manual_seed(3)
    tokens = family == "categorical"
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2 * d if tokens else d))
    model = model.double()
    x = torch.randn(4, 3, generator=_gen(3), dtype=torch.float64)
    out = (lambda o: o.reshape(o.shape[0], 2, d)) if tokens else None
    res = fishsym.fisher_variances(model, x, family, estimators=("argmax_label",), output=out)
    kernel = res.kernel if hasattr(res, "kernel") else kernels.for_output(family, d)
    want = 0
    for i in range(x.shape[0]):
        h = model(x[i : i + 1]).reshape(-1, d) if tokens else model(x[i : i + 1])
        flat = h.reshape(1, -1).detach()
        best = None
        if tokens:
            best = h.detach().argmax(-1)  # one label per position

            def loss(hh, best=best):
                return torch.log_softmax(hh.reshape(-1, d), -1)[torch.arange(2), best].sum()
        else:
            support = kernel.support_labels()
            logp = torch.stack([kernel.log_prob(y[None], flat)[0] for y in support])
            best = support[logp.argmax()]

            def loss(hh, best=best):
                return kernel.log_prob(best[None], hh.reshape(1, -1))[0]

        g = _grad_of(model, lambda f, i=i, loss=loss: loss(f(x[i : i + 1])))
        want = want + g * g / x.shape[0]
    torch.testing.assert_close(_flat(res.mean["argmax_label"]), want, rtol=RTOL, atol=1e-14)
    assert float(_flat(res.var["argmax_label"]).abs().max()) == 0.0


def test_argmax_label_needs_a_finite_support_and_the_soft_recipe_is_refused():
    model = mlp()
    x = torch.randn(3, 3, generator=_gen(1), dtype=torch.float64)
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="finite support"):
        fishsym.fisher_variances(model, x, "gaussian", estimators=("argmax_label",))
    with pytest.raises(fishsym.errors.InvalidArgumentError, match="identically zero"):
        fishsym.fisher_variances(model, x, "categorical", estimators=("soft_recipe",))


# --------------------------------------------------------------------------- mini-batches
def _minibatch_brute_force(model, x, b, reduction, labels=None):
    """Exact mean and variance of (1/B) Σ_β (c Σ_{n∈β} ∂ℓ)² by enumerating every label
    of every input (or the data labels)."""
    n = x.shape[0]
    with torch.no_grad():
        p = torch.softmax(model(x), -1)
    C = p.shape[1]
    batches = [range(s, min(n, s + b)) for s in range(0, n, b)]

    def value(ys):
        total = 0
        for rows in batches:
            c = 1 / len(rows) if reduction == "mean" else 1.0
            g = _grad_of(model, lambda h, rows=rows: sum(
                torch.log_softmax(h(x[i : i + 1]), -1)[0, ys[i]] for i in rows))  # fmt: skip
            total = total + (c * g) ** 2
        return total / len(batches)

    if labels is not None:
        v = value(labels.tolist())
        return v, torch.zeros_like(v)
    vals, weights = [], []
    for ys in itertools.product(range(C), repeat=n):
        vals.append(value(ys))
        weights.append(math.prod(float(p[i, ys[i]]) for i in range(n)))
    vals, w = torch.stack(vals), torch.tensor(weights, dtype=torch.float64)[:, None]
    mean = (w * vals).sum(0)
    return mean, (w * vals * vals).sum(0) - mean * mean


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("data", [False, True])
def test_minibatch_squared_gradient_against_enumeration(reduction, data):
    model = mlp((3, 2, 3))
    x = torch.randn(5, 3, generator=_gen(4), dtype=torch.float64)  # batches of 2, 2, 1
    labels = torch.tensor([0, 2, 1, 1, 0]) if data else None
    res = fishsym.minibatch_fisher(model, x, "categorical", 2, reduction=reduction, labels=labels)
    mean, var = _minibatch_brute_force(model, x, 2, reduction, labels)
    assert res.batch_sizes == [2, 2, 1]
    torch.testing.assert_close(_flat(res.mean), mean, rtol=RTOL, atol=1e-14)
    scale = float(mean.abs().max()) ** 2
    assert float((_flat(res.var) - var).abs().max()) <= RTOL * scale
    full = fishsym.fisher_variances(model, x, "categorical", var2=False, bounds=False)
    torch.testing.assert_close(_flat(res.fisher), _flat(full.fisher), rtol=RTOL, atol=1e-15)
    torch.testing.assert_close(_flat(res.bias), _flat(res.mean) - _flat(res.fisher))


def test_minibatch_mean_loss_is_the_fisher_over_b():
    """Equal batches, model labels: E[Ĝ] = F̄/b (mean loss), b·F̄ (sum loss), exactly; and a
    Monte Carlo estimate of Ĝ agrees within its standard error."""
    model = mlp((3, 4, 3))
    x = torch.randn(12, 3, generator=_gen(5), dtype=torch.float64)
    for reduction, factor in (("mean", 1 / 4), ("sum", 4.0)):
        res = fishsym.minibatch_fisher(model, x, "categorical", 4, reduction=reduction)
        assert res.scale == factor
        torch.testing.assert_close(_flat(res.mean), factor * _flat(res.fisher), rtol=1e-12, atol=0)
    res = fishsym.minibatch_fisher(model, x, "categorical", 4, reduction="mean")
    with torch.no_grad():
        p = torch.softmax(model(x), -1)
    # every input's score at every label, then sampled label vectors combine them
    def score(i, y):
        return _grad_of(model, lambda h: torch.log_softmax(h(x[i : i + 1]), -1)[0, y])

    scores = torch.stack([torch.stack([score(i, y) for y in range(3)]) for i in range(12)])
    draws = 20000
    ys = torch.multinomial(p, draws, replacement=True, generator=_gen(6)).T  # [M, n]
    picked = scores[torch.arange(12), ys]  # [M, n, P]
    g = (picked.reshape(draws, 3, 4, -1).sum(2) / 4) ** 2  # [M, batch, P]
    values = g.mean(1)
    mc, se = values.mean(0), values.std(0) / math.sqrt(draws)
    z = bonferroni_threshold(mc.numel(), 0.001)
    assert bool(((mc - _flat(res.mean)).abs() <= z * se).all())
    # the exact variance against the sample variance, within its own standard error
    # √((m₄ − s⁴)/M) from the sample's fourth central moment
    centred = values - mc
    s2 = centred.pow(2).mean(0)
    se2 = ((centred.pow(4).mean(0) - s2 * s2) / draws).sqrt()
    assert bool(((s2 - _flat(res.var)).abs() <= z * se2).all())


def test_minibatch_bad_arguments():
    model = mlp()
    x = torch.randn(4, 3, generator=_gen(1), dtype=torch.float64)
    with pytest.raises(fishsym.errors.InvalidArgumentError):
        fishsym.minibatch_fisher(model, x, "categorical", 0)
    with pytest.raises(fishsym.errors.InvalidArgumentError):
        fishsym.minibatch_fisher(model, x, "categorical", 2, reduction="avg")
    with pytest.raises(fishsym.errors.ShapeError):
        fishsym.minibatch_fisher(model, x, "categorical", 2, labels=torch.zeros(3))
