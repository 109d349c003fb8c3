"""The generic path's ``w_i = ∂²h/∂θ_i²`` for every supported module type, against central
finite differences in float64 and against the reference (double backward of ℓ).

Regression (issue 9.6): forward-over-forward through ``layer_norm`` is wrong in PyTorch
(one LayerNorm weight gave −0.4276 where autograd and finite differences give −0.4375),
so the engine's ``var2`` on a transformer classifier was 25–54 % off the reference.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fishsym
from fishsym.common import ModelView
from fishsym.engine.generic import FORWARD_VERIFIED, GenericModel, second_order_route

#: Richardson-extrapolated central second differences at steps T and T/2; the error of
#: the better one is estimated by their difference (the O(t⁴) term), and the check allows
#: FD_FACTOR times that estimate plus the rounding of f(θ ± t)/t² at the smaller step
T = 2e-2
FD_FACTOR = 10.0
#: engine against the reference: two exact float64 routes
RTOL = 1e-10


def _second_difference(f, theta, e, t):
    return (f(theta + t * e) - 2 * f(theta) + f(theta - t * e)) / (t * t)


def _richardson(f, theta, e, t):
    return (4 * _second_difference(f, theta, e, t / 2) - _second_difference(f, theta, e, t)) / 3


class _TokenClassifier(nn.Module):
    """Embedding → TransformerEncoderLayer (two heads, GELU feed-forward: smooth, so that
    finite differences are valid; a ReLU kink inside the step would fake curvature) →
    mean → Linear."""

    def __init__(self, vocab=7, width=4, classes=3, norm_first=False):
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.block = nn.TransformerEncoderLayer(width, 2, 8, dropout=0.0, batch_first=True,
                                                norm_first=norm_first, activation="gelu")
        self.head = nn.Linear(width, classes)

    def forward(self, ids):
        return self.head(self.block(self.emb(ids)).mean(1))


def _models():
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 2, 2), nn.ReLU(), nn.MaxPool2d(2, 1), nn.Conv2d(2, 2, 2, padding=1),
        nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2, 3),
    )
    bn = nn.Sequential(
        nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.Softplus(), nn.Flatten(), nn.Linear(8, 3)
    )
    with torch.no_grad():  # non-trivial running statistics
        bn[1].running_mean.uniform_(-0.5, 0.5)
        bn[1].running_var.uniform_(0.5, 2.0)
    gn = nn.Sequential(nn.Conv1d(1, 4, 2), nn.GroupNorm(2, 4), nn.GELU(), nn.Flatten(),
                       nn.Linear(16, 3))
    ln = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.SiLU(), nn.Linear(4, 3))
    # every elementwise activation the forward route is trusted with, and an embedding
    acts = nn.Sequential(
        nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 4), nn.Softplus(beta=1.5), nn.Linear(4, 4),
        nn.ELU(), nn.Linear(4, 4), nn.GELU(approximate="tanh"), nn.Linear(4, 4), nn.SiLU(),
        nn.Linear(4, 4), nn.LeakyReLU(0.1), nn.Dropout(0.3), nn.Linear(4, 3),
    )
    emb = nn.Sequential(nn.Embedding(6, 3), nn.Tanh(), nn.Flatten(), nn.Linear(6, 3))
    one_d = nn.Sequential(
        nn.Conv1d(1, 2, 2), nn.BatchNorm1d(2), nn.Softplus(), nn.MaxPool1d(2, 1),
        nn.Conv1d(2, 2, 2), nn.Tanh(), nn.AvgPool1d(2), nn.Identity(), nn.Dropout1d(0.5),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2, 3),
    )
    three_d = nn.Sequential(
        nn.Conv3d(1, 2, 2), nn.Sigmoid(), nn.Dropout2d(0.5), nn.Flatten(), nn.Linear(16, 3)
    )
    adaptive = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(2, 3))
    with torch.no_grad():
        one_d[1].running_mean.uniform_(-0.5, 0.5)
        one_d[1].running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(1)
    return {
        "activations": (acts.eval(), torch.randn(2, 3, generator=g)),
        "embedding": (emb, torch.tensor([[1, 4], [5, 0]])),
        "conv1d_pools": (one_d.eval(), torch.randn(2, 1, 6, generator=g)),
        "conv3d": (three_d.eval(), torch.randn(2, 1, 3, 3, 3, generator=g)),
        "adaptive_pool": (adaptive, torch.randn(2, 1, 4, 4, generator=g)),
        "conv_pool": (cnn, torch.randn(2, 1, 3, 3, generator=g)),
        "batchnorm_eval": (bn.eval(), torch.randn(2, 1, 3, 3, generator=g)),
        "groupnorm": (gn, torch.randn(2, 1, 5, generator=g)),
        "layernorm": (ln, torch.randn(2, 3, generator=g)),
        "transformer_post_norm": (_TokenClassifier().eval(), torch.tensor([[1, 2, 3], [4, 5, 6]])),
        "transformer_pre_norm": (_TokenClassifier(norm_first=True).eval(),
                                 torch.tensor([[0, 2, 6], [3, 3, 1]])),
    }


MODELS = _models()


def _routes(case):
    model = MODELS[case][0]
    routes = ["reverse-over-reverse"]
    if second_order_route(model) == "forward-over-forward":
        routes.append("forward-over-forward")
    return routes


@pytest.mark.parametrize(
    "case, route", [(c, r) for c in sorted(MODELS) for r in _routes(c)]
)
def test_every_parameter_hess_diag_matches_finite_differences(case, route):
    model, x = MODELS[case]
    model = model.double()
    view = ModelView(model, torch.float64)
    engine = GenericModel(view)
    engine.route = route
    xs = x.double() if x.is_floating_point() else x
    gen = torch.Generator().manual_seed(2)
    checked = 0
    for name, theta in view.params.items():
        # up to 3 entries per tensor, spread over it
        k = min(3, theta.numel())
        idx = torch.randperm(theta.numel(), generator=gen)[:k]
        block = engine.block(xs, name, idx)
        for j, flat in enumerate(idx.tolist()):
            e = torch.zeros(theta.numel(), dtype=torch.float64)
            e[flat] = 1
            e = e.reshape(theta.shape)

            def f(t, name=name):
                with torch.no_grad():
                    return view({name: t}, xs)

            fine = _richardson(f, theta, e, T / 2)
            coarse = _richardson(f, theta, e, T)
            h_scale = f(theta).abs().max().item() + 1
            rounding = 16 * torch.finfo(torch.float64).eps * h_scale / (T / 4) ** 2
            tol = FD_FACTOR * (fine - coarse).abs() + rounding
            w = block.hess_diag[:, :, j]
            assert ((w - fine).abs() <= tol).all(), (case, name, flat, w, fine, tol)
            checked += 1
    assert checked >= 6


def test_the_forward_route_is_taken_only_for_verified_module_types():
    assert second_order_route(MODELS["conv_pool"][0]) == "forward-over-forward"
    assert second_order_route(MODELS["batchnorm_eval"][0]) == "forward-over-forward"
    for case in ("layernorm", "groupnorm", "transformer_post_norm", "transformer_pre_norm"):
        assert second_order_route(MODELS[case][0]) == "reverse-over-reverse", case
    assert nn.LayerNorm not in FORWARD_VERIFIED and nn.MultiheadAttention not in FORWARD_VERIFIED
    # every verified type is exercised by a forward-route case above
    used = {type(m) for c in MODELS for m in MODELS[c][0].modules()
            if "forward-over-forward" in _routes(c)}
    assert FORWARD_VERIFIED <= used, FORWARD_VERIFIED - used


@pytest.mark.parametrize("case", ["transformer_post_norm", "transformer_pre_norm", "layernorm"])
def test_engine_var2_equals_the_reference_through_layer_norm_and_attention(case):
    """The issue's reproduction: fisher and var1 agreed, var2 differed by 25–54 %."""
    model, x = MODELS[case]
    model = model.double()
    xs = x.double() if x.is_floating_point() else x
    res = fishsym.fisher_variances(model, xs, "categorical", per_sample=True, path="generic")
    exact = fishsym.reference.exact_moments(model, xs, "categorical")
    for name in res.fisher:
        for ours, ref in ((res.fisher, exact["mean1"]), (res.var1, exact["var1"]),
                          (res.var2, exact["var2"])):
            scale = max(ours[name].abs().max().item(), ref[name].abs().max().item(), 1e-300)
            floor = (64 * torch.finfo(torch.float64).eps * res.fisher[name].abs().max()) ** 2
            assert (ours[name] - ref[name]).abs().max().item() <= RTOL * scale + floor, name
    # attention is curved in its query/key projections and so is every normalisation
    # that feeds a curved operation (the affine parameters of a final LayerNorm, and the
    # head, enter h linearly: V₂ = 0 there is right)
    curved = [n for n in res.var2 if float(res.var2[n].abs().max()) > 0]
    if case.startswith("transformer"):
        assert "block.self_attn.in_proj_weight" in curved, curved
    assert any("norm" in n for n in curved) or case == "layernorm", curved
    assert not any(n.startswith("head.") for n in curved), curved
