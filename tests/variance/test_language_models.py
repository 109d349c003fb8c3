"""Language models end to end (issue 24 item 4): a GPT-2-style decoder in plain PyTorch
(:func:`fishsym.nets.gpt2`) and a HuggingFace ``GPT2LMHeadModel`` built from a config (no
download), logits ``[n, T, V]`` read one categorical per position (docs/theory.md §11).

Oracles, float64: the enumeration of all ``V^T`` label tuples with autograd per tuple
(:func:`fishsym.reference.exact_moments`) for the Fisher and the joint label's ``V₁`` (and
``V₂`` on the plain decoder); the closed-form head of ``diagonal_fisher`` against the
exact Fisher; a DataLoader of token ids against the same ids in memory.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import fishsym
from fishsym.kernels import ProductKernel
from fishsym.nets import gpt2

#: float64 agreement of two exact routes
RTOL, ATOL = 1e-9, 1e-14


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _ids(n, vocab, tokens, seed=0):
    return torch.randint(0, vocab, (n, tokens), generator=_gen(seed))


def _close(a, b, what):
    for n in b:
        torch.testing.assert_close(a[n], b[n], rtol=RTOL, atol=ATOL, msg=f"{what} {n}")


def test_plain_decoder_against_label_tuples(unchanged):
    model = gpt2(vocab=5, width=4, layers=1, heads=2, context=3, dtype=torch.float64,
                 generator=_gen(1))  # fmt: skip
    with torch.no_grad():  # away from GPT-2's tiny initial scale: curved, informative
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=_gen(2), dtype=p.dtype))
    ids = _ids(3, 5, 3)
    before = unchanged.snapshot(model)
    res = fishsym.fisher_variances(model, ids, "categorical", per_sample=True)
    unchanged.check(before, model)
    assert isinstance(res.kernel, ProductKernel) and res.kernel.factor_shape == (3,)
    exact = fishsym.reference.exact_moments(model, ids, "categorical")
    assert "125 labels" in exact.rule
    _close(res.fisher, exact["mean1"], "fisher")
    _close(res.var1, exact["var1"], "V₁")
    _close(res.var2, exact["var2"], "V₂")
    fast = fishsym.fisher_variances(model, ids, "categorical", per_sample=True, var2=False)
    _close(fast.fisher, res.fisher, "fisher without V₂")
    _close(fast.var1, res.var1, "V₁ without V₂")
    assert fast.var2 is None


def test_the_tied_head_is_sampled_with_the_embedding():
    model = gpt2(vocab=6, width=4, layers=1, heads=1, context=3, tie_embeddings=True,
                 dtype=torch.float64)  # fmt: skip
    ids = _ids(4, 6, 3)
    est = fishsym.diagonal_fisher(model, ids, "categorical", exact=False, generator=_gen(3))
    assert "closed-form head" not in est.estimators.values()
    assert "head.weight" not in est.value  # one tensor, named once: wte.weight
    exact = fishsym.fisher_variances(model, ids, "categorical", var2=False, bounds=False)
    lower, upper = est.ci(0.999)
    inside = torch.cat(
        [((lower[n] <= exact.fisher[n]) & (exact.fisher[n] <= upper[n])).reshape(-1)
         for n in exact.fisher]
    )  # fmt: skip
    assert float(inside.double().mean()) > 0.97


transformers = pytest.importorskip("transformers")


def _hf_model(vocab=5, tokens=3, width=4, tie=False, seed=0):
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=tokens, n_embd=width, n_layer=1, n_head=2,
        tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0,
        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=_gen(seed + 1), dtype=p.dtype))
    return model


def _logits(out):
    return out.logits


def test_huggingface_gpt2_against_label_tuples(unchanged):
    model = _hf_model()
    ids = _ids(3, 5, 3, seed=4)
    before = unchanged.snapshot(model)
    res = fishsym.fisher_variances(
        model, ids, "categorical", output=_logits, per_sample=True, var2=False
    )
    unchanged.check(before, model)
    exact = fishsym.reference.exact_moments(model, ids, "categorical", output=_logits)
    _close(res.fisher, exact["mean1"], "fisher")
    _close(res.var1, exact["var1"], "V₁")


def test_huggingface_gpt2_from_a_dataloader(unchanged):
    """Token ids from a DataLoader; the head in closed form over the positions (exact,
    within its rounding margin), the body sampled with intervals; the same numbers as
    the ids in memory."""
    model = _hf_model(vocab=7, tokens=4, width=4, seed=5)
    ids = _ids(6, 7, 4, seed=6)
    loader = DataLoader(ids, batch_size=4)
    before = unchanged.snapshot(model)
    est = fishsym.diagonal_fisher(
        model, loader, "categorical", output=_logits, exact=False, rel_error=0.3,
        generator=_gen(7),
    )
    unchanged.check(before, model)
    assert est.estimators["lm_head"] == "closed-form head"
    again = fishsym.diagonal_fisher(
        model, ids, "categorical", output=_logits, exact=False, rel_error=0.3,
        generator=_gen(7),
    )
    for n in est.value:
        assert torch.equal(est.value[n], again.value[n]), n
    exact = fishsym.fisher_variances(
        model, ids, "categorical", output=_logits, var2=False, bounds=False
    ).fisher
    lower, upper = est.ci()
    assert bool(((lower["lm_head.weight"] <= exact["lm_head.weight"])
                 & (exact["lm_head.weight"] <= upper["lm_head.weight"])).all())  # fmt: skip
    sampled = [n for n in exact if n != "lm_head.weight"]
    inside = torch.cat(
        [((lower[n] <= exact[n]) & (exact[n] <= upper[n])).reshape(-1) for n in sampled]
    )
    # 95 % intervals in one run, entries correlated through the shared rounds: a sanity
    # floor; the coverage itself is measured over runs in test_factor_axes.py
    assert float(inside.double().mean()) > 0.85
