"""Regression tests of issue 9's numerical defects, each held to a 50-digit mpmath oracle
that shares no code with fishsym: wrong variances from cancellation (``μ₄ − I²``),
saturated activations, confident heads in the reference, bounds on the wrong side by a
rounding error, overflowing samplers, support checks skipped inside ``vmap``.

Every test here failed on the tree before the fix.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fishsym
from fishsym import kernels, reference
from fishsym.errors import DomainError, FamilyDefinitionError

#: fast float64 route against a 50-digit oracle: a few hundred roundings of relative eps
RTOL = 1e-12
DPS = 50


# --------------------------------------------------------------------------- mpmath oracle
def _mp_activation(name: str, a):
    """``(σ, σ', σ'')`` at an mpf ``a``, from the definitions."""
    if name == "sigmoid":
        s = 1 / (1 + mpmath.exp(-a))
        return s, s * (1 - s), s * (1 - s) * (1 - 2 * s)
    if name == "tanh":
        t = mpmath.tanh(a)
        return t, 1 - t * t, -2 * t * (1 - t * t)
    if name == "softplus":
        s = 1 / (1 + mpmath.exp(-a))
        return mpmath.log1p(mpmath.exp(a)), s, s * (1 - s)
    if name == "silu":
        s = 1 / (1 + mpmath.exp(-a))
        return a * s, s * (1 + a * (1 - s)), s * (1 - s) * (2 + a * (1 - 2 * s))
    if name == "gelu_tanh":
        # 1 + tanh u underflows any fixed precision for u ≪ 0 (it is ~e^{2u}): evaluate
        # the definition with 600 digits, enough for e^{2u} ≥ 1e−500
        with mpmath.workdps(600):
            k, c = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf("0.044715")
            f = lambda x: x / 2 * (1 + mpmath.tanh(k * (x + c * x**3)))  # noqa: E731
            return f(a), mpmath.diff(f, a), mpmath.diff(f, a, 2)
    if name == "gelu":
        cdf = mpmath.ncdf(a)
        pdf = mpmath.npdf(a)
        return a * cdf, cdf + a * pdf, pdf * (2 - a * a)
    raise KeyError(name)


def _mp_jets(weights, biases, act, x, layer, kind, index):
    """``h``, ``u_p = ∂h/∂θ_p`` and ``w_p = ∂²h/∂θ_p²`` for one parameter entry of a
    Sequential MLP (activation ``act`` between Linear layers), in mpmath by second-order
    forward jets ``(value, d/dt, d²/dt²)`` along ``θ + t·e_p``."""
    z = [(mpmath.mpf(v), mpmath.mpf(0), mpmath.mpf(0)) for v in x]
    for l, (W, b) in enumerate(zip(weights, biases, strict=True)):
        out = []
        for a_row in range(len(W)):
            v0 = mpmath.mpf(b[a_row])
            v1 = mpmath.mpf(1) if (l == layer and kind == "bias" and index == a_row) else 0
            v2 = mpmath.mpf(0)
            for col, (z0, z1, z2) in enumerate(z):
                w0 = mpmath.mpf(W[a_row][col])
                w1 = 1 if (l == layer and kind == "weight" and index == (a_row, col)) else 0
                v0 += w0 * z0
                v1 += w0 * z1 + w1 * z0
                v2 += w0 * z2 + 2 * w1 * z1
            out.append((v0, v1, v2))
        if l < len(weights) - 1:
            nxt = []
            for v0, v1, v2 in out:
                s0, s1, s2 = _mp_activation(act, v0)
                nxt.append((s0, s1 * v1, s2 * v1 * v1 + s1 * v2))
            out = nxt
        z = out
    return [t[0] for t in z], [t[1] for t in z], [t[2] for t in z]


def _mp_categorical(h, u, w):
    """``(I(θ|x), V₁, V₂)`` of a categorical head from the definitions (enumeration)."""
    m = max(h)
    e = [mpmath.exp(v - m) for v in h]
    p = [v / mpmath.fsum(e) for v in e]
    ubar = mpmath.fsum(pc * uc for pc, uc in zip(p, u, strict=True))
    wbar = mpmath.fsum(pc * wc for pc, wc in zip(p, w, strict=True))
    score2 = [(uc - ubar) ** 2 for uc in u]  # ((t − p)ᵀu)² for label c
    fisher = mpmath.fsum(pc * s for pc, s in zip(p, score2, strict=True))
    var1 = mpmath.fsum(pc * (s - fisher) ** 2 for pc, s in zip(p, score2, strict=True))
    var2 = mpmath.fsum(pc * (wc - wbar) ** 2 for pc, wc in zip(p, w, strict=True))
    return fisher, var1, var2


def _net(widths, act, weights_scale=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    modules = []
    acts = {
        "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(), "softplus": nn.Softplus(),
        "silu": nn.SiLU(), "gelu_tanh": nn.GELU(approximate="tanh"), "gelu": nn.GELU(),
    }
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(weights_scale * torch.randn(lin.weight.shape, generator=gen,
                                                         dtype=torch.float64))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=gen, dtype=torch.float64))
        modules.append(lin)
        if i < len(widths) - 2:
            modules.append(acts[act])
    return nn.Sequential(*modules)


def _check_against_mpmath(model, x, act):
    """Every entry of every parameter: engine (structured, float64) vs the mpmath oracle."""
    res = fishsym.fisher_variances(model, x[None], "categorical", path="structured")
    lins = [m for m in model if isinstance(m, nn.Linear)]
    weights = [m.weight.tolist() for m in lins]
    biases = [m.bias.tolist() for m in lins]
    with mpmath.workdps(DPS):
        for l, lin in enumerate(lins):
            name = str(list(model).index(lin))
            for kind in ("weight", "bias"):
                shape = tuple(getattr(lin, kind).shape)
                for flat in range(math.prod(shape)):
                    index = divmod(flat, shape[1]) if kind == "weight" else flat
                    h, u, w = _mp_jets(weights, biases, act, x.tolist(), l, kind, index)
                    want = _mp_categorical(h, u, w)
                    got = [getattr(res, q)[f"{name}.{kind}"].reshape(-1)[flat].item()
                           for q in ("fisher", "var1", "var2")]
                    for q, g, e in zip(("fisher", "var1", "var2"), got, want, strict=True):
                        e = float(e)
                        assert abs(g - e) <= RTOL * abs(e) + 1e-300, (name, kind, index, q, g, e)
    return res


# --------------------------------------------------------------------------- 9.4 saturation
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "silu", "gelu_tanh", "gelu"])
def test_saturated_units_keep_their_digits(act):
    """Regression (issue 9.4): at pre-activation ±40 a sigmoid unit got fisher = 0 and
    samples_needed = 1 (σ' formed as s(1 − s)); GELU-tanh near −7 lost digits too. Large
    first-layer weights saturate every hidden unit; the engine must match 50 digits."""
    model = _net([2, 3, 3], act, weights_scale=25.0, seed=1)
    x = torch.tensor([1.3, -1.1], dtype=torch.float64)
    res = _check_against_mpmath(model, x, act)
    assert float(res.fisher["0.weight"].min()) > 0  # no digit lost to zero


def test_sigmoid_at_pre_activation_40_needs_thousands_of_labels():
    """The issue's case: a sigmoid unit at pre-activation 40. Its Fisher information is
    tiny but positive, so the number of labels for 10% error is finite and large."""
    model = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid(), nn.Linear(1, 2)).double()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(39.0)
        model[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model[2].bias.zero_()
    x = torch.tensor([1.0], dtype=torch.float64)
    res = _check_against_mpmath(model, x, "sigmoid")
    need = res.samples_needed()["squared_score"]["0.weight"].item()
    assert res.fisher["0.weight"].item() > 0
    assert 1 < need < math.inf
    assert res.bounds["squared_score"]["upper"]["0.weight"].item() >= res.var1["0.weight"].item()


# --------------------------------------------------------------------------- 9.3 cancellation
def test_categorical_var1_at_half_is_not_negative():
    """Regression (issue 9.3): logits (log 3, 0, 0, 0) (p₀ = ½) gave var1 = −1.4e−17 for the
    bias of class 0, whose squared score is (nearly) constant: exact V₁ ≈ 1e−33 here."""
    model = nn.Sequential(nn.Linear(1, 4)).double()
    logits = torch.tensor([math.log(3), 0, 0, 0], dtype=torch.float64)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(logits)
    for path in ("structured", "generic"):
        res = fishsym.fisher_variances(model, torch.zeros(1, 1, dtype=torch.float64),
                                       "categorical", path=path)
        with mpmath.workdps(DPS):
            for c in range(4):
                u = [mpmath.mpf(int(c == e)) for e in range(4)]
                exact = float(_mp_categorical([mpmath.mpf(x) for x in logits.tolist()], u,
                                              [0] * 4)[1])
                got = res.var1["0.bias"][c].item()
                # 1e-15 of f² ≈ 1/16: what float64 can resolve of a centred square
                assert got >= 0 and abs(got - exact) <= 1e-12 * exact + 1e-31, (path, c, got)


def test_bernoulli_var1_near_zero_logit_and_its_upper_bound():
    """Regression (issue 9.3): a Bernoulli head at h = 1e−9 gave var1 = 0 and upper bound 0
    (exact V₁ = pq(p − q)² = 6.25e−20)."""
    model = nn.Sequential(nn.Linear(1, 1)).double()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(1e-9)
    res = fishsym.fisher_variances(model, torch.zeros(1, 1, dtype=torch.float64), "bernoulli")
    with mpmath.workdps(DPS):
        p = 1 / (1 + mpmath.exp(-mpmath.mpf("1e-9")))
        exact = float(p * (1 - p) * (2 * p - 1) ** 2)
    assert res.var1["0.bias"].item() == pytest.approx(exact, rel=1e-9, abs=0)
    assert res.bounds["squared_score"]["upper"]["0.bias"].item() >= exact


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(["categorical", "categorical_minimal", "bernoulli", "binomial",
                          "independent_bernoulli", "multinomial"]),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-9, 1e-3, 1.0, 10.0, 40.0]),
)
def test_var_squared_matches_enumeration_at_50_digits(name, seed, scale):
    """``Var[((t−η)ᵀv)²]`` of every structured kernel against exact enumeration of the
    labels in mpmath, from near-uniform to confident outputs."""
    sizes = {"categorical": {"C": 4}, "categorical_minimal": {"C": 4}, "bernoulli": {},
             "binomial": {"n": 3}, "independent_bernoulli": {"d": 3},
             "multinomial": {"n": 2, "C": 3}}[name]
    k = kernels.get(name, **sizes)
    gen = torch.Generator().manual_seed(seed)
    h = scale * torch.randn(k.d, dtype=torch.float64, generator=gen)
    v = torch.randn(k.d, 2, dtype=torch.float64, generator=gen)
    got = k.var_squared(h, v)
    labels = k.support_labels()
    t = k.suff_stat(labels).reshape(len(labels), k.d).tolist()
    with mpmath.workdps(DPS):
        hm = [mpmath.mpf(x) for x in h.tolist()]
        F, log_k = _mp_family(name, sizes, hm)
        p = [mpmath.exp(mpmath.fsum(a * b for a, b in zip(ti, hm, strict=True)) - F + log_k(ti))
             for ti in t]
        assert abs(mpmath.fsum(p) - 1) < mpmath.mpf(10) ** (-40)
        eta = [mpmath.fsum(pj * tj[c] for pj, tj in zip(p, t, strict=True)) for c in range(k.d)]
        for col in range(2):
            vc = [mpmath.mpf(x) for x in v[:, col].tolist()]
            s2 = [mpmath.fsum((tj[c] - eta[c]) * vc[c] for c in range(k.d)) ** 2 for tj in t]
            m = mpmath.fsum(pj * s for pj, s in zip(p, s2, strict=True))
            exact = float(mpmath.fsum(pj * (s - m) ** 2 for pj, s in zip(p, s2, strict=True)))
            # float64 forms of h-dependent probabilities: relative accuracy to the size
            # of the fourth moment (μ₄ = V₁ + f²) whose pieces the kernel combines
            scale_ref = float(m) ** 2 + abs(exact)
            assert got[col].item() >= 0
            assert abs(got[col].item() - exact) <= 1e-12 * scale_ref + 1e-300, (
                name, h.tolist(), got[col].item(), exact)


def _mp_family(name, sizes, h):
    """``F(h)`` and ``log k(t)`` of the structured families, from their definitions."""
    def softplus(x):
        return mpmath.log1p(mpmath.exp(x))

    if name == "categorical":
        return mpmath.log(mpmath.fsum(mpmath.exp(x) for x in h)), lambda t: 0
    if name == "categorical_minimal":
        return mpmath.log(1 + mpmath.fsum(mpmath.exp(x) for x in h)), lambda t: 0
    if name == "bernoulli":
        return softplus(h[0]), lambda t: 0
    if name == "independent_bernoulli":
        return mpmath.fsum(softplus(x) for x in h), lambda t: 0
    n = sizes["n"]
    if name == "binomial":
        return n * softplus(h[0]), lambda t: mpmath.log(mpmath.binomial(n, int(round(t[0]))))
    return n * mpmath.log(mpmath.fsum(mpmath.exp(x) for x in h)), lambda t: (
        mpmath.log(mpmath.factorial(n))
        - mpmath.fsum(mpmath.log(mpmath.factorial(int(round(c)))) for c in t)
    )


# --------------------------------------------------------------------------- 9.5 reference
@pytest.mark.parametrize("family, logits", [
    ("categorical", [40.0, 0.0]),
    ("categorical", [35.0, 0.0, -3.0]),
    ("bernoulli", [40.0]),
    ("bernoulli", [-38.0]),
])
def test_reference_mean2_is_exact_for_confident_heads(family, logits):
    """Regression (issue 9.5): logits (40, 0) gave mean2 = 0 while mean1 = I = 4.25e−18
    (autograd's log_softmax curvature p − p²); the oracle must be exact."""
    d = len(logits)
    model = nn.Sequential(nn.Linear(1, d)).double()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor(logits))
    ex = reference.exact_moments(model, torch.zeros(1, 1, dtype=torch.float64), family)
    with mpmath.workdps(DPS):
        hs = [mpmath.mpf(v) for v in logits]
        if family == "bernoulli":  # the logit against a zero reference class
            hs = [mpmath.mpf(0), hs[0]]
        m = max(hs)
        e = [mpmath.exp(v - m) for v in hs]
        p = [v / mpmath.fsum(e) for v in e]
        if family == "categorical":
            want = [float(pc * (1 - pc)) for pc in p]
        else:
            want = [float(p[0] * p[1])]
    for got in (ex["mean1"]["0.bias"][0], ex["mean2"]["0.bias"][0]):
        for g, w in zip(got.tolist(), want, strict=True):
            assert g == pytest.approx(w, rel=1e-12, abs=0)


# --------------------------------------------------------------------------- 9.2 samplers
def test_poisson_log_prob_of_huge_counts():
    """Regression (issue 9.2): log_prob(y=⌊e⁴⁰⌋, h=40) returned +1024 (exact −20.9)."""
    k = kernels.get("poisson")
    for y, h in [(math.floor(math.exp(40)), 40.0), (10**12, 30.0), (64, 3.0), (63, 3.0),
                 (5, 1.0)]:
        got = k.log_prob(torch.tensor(y), torch.tensor([h], dtype=torch.float64)).item()
        with mpmath.workdps(DPS):
            want = float(y * mpmath.mpf(h) - mpmath.exp(mpmath.mpf(h)) - mpmath.loggamma(y + 1))
        assert got == pytest.approx(want, rel=1e-13, abs=0)


@pytest.mark.parametrize("name, h", [("poisson", 44.0), ("geometric", -1e-20),
                                     ("negative_binomial", -1e-18)])
def test_count_samplers_refuse_means_they_cannot_represent(name, h):
    """Regression (issue 9.2): Poisson at log-rate 44 drew INT64_MIN labels; negative
    binomial and geometric failed near h = 0."""
    k = kernels.get(name)
    with pytest.raises(DomainError, match="2\\^53|2\\^50"):
        k.sample(torch.tensor([[h]], dtype=torch.float64), 4, torch.Generator().manual_seed(0))


def test_count_samplers_are_right_just_inside_their_range():
    gen = torch.Generator().manual_seed(1)
    y = kernels.get("poisson").sample(torch.tensor([[30.0]], dtype=torch.float64), 2000, gen)
    assert (y > 0).all()
    lam = math.exp(30.0)
    # mean of 2000 draws: standard error √(λ/2000); a 6σ band
    assert abs(y.double().mean().item() - lam) <= 6 * math.sqrt(lam / 2000)
    g = kernels.get("geometric").sample(torch.tensor([[-1e-6]], dtype=torch.float64), 2000, gen)
    mean = 1 / math.expm1(1e-6)
    assert abs(g.double().mean().item() - mean) <= 6 * math.sqrt(mean * (mean + 1) / 2000)


def test_support_is_checked_inside_vmap():
    """Regression (issue 9.2): support checks were skipped inside torch.func transforms."""
    k = kernels.get("categorical", C=3)
    with pytest.raises(DomainError, match="support"):
        torch.func.vmap(k.log_prob)(torch.tensor([0, 5]), torch.zeros(2, 3, dtype=torch.float64))
    kp = kernels.get("poisson")
    with pytest.raises(DomainError, match="support"):
        torch.func.vmap(kp.log_prob)(torch.tensor([1.0, -2.0], dtype=torch.float64),
                                     torch.zeros(2, 1, dtype=torch.float64))


# --------------------------------------------------------------------------- 9.11 invalid F
def test_non_convex_user_family_is_refused_not_a_negative_fisher():
    """Regression (issue 9.11): a family built with check=False and a concave F gave a
    negative Fisher information without a word."""
    import sympy as sp

    from fishsym.symbolic import ExponentialFamily, natural_symbol
    from fishsym.symbolic.support import FiniteSupport

    h, y = natural_symbol("h"), sp.Symbol("y", integer=True, nonnegative=True)
    fam = ExponentialFamily("concave", (h,), y, (y,), -(h**2), sp.Integer(0),
                            FiniteSupport.integer_range(0, 1), check=False)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    with pytest.raises(FamilyDefinitionError, match="not positive semi-definite"):
        fishsym.fisher_variances(model, torch.randn(2, 2, dtype=torch.float64), fam)
