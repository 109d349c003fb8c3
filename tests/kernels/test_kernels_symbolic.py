"""Every kernel against its symbolic source, evaluated by sympy at random valid parameters.

Both the kernel returned by ``fishsym.kernels.get`` (structured where one exists) and the
lambdified generic kernel are held to 30-digit sympy values of ``F``, ``η``, ``I``,
``vᵀIv``, ``μ_4[v⁴]``, ``t(y)`` and ``log p(y|h)``.
"""

from __future__ import annotations

import pytest
import sympy as sp
import torch

import fishsym.kernels as kernels
from fishsym.symbolic import families

#: float64 kernels vs exact values: a few dozen roundings of O(1) terms, with mild
#: cancellation in the higher moments, stay far below 1e-12 (norm-wise relative)
RTOL = 1e-12

#: parameter points and vectors per family (kept small: sympy evaluation dominates)
N_POINTS = 2
N_VECTORS = 2


def _vectors(d, rng):
    """Random vectors with entries k/8 ∈ [−2, 2] (exact in binary and in sympy)."""
    return [
        [sp.Rational(int(k), 8) for k in rng.integers(-16, 17, size=d)] for _ in range(N_VECTORS)
    ]


@pytest.mark.parametrize("family_name", families.names())
def test_kernels_match_symbolic(family_name, kt):
    fam = families.get(family_name)
    under_test = {"get": kernels.get(family_name), "generic": kernels.generic(fam)}
    rng = kt.rng(17)
    for _ in range(N_POINTS):
        vals = fam.random_natural_params(rng)
        h = kt.h_tensor(fam, vals)
        F = kt.sym_float(fam.log_partition.subs(vals))
        eta = [kt.sym_float(e.subs(vals)) for e in fam.mean]
        fisher = [
            [kt.sym_float(fam.fisher[c, e].subs(vals)) for e in range(fam.dim)]
            for c in range(fam.dim)
        ]
        vs = _vectors(fam.dim, rng)
        quad = [kt.sym_float(fam.quadratic_form(v).subs(vals)) for v in vs]
        quart = [kt.sym_float(fam.quartic_form(v).subs(vals)) for v in vs]
        cub = [kt.sym_float(fam.central_moment_form(3, v).subs(vals)) for v in vs]
        V = torch.tensor([[float(x) for x in v] for v in vs], dtype=torch.float64).T  # [d, K]
        obs = kt.example_obs(fam)
        t_ref = [
            [
                kt.sym_float(e.subs(dict(zip(fam.obs_symbols, o, strict=True))))
                for e in fam.suff_stat
            ]
            for o in obs
        ]
        lp_ref = [
            kt.sym_float(
                fam.log_density.subs(dict(zip(fam.obs_symbols, o, strict=True))).subs(vals)
            )
            for o in obs
        ]
        for which, k in under_test.items():
            y = kt.labels_tensor(k, obs)
            checks = {
                "log_partition": (k.log_partition(h), F),
                "mean": (k.mean(h), eta),
                "fisher": (k.fisher(h), fisher),
                "quadratic": (k.quadratic(h, V), quad),
                "quartic": (k.quartic(h, V), quart),
                "cubic": (k.cubic(h, V), cub),
                "suff_stat": (k.suff_stat(y, dtype=torch.float64), t_ref),
                "log_prob": (k.log_prob(y, h), lp_ref),
            }
            if which == "generic":
                checks["lambdified F"] = (k.lambdified_log_partition(h), F)
            for what, (got, ref) in checks.items():
                err = kt.rel_err(got, torch.tensor(ref, dtype=torch.float64))
                assert err <= RTOL, (
                    f"{family_name} [{which}] {what}: relative error {err:.3g} at {vals}"
                )
