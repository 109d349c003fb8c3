"""Verification of a family's derived quantities, independent of the cumulant route."""

from fishsym.symbolic.expectation import normalisation_error  # noqa: F401
