"""Per-coordinate derivatives (forward mode), the dense route and the MLP unit view, each
held to a brute-force reverse-mode reference: double backward on one scalar ε per entry."""

import pytest
import torch
from torch import nn

from fishsym.errors import ShapeError, UnsupportedModelError
from fishsym.nets import mlp
from fishsym.reference.coordinates import (
    DENSE_MAX_PARAMS,
    all_coordinates,
    coordinate_derivatives,
    dense_derivatives,
    label_derivatives,
    mlp_unit_derivatives,
    sample_coordinates,
    split_flat,
)

#: forward-mode, reverse-over-reverse and the brute force are all exact float64 AD; they
#: differ by rounding only
RTOL = 1e-10
ATOL = 1e-13


def brute(model, x, name, index, head=None):
    """``d/dε`` and ``d²/dε²`` of ``head(h(x; θ + ε e_index))`` by double backward."""
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    eps = torch.zeros((), dtype=torch.float64, requires_grad=True)
    flat = params[name].reshape(-1)
    bump = torch.zeros_like(flat)
    bump[index] = 1.0
    params[name] = (flat + eps * bump).reshape(params[name].shape)
    out = torch.func.functional_call(model, params, (x.unsqueeze(0),)).squeeze(0)
    out = out if head is None else head(out)
    first, second = [], []
    for value in out.reshape(-1):
        (g,) = torch.autograd.grad(value, eps, create_graph=True, retain_graph=True)
        g2 = (
            torch.autograd.grad(g, eps, allow_unused=True, retain_graph=True)[0]
            if g.requires_grad
            else None
        )
        first.append(g.detach())
        second.append(torch.zeros(()) if g2 is None else g2.detach())
    shape = out.shape
    return torch.stack(first).reshape(shape), torch.stack(second).reshape(shape).to(torch.float64)


@pytest.fixture(scope="module")
def net():
    gen = torch.Generator().manual_seed(0)
    model = mlp((4, 5, 3, 3), "tanh", gen, torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.7)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    return model, x


def test_coordinate_derivatives_match_brute_force(net):
    model, x = net
    coords = sample_coordinates(model, 4, torch.Generator().manual_seed(1))
    got = coordinate_derivatives(model, x, coords)
    for name, idx in coords.items():
        u, w = got[name]
        assert u.shape == (3, len(idx), 3)
        for n in range(3):
            for k, i in enumerate(idx.tolist()):
                bu, bw = brute(model, x[n], name, i)
                torch.testing.assert_close(u[n, k], bu, rtol=RTOL, atol=ATOL)
                torch.testing.assert_close(w[n, k], bw, rtol=RTOL, atol=ATOL)


def test_head_derivatives_match_brute_force(net):
    model, x = net

    def head(h, a):
        return torch.log_softmax(h, -1) * a

    weights = torch.rand(3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    coords = {"2.weight": torch.tensor([0, 7]), "0.bias": torch.tensor([4])}
    got = coordinate_derivatives(model, x, coords, head=head, head_args=weights)
    for name, idx in coords.items():
        for n in range(3):
            for k, i in enumerate(idx.tolist()):
                b1, b2 = brute(model, x[n], name, i, head=lambda h, n=n: head(h, weights[n]))
                torch.testing.assert_close(got[name][0][n, k], b1, rtol=RTOL, atol=ATOL)
                torch.testing.assert_close(got[name][1][n, k], b2, rtol=RTOL, atol=ATOL)


def test_dense_route_equals_coordinate_route(net):
    model, x = net
    layout, jac, hess = dense_derivatives(model, x)
    u = split_flat(layout, jac)  # name -> [n, d, *shape]
    coord = coordinate_derivatives(model, x, all_coordinates(model))
    for name, (cu, cw) in coord.items():
        shape = dict(model.named_parameters())[name].shape
        du = jac.transpose(1, 2)[:, _slice(layout, name)]
        dw = hess.transpose(1, 2)[:, _slice(layout, name)]
        torch.testing.assert_close(du, cu, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(dw, cw, rtol=RTOL, atol=ATOL)
        assert u[name].shape[2:] == shape
        torch.testing.assert_close(
            u[name].reshape(3, 3, -1).transpose(1, 2), cu, rtol=RTOL, atol=ATOL
        )


def _slice(layout, name):
    start = 0
    for n, shape in layout:
        k = int(torch.Size(shape).numel())
        if n == name:
            return slice(start, start + k)
        start += k
    raise KeyError(name)


def test_label_derivatives_match_brute_force(net):
    model, x = net
    labels = torch.tensor([[0, 2], [1, 1], [2, 0]])

    def log_p(h, y):
        return torch.log_softmax(h, -1)[y]

    layout, score, curv = label_derivatives(model, x, _Categorical(), labels)
    assert score.shape == (3, 2, sum(p.numel() for p in model.parameters()))
    for n in range(3):
        for j in range(2):
            for name, idx in (("0.weight", 5), ("4.bias", 2), ("2.weight", 11)):
                label = labels[n, j]
                b1, b2 = brute(model, x[n], name, idx, head=lambda h, label=label: log_p(h, label))
                p = _slice(layout, name).start + idx
                torch.testing.assert_close(score[n, j, p], b1, rtol=RTOL, atol=ATOL)
                torch.testing.assert_close(curv[n, j, p], b2, rtol=RTOL, atol=ATOL)


class _Categorical:
    """The categorical log-density written out here (no fishsym kernel involved)."""

    def log_prob(self, y, h):
        return torch.log_softmax(h, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)


def test_mlp_unit_view_reproduces_u_and_w(net):
    model, x = net
    coords = all_coordinates(model)
    direct = coordinate_derivatives(model, x, coords)
    for layer in mlp_unit_derivatives(model, x):
        n_in = layer.z_in.shape[1]
        u_w = layer.jac[:, :, :, None] * layer.z_in[:, None, None, :]
        w_w = layer.hess_diag[:, :, :, None] * layer.z_in[:, None, None, :] ** 2
        cu, cw = direct[layer.weight]
        torch.testing.assert_close(u_w.reshape(3, 3, -1).transpose(1, 2), cu, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(w_w.reshape(3, 3, -1).transpose(1, 2), cw, rtol=RTOL, atol=ATOL)
        bu, bw = direct[layer.bias]
        torch.testing.assert_close(layer.jac.transpose(1, 2), bu, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(layer.hess_diag.transpose(1, 2), bw, rtol=RTOL, atol=ATOL)
        assert n_in == dict(model.named_parameters())[layer.weight].shape[1]


def test_last_layer_units_are_identity(net):
    model, x = net
    last = mlp_unit_derivatives(model, x)[-1]
    torch.testing.assert_close(last.jac, torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    assert bool((last.hess_diag == 0).all())


def test_bad_arguments(net):
    model, x = net
    with pytest.raises(ShapeError, match="not trainable parameters"):
        coordinate_derivatives(model, x, {"nope": torch.tensor([0])})
    with pytest.raises(ShapeError, match="outside"):
        coordinate_derivatives(model, x, {"0.bias": torch.tensor([5])})
    with pytest.raises(ShapeError, match="head_args"):
        coordinate_derivatives(
            model, x, {"0.bias": torch.tensor([0])}, head=lambda h, a: h, head_args=torch.zeros(2)
        )
    with pytest.raises(ValueError, match="per_tensor"):
        sample_coordinates(model, 0, torch.Generator())
    with pytest.raises(UnsupportedModelError, match="Sequential"):
        mlp_unit_derivatives(nn.Linear(2, 2), torch.zeros(1, 2))
    conv = nn.Sequential(nn.Conv1d(1, 1, 2), nn.Flatten(), nn.Linear(3, 2))
    with pytest.raises(UnsupportedModelError, match="Conv1d"):
        mlp_unit_derivatives(conv, torch.zeros(1, 1, 4))
    big = nn.Linear(DENSE_MAX_PARAMS, 2)
    with pytest.raises(UnsupportedModelError, match="coordinate_derivatives"):
        dense_derivatives(big, torch.zeros(1, DENSE_MAX_PARAMS))
