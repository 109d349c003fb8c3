"""Spectral quantities (docs/theory.md §3–§4): exact parts vs eigensolvers, certified bounds vs
local values and random unit vectors, closed forms for Gaussian and 1-D families."""

from __future__ import annotations

import pytest
import torch

import fishsym.kernels as kernels
import fishsym.kernels.bernoulli as bernoulli_mod
import fishsym.kernels.categorical as categorical_mod
import fishsym.kernels.spectrum as spectrum_mod
from fishsym.kernels.spectrum import FIELDS, LOCAL_FIELDS, NOT_COMPUTED
from fishsym.symbolic import families

#: float64 eigenvalues vs eigvalsh: rounding of the matrix entries and of LAPACK
RTOL = 1e-12
#: ordering checks lower ≤ value ≤ upper allow rounding of the O(1) quantities compared
SLACK = 1e-12
#: random unit vectors checked against the certified bounds
N_RANDOM = 2000
#: the spectral fields that are certified (computed with local=True and local=False alike)
CERTIFIED = tuple(f for f in FIELDS if f not in LOCAL_FIELDS)

CASES = [(n, {}) for n in families.names()] + [
    ("categorical", {"C": 6}),
    ("categorical_minimal", {"C": 5}),
    ("categorical_minimal", {"C": 2}),
    ("multinomial", {"n": 3, "C": 4}),
    ("independent_bernoulli", {"d": 3}),
    ("gaussian", {"d": 3, "sigma2": 2}),
]


def _random_unit(d, n, seed=0):
    v = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return v / v.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("family_name,sizes", CASES, ids=[f"{n}{s or ''}" for n, s in CASES])
def test_spectrum_bounds_hold(family_name, sizes, kt):
    k = kernels.get(family_name, **sizes)
    fam = families.get(family_name, **sizes)
    h = kt.random_h(fam, kt.rng(9), 3)
    s = k.spectrum(h)
    assert set(s.methods) == {
        "fisher_min",
        "fisher_max",
        "mu4_max_upper",
        "mu4_max_local",
        "mu4_min_lower",
        "mu4_min_local",
        # λ̃(M), M = μ₄ − I⊗I (tests/kernels/test_moment_spectrum.py)
        "m_min_lower",
        "m_max_upper",
        "m_min_local",
        "m_max_local",
        "gamma_max_upper",
    }
    eig = torch.linalg.eigvalsh(k.fisher(h))
    scale = eig[..., -1]
    assert ((s.fisher_max - eig[..., -1]).abs() <= RTOL * scale).all()
    assert ((s.fisher_min - eig[..., 0]).abs() <= RTOL * scale).all()
    tol = SLACK * s.mu4_max_upper
    assert (s.mu4_min_lower <= s.mu4_min_local + tol).all()
    assert (s.mu4_min_local <= s.mu4_max_local + tol).all()
    assert (s.mu4_max_local <= s.mu4_max_upper + tol).all()
    # no unit vector beats the certified bounds
    V = _random_unit(k.d, N_RANDOM).T  # [d, N]
    q = k.quartic(h, V)  # [3, N]
    assert (q <= s.mu4_max_upper[:, None] + tol[:, None]).all()
    assert (q >= s.mu4_min_lower[:, None] - tol[:, None]).all()
    # the local values are attained, so random vectors cannot do better than the
    # multi-start power iteration by more than rounding (for these small d)
    assert (q.amax(-1) <= s.mu4_max_local + 1e-9 * s.mu4_max_upper).all()
    assert (q.amin(-1) >= s.mu4_min_local - 1e-9 * s.mu4_max_upper).all()
    # the structured bounds bound the same λ_max(μ_4) as the lambdified dense path
    if k.d <= 6:
        g = kernels.generic(fam).spectrum(h)
        assert (g.mu4_max_local <= s.mu4_max_upper + tol).all()
        assert (s.mu4_max_local <= g.mu4_max_upper + tol).all()
        assert (s.mu4_max_local >= g.mu4_max_local - 1e-9 * s.mu4_max_upper).all()


ONE_D = [(n, {}) for n in families.names() if families.get(n).dim == 1] + [
    ("categorical_minimal", {"C": 2})
]


@pytest.mark.parametrize("family_name,sizes", ONE_D, ids=[f"{n}{s or ''}" for n, s in ONE_D])
def test_one_dimensional_spectrum_is_exact(family_name, sizes, kt):
    k = kernels.get(family_name, **sizes)
    h = kt.random_h(families.get(family_name, **sizes), kt.rng(2), 4)
    s = k.spectrum(h)
    mu4 = k.quartic(h, torch.ones(1, 1, dtype=torch.float64))[..., 0]
    fisher = k.fisher(h)[..., 0, 0]
    for field in ("mu4_max_upper", "mu4_max_local", "mu4_min_lower", "mu4_min_local"):
        assert kt.rel_err(getattr(s, field), mu4) <= RTOL, field
    assert kt.rel_err(s.fisher_min, fisher) <= RTOL and kt.rel_err(s.fisher_max, fisher) <= RTOL


def test_gaussian_closed_form_and_power_iteration_agree(kt):
    sigma2, d = 2.0, 3
    h = torch.randn(4, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s = kernels.get("gaussian", d=d, sigma2=2).spectrum(h)
    # the certified fields are the closed forms rounded outward by (16 + 4d)·eps
    # (issue 9.3); the local values are attained, not rounded
    outward = (16 + 4 * d) * torch.finfo(torch.float64).eps
    assert torch.all(s.fisher_min <= sigma2) and torch.all(s.fisher_max >= sigma2)
    assert kt.rel_err(s.fisher_min, torch.full((4,), sigma2, dtype=torch.float64)) <= outward
    assert kt.rel_err(s.fisher_max, torch.full((4,), sigma2, dtype=torch.float64)) <= outward
    mu4 = 3 * sigma2**2
    assert torch.all(s.mu4_min_lower <= mu4) and torch.all(s.mu4_max_upper >= mu4)
    for field in ("mu4_max_local", "mu4_min_local"):
        assert torch.all(getattr(s, field) == 3 * sigma2**2)
    # the generic path finds the same value by power iteration; its matricisation bound
    # is (d + 2)σ⁴ (vec(Id) is an eigenvector of M), certified but not tight
    g = kernels.generic("gaussian", d=d, sigma2=2).spectrum(h)
    assert (
        kt.rel_err(g.mu4_max_local, torch.full((4,), 3 * sigma2**2, dtype=torch.float64)) <= 1e-10
    )
    assert (
        kt.rel_err(g.mu4_min_local, torch.full((4,), 3 * sigma2**2, dtype=torch.float64)) <= 1e-10
    )
    assert (
        kt.rel_err(g.mu4_max_upper, torch.full((4,), (d + 2) * sigma2**2, dtype=torch.float64))
        <= RTOL
    )


def test_categorical_theory_facts(kt):
    """docs/theory.md §4: max p(1−p) ≤ λ_max(I) ≤ min(p_max, 2·max p(1−p), 1 − ‖p‖²) ≤ 1/2;
    λ_min(μ_4) = 0 attained at the ones vector; the certified quartic bound."""
    C = 40
    k = kernels.get("categorical", C=C)
    gen = torch.Generator().manual_seed(4)
    h = torch.cat(
        [torch.randn(6, C, generator=gen, dtype=torch.float64) * s for s in (0.1, 1.0, 5.0)]
    )
    p = k.mean(h)
    s = k.spectrum(h)
    pq = p * (1 - p)
    lam = s.fisher_max
    tol = SLACK * lam
    assert (pq.amax(-1) <= lam + tol).all()
    assert (
        lam <= torch.minimum(torch.minimum(p.amax(-1), 2 * pq.amax(-1)), 1 - (p * p).sum(-1)) + tol
    ).all()
    assert (lam <= 0.5).all()
    ones = torch.ones(C, 1, dtype=torch.float64)
    assert (k.quartic(h, ones).abs() <= 1e-15).all() and (s.mu4_min_lower == 0).all()
    expected_upper = (1 - 2 * p.amin(-1) + (p * p).sum(-1)) * lam
    assert kt.rel_err(s.mu4_max_upper, expected_upper) <= RTOL


def test_spectrum_is_deterministic_and_private(kt):
    k = kernels.get("gamma")
    h = kt.random_h(families.get("gamma"), kt.rng(0), 2)
    state = torch.get_rng_state()
    a, b = k.spectrum(h), k.spectrum(h)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a.mu4_max_local, b.mu4_max_local) and torch.equal(
        a.mu4_min_local, b.mu4_min_local
    )
    assert "power-iteration" in a.methods["mu4_max_local"]
    assert a.methods["mu4_max_upper"] == "matricisation-eigvalsh"


def _no_search(*args, **kwargs):
    raise AssertionError("spectrum(h, local=False) ran the power iteration")


@pytest.mark.parametrize("kind", ["kernel", "generic"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("family_name,sizes", CASES, ids=[f"{n}{s or ''}" for n, s in CASES])
def test_spectrum_without_local_values(family_name, sizes, dtype, kind, kt, monkeypatch):
    """``local=False``: the certified fields equal those of ``local=True`` bit for bit, the
    local fields are ``None`` (never NaN) and no power iteration runs."""
    fam = families.get(family_name, **sizes)
    k = kernels.get(family_name, **sizes) if kind == "kernel" else kernels.generic(fam)
    h = kt.random_h(fam, kt.rng(5), 3, dtype)
    full = k.spectrum(h)
    for module in (spectrum_mod, categorical_mod, bernoulli_mod):
        monkeypatch.setattr(module, "power_iteration", _no_search)
    cert = k.spectrum(h, local=False)
    for field in CERTIFIED:
        value = getattr(cert, field)
        assert value.dtype == dtype and value.shape == h.shape[:-1], field
        assert torch.equal(value, getattr(full, field)), field
        assert cert.methods[field] == full.methods[field], field
    for field in LOCAL_FIELDS:
        assert getattr(cert, field) is None, field
        assert cert.methods[field] == NOT_COMPUTED, field
    assert set(cert.methods) == set(full.methods)
    assert "None" in repr(cert)


def test_spectrum_local_must_be_bool(kt):
    k = kernels.get("categorical", C=4)
    h = kt.random_h(families.get("categorical", C=4), kt.rng(1), 2)
    for bad in (0, 1, None, "no"):
        with pytest.raises(TypeError, match="local must be True"):
            k.spectrum(h, local=bad)


#: families whose certified values are tight in every direction (an isotropic I and μ₄):
#: the bounds then meet the forms on float-normalised unit vectors, whose norm is 1 only to
#: an ulp, and only the outward rounding keeps them on the right side
TIGHT = [
    ("gaussian", {"d": 3, "sigma2": 2}, None),
    ("gaussian", {}, None),
    ("independent_bernoulli", {"d": 4}, 0.0),  # p = ½ everywhere: I = Id/4
]


@pytest.mark.parametrize("family_name,sizes,at", TIGHT, ids=[f"{n}{s or ''}" for n, s, _ in TIGHT])
def test_outward_rounding_keeps_tight_spectra_valid(family_name, sizes, at, kt):
    """Issue 23 E: with the outward rounding of :func:`round_outward` removed, ``vᵀIv``
    and ``μ₄[v⁴]`` land above ``fisher_max``/``mu4_max_upper`` (or below the lower values)
    by an ulp on some unit vectors. No slack here: the bounds must hold as computed."""
    k = kernels.get(family_name, **sizes)
    fam = families.get(family_name, **sizes)
    h = kt.random_h(fam, kt.rng(3), 4) if at is None else torch.full((4, k.d), at, dtype=torch.float64)
    s = k.spectrum(h)
    V = _random_unit(k.d, N_RANDOM, seed=11).T
    quadratic, quartic = k.quadratic(h, V), k.quartic(h, V)
    assert bool((quadratic <= s.fisher_max[:, None]).all())
    assert bool((quadratic >= s.fisher_min[:, None]).all())
    assert bool((quartic <= s.mu4_max_upper[:, None]).all())
    assert bool((quartic >= s.mu4_min_lower[:, None]).all())
    # and the rounding is an ulp-sized move, not a loose bound
    assert bool((s.fisher_max <= quadratic.amax(-1) * (1 + 1e-13)).all())
    if family_name == "gaussian":  # μ₄ = 3σ⁴‖v‖⁴ is isotropic too
        assert bool((s.mu4_max_upper <= quartic.amax(-1) * (1 + 1e-13)).all())
