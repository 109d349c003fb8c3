"""The von Mises head (learned mean direction and concentration): its structured kernel
against mpmath quadrature from h = 0 to κ = 10⁶, against autograd of its own F (a second
route), the lambdified symbolic kernel, its sampler by Monte Carlo, and the whole engine
against the circle's label rule (reference.exact_moments) and Monte Carlo."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from torch import nn
from torch.func import hessian, jacrev

import fishsym
from fishsym import kernels, reference
from fishsym.common.adapters import angle_concentration
from fishsym.errors import DomainError
from fishsym.kernels.von_mises import FULL_PERIOD_UP_TO, SERIES_BELOW
from fishsym.montecarlo import compare, estimate
from fishsym.reference.rules import circle_aliasing_bound
from fishsym.symbolic import families

F64 = torch.float64
#: the kernel against 40-digit quadrature: a few dozen roundings (observed ≤ 6e−16)
RTOL = 1e-13
#: concentrations spanning the series branch, the full-period rule, the window and beyond
KAPPAS = [0.0, 3e-3, SERIES_BELOW * 1.5, 0.9, 7.0, FULL_PERIOD_UP_TO, 50.5, 400.0, 1e4, 1e6]


def _mp_moments(kappa: float, mu: float, v: tuple[float, float]):
    """F, η and the central moments of w = (t − η)ᵀv at 40 digits, by mpmath quadrature
    split at the peak's scale (independent of the kernel's frame and quadrature)."""
    with mpmath.workdps(40):
        k = mpmath.mpf(kappa)
        log_z = mpmath.log(2 * mpmath.pi * mpmath.besseli(0, k))
        width = 1 / mpmath.sqrt(k) if k > 1 else mpmath.mpf(1)
        inner = [s * c * width for s in (-1, 1) for c in (1, 4, 12)]
        cuts = sorted({-mpmath.pi, mpmath.pi, *inner})
        cuts = [c for c in cuts if -mpmath.pi <= c <= mpmath.pi]

        def E(g):
            # θ = y − μ; the density e^{κ cos θ − log Z}, written as e^{−2κ sin²(θ/2)} · e^{κ}/Z
            scale = mpmath.exp(k - log_z)
            return scale * mpmath.quad(
                lambda th: g(th) * mpmath.exp(-2 * k * mpmath.sin(th / 2) ** 2), cuts
            )

        a_1 = mpmath.besseli(1, k) / mpmath.besseli(0, k) if k > 0 else mpmath.mpf(0)
        # in the frame of the mean direction: (c, s) = (cos θ − A₁, sin θ); v's components
        ca, sa = mpmath.cos(mu), mpmath.sin(mu)
        a = ca * v[0] + sa * v[1]
        b = -sa * v[0] + ca * v[1]
        one_minus_a1 = E(lambda th: 2 * mpmath.sin(th / 2) ** 2)

        def w(th):
            return (one_minus_a1 - 2 * mpmath.sin(th / 2) ** 2) * a + mpmath.sin(th) * b

        q = E(lambda th: w(th) ** 2)
        out = {
            "F": log_z,
            "eta": (a_1 * ca, a_1 * sa),
            "quadratic": q,
            "cubic": E(lambda th: w(th) ** 3),
            "quartic": E(lambda th: w(th) ** 4),
            "var_squared": E(lambda th: (w(th) ** 2 - q) ** 2),
        }
        return {
            key: (tuple(float(x) for x in val) if isinstance(val, tuple) else float(val))
            for key, val in out.items()
        }


@pytest.mark.parametrize("kappa", KAPPAS, ids=[f"kappa={k:g}" for k in KAPPAS])
def test_kernel_against_mpmath(kappa):
    kern = kernels.get("von_mises")
    mu = 2.1
    h = torch.tensor([kappa * math.cos(mu), kappa * math.sin(mu)], dtype=F64)
    for v in ((0.3, -1.1), (1.0, 0.0), (0.0, 1.0)):
        ref = _mp_moments(kappa, mu, v)
        V = torch.tensor(v, dtype=F64)[:, None]
        got = {
            "F": kern.log_partition(h).item(),
            "quadratic": kern.quadratic(h, V).item(),
            "cubic": kern.cubic(h, V).item(),
            "quartic": kern.quartic(h, V).item(),
            "var_squared": kern.var_squared(h, V).item(),
        }
        scale = {"cubic": ref["quadratic"] ** 1.5}  # μ₃ can vanish; judge it on its scale
        for key, value in got.items():
            err = abs(value - ref[key]) / max(abs(ref[key]), scale.get(key, 0.0), 1e-300)
            assert err <= RTOL, (kappa, v, key, value, ref[key], err)
        eta = kern.mean(h)
        for j in range(2):
            assert abs(eta[j].item() - ref["eta"][j]) <= RTOL * max(abs(ref["eta"][j]), 1e-300) + (
                1e-300 if kappa else 0
            )


@pytest.mark.parametrize("kappa", [0.0, 1e-3, 0.4, 5.0, 60.0, 900.0])
def test_fisher_is_the_hessian_of_f(kappa):
    """η = ∇F and I = ∇²F by autograd of the kernel's own F (torch's i0e/i1e derivatives
    and the series branch), a route independent of the frame quadrature — finite at h = 0."""
    kern = kernels.get("von_mises")
    h = torch.tensor([kappa * 0.6, -kappa * 0.8], dtype=F64)
    grad_f = jacrev(kern.log_partition)(h)
    hess_f = hessian(kern.log_partition)(h)
    assert bool(torch.isfinite(hess_f).all())
    torch.testing.assert_close(grad_f, kern.mean(h), rtol=1e-13, atol=1e-300)
    # autograd's second derivative of log i0e forms 1 − A/r − A² for the radial variance:
    # it cancels like r·eps (the kernel's quadrature does not), so allow that
    fisher = kern.fisher(h)
    tol = 1e-13 * max(1.0, kappa)
    assert float((hess_f - fisher).abs().max()) <= tol * float(fisher.abs().max())


def test_spectrum_is_exact():
    kern = kernels.get("von_mises")
    h = torch.tensor([[0.0, 0.0], [0.3, -0.2], [4.0, 1.0], [120.0, -35.0], [3e3, 4e3]], dtype=F64)
    spec = kern.spectrum(h)
    phi = torch.linspace(0, math.pi, 40001, dtype=F64)
    V = torch.stack([phi.cos(), phi.sin()])  # [2, K], unit vectors
    quart = kern.quartic(h[:, None, :].expand(-1, 1, -1)[:, 0], V.expand(h.shape[0], 2, -1))
    quad = kern.quadratic(h, V.expand(h.shape[0], 2, -1))
    for name, values, lo, hi in (
        ("fisher", quad, spec.fisher_min, spec.fisher_max),
        ("mu4", quart, spec.mu4_min_lower, spec.mu4_max_upper),
    ):
        top, bottom = values.max(-1).values, values.min(-1).values
        # the extremes bracket every unit vector, and a fine grid of angles attains them
        assert bool((top <= hi * (1 + 1e-12)).all()), name
        assert bool((bottom >= lo * (1 - 1e-12)).all()), name
        assert bool(((hi - top) <= 1e-7 * hi).all()), name
        assert bool(((bottom - lo) <= 1e-7 * hi).all()), name
    assert "closed-form" in spec.methods["mu4_max_upper"]


def test_generic_kernel_agrees_at_moderate_concentration(kt):
    """The lambdified symbolic F (I₀, I₁ and the recurrence for I₂…I₄) is a second route;
    its cancellation grows as r → 0 and r → ∞, so the comparison stays at moderate r."""
    fam = families.get("von_mises")
    gen, kern = kernels.generic(fam), kernels.get("von_mises")
    h = torch.tensor([[0.7, -1.2], [2.5, 0.4], [-6.0, 3.0]], dtype=F64)
    V = torch.tensor([[0.3, 1.0, -0.5], [-1.1, 0.25, 2.0]], dtype=F64).expand(3, 2, 3)
    for method in ("quadratic", "cubic", "quartic", "var_squared"):
        a, b = getattr(kern, method)(h, V), getattr(gen, method)(h, V)
        assert kt.rel_err(a, b) <= 1e-11, method


@pytest.mark.parametrize("kappa", [0.0, 0.5, 3.0, 80.0, 2e4])
def test_sampler_by_monte_carlo(kappa):
    """Sample means of t and of ((t−η)ᵀv)² within 5 standard errors (estimated from the
    sample) of the kernel's η and vᵀIv; labels in [−π, π); the global RNG untouched."""
    kern = kernels.get("von_mises")
    h = torch.tensor([kappa * math.cos(-2.8), kappa * math.sin(-2.8)], dtype=F64)
    n = 200_000
    state = torch.random.get_rng_state()
    y = kern.sample(h, n, torch.Generator().manual_seed(int(kappa) + 1))
    assert torch.equal(state, torch.random.get_rng_state())
    assert y.shape == (n,) and bool((y >= -math.pi).all()) and bool((y < math.pi).all())
    t = kern.suff_stat(y)
    eta = kern.mean(h)
    se = t.std(0) / math.sqrt(n)
    assert bool(((t.mean(0) - eta).abs() <= 5 * se + 1e-15).all()), (t.mean(0), eta, se)
    v = torch.tensor([[0.4], [-0.9]], dtype=F64)
    w2 = (((t - eta) @ v) ** 2)[:, 0]
    q = kern.quadratic(h, v)[0]
    assert abs(w2.mean() - q) <= 5 * w2.std() / math.sqrt(n)
    again = kern.sample(h, n, torch.Generator().manual_seed(int(kappa) + 1))
    assert torch.equal(y, again)


def _net(conv=False, seed=0, gain=2.0):
    torch.manual_seed(seed)
    if conv:
        net = nn.Sequential(nn.Conv1d(1, 3, 2), nn.Tanh(), nn.Flatten(), nn.Linear(9, 2))
    else:
        net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    net = net.double()
    with torch.no_grad():
        net[-1].weight.mul_(gain)
    return net


def _x(conv=False, n=6):
    g = torch.Generator().manual_seed(3)
    shape = (n, 1, 4) if conv else (n, 3)
    return torch.randn(*shape, generator=g, dtype=F64)


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "cnn"])
def test_engine_against_the_circle_rule(conv):
    net, x = _net(conv), _x(conv)
    res = fishsym.fisher_variances(net, x, "von_mises", per_sample=True)
    ref = reference.exact_moments(net, x, "von_mises")
    assert ref.rule.startswith("circle-midpoint")
    for ours, key in ((res.fisher, "mean1"), (res.var1, "var1"), (res.var2, "var2")):
        for name, value in ours.items():
            want = ref[key][name].reshape(value.shape)
            scale = float(want.abs().max())
            # the reference forms variances as E[X²] − (EX)²: rounding ~eps·I²
            floor = 64 * torch.finfo(F64).eps * float(ref["mean1"][name].abs().max()) ** 2
            assert float((value - want).abs().max()) <= 1e-10 * scale + floor, (key, name)
    # V₂ of the last layer vanishes exactly (h is linear in it); not elsewhere
    assert float(res.var2[f"{len(net) - 1}.weight"].abs().max()) == 0
    assert float(res.var2["0.weight"].abs().max()) > 0


def test_circle_rule_bound_and_refusal():
    # the bound decreases in N and certifies the chosen rule; huge κ is refused clearly
    assert circle_aliasing_bound(10.0, 64) < circle_aliasing_bound(10.0, 48) < 1e-10
    assert circle_aliasing_bound(100.0, 40) == math.inf
    net = _net(gain=1.0)
    with torch.no_grad():
        net[-1].bias.fill_(3e5)
    with pytest.raises(DomainError, match="nodes on the circle"):
        reference.exact_moments(net, _x(n=2), "von_mises")


def test_monte_carlo_agrees():
    net, x = _net(seed=5), _x(n=4)
    res = fishsym.fisher_variances(net, x, "von_mises", per_sample=True)
    mc = estimate(net, x, "von_mises", 4, 20_000, torch.Generator().manual_seed(7))
    report = compare(mc, res, false_alarm=1e-3)
    assert report.passed, report.format()
    assert all(
        sum(g.n_tested for g in report.groups if g.estimator == e) > 0 for e in mc.estimators
    ), report.format()


def test_angle_concentration_adapter():
    """(μ, z), κ = softplus(z): the Fisher of the last bias is diag(κA₁(κ), A₁'(κ)σ(z)²)
    (the von Mises Fisher in (μ, κ), times dκ/dz squared); the oracle and Monte Carlo agree
    through the adapter."""
    net, x = _net(seed=2, gain=1.0), _x(n=5)
    adapter = angle_concentration("softplus")
    res = fishsym.fisher_variances(net, x, "von_mises", output=adapter, per_sample=True)
    z = net(x).detach()
    kappa = torch.nn.functional.softplus(z[:, 1])
    a1 = torch.special.i1e(kappa) / torch.special.i0e(kappa)
    want = torch.stack((kappa * a1, (1 - a1 / kappa - a1**2) * torch.sigmoid(z[:, 1]) ** 2), 1)
    torch.testing.assert_close(res.fisher["2.bias"], want, rtol=1e-11, atol=0)
    oracle = reference.exact_moments(net, x, "von_mises", output=adapter)
    for name in res.var1:
        for ours, ref in ((res.var1, oracle["var1"]), (res.var2, oracle["var2"])):
            scale = float(ref[name].abs().max())
            assert float((ours[name] - ref[name].reshape(ours[name].shape)).abs().max()) <= (
                1e-10 * scale + 1e-300
            )
    assert float(res.var2["2.weight"].abs().max()) > 0  # the adapter's curvature


def test_bad_input_is_refused():
    from fishsym.errors import FishsymError, InfiniteSupportError, NonFiniteError

    kern = kernels.get("von_mises")
    h = torch.tensor([0.5, -0.3], dtype=F64)
    with pytest.raises(TypeError, match="angles in radians"):
        kern.log_prob(torch.tensor([1, 2]), h)
    with pytest.raises(FishsymError, match="finite angles"):
        kern.log_prob(torch.tensor([0.5, math.nan], dtype=F64), h)
    with pytest.raises(NonFiniteError, match="NaN"):
        kern.mean(torch.tensor([math.inf, 0.0], dtype=F64))
    with pytest.raises(InfiniteSupportError, match="continuum"):
        kern.support_labels()
    with pytest.raises(FishsymError, match="link must be"):
        angle_concentration("sigmoid")
