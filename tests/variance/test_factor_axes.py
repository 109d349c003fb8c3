"""Outputs with factor axes (tokens) on every entry point (docs/theory.md §11; issue 24
item 1).

Two oracles, each float64 and each independent of the product kernel's closed forms:

* **per position** — the one-factor family at each position alone (``output=lambda o:
  o[:, t]``), combined by the algebra of §11 in this file: ``I = Σ_t I_t``,
  ``V₂ = Σ_t V₂,t``, the joint label's ``V₁ = Σ_t V₁,t + 4 Σ_{s<t} I_s I_t``, the
  per-position squared score's ``Σ_t V₁,t``;
* **label tuples** — :func:`fishsym.reference.exact_moments`, which enumerates all ``V^T``
  label tuples with autograd per tuple;

and Monte Carlo with standard-error tolerances: :func:`fishsym.montecarlo.estimate`, and a
per-token simulation written here (labels from ``torch.distributions``, per-token
gradients by ``torch.func``).
"""

from __future__ import annotations

import math
import os
import tempfile

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import fishsym
from fishsym.errors import ArgumentTypeError, ShapeError
from fishsym.kernels import ProductKernel
from fishsym.montecarlo import estimate

#: float64 agreement of two exact routes (sums of a few hundred terms)
RTOL, ATOL = 1e-10, 1e-14
#: |z| of a Monte Carlo mean or variance beyond which an exact value is wrong (a few
#: hundred entries are tested at once)
Z_MAX = 5.0
#: coverage tests: how many standard errors the mean coverage may sit from 95 %
COVERAGE_SIGMAS = 4.0


def _gen(seed):
    return torch.Generator().manual_seed(seed)


class TinyLM(nn.Module):
    """A causal toy language model: token and position embeddings, a prefix mean (each
    position sees the tokens up to it), a tanh mixing layer and a head per position;
    logits ``[n, T, V]``. The embedding rows enter several positions, so the joint
    label's cross terms matter."""

    def __init__(self, vocab=4, tokens=3, width=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(0.5 * torch.randn(tokens, width))
        self.mix = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids):
        e = self.emb(ids) + self.pos[: ids.shape[1]]
        steps = torch.arange(1, ids.shape[1] + 1, dtype=e.dtype, device=e.device)
        prefix = e.cumsum(1) / steps[:, None]
        return self.head(torch.tanh(self.mix(prefix)))


def _model(vocab=4, tokens=3, seed=0, scale=1.5):
    torch.manual_seed(seed)
    model = TinyLM(vocab, tokens).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def _ids(n=5, vocab=4, tokens=3, seed=1):
    return torch.randint(0, vocab, (n, tokens), generator=_gen(seed))


def _per_position(model, ids, mask=None):
    """Per input and position, ``I_t``, ``V₁,t``, ``V₂,t`` of the one-factor family alone
    (``[T, n, ...]`` per parameter), zeroed at masked positions."""
    T = ids.shape[1]
    out = {"fisher": [], "var1": [], "var2": []}
    for t in range(T):
        res = fishsym.fisher_variances(
            model, ids, "categorical", output=lambda o, t=t: o[:, t], per_sample=True
        )
        for key in out:
            values = getattr(res, key)
            if mask is not None:
                keep = mask[:, t].double()
                values = {n: v * keep.reshape(-1, *[1] * (v.dim() - 1)) for n, v in values.items()}
            out[key].append(values)
    return out


def _joint_from_positions(parts):
    """``(I, V₁ joint, V₂, Σ_t V₁,t)`` per input from the per-position values (§11)."""
    names = parts["fisher"][0]
    fisher = {n: sum(p[n] for p in parts["fisher"]) for n in names}
    var2 = {n: sum(p[n] for p in parts["var2"]) for n in names}
    per_var1 = {n: sum(p[n] for p in parts["var1"]) for n in names}
    T = len(parts["fisher"])
    cross = {
        n: 4
        * sum(parts["fisher"][s][n] * parts["fisher"][t][n] for t in range(T) for s in range(t))
        for n in names
    }
    var1 = {n: per_var1[n] + cross[n] for n in names}
    return fisher, var1, var2, per_var1


def _close(a, b, what):
    for n in b:
        torch.testing.assert_close(a[n], b[n], rtol=RTOL, atol=ATOL, msg=f"{what} {n}")


@pytest.mark.parametrize("path", ["auto", "graph", "generic"])
def test_fisher_var1_var2_of_token_outputs(path, unchanged):
    model, ids = _model(), _ids()
    before = unchanged.snapshot(model)
    res = fishsym.fisher_variances(model, ids, "categorical", path=path, per_sample=True)
    unchanged.check(before, model)
    assert isinstance(res.kernel, ProductKernel) and res.kernel.factor_shape == (3,)
    fisher, var1, var2, _ = _joint_from_positions(_per_position(model, ids))
    _close(res.fisher, fisher, "fisher")
    _close(res.var1, var1, "V₁ (joint label)")
    _close(res.var2, var2, "V₂")
    # the label-tuple oracle: all 4³ = 64 tuples, autograd per tuple
    exact = fishsym.reference.exact_moments(model, ids, "categorical")
    assert "64 labels" in exact.rule
    _close(res.fisher, exact["mean1"], "fisher vs tuples")
    _close(res.var1, exact["var1"], "V₁ vs tuples")
    _close(res.var2, exact["var2"], "V₂ vs tuples")
    # the bounds of the product family bracket the joint V₁ and V₂
    for n in res.var1:
        assert bool((res.bounds["squared_score"]["lower"][n] <= res.var1[n] * (1 + 1e-12)).all())
        assert bool((res.var1[n] <= res.bounds["squared_score"]["upper"][n] * (1 + 1e-12)).all())
        assert bool((res.bounds["neg_hessian"]["lower"][n] <= res.var2[n] * (1 + 1e-12)).all())
        assert bool((res.var2[n] <= res.bounds["neg_hessian"]["upper"][n] * (1 + 1e-12)).all())


def test_the_flattened_reading_is_gone():
    """Before issue 24 the logits ``[n, 3, 4]`` were read as ONE categorical over 12
    classes. The Fisher is now the per-position one, and the flat reading (still
    available on request, by flattening the output) is a different number."""
    model, ids = _model(), _ids()
    res = fishsym.fisher_variances(model, ids, "categorical")
    flat = fishsym.fisher_variances(model, ids, "categorical", output=lambda o: o.flatten(1))
    assert flat.kernel.d == 12 and not isinstance(flat.kernel, ProductKernel)
    fisher, *_ = _joint_from_positions(_per_position(model, ids))
    for n in res.fisher:
        torch.testing.assert_close(res.fisher[n], fisher[n].mean(0), rtol=RTOL, atol=ATOL)
        gap = (flat.fisher[n] - res.fisher[n]).norm() / res.fisher[n].norm()
        assert float(gap) > 0.1, n


def test_the_joint_label_is_not_the_sum_of_positions():
    """``V₁`` of one joint label has the cross terms ``4 Σ_{s<t} I_s I_t``; the
    per-position squared score has ``Σ_t V₁,t``, and both are reported as estimators."""
    model, ids = _model(), _ids()
    res = fishsym.fisher_variances(
        model, ids, "categorical", estimators=("squared_score", "per_position_score")
    )
    _, var1, _, per_var1 = _joint_from_positions(_per_position(model, ids))
    n = ids.shape[0]
    for name in res.fisher:
        torch.testing.assert_close(
            res.var["squared_score"][name], var1[name].sum(0) / n**2, rtol=RTOL, atol=ATOL
        )
        torch.testing.assert_close(
            res.var["per_position_score"][name], per_var1[name].sum(0) / n**2, rtol=RTOL, atol=ATOL
        )
        torch.testing.assert_close(res.mean["per_position_score"][name], res.fisher[name])
    gap = res.var["squared_score"]["emb.weight"] - res.var["per_position_score"]["emb.weight"]
    assert float(gap.max()) > 1e-3 * float(res.var["squared_score"]["emb.weight"].max())
    assert res.cost["per_position_score"] == 3 * res.cost["squared_score"]


def test_monte_carlo_agrees_with_the_joint_label():
    model, ids = _model(), _ids()
    res = fishsym.fisher_variances(model, ids, "categorical", per_sample=True)
    mc = estimate(model, ids, "categorical", 1, 4000, _gen(7), estimators=("squared_score",))
    for name in res.fisher:
        z_mean = (mc.mean["squared_score"][name] - res.fisher[name]).abs()
        z_mean = z_mean / mc.se_mean("squared_score")[name].clamp_min(1e-300)
        z_var = (mc.var["squared_score"][name] - res.var1[name]).abs()
        z_var = z_var / mc.se_var("squared_score")[name].clamp_min(1e-300)
        assert float(z_mean.max()) < Z_MAX, name
        assert float(z_var.max()) < Z_MAX, name


def test_monte_carlo_of_the_per_position_squared_score():
    """Per-token gradients squared, then summed, simulated here: labels drawn per position
    by ``torch.distributions.Categorical``, gradients by ``torch.func.grad`` of each
    position's log-probability."""
    model, ids = _model(), _ids(n=3)
    draws = 3000
    res = fishsym.fisher_variances(
        model, ids, "categorical", per_sample=True, estimators=("per_position_score",)
    )
    _, _, _, per_var1 = _joint_from_positions(_per_position(model, ids))
    params = {n: p.detach() for n, p in model.named_parameters()}

    def token_logp(ps, x, y, t):
        logits = functional_call(model, ps, (x[None],))[0, t]
        return (torch.log_softmax(logits, -1) * y).sum()  # y one-hot

    for i in range(ids.shape[0]):
        with torch.no_grad():
            logits = model(ids[i : i + 1])[0]
        labels = torch.distributions.Categorical(logits=logits).sample((draws,))  # [m, T]
        total = {n: 0 for n in params}
        for t in range(ids.shape[1]):
            onehot = nn.functional.one_hot(labels[:, t], logits.shape[-1]).double()
            g = vmap(grad(token_logp), in_dims=(None, None, 0, None))(params, ids[i], onehot, t)
            for n in params:
                total[n] = total[n] + g[n] ** 2
        for n in params:
            mean, var = total[n].mean(0), total[n].var(0)
            se_mean = total[n].std(0) / math.sqrt(draws)
            z = (mean - res.fisher[n][i]).abs() / se_mean.clamp_min(1e-300)
            assert float(z.max()) < Z_MAX, (n, i)
            # the variance's standard error from the fourth central moment
            c = total[n] - mean
            se_var = ((c**4).mean(0) - var**2).clamp_min(0).sqrt() / math.sqrt(draws)
            z = (var - per_var1[n][i]).abs() / se_var.clamp_min(1e-300)
            assert float(z.max()) < Z_MAX, (n, i)


MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)


def test_masked_positions_are_absent_factors(unchanged):
    model, ids = _model(), _ids()
    before = unchanged.snapshot(model)
    fisher, var1, var2, _ = _joint_from_positions(_per_position(model, ids, MASK))
    for path in ("graph", "generic"):
        res = fishsym.fisher_variances(
            model, ids, "categorical", path=path, per_sample=True, mask=MASK
        )
        _close(res.fisher, fisher, f"{path} fisher")
        _close(res.var1, var1, f"{path} V₁")
        _close(res.var2, var2, f"{path} V₂")
        for n in res.fisher:  # the fully padded input adds nothing
            assert float(res.fisher[n][4].abs().max()) == 0.0
    exact = fishsym.reference.exact_moments(model, ids, "categorical", mask=MASK.long())
    _close(exact["mean1"], fisher, "tuples fisher")
    _close(exact["var1"], var1, "tuples V₁")
    mc = estimate(
        model, ids, "categorical", 1, 2000, _gen(8), mask=MASK, estimators=("squared_score",)
    )
    for n in fisher:
        se = mc.se_mean("squared_score")[n]
        z = (mc.mean["squared_score"][n] - fisher[n]).abs() / se.clamp_min(1e-300)
        assert float(z[se > 0].max()) < Z_MAX
        assert float((mc.mean["squared_score"][n][se == 0] - fisher[n][se == 0]).abs().max()) == 0
    est = fishsym.diagonal_fisher(model, ids, "categorical", generator=_gen(9), mask=MASK)
    assert set(est.estimators.values()) == {"exact"}
    for n in fisher:
        torch.testing.assert_close(est.value[n], fisher[n].mean(0), rtol=RTOL, atol=ATOL)
    sampled = fishsym.diagonal_fisher(
        model, ids, "categorical", generator=_gen(10), mask=MASK, exact=False
    )
    assert sampled.estimators["head"] == "closed-form head"
    for n in ("head.weight", "head.bias"):  # Σ over the unmasked positions, in closed form
        torch.testing.assert_close(sampled.value[n], fisher[n].mean(0), rtol=1e-12, atol=1e-15)
    unchanged.check(before, model)


def test_data_labels_at_padding_are_ignored():
    """Labels at masked positions may be anything (a tokenizer's -100): the empirical
    Fisher is the input mean of the squared gradient of Σ over the unmasked positions of
    log p(y_t|h_t), by autograd here, whatever the padding labels are."""
    model, ids = _model(), _ids()
    params = dict(model.named_parameters())
    keep = MASK.bool()
    want = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(ids.shape[0]):
        logp = torch.log_softmax(model(ids[i : i + 1])[0], -1)  # [T, V]
        ll = sum(logp[t, ids[i, t]] for t in range(ids.shape[1]) if keep[i, t])
        if not keep[i].any():
            continue
        for n, g in zip(params, torch.autograd.grad(ll, list(params.values())), strict=True):
            want[n] += g.detach() ** 2 / ids.shape[0]
    for filler in (-100, 0):
        labels = torch.where(keep, ids, torch.full_like(ids, filler))
        res = fishsym.fisher_variances(
            model, ids, "categorical", mask=MASK, labels=labels, estimators=("empirical",)
        )
        _close(res.mean["empirical"], want, f"empirical, padding labels {filler}")
    for wrong in (ids[:, 0], ids[:, :2]):  # not one label per position: named, not raw
        with pytest.raises(ShapeError, match="labels|shape"):
            fishsym.fisher_variances(
                model, ids, "categorical", mask=MASK, labels=wrong, estimators=("empirical",)
            )


def test_bad_masks_are_refused():
    model, ids = _model(), _ids()
    with pytest.raises(ShapeError, match="mask must have shape"):
        fishsym.fisher_variances(model, ids, "categorical", mask=MASK[:3])
    with pytest.raises(ShapeError, match="one entry per position"):
        fishsym.fisher_variances(model, ids, "categorical", mask=MASK[:, :2])
    with pytest.raises(ArgumentTypeError, match="0 and 1"):
        fishsym.fisher_variances(model, ids, "categorical", mask=MASK.long() * 2)
    with pytest.raises(ShapeError, match="at least one factor axis"):
        fishsym.fisher_variances(model, ids, "categorical", mask=MASK[:, 0])


def test_ambiguous_factor_axes_are_refused():
    model, ids = _model(), _ids()
    with pytest.raises(ShapeError, match="ambiguous factor axes"):
        fishsym.fisher_variances(model, ids, fishsym.kernels.get("categorical", C=12))


def test_product_results_are_saved_and_loaded():
    model, ids = _model(), _ids()
    res = fishsym.fisher_variances(model, ids, "categorical", mask=MASK)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tokens.pt")
        res.save(path)
        back = fishsym.load(path)
    assert isinstance(back.kernel, ProductKernel) and back.kernel.factor_shape == (3,)
    _close(back.var1, res.var1, "loaded V₁")


#: runs of the coverage test per estimator
COVERAGE_RUNS = 8


@pytest.mark.parametrize("estimator", ["squared_score", "hutchinson"])
def test_intervals_cover_on_a_tiny_language_model(estimator):
    """Issue 24 verification: ``diagonal_fisher``'s 95 % intervals on a tiny LM
    (vocabulary 8, 3 tokens) against the exact Fisher (itself held to the enumeration of
    all 8³ label tuples), the head sampled too, every entry counted."""
    model, ids = _model(vocab=8, tokens=3, seed=3, scale=1.0), _ids(n=12, vocab=8, seed=4)
    truth = fishsym.fisher_variances(model, ids, "categorical", bounds=False).fisher
    exact = fishsym.reference.exact_moments(model, ids, "categorical", params=["head.bias"])
    torch.testing.assert_close(exact["mean1"]["head.bias"].mean(0), truth["head.bias"])
    fractions = []
    for run in range(COVERAGE_RUNS):
        est = fishsym.diagonal_fisher(
            model,
            ids,
            "categorical",
            exact=False,
            exact_head=False,
            estimator=estimator,
            generator=_gen(100 + run),
        )
        assert set(est.estimators.values()) == {estimator}
        lower, upper = est.ci(0.95)
        inside = torch.cat(
            [((lower[n] <= truth[n]) & (truth[n] <= upper[n])).reshape(-1) for n in truth]
        )
        fractions.append(float(inside.double().mean()))
    fractions = torch.tensor(fractions, dtype=torch.float64)
    entries = sum(t.numel() for t in truth.values())
    se = max(
        float(fractions.std()) / math.sqrt(COVERAGE_RUNS),
        math.sqrt(0.95 * 0.05 / (COVERAGE_RUNS * entries)),
    )
    assert abs(float(fractions.mean()) - 0.95) <= COVERAGE_SIGMAS * se, (fractions, se)
