"""Structured kernels held to the lambdified generic ones at random valid parameters.

Sizes beyond the registry defaults exercise the structure (C > 3 classes, d > 1
outputs, σ² ≠ 1, n > 2 trials). Also: the O(C) categorical forms at large C against an
enumeration over labels, and the batch-chunking path.
"""

from __future__ import annotations

import mpmath
import pytest
import torch

import fishsym.kernels as kernels
from fishsym.kernels import categorical as cat
from fishsym.symbolic import families

#: float64, structured vs lambdified: both are a few dozen roundings of O(1) terms
RTOL = 1e-12

STRUCTURED_CASES = [
    ("categorical", {"C": 5}),
    ("categorical_minimal", {"C": 4}),
    ("multinomial", {"n": 3, "C": 4}),
    ("gaussian", {"d": 3, "sigma2": 2}),
    ("independent_bernoulli", {"d": 4}),
    ("binomial", {"n": 5}),
    ("bernoulli", {}),
]


@pytest.mark.parametrize("name,sizes", STRUCTURED_CASES, ids=[c[0] for c in STRUCTURED_CASES])
def test_structured_matches_lambdified(name, sizes, kt):
    fam = families.get(name, **sizes)
    fast, ref = kernels.get(name, **sizes), kernels.generic(fam)
    assert type(fast) is not kernels.GenericKernel
    assert kernels.get(fam) is fast  # one kernel per family, by name or by object
    rng = kt.rng(5)
    gen = torch.Generator().manual_seed(3)
    h = kt.random_h(fam, rng, 4)  # [4, d]
    v = torch.randn(4, fam.dim, 6, generator=gen, dtype=torch.float64)
    y = fast.sample(h, 3, gen)  # [3, 4, *obs]
    pairs = {
        "log_partition": (fast.log_partition(h), ref.lambdified_log_partition(h)),
        "mean": (fast.mean(h), ref.mean(h)),
        "fisher": (fast.fisher(h), ref.fisher(h)),
        "quadratic": (fast.quadratic(h, v), ref.quadratic(h, v)),
        "quartic": (fast.quartic(h, v), ref.quartic(h, v)),
        "quartic shared v": (fast.quartic(h, v[0]), ref.quartic(h, v[0])),
        "cubic": (fast.cubic(h, v), ref.cubic(h, v)),
        "var_squared": (fast.var_squared(h, v), ref.var_squared(h, v)),
        "quadratic (joint)": (fast.quadratic_and_var_squared(h, v)[0], ref.quadratic(h, v)),
        "var_squared (joint)": (fast.quadratic_and_var_squared(h, v)[1], ref.var_squared(h, v)),
        "fisher_diagonal": (
            fast.fisher_diagonal(h),
            torch.diagonal(ref.fisher(h), dim1=-2, dim2=-1),
        ),
        "fisher_diagonal (generic)": (
            ref.fisher_diagonal(h),
            torch.diagonal(ref.fisher(h), dim1=-2, dim2=-1),
        ),
        "suff_stat": (fast.suff_stat(y, torch.float64), ref.suff_stat(y, torch.float64)),
        "log_prob": (fast.log_prob(y, h), ref.log_prob(y, h)),
    }
    if fam.support.finite:
        pairs["support_labels"] = (fast.support_labels(), ref.support_labels())
    for what, (a, b) in pairs.items():
        assert a.shape == b.shape, f"{name} {what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
        err = kt.rel_err(a, b)
        assert err <= RTOL, f"{name}{sizes} {what}: relative error {err:.3g}"
    # spectra: structured fisher extremes vs eigvalsh of the lambdified I
    s, eig = fast.spectrum(h), torch.linalg.eigvalsh(ref.fisher(h))
    assert kt.rel_err(s.fisher_max, eig[..., -1]) <= RTOL
    assert (s.fisher_min - eig[..., 0]).abs().max() <= RTOL * eig[..., -1].max()


@pytest.mark.parametrize("name", ["categorical", "categorical_minimal", "multinomial"])
def test_stable_log_partition_matches_lambdified(name, kt):
    """The stable closed forms of F used by generic kernels equal the symbolic F."""
    fam = families.get(name)
    ref = kernels.generic(fam)
    h = kt.random_h(fam, kt.rng(1), 5)
    assert ref.use_stable
    assert kt.rel_err(ref.log_partition(h), ref.lambdified_log_partition(h)) <= RTOL


@pytest.mark.parametrize("family_name", ["geometric", "negative_binomial", "bernoulli", "binomial"])
def test_stable_log_partition_scalar(family_name, kt):
    fam = families.get(family_name)
    ref = kernels.generic(fam)
    h = kt.random_h(fam, kt.rng(2), 5)
    assert kt.rel_err(ref.log_partition(h), ref.lambdified_log_partition(h)) <= RTOL


def test_categorical_large_C_against_label_enumeration(kt):
    """O(C) forms at C = 300 vs E over the C labels of ((t − η)ᵀv)^k built from
    suff_stat and mean (a C × C computation, independent of the centred-sum code)."""
    C = 300
    k = kernels.get("categorical", C=C)
    gen = torch.Generator().manual_seed(0)
    h = 3 * torch.randn(2, C, generator=gen, dtype=torch.float64)
    v = torch.randn(2, C, 5, generator=gen, dtype=torch.float64)
    t = k.suff_stat(k.support_labels(), torch.float64)  # [C, C]
    p = k.mean(h)  # [2, C]
    proj = torch.einsum("bsc,bcK->bsK", t[None] - p[:, None, :], v)  # [2, labels, K]
    for power, got in ((2, k.quadratic(h, v)), (4, k.quartic(h, v))):
        ref = torch.einsum("bs,bsK->bK", p, proj**power)
        assert kt.rel_err(got, ref) <= RTOL
    # exact λ_max(I) against a dense eigensolver
    assert kt.rel_err(k.spectrum(h).fisher_max, torch.linalg.eigvalsh(k.fisher(h))[..., -1]) <= RTOL


def test_categorical_chunking_matches_unchunked(monkeypatch, kt):
    k = kernels.get("categorical", C=7)
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(3, 4, 7, generator=gen, dtype=torch.float64)
    v_shared = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    v_partial = torch.randn(4, 7, 5, generator=gen, dtype=torch.float64)  # broadcast over dim 0
    v_full = torch.randn(3, 4, 7, 5, generator=gen, dtype=torch.float64)
    layouts = (v_shared, v_partial, v_full)

    def forms():
        return (
            [k.quartic(h, v) for v in layouts]
            + [k.quadratic(h, v) for v in layouts]
            + [part for v in layouts for part in k.quadratic_and_var_squared(h, v)]
        )

    full = forms()
    monkeypatch.setattr(cat, "CHUNK_ELEMENTS", 1)  # forces one batch element per chunk
    chunked = forms()
    for a, b in zip(full, chunked, strict=True):
        assert a.shape == (3, 4, 5)
        assert kt.rel_err(a, b) <= RTOL


def _mp_fisher_eigs(h_row):
    """Eigenvalues of diag(p) − ppᵀ at 50 digits (p = softmax(h) in mpmath)."""
    with mpmath.workdps(50):
        e = [mpmath.exp(mpmath.mpf(float(x))) for x in h_row]
        z = mpmath.fsum(e)
        p = [x / z for x in e]
        C = len(p)
        A = mpmath.matrix(C, C)
        for c in range(C):
            for j in range(C):
                A[c, j] = (p[c] if c == j else 0) - p[c] * p[j]
        return sorted(float(x) for x in mpmath.eigsy(A, eigvals_only=True))


def test_categorical_secular_ties_and_confident(kt):
    """λ_max(I) at tied top probabilities (= p_max exactly) and at confident outputs,
    where forming diag(p) − ppᵀ loses digits; the reference is a 50-digit eigensolver."""
    k = kernels.get("categorical", C=4)
    h = torch.tensor(
        [
            [1.0, 1.0, 0.0, -1.0],
            [30.0, 0.0, 0.0, 0.0],
            [25.0, 2.0, -1.0, 0.5],
            [0.3, -0.2, 0.1, 0.0],
        ],
        dtype=torch.float64,
    )
    spec = k.spectrum(h)
    p = k.mean(h)
    # = p_max at a tie, rounded outward by (16 + 4C)·eps (a certified value, issue 9.3)
    outward = (16 + 4 * 4) * torch.finfo(torch.float64).eps
    assert spec.fisher_max[0] >= p[0].max()
    assert kt.rel_err(spec.fisher_max[0], p[0].max()) <= outward
    fisher = k.fisher(h)
    for b in range(h.shape[0]):
        ref = _mp_fisher_eigs(h[b].tolist())
        assert abs(spec.fisher_max[b].item() - ref[-1]) <= RTOL * ref[-1], b
        # the fisher matrix itself, with 1 − p_c from log-probabilities, is accurate too
        assert (
            kt.rel_err(
                torch.linalg.eigvalsh(fisher[b])[-1], torch.tensor(ref[-1], dtype=torch.float64)
            )
            <= RTOL
        )


def test_categorical_minimal_secular_against_mpmath():
    k = kernels.get("categorical_minimal", C=5)
    h = torch.tensor([[2.0, -1.0, 0.5, 0.0], [28.0, 1.0, -3.0, 0.2]], dtype=torch.float64)
    spec = k.spectrum(h)
    for b in range(h.shape[0]):
        full = torch.cat([h[b], torch.zeros(1, dtype=torch.float64)]).tolist()
        with mpmath.workdps(50):
            e = [mpmath.exp(mpmath.mpf(x)) for x in full]
            z = mpmath.fsum(e)
            p = [x / z for x in e][:-1]
            A = mpmath.matrix(4, 4)
            for c in range(4):
                for j in range(4):
                    A[c, j] = (p[c] if c == j else 0) - p[c] * p[j]
            ref = sorted(float(x) for x in mpmath.eigsy(A, eigvals_only=True))
        assert abs(spec.fisher_min[b].item() - ref[0]) <= RTOL * ref[0]
        assert abs(spec.fisher_max[b].item() - ref[-1]) <= RTOL * ref[-1]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_secular_bisection_stops_only_at_a_fixed_point(dtype, monkeypatch):
    """The bisection stops once a step changes no bracket; the roots are bit-identical to
    those of all SECULAR_STEPS steps (the stop disabled by pretending to run under
    torch.func), for spread, peaked, tied and confident outputs and the minimal form."""
    gen = torch.Generator().manual_seed(7)
    h = torch.cat(
        [
            torch.randn(40, 10, generator=gen, dtype=torch.float64) * s
            for s in (0.01, 1.0, 4.0, 12.0)
        ]
        + [torch.tensor([[2.0, 2.0, *[0.0] * 8], [40.0, *[0.0] * 9]], dtype=torch.float64)]
    ).to(dtype)
    kernels_and_h = [
        (kernels.get("categorical", C=10), h),
        (kernels.get("categorical_minimal", C=11), h),
        (kernels.get("multinomial", n=3, C=10), h),
    ]
    stopped = [k.spectrum(hh, local=False) for k, hh in kernels_and_h]
    monkeypatch.setattr(cat, "_wrapped", lambda x: True)
    full = [k.spectrum(hh, local=False) for k, hh in kernels_and_h]
    for a, b in zip(stopped, full, strict=True):
        assert torch.equal(a.fisher_max, b.fisher_max)
        assert torch.equal(a.fisher_min, b.fisher_min)
        assert torch.equal(a.mu4_max_upper, b.mu4_max_upper)


@pytest.mark.parametrize("name", families.names())
def test_fisher_diagonal_of_every_family(name, kt):
    """``fisher_diagonal`` (the closed-form head of ``diagonal_fisher``) is the diagonal of
    ``fisher`` for every registered family's own kernel, default route or override."""
    fam = families.get(name)
    k = kernels.get(fam)
    h = kt.random_h(fam, kt.rng(7), 3)
    diag = torch.diagonal(k.fisher(h), dim1=-2, dim2=-1)
    assert kt.rel_err(k.fisher_diagonal(h), diag) <= RTOL


@pytest.mark.parametrize("name,sizes", STRUCTURED_CASES, ids=[c[0] for c in STRUCTURED_CASES])
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_fisher_diagonal_across_chunk_boundaries(name, sizes, chunk, kt, monkeypatch):
    """Issue 23 E: an off-by-one in the chunked default route of ``fisher_diagonal``
    (identity columns ``DIAGONAL_CHUNK`` at a time) passed the suite, whose ``d`` fitted in
    one chunk. With chunks of 1–3 columns every ``d ≥ 2`` here crosses a boundary, on the
    lambdified kernel (which takes the chunked route) and on the family's own."""
    fam = families.get(name, **sizes)
    h = kt.random_h(fam, kt.rng(11), 3)
    for k in (kernels.generic(fam), kernels.get(name, **sizes)):
        monkeypatch.setattr(k, "DIAGONAL_CHUNK", chunk)
        diag = torch.diagonal(k.fisher(h), dim1=-2, dim2=-1)
        assert kt.rel_err(k.fisher_diagonal(h), diag) <= RTOL, (name, type(k).__name__)
