"""Moved: ``diagonal_fisher`` is a stage of its own, :mod:`fishsym.sampling.diagonal`.

This module keeps old imports (``from fishsym.montecarlo.diagonal import
diagonal_fisher``) working, with a ``DeprecationWarning``.
"""

import warnings

from fishsym.sampling.diagonal import *  # noqa: F403
from fishsym.sampling.diagonal import DiagonalFisher, diagonal_fisher

warnings.warn(
    "fishsym.montecarlo.diagonal moved to fishsym.sampling.diagonal; import diagonal_fisher "
    "from fishsym (or fishsym.sampling)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["diagonal_fisher", "DiagonalFisher"]
