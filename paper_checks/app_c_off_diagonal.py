"""Claim: the paper's off-diagonal bounds (App. C): for parameters ``i ≠ j`` and ``N = 1``,

    Var Î₁[i, j] ≤ ‖u_i‖² ‖u_j‖² γ̃_max(M),   γ̃_max(M) = sup_{‖a‖=‖b‖=1} M[a, b, a, b],
    Var Î₂[i, j] ≤ ‖∂²_{ij} h‖² λ_max(I),

with ``Î₁[i,j] = ∂_iℓ ∂_jℓ`` and ``Î₂[i,j] = −∂²_{ij}ℓ``. Checked on small random MLPs for
**every pair** of parameters: the exact variances by enumerating the labels (categorical
heads; ``Var Î₁[i,j] = Σ_y p(y) (s_i s_j)² − (Σ_y p(y) s_i s_j)²`` with the scores
``s = (t − η)ᵀ u``, and ``Var Î₂[i,j] = Σ_y p(y) ((t − η)ᵀ ∂²_{ij}h)²``), the full Jacobian and
Hessians of ``h`` from ``torch.func`` (a small model: ``P × P`` on purpose), and
``γ̃_max(M)`` by its certified matricisation value (``M[a,b,a,b] = (a⊗b)ᵀ T (a⊗b)``,
``‖a⊗b‖ = 1``; rounded outward).
"""

from __future__ import annotations

import torch
from torch.func import functional_call, hessian, jacrev

from paper_checks._common import random_inputs, random_mlp
from paper_checks._core import need

NAME = "app_c_off_diagonal"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 46
CLAIM = "App. C: off-diagonal Var Î₁[i,j] ≤ ‖u_i‖²‖u_j‖²γ̃_max(M), Var Î₂[i,j] ≤ ‖∂²_ij h‖²λ_max(I)"
WHERE = "paper App. C (docs/theory.md §3)"
METHOD = (
    "label enumeration with the full Jacobian and Hessians of h (torch.func) on small MLPs, "
    "every pair i ≠ j; γ̃_max(M) by the certified matricisation; float64"
)

SETTINGS = {
    "tiny": dict(classes=(3,), activations=("tanh",), widths=(2, 3), n_inputs=2),
    "quick": dict(classes=(3, 5), activations=("tanh", "sigmoid"), widths=(3, 5), n_inputs=4),
    "full": dict(
        classes=(3, 5, 10), activations=("tanh", "sigmoid", "softplus"), widths=(4, 6), n_inputs=8
    ),
}
#: the exact variances and the bounds are sums of a few dozen float64 products
SLACK = 1e-10


def _derivatives(model, x):
    """``h`` ``[d]``, ``u`` ``[d, P]`` and ``∂²h`` ``[d, P, P]`` at one input."""
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    flat = torch.cat([p.reshape(-1) for p in params.values()])
    shapes = [p.shape for p in params.values()]

    def h_of(theta):
        parts, start = {}, 0
        for n, shape in zip(names, shapes, strict=True):
            size = shape.numel()
            parts[n] = theta[start : start + size].reshape(shape)
            start += size
        return functional_call(model, parts, (x[None],))[0]

    return h_of(flat).detach(), jacrev(h_of)(flat), hessian(h_of)(flat)


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    kernels = need("fishsym", "kernels")
    eps = torch.finfo(torch.float64).eps
    pairs = violations1 = violations2 = 0
    worst1 = worst2 = 0.0
    with ctx.part("App. C holds", "small MLPs, every pair", "label enumeration"):
        for C in s["classes"]:
            kernel = kernels.get("categorical", C=C)
            for j, act in enumerate(s["activations"]):
                model = random_mlp((*s["widths"], C), act, seed=70 + C + j, scale=1.5)
                xs = random_inputs(s["n_inputs"], s["widths"][0], seed=7)
                v1 = v2 = 0
                for x in xs:
                    h, u, H = _derivatives(model, x)
                    p = torch.softmax(h, -1)
                    g = torch.eye(C, dtype=h.dtype) - p  # t(y) − η for y = 0..C−1, [y, c]
                    score = g @ u  # [y, P]
                    prod = score[:, :, None] * score[:, None, :]  # [y, P, P]
                    mean = torch.einsum("y,yij->ij", p, prod)
                    var1 = torch.einsum("y,yij->ij", p, (prod - mean) ** 2)
                    curv = torch.einsum("yc,cij->yij", g, H)
                    var2 = torch.einsum("y,yij->ij", p, curv**2)
                    spec = kernel.spectrum(h[None], local=True)
                    gamma = float(spec.gamma_max_upper[0])
                    lam = float(spec.fisher_max[0])
                    un = (u * u).sum(0)
                    bound1 = un[:, None] * un[None, :] * gamma * (1 + SLACK)
                    bound2 = (H * H).sum(0) * lam * (1 + SLACK) + eps * var2.abs().max()
                    off = ~torch.eye(u.shape[1], dtype=torch.bool)
                    v1 += int((var1 > bound1)[off].sum())
                    v2 += int((var2 > bound2)[off].sum())
                    pairs += int(off.sum())
                    tight1 = (var1[off] / bound1[off].clamp_min(1e-300)).max()
                    tight2 = (var2[off] / bound2[off].clamp_min(1e-300)).max()
                    worst1, worst2 = max(worst1, float(tight1)), max(worst2, float(tight2))
                violations1 += v1
                violations2 += v2
                ctx.check(
                    "off-diagonal bounds hold",
                    f"C = {C}, {act} {'-'.join(map(str, (*s['widths'], C)))}",
                    "every pair i ≠ j",
                    v1 == 0 and v2 == 0,
                    f"violations Î₁ {v1}, Î₂ {v2}",
                )
        ctx.number("pairs (i ≠ j) × inputs checked", pairs)
        ctx.number("violations Î₁, Î₂", f"{violations1}, {violations2}")
        ctx.number("largest variance / bound, Î₁ and Î₂", f"{worst1:.3g}, {worst2:.3g}")
