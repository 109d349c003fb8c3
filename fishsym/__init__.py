"""fishsym — how good is your diagonal Fisher information estimate?

Exact variances of the two diagonal Fisher estimators of Soen & Sun (NeurIPS 2024): the
squared score ``Î₁`` and the negative diagonal Hessian ``Î₂``, with labels drawn from the
model. The pipeline::

    symbolic families → generated torch kernels → derivative engine → variances & bounds
                      → exact / Monte Carlo cross-checks → notebooks & paper_checks

``fishsym.symbolic`` is pure sympy and never imports torch; the torch layers are loaded
lazily on first use, so ``import fishsym.symbolic`` stays light.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first access)
_LAZY = {
    "fisher_variances": "fishsym.variance",
    "FisherVariances": "fishsym.variance",
    "load": "fishsym.variance.result",
    "plot_over_training": "fishsym.variance.plots",
    "diagonal_fisher": "fishsym.sampling.diagonal",
    "DiagonalFisher": "fishsym.sampling.diagonal",
    "minibatch_fisher": "fishsym.variance.minibatch",
    "audit": "fishsym.auditing",
    "Audit": "fishsym.auditing",
    "adam_fisher": "fishsym.auditing",
}
_SUBMODULES = {
    "symbolic", "kernels", "engine", "variance", "reference", "montecarlo", "data", "errors",
    "nets", "experiments",
}


def __getattr__(name):
    if name == "adapters":  # output adapters (fishsym.common.adapters)
        return import_module("fishsym.common.adapters")
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return import_module(f"fishsym.{name}")
    raise AttributeError(f"module 'fishsym' has no attribute {name!r}")


__all__ = [
    "fisher_variances",
    "FisherVariances",
    "diagonal_fisher",
    "DiagonalFisher",
    "load",
    "plot_over_training",
    "adapters",
    *sorted(_SUBMODULES),
]
