"""Data for fishsym experiments: the bundled 10,000 MNIST digits (see README.md here).

The full MNIST (60,000 + 10,000 digits) is read from its standard IDX files by
:func:`load_mnist_idx` / :func:`mnist_idx_tensors` (module :mod:`fishsym.data.idx`), from a
directory the user names or downloaded with checksum verification.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fishsym.data.idx import load_mnist_idx, mnist_idx_tensors  # noqa: F401

DATA_DIR = Path(__file__).resolve().parent
MNIST_10K = DATA_DIR / "mnist_10k.npz"
MNIST_10K_SHA256 = "f1a23f2fb1a1c97bb00a811807ddd50a888dbcdcdead94147993273c22ee3f37"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_mnist_10k(verify: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits: ``images`` uint8 ``[10000, 28, 28]``, ``labels`` uint8 ``[10000]``.

    ``verify=True`` checks the file's sha256 first.
    """
    if verify and sha256(MNIST_10K) != MNIST_10K_SHA256:
        raise OSError(f"{MNIST_10K} is corrupt: its sha256 differs from {MNIST_10K_SHA256}")
    with np.load(MNIST_10K) as z:
        return z["images"], z["labels"]


def mnist_tensors(n_train: int = 8000, n_test: int = 2000, dtype=None):
    """Bundled MNIST as torch tensors, pixels scaled to [0, 1] and flattened to 784.

    Returns ``(x_train, y_train, x_test, y_test)``; the first ``n_train`` rows train, the
    last ``n_test`` rows are held out (the file's rows are already shuffled).
    """
    import torch

    if n_train < 0 or n_test < 0 or n_train + n_test > 10000:
        raise ValueError(
            f"n_train + n_test must be at most 10000 and both non-negative; got {n_train}, {n_test}"
        )
    images, labels = load_mnist_10k()
    x = torch.as_tensor(images.reshape(len(images), -1), dtype=dtype or torch.float32) / 255.0
    y = torch.as_tensor(labels.astype(np.int64))
    return x[:n_train], y[:n_train], x[len(x) - n_test :], y[len(y) - n_test :]
