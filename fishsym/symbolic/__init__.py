"""fishsym.symbolic — exponential families in sympy (never imports torch)."""

from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic import families, support
from fishsym.symbolic.domain import Domain, natural_symbol

__all__ = ["ExponentialFamily", "families", "support", "Domain", "natural_symbol"]
