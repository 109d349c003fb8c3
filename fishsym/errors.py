"""Exceptions raised by fishsym.

Every exception names the offending argument and what would be valid; nothing returns
NaN silently. All derive from :class:`FishsymError`, and each also derives from the
builtin that best describes it (``ValueError``, ``KeyError``, ``TypeError``) so callers
that catch the builtin keep working.
"""


class FishsymError(Exception):
    """Base class of every error fishsym raises on purpose."""


class FamilyDefinitionError(FishsymError, ValueError):
    """An exponential-family declaration is inconsistent (dimensions, F not a function
    of h alone, normalisation fails, unknown support, ...)."""


class CanonicalFormError(FamilyDefinitionError):
    """A log-density could not be split into ``t(y)ᵀh − F(h) + log k(y)``."""


class DomainError(FishsymError, ValueError):
    """A natural parameter (or an observation) lies outside its declared domain."""


class UnknownFamilyError(FishsymError, KeyError):
    """A family name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ShapeError(FishsymError, ValueError):
    """A tensor argument has the wrong shape."""


class NonFiniteError(FishsymError, ValueError):
    """An input, parameter or intermediate result is NaN or infinite."""


class UnsupportedModelError(FishsymError, TypeError):
    """A model (or module inside it) that the requested path cannot handle."""


class NoSamplerError(FishsymError, NotImplementedError):
    """No sampler is available for this family (an infinite support that the kernels
    have no dedicated sampler for); finite supports are always sampled by enumeration."""


class InfiniteSupportError(FishsymError, NotImplementedError):
    """The support of the family is infinite, so its labels cannot be enumerated."""


class InvalidArgumentError(FishsymError, ValueError):
    """An argument has a value outside what is valid (a count below 1, an unknown
    option, a probability outside (0, 1), ...)."""


class ArgumentTypeError(FishsymError, TypeError):
    """An argument has a type fishsym cannot use (a string where a number is needed, a
    non-floating dtype, a boolean where a count is needed, ...)."""


class MemoryBudgetError(FishsymError, MemoryError):
    """A request would need more memory than its budget allows; raised before anything
    is allocated, with what would fit."""


class ModelWarning(UserWarning):
    """Something about the user's model that fishsym handled in a stated way (a tensor
    held outside the module tree treated as a constant, hooks that do not change the
    output left out of its evaluations)."""
