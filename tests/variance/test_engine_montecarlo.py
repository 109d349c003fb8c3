"""Monte Carlo cross-check of ``fisher_variances`` (heavy tier: ``-m montecarlo``).

Labels are drawn from the model; for each label the squared score ``(∂_iℓ)²`` and the
negative Hessian ``−∂²_iℓ`` come from ``torch.func`` on ``log p(y|h(θ))`` — none of the
closed forms. Sample means must match ``fisher`` and sample variances ``var1``/``var2``
within ``Z_MAX`` standard errors.
"""

import pytest
import torch
from torch.func import functional_call, grad, hessian, vmap

import fishsym
from fishsym import kernels, nets

#: labels per input
N_LABELS = 20000
#: |z| above this fails; two-sided normal tail 5.7e-7 per comparison, about 1e-4 over the
#: ~200 comparisons of this file
Z_MAX = 5.0


@pytest.mark.montecarlo
@pytest.mark.parametrize("family_name, d", [("categorical", 3), ("poisson", 1), ("gaussian", 2)])
def test_estimator_moments_match_monte_carlo(family_name, d):
    model = nets.mlp([3, 4, d], "tanh", torch.Generator().manual_seed(0), torch.float64)
    x = torch.randn(1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = fishsym.fisher_variances(model, x, family_name, per_sample=True)
    kernel = kernels.get(res.kernel.family)
    names = [n for n, _ in model.named_parameters()]
    shapes = {n: p.shape for n, p in model.named_parameters()}
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflatten(flat):
        out, start = {}, 0
        for n in names:
            k = shapes[n].numel()
            out[n] = flat[start : start + k].reshape(shapes[n])
            start += k
        return out

    def loglik(flat, y):
        h = functional_call(model, unflatten(flat), (x,))[0]
        return kernel.log_prob(y, h)

    h = model(x)[0].detach()
    y = kernel.sample(h, N_LABELS, torch.Generator().manual_seed(2))
    scores = vmap(grad(loglik), in_dims=(None, 0))(flat0, y)  # [m, p]
    curv = vmap(lambda yy: torch.diagonal(hessian(loglik)(flat0, yy)))(y)  # [m, p]
    exact = {
        "squared_score": (
            torch.cat([res.fisher[n][0].reshape(-1) for n in names]),
            torch.cat([res.var1[n][0].reshape(-1) for n in names]),
        ),
        "neg_hessian": (
            torch.cat([res.fisher[n][0].reshape(-1) for n in names]),
            torch.cat([res.var2[n][0].reshape(-1) for n in names]),
        ),
    }
    draws = {"squared_score": scores**2, "neg_hessian": -curv}
    for est, samples in draws.items():
        mean_exact, var_exact = exact[est]
        mean = samples.mean(0)
        centred = samples - mean
        var = centred.pow(2).mean(0)
        m4 = centred.pow(4).mean(0)
        se_mean = (var / N_LABELS).sqrt()
        se_var = ((m4 - var**2).clamp_min(0) / N_LABELS).sqrt()
        # entries with (numerically) zero variance: every draw equals the exact value
        flat = var_exact <= 1e-12 * var_exact.abs().max()
        assert torch.allclose(var[flat], torch.zeros_like(var[flat]), atol=1e-20)
        z_mean = ((mean - mean_exact) / se_mean)[~flat]
        z_var = ((var - var_exact) / se_var)[~flat]
        assert z_mean.abs().max() < Z_MAX, (est, z_mean.abs().max())
        assert z_var.abs().max() < Z_MAX, (est, z_var.abs().max())
