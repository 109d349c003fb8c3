"""The model and inputs of the 2-process test: the same on every rank and in the test."""

import numpy as np
import torch
from torch import nn

from fishsym.data import load_mnist_10k

ESTIMATORS = ("squared_score", "neg_hessian", "hutchinson", "batched_score")
N_INPUTS = 40


def case():
    """A small sigmoid MLP on ``N_INPUTS`` bundled digits (downsampled to 7 × 7), float64."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(49, 8), nn.Sigmoid(), nn.Linear(8, 10)).double()
    images, labels = load_mnist_10k()
    images = torch.from_numpy(images[:N_INPUTS].astype(np.float64) / 255)
    labels = torch.from_numpy(labels[:N_INPUTS].astype(np.int64))
    x = nn.functional.avg_pool2d(images.reshape(-1, 1, 28, 28), 4).reshape(N_INPUTS, 49)
    return model, x, labels
