"""What every numeric entry point shares: argument checks and the functional view of
the user's model (a private copy; the original is never modified).

Stage order: ``symbolic → kernels → common → engine → variance → reference/montecarlo``.
"""

from fishsym.common.data import as_inputs
from fishsym.common.inputs import (
    WORKING_DTYPES,
    all_finite,
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
    translate_model_errors,
)
from fishsym.common.selection import (
    ParamSelection,
    all_entries,
    parameter_group,
    parameter_groups,
    sample_entries,
    sample_params,
    select_params,
)

#: the estimators of docs/theory.md §2, named by what they are (the glossary's one definition)
ESTIMATORS = ("squared_score", "neg_hessian")


__all__ = [
    "ESTIMATORS",
    "ParamSelection",
    "all_entries",
    "parameter_group",
    "parameter_groups",
    "sample_entries",
    "sample_params",
    "select_params",
    "ModelView",
    "SQUASHING",
    "WORKING_DTYPES",
    "all_finite",
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
