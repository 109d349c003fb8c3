"""Models shared by the layer-rule tests (test_sumsq, test_layerwise): every rule and a
reason to fall back."""

from __future__ import annotations

import torch
from torch import nn


def gen(seed):
    return torch.Generator().manual_seed(seed)


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4, padding_idx=0)
        self.lin = nn.Linear(4, 4)
        self.ln = nn.LayerNorm(4, bias=False)
        self.out = nn.Linear(4, 3)

    def forward(self, ids):
        e = self.emb(ids)
        e = torch.tanh(self.lin(e)) + torch.tanh(self.lin(2 * e))  # a layer called twice
        return self.out(self.ln(e))  # [n, T, 3]: a Linear over positions


def eval_bn(model):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1, generator=gen(2))
                m.running_var.uniform_(0.5, 2, generator=gen(3))
                m.weight.uniform_(0.5, 1.5, generator=gen(4))
    return model.eval()


class Outside(nn.Module):
    """A raw parameter, and a layer weight also read outside its layer."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.scale = nn.Parameter(torch.tensor([1.5, 0.5, 2.0]))
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        a = torch.tanh(self.lin(x)) * self.scale + x @ self.lin.weight[:1].T
        return self.out(a)
