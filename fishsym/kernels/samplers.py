"""Label samplers ``y ∼ p(y|h)`` driven only by an explicit ``torch.Generator``.

``torch.distributions`` samplers take no generator, so every sampler here is built from
generator-accepting primitives: ``torch.rand``/``torch.randn``, ``torch.multinomial``,
``torch.poisson``, ``torch.binomial`` and ``torch._standard_gamma`` (Marsaglia–Tsang in
ATen; it accepts ``generator=``). Transformations used:

* exponential: ``−log U / λ``; geometric: ``⌊log U / h⌋`` (``P(Y ≥ k) = e^{kh}``);
* gamma: ``G(α)/β`` with ``G`` standard gamma; beta: ``G₁/(G₁+G₂)``;
* von Mises: rejection — from the uniform angle for ``κ <`` :data:`VM_UNIFORM_BELOW`
  (accept with probability ``e^{κ(cos θ − 1)}``), Best & Fisher's (1979) wrapped-Cauchy
  envelope above;
* negative binomial: Poisson–Gamma mixture ``Poisson(G(r)·e^h/(1−e^h))``;
* multinomial: class counts of ``n`` categorical draws;
* user-defined finite supports: ``torch.multinomial`` over :meth:`support_labels`
  with probabilities ``exp(log_prob)`` (enumeration).

Every sampler maps ``h`` ``[..., d]`` to labels ``[n, ..., *obs_shape]``: ``torch.int64``
for discrete families, ``h``'s dtype for continuous ones.
"""

from __future__ import annotations

import torch

from fishsym.errors import DomainError

#: count labels are sampled in float64 and cast to int64: exact up to 2⁵³ (floats hold
#: every integer up to 2⁵³; int64 would overflow to INT64_MIN beyond 2⁶³). Means above
#: MAX_COUNT_MEAN are refused before sampling; a draw at or above MAX_COUNT afterwards
MAX_COUNT = 2.0**53
MAX_COUNT_MEAN = 2.0**50


def _check_mean(kernel, h, mean: torch.Tensor) -> None:
    """Refuse (before drawing) natural parameters whose label mean is beyond what the
    count samplers represent exactly."""
    worst = mean.max() if mean.numel() else mean
    if not bool(torch.isfinite(worst)) or float(worst) > MAX_COUNT_MEAN:
        at = h.reshape(-1, h.shape[-1])[int(mean.reshape(-1).argmax())].tolist()
        raise DomainError(
            f"{kernel._describe()}: cannot sample at h = {at}: the label mean "
            f"{float(worst):.4g} exceeds {MAX_COUNT_MEAN:.4g} (2^50), beyond which count "
            "labels cannot be sampled exactly (float64 holds integers up to 2^53). Use "
            "natural parameters with a smaller mean"
            + (" (a log-rate below 34.6)" if kernel.name == "poisson" else "")
        )


def _counts(kernel, h, draws: torch.Tensor) -> torch.Tensor:
    """float64 count draws → int64 labels, refusing any draw that is not an exact integer
    below :data:`MAX_COUNT` (no silent INT64_MIN)."""
    bad = ~torch.isfinite(draws) | (draws >= MAX_COUNT) | (draws < 0)
    if bool(bad.any()):
        raise DomainError(
            f"{kernel._describe()}: a sampled label is not a count below 2^53 "
            f"({draws[bad].flatten()[0].item():.4g}) at max |h| = {h.abs().max().item():.4g}; "
            "the label mean is too large to sample exactly in float64"
        )
    return draws.long()


def _uniform_open(shape, h, generator) -> torch.Tensor:
    """``U ∼ Uniform(0, 1)`` strictly inside the interval (``torch.rand`` can return 0)."""
    u = torch.rand(shape, generator=generator, dtype=h.dtype, device=h.device)
    return u.clamp_min(torch.finfo(h.dtype).tiny)


def _expand(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.expand(n, *x.shape).contiguous()


def categorical_indices(probs: torch.Tensor, n: int, generator) -> torch.Tensor:
    """``n`` class indices per row of ``probs`` ``[..., C]`` → ``[n, ...]`` (int64)."""
    batch, C = probs.shape[:-1], probs.shape[-1]
    flat = probs.reshape(-1, C)
    idx = torch.multinomial(flat, n, replacement=True, generator=generator)  # [B, n]
    return idx.T.reshape(n, *batch)


def categorical(kernel, h, n, generator):
    return categorical_indices(torch.softmax(h, -1), n, generator)


def categorical_minimal(kernel, h, n, generator):
    zero = torch.zeros_like(h[..., :1])
    return categorical_indices(torch.softmax(torch.cat([h, zero], -1), -1), n, generator)


def multinomial(kernel, h, n, generator):
    trials = int(kernel.sizes["n"])
    C = h.shape[-1]
    draws = categorical_indices(torch.softmax(h, -1), n * trials, generator)  # [n·trials, ...]
    draws = draws.reshape(n, trials, *h.shape[:-1])
    return torch.nn.functional.one_hot(draws, C).sum(1)


def bernoulli(kernel, h, n, generator):
    u = torch.rand((n, *h.shape[:-1]), generator=generator, dtype=h.dtype, device=h.device)
    return (u < torch.sigmoid(h[..., 0])).long()


def independent_bernoulli(kernel, h, n, generator):
    u = torch.rand((n, *h.shape), generator=generator, dtype=h.dtype, device=h.device)
    return (u < torch.sigmoid(h)).long()


def binomial(kernel, h, n, generator):
    trials = float(kernel.sizes["n"])
    if trials >= MAX_COUNT:
        raise DomainError(f"{kernel._describe()}: n = {trials:g} trials exceed 2^53")
    hd = h[..., 0].double()
    p = _expand(torch.sigmoid(hd), n)
    count = torch.full_like(p, trials)
    return _counts(kernel, h, torch.binomial(count, p, generator=generator))


def poisson(kernel, h, n, generator):
    hd = h[..., 0].double()  # float32 rates are exact only up to 2^24
    _check_mean(kernel, h, torch.exp(hd))
    rate = _expand(torch.exp(hd), n)
    return _counts(kernel, h, torch.poisson(rate, generator=generator))


def geometric(kernel, h, n, generator):
    hd = h[..., 0].double()
    # mean eʰ/(1 − eʰ) = 1/expm1(−h): it diverges as h → 0⁻
    _check_mean(kernel, h, 1 / torch.expm1(-hd))
    u = _uniform_open((n, *h.shape[:-1]), hd[..., None], generator)
    return _counts(kernel, h, torch.floor(torch.log(u) / hd))


def negative_binomial(kernel, h, n, generator):
    r = float(kernel.sizes["r"])
    hd = h[..., 0].double()
    # odds (1−p)/p = eʰ/(1−eʰ) = 1/expm1(−h); mean r·odds diverges as h → 0⁻
    odds = 1 / torch.expm1(-hd)
    _check_mean(kernel, h, r * odds)
    shape = _expand(torch.full_like(hd, r), n)
    rate = torch._standard_gamma(shape, generator=generator) * odds
    if bool((rate >= MAX_COUNT).any()):  # a gamma draw far in its tail
        raise DomainError(
            f"{kernel._describe()}: a sampled Poisson rate exceeds 2^53 at max |h| = "
            f"{h.abs().max().item():.4g}; the label mean r·eʰ/(1−eʰ) is too large"
        )
    return _counts(kernel, h, torch.poisson(rate, generator=generator))


def exponential(kernel, h, n, generator):
    u = _uniform_open((n, *h.shape[:-1]), h, generator)
    return -torch.log(u) / (-h[..., 0])


def _standard_gamma(alpha, generator):
    g = torch._standard_gamma(alpha, generator=generator)
    # for shape α ≪ 1 a draw can underflow to 0, outside the support y > 0
    return g.clamp_min(torch.finfo(alpha.dtype).tiny)


def gamma(kernel, h, n, generator):
    alpha = _expand(h[..., 0] + 1, n)
    return _standard_gamma(alpha, generator) / (-h[..., 1])


def beta(kernel, h, n, generator):
    g1 = _standard_gamma(_expand(h[..., 0] + 1, n), generator)
    g2 = _standard_gamma(_expand(h[..., 1] + 1, n), generator)
    y = g1 / (g1 + g2)
    eps = torch.finfo(h.dtype).eps
    # keep y inside the open support (0, 1); shifts a draw by at most one ulp
    return y.clamp(torch.finfo(h.dtype).tiny, 1 - eps / 2)


def gaussian(kernel, h, n, generator):
    s2 = float(kernel.sizes.get("sigma2", 1))
    z = torch.randn((n, *h.shape), generator=generator, dtype=h.dtype, device=h.device)
    y = s2 * h + s2**0.5 * z
    return y[..., 0] if kernel.obs_shape == () else y


def gaussian_meanvar(kernel, h, n, generator):
    var = -1 / (2 * h[..., 1])
    z = torch.randn((n, *h.shape[:-1]), generator=generator, dtype=h.dtype, device=h.device)
    return h[..., 0] * var + var.sqrt() * z


#: concentrations below which von Mises angles are drawn by rejection from the uniform angle
#: (acceptance rate e^{−κ}I₀(κ) ≥ 0.46); Best–Fisher above (acceptance ≥ 0.65)
VM_UNIFORM_BELOW = 1.0
#: rejection rounds after which the von Mises sampler gives up (each round accepts more
#: than 46% of the outstanding draws, so 200 rounds leave none in practice)
VM_MAX_ROUNDS = 200


def von_mises(kernel, h, n, generator):
    """Angles ``[n, ...]`` in ``[−π, π)`` from ``VM(μ, κ)``, ``h = κ(cos μ, sin μ)``.

    Exact rejection samplers (computed in float64, returned in ``h``'s dtype): the
    uniform proposal for ``κ <`` :data:`VM_UNIFORM_BELOW`; otherwise Best & Fisher:
    ``τ = 1 + √(1 + 4κ²)``, ``ρ = (τ − √(2τ))/(2κ)``, ``s = (1 + ρ²)/(2ρ)``, ``z = cos πU₁``,
    ``f = (1 + sz)/(s + z)``, ``c = κ(s − f)``, accept if ``c(2 − c) > U₂`` or
    ``log(c/U₂) + 1 − c ≥ 0``, then ``θ = ±arccos f``.
    """
    hd = h.to(torch.float64)
    kappa = torch.linalg.vector_norm(hd, dim=-1).expand(n, *h.shape[:-1])
    mu = torch.atan2(hd[..., 1], hd[..., 0]).expand(n, *h.shape[:-1])
    safe = kappa.clamp_min(VM_UNIFORM_BELOW)
    tau = 1 + torch.sqrt(1 + 4 * safe * safe)
    rho = (tau - torch.sqrt(2 * tau)) / (2 * safe)
    s = (1 + rho * rho) / (2 * rho)
    uniform = kappa < VM_UNIFORM_BELOW
    theta = torch.zeros_like(kappa)
    pending = torch.ones_like(kappa, dtype=torch.bool)
    for _ in range(VM_MAX_ROUNDS):
        u1, u2, u3 = (_uniform_open(kappa.shape, hd, generator) for _ in range(3))
        # uniform proposal: θ = π(2U₁ − 1), accepted with probability e^{−κ(1 − cos θ)}
        t_uni = torch.pi * (2 * u1 - 1)
        ok_uni = u2 <= torch.exp(-2 * kappa * torch.sin(t_uni / 2) ** 2)
        # Best–Fisher
        z = torch.cos(torch.pi * u1)
        f = ((1 + s * z) / (s + z)).clamp(-1, 1)
        c = safe * (s - f)
        ok_bf = (c * (2 - c) > u2) | (torch.log(c / u2) + 1 - c >= 0)
        t_bf = torch.where(u3 < 0.5, -1.0, 1.0) * torch.arccos(f)
        accept = pending & torch.where(uniform, ok_uni, ok_bf)
        theta = torch.where(accept, torch.where(uniform, t_uni, t_bf), theta)
        pending = pending & ~accept
        if not bool(pending.any()):
            break
    else:
        raise DomainError(
            f"{kernel._describe()}: the von Mises rejection sampler did not finish in "
            f"{VM_MAX_ROUNDS} rounds (max κ = {float(kappa.max()):.4g})"
        )
    y = torch.remainder(mu + theta + torch.pi, 2 * torch.pi) - torch.pi
    return y.to(h.dtype)


def enumeration(kernel, h, n, generator):
    """Sample a finite support by enumeration: probabilities ``exp(log_prob)`` of every
    label of :meth:`support_labels`, then ``torch.multinomial``."""
    labels = kernel.support_labels().to(h.device)  # [S, *obs_shape]
    S = labels.shape[0]
    batch = h.shape[:-1]
    lab = labels.reshape(S, *([1] * len(batch)), *kernel.obs_shape)
    logp = kernel._log_prob(lab, h[None])  # [S, ...]
    probs = torch.softmax(logp.movedim(0, -1), -1)  # [..., S]
    idx = categorical_indices(probs, n, generator)  # [n, ...]
    return labels[idx]
