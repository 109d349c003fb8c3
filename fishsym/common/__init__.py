"""What every numeric entry point shares: argument checks and the functional view of
the user's model (a private copy; the original is never modified).

Stage order: ``symbolic → kernels → common → engine → variance → reference/montecarlo``.
"""

from fishsym.common.inputs import (
    WORKING_DTYPES,
    as_inputs,
    cast_inputs,
    check_choice,
    check_count,
    check_dtype,
    check_generator,
    check_positive,
    check_probability,
    check_real,
)
from fishsym.common.model import (
    SQUASHING,
    ModelView,
    check_deterministic,
    check_memory,
    is_identity_dropout,
    math_attention,
    memory_budget,
    shared_parameters,
)

#: the estimators of docs/theory.md §2, named by what they are (the glossary's one definition)
ESTIMATORS = ("squared_score", "neg_hessian")


def parameter_group(name: str) -> str:
    """The group (layer) of a parameter: its owning module's path (``"0.weight"`` →
    ``"0"``); a parameter registered on the root module is its own group's name ``""``."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def parameter_groups(names) -> dict[str, list[str]]:
    """Module path → the names of its parameters, in the order given (one convention for
    every per-layer summary)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(parameter_group(name), []).append(name)
    return groups

__all__ = [
    "ESTIMATORS",
    "parameter_group",
    "parameter_groups",
    "ModelView",
    "SQUASHING",
    "WORKING_DTYPES",
    "as_inputs",
    "cast_inputs",
    "check_choice",
    "check_count",
    "check_deterministic",
    "check_dtype",
    "check_generator",
    "check_memory",
    "check_positive",
    "check_probability",
    "check_real",
    "is_identity_dropout",
    "math_attention",
    "memory_budget",
    "shared_parameters",
]
