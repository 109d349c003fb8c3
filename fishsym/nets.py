"""Reference networks used by benchmarks, tests and paper checks.

``mnist_mlp()`` is "MNIST-4L": 784-256-128-64-10 with sigmoid activations — four
``Linear`` layers, 242,762 parameters — whose output is the logits (the natural
parameter of the categorical head).
"""

from __future__ import annotations

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
