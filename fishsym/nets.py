"""Reference networks used by benchmarks, tests and paper checks.

``mnist_mlp()`` is "MNIST-4L": 784-256-128-64-10 with sigmoid activations — four
``Linear`` layers, 242,762 parameters — whose output is the logits (the natural
parameter of the categorical head).

``gpt2()`` is a GPT-2-style decoder in plain PyTorch (token and position embeddings,
pre-LayerNorm blocks of causal multi-head self-attention and a GELU MLP, a final
LayerNorm and a linear head): token ids ``[n, T]`` → logits ``[n, T, V]``, one categorical
per position (docs/theory.md §11).

``resnet18()`` is torchvision's ResNet-18 (the same modules, names and shapes, so its
``state_dict`` loads into torchvision's and back; 11,181,642 parameters for 10 classes),
written out here because torchvision's wheels are tied to one torch build each and
fishsym's range of torch is wider; random init from an explicit generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}

MNIST_WIDTHS = (784, 256, 128, 64, 10)


def mlp(widths: Sequence[int], activation: str = "sigmoid", generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """``Linear → act → … → Linear`` with the given widths; no final activation.

    Weights are initialised with PyTorch's default scheme, drawn from ``generator`` (a
    fresh ``torch.Generator`` seeded 0 when omitted) so no global random state is touched.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}"
        )
    if len(widths) < 2 or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"widths must be at least two positive integers; got {widths!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(n_in, n_out, dtype=dtype)
        bound = 1.0 / n_in**0.5
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=gen)
            lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def mnist_mlp(activation: str = "sigmoid", generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """MNIST-4L: 784-256-128-64-10 (242,762 parameters)."""
    return mlp(MNIST_WIDTHS, activation, generator, dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask: ``qkv`` and ``proj`` are ``nn.Linear``
    layers applied at every position; the softmax is written out (no fused kernel), so
    every ``torch.func`` transform and every derivative order goes through it."""

    def __init__(self, width: int, heads: int, context: int, dtype=torch.float32):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, dtype=dtype)
        self.proj = nn.Linear(width, width, dtype=dtype)
        causal = torch.ones(context, context, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, x):
        n, T, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)

        def heads(t):
            return t.reshape(n, T, self.heads, width // self.heads).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        scores = q @ k.transpose(-1, -2) / math.sqrt(width // self.heads)
        scores = scores.masked_fill(~self.causal[:T, :T], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v  # [n, heads, T, width/heads]
        return self.proj(out.transpose(1, 2).reshape(n, T, width))


class DecoderBlock(nn.Module):
    """``x + attn(ln₁(x))``, then ``x + mlp(ln₂(x))`` (GPT-2's pre-LayerNorm block)."""

    def __init__(self, width: int, heads: int, context: int, dtype=torch.float32):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, dtype=dtype)
        self.attn = CausalSelfAttention(width, heads, context, dtype)
        self.ln_2 = nn.LayerNorm(width, dtype=dtype)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width, dtype=dtype),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * width, width, dtype=dtype),
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """A GPT-2-style decoder: ids ``[n, T]`` (``T ≤ context``) → logits ``[n, T, vocab]``.

    ``tie_embeddings=True`` shares the head's weight with the token embedding, as GPT-2
    does; then the head is not a parameter of its own, and ``diagonal_fisher`` samples it
    with the embedding instead of using the closed-form head.
    """

    def __init__(self, vocab: int, width: int, layers: int, heads: int, context: int,
                 tie_embeddings: bool = False, dtype=torch.float32):
        super().__init__()
        self.context = context
        self.wte = nn.Embedding(vocab, width, dtype=dtype)
        self.wpe = nn.Embedding(context, width, dtype=dtype)
        self.blocks = nn.ModuleList(
            DecoderBlock(width, heads, context, dtype) for _ in range(layers)
        )
        self.ln_f = nn.LayerNorm(width, dtype=dtype)
        self.head = nn.Linear(width, vocab, bias=False, dtype=dtype)
        if tie_embeddings:
            self.head.weight = self.wte.weight

    def forward(self, ids):
        T = ids.shape[1]
        positions = torch.arange(T, device=ids.device)
        x = self.wte(ids) + self.wpe(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def gpt2(vocab: int = 1000, width: int = 64, layers: int = 2, heads: int = 4,
         context: int = 128, tie_embeddings: bool = False,
         generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> GPT2:
    """A GPT-2-style decoder with GPT-2's initialisation (weights ``N(0, 0.02²)``, the
    residual projections ``N(0, 0.02²/(2·layers))``, zero biases, unit LayerNorms), drawn
    from ``generator`` (a fresh one seeded 0 when omitted; no global random state).
    GPT-2 small is ``gpt2(50257, 768, 12, 12, 1024, tie_embeddings=True)``."""
    from fishsym.errors import InvalidArgumentError

    for name, value in (("vocab", vocab), ("width", width), ("layers", layers),
                        ("heads", heads), ("context", context)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer; got {value!r}")
    if width % heads:
        raise InvalidArgumentError(
            f"width must be a multiple of heads; got width={width}, heads={heads}"
        )
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    model = GPT2(vocab, width, layers, heads, context, tie_embeddings, dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif ".ln_" in name or name.startswith("ln_f"):
                p.fill_(1.0)
            else:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                p.normal_(0.0, std, generator=gen)
    return model


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3×3 convolutions with batch norms and a shortcut (a strided
    1×1 convolution with a batch norm where the shape changes), as in torchvision."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` with basic blocks: a 7×7 stride-2 stem, 3×3 max pooling,
    four stages (64, 128, 256, 512 channels), global average pooling and a linear head."""

    def __init__(self, blocks: Sequence[int] = (2, 2, 2, 2), num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(inplanes, planes, stride)]
            stage += [BasicBlock(planes, planes) for _ in range(count - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 10, generator: torch.Generator | None = None) -> ResNet:
    """ResNet-18 in torchvision's layout, initialised as torchvision does (Kaiming-normal
    convolutions, fan-out; unit batch-norm weights, zero biases; the head uniform in
    ``±1/√512``), from ``generator`` (a fresh one seeded 0 when omitted). Put it in
    evaluation mode (``.eval()``) for fishsym: training-mode batch norms are refused."""
    from fishsym.errors import InvalidArgumentError

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidArgumentError(f"num_classes must be a positive integer; got {num_classes!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    model = ResNet((2, 2, 2, 2), num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=gen)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.Linear):
                bound = 1 / math.sqrt(m.in_features)
                m.weight.uniform_(-bound, bound, generator=gen)
                m.bias.uniform_(-bound, bound, generator=gen)
    return model


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 1,
                     batch_size: int = 64, lr: float = 1e-3, generator: torch.Generator | None = None,
                     callback=None) -> list[float]:
    """Train with Adam on cross-entropy (the categorical NLL); returns per-epoch mean loss.

    ``callback(epoch, model)`` is called after each epoch (epoch counted from 1).
    Shuffling uses ``generator`` (seeded 0 when omitted). The loop itself is
    :func:`fishsym.experiments.training.train_over_epochs`.
    """
    from fishsym.experiments.training import train_over_epochs

    def after_epoch(epoch, net):
        if callback is not None and epoch > 0:
            callback(epoch, net)

    history = train_over_epochs(
        model, x, y, nn.functional.cross_entropy, epochs=epochs, batch_size=batch_size, lr=lr,
        generator=generator if generator is not None else torch.Generator().manual_seed(0),
        callback=after_epoch,
    )
    return history.loss[1:]  # loss[0] is the loss before training
