"""The empirical Fisher's exact moments (docs/theory.md §5): formula route vs enumeration route vs
Gauss–Hermite quadrature written out here vs Monte Carlo."""

import numpy as np
import pytest
import torch

from fishsym import kernels
from fishsym.montecarlo.compare import z_scores, z_test
from fishsym.montecarlo.empirical import empirical_fisher_monte_carlo
from fishsym.nets import mlp
from fishsym.reference.coordinates import (
    all_coordinates,
    coordinate_derivatives,
    sample_coordinates,
)
from fishsym.reference.empirical import empirical_fisher_enumerated
from fishsym.variance.empirical import empirical_fisher_exact

#: formula route vs enumeration / quadrature route, both float64 (rounding only)
RTOL = 1e-10
#: family-wise false-alarm rate of the Monte Carlo test (one seeded draw: it either
#: always passes or always fails; a correct implementation fails with this probability)
MC_ALPHA = 1e-3
QUANTITIES = ("fisher", "var1", "var2", "emp_mean", "emp_var", "emp_hess_mean", "emp_hess_var")


def _nets(d, seed=0, act="sigmoid"):
    student = mlp((4, 5, 3, d), act, torch.Generator().manual_seed(seed), torch.float64)
    teacher = mlp((4, 5, 3, d), act, torch.Generator().manual_seed(seed + 1), torch.float64)
    for net in (student, teacher):
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1.8)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    return student, teacher, x


def _assert_moments_close(a, b):
    for name in b.fisher:
        scale = float(b.fisher[name].abs().max())
        for q in QUANTITIES:
            if q in ("fisher", "emp_mean", "emp_hess_mean"):
                s = scale
            else:  # variances: relative to the larger of max I² and the variance itself
                s = max(scale**2, float(getattr(b, q)[name].abs().max()))
            diff = float((getattr(a, q)[name] - getattr(b, q)[name]).abs().max())
            assert diff <= RTOL * s, f"{q} of {name}: |Δ| = {diff:.2e}, scale {s:.2e}"


@pytest.mark.parametrize(
    "family, d", [("categorical", 3), ("bernoulli", 1), ("independent_bernoulli", 2)]
)
@pytest.mark.parametrize("data", ["teacher", "fixed"])
def test_formulas_equal_enumeration(family, d, data):
    student, teacher, x = _nets(d)
    kern = kernels.get(
        family,
        **(
            {"C": d}
            if family == "categorical"
            else {"d": d}
            if family == "independent_bernoulli"
            else {}
        ),
    )
    if data == "teacher":
        kw = {"teacher_h": teacher(x).detach()}
    else:
        kw = {"labels": kern.sample(teacher(x).detach(), 1, torch.Generator().manual_seed(3))[0]}
    exact = empirical_fisher_exact(student, x, kern, **kw)
    coords = sample_coordinates(student, 6, torch.Generator().manual_seed(4))
    enum = empirical_fisher_enumerated(student, x, kern, coords, **kw)
    _assert_moments_close(exact.select(coords), enum)
    if data == "fixed":
        for name, v in exact.emp_var.items():
            assert float(v.abs().max()) <= RTOL * float(exact.emp_mean[name].max()) ** 2
    # the last layer: w = 0, so the Hessian form is exactly the Fisher with data labels
    last_w = "4.weight"
    torch.testing.assert_close(exact.emp_hess_mean[last_w], exact.fisher[last_w], rtol=RTOL, atol=0)


def test_gaussian_teacher_by_quadrature():
    """Gaussian head, d = 2: the squared score is a degree-4 polynomial in y, so 3
    probabilists' Gauss–Hermite nodes per coordinate give its moments exactly."""
    student, teacher, x = _nets(2, seed=10, act="tanh")
    kern = kernels.get("gaussian", d=2)
    h_q = teacher(x).detach()
    exact = empirical_fisher_exact(student, x, kern, teacher_h=h_q)
    nodes, weights = np.polynomial.hermite_e.hermegauss(3)
    weights = weights / weights.sum()
    grid = torch.tensor([[a, b] for a in nodes for b in nodes], dtype=torch.float64)  # [9, 2]
    wgt = torch.tensor([wa * wb for wa in weights for wb in weights], dtype=torch.float64)
    labels = h_q[:, None, :] + grid[None]  # [n, 9, 2]: y = h_q + node (unit variance)

    def log_density(h, y):  # written out: −½‖y − h‖² − log 2π
        return -0.5 * ((y - h) ** 2).sum(-1) - np.log(2 * np.pi)

    table = coordinate_derivatives(
        student, x, all_coordinates(student), head=log_density, head_args=labels
    )
    for name, (score, curv) in table.items():  # [n, k, 9]
        e2 = (wgt * score**2).sum(-1)
        e4 = (wgt * score**4).sum(-1)
        h1 = (wgt * -curv).sum(-1)
        h2 = (wgt * curv**2).sum(-1)
        shape = exact.fisher[name].shape
        scale = float(exact.fisher[name].abs().max())
        for got, want, s in (
            (exact.emp_mean[name], e2.mean(0), scale),
            (exact.emp_var[name], (e4 - e2**2).mean(0), scale**2),
            (exact.emp_hess_mean[name], h1.mean(0), scale),
            (exact.emp_hess_var[name], (h2 - h1**2).mean(0), scale**2),
        ):
            assert float((got - want.reshape(shape)).abs().max()) <= RTOL * s


def test_monte_carlo_agrees():
    student, teacher, x = _nets(3, seed=20)
    kern = kernels.get("categorical", C=3)
    h_q = teacher(x).detach()
    exact = empirical_fisher_exact(student, x, kern, teacher_h=h_q)
    coords = sample_coordinates(student, 4, torch.Generator().manual_seed(5))
    mc = empirical_fisher_monte_carlo(
        student, x, kern, coords, h_q, 4000, torch.Generator().manual_seed(6)
    )
    sel = exact.select(coords)
    zs = []
    for est, mk, vk in (
        ("squared_score", "emp_mean", "emp_var"),
        ("neg_hessian", "emp_hess_mean", "emp_hess_var"),
    ):
        m = mc[est]
        for name in coords:
            zs.append(z_scores(m.mean[name], getattr(sel, mk)[name], m.se_mean[name]))
            zs.append(
                z_scores(
                    m.var[name],
                    getattr(sel, vk)[name] / len(x),
                    m.se_var[name],
                    zero_scale=m.mean[name] ** 2,
                )
            )
    test = z_test(torch.cat(zs), MC_ALPHA)
    assert test.passed, test.describe()


def test_monte_carlo_detects_a_planted_error():
    """Dropping δδᵀ from the bias (the model's own Fisher in place of the empirical mean)
    must be flagged: the check can fail."""
    student, teacher, x = _nets(3, seed=20)
    kern = kernels.get("categorical", C=3)
    h_q = teacher(x).detach()
    exact = empirical_fisher_exact(student, x, kern, teacher_h=h_q)
    coords = {"4.bias": torch.arange(3), "2.bias": torch.arange(3)}
    mc = empirical_fisher_monte_carlo(
        student, x, kern, coords, h_q, 4000, torch.Generator().manual_seed(6)
    )
    sel = exact.select(coords)
    wrong = [
        z_scores(mc["squared_score"].mean[n], sel.fisher[n], mc["squared_score"].se_mean[n])
        for n in coords
    ]
    assert not z_test(torch.cat(wrong), MC_ALPHA).passed


def test_bad_data_label_arguments():
    student, teacher, x = _nets(3)
    kern = kernels.get("categorical", C=3)
    with pytest.raises(ValueError, match="exactly one"):
        empirical_fisher_exact(student, x, kern)
    with pytest.raises(ValueError, match="exactly one"):
        empirical_fisher_exact(
            student, x, kern, teacher_h=teacher(x), labels=torch.zeros(5)
        )
    with pytest.raises(Exception, match="teacher_h"):
        empirical_fisher_exact(
            student, x, kern, teacher_h=torch.zeros(4, 3, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="replicates"):
        empirical_fisher_monte_carlo(
            student, x, kern, {"4.bias": torch.arange(3)}, teacher(x).detach(), 1, torch.Generator()
        )


def test_exact_route_runs_on_the_engine_for_any_model():
    """A convolutional net takes the graph engine path; the formulas on its dense blocks
    equal the enumeration route."""
    gen = torch.Generator().manual_seed(30)
    student = torch.nn.Sequential(
        torch.nn.Conv1d(1, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(16, 3)
    ).double()
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 3)).double()
    x = torch.randn(4, 1, 10, generator=gen, dtype=torch.float64)
    kern = kernels.get("categorical", C=3)
    h_q = teacher(x).detach()
    exact = empirical_fisher_exact(student, x, kern, teacher_h=h_q)
    coords = sample_coordinates(student, 5, torch.Generator().manual_seed(31))
    enum = empirical_fisher_enumerated(student, x, kern, coords, teacher_h=h_q)
    _assert_moments_close(exact.select(coords), enum)
    # the Hessian form differs from the Fisher where w ≠ 0 (the conv layer is curved)
    assert float((exact.emp_hess_var["0.weight"]).abs().max()) > 0
