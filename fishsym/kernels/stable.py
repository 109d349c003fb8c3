"""Softmax probabilities and their complements without cancellation (shared by the
categorical kernels and the moment spectra; imports nothing else of fishsym's kernels)."""

from __future__ import annotations

import torch


def softmax_complement(h: torch.Tensor):
    """``(p, q)`` with ``p = softmax(h)`` and ``q = 1 − p``, both without cancellation.

    Only the most likely class can have ``p_c`` near 1; its complement is computed as
    ``Σ_{e≠c} e^{h_e − h_max} / Σ_e e^{h_e − h_max}`` (a sum of positive terms) instead of
    ``1 − p_c`` (or ``−expm1(log p_c)``, whose ``log p_c`` already lost the digits).
    """
    shifted = torch.exp(h - h.amax(-1, keepdim=True))
    total = shifted.sum(-1, keepdim=True)
    p = shifted / total
    top = torch.nn.functional.one_hot(shifted.argmax(-1), h.shape[-1]).bool()
    others = shifted.masked_fill(top, 0).sum(-1, keepdim=True)
    q = torch.where(top, others / total, 1 - p)
    return p, q


__all__ = ["softmax_complement"]
