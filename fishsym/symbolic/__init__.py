"""fishsym.symbolic — exponential families in sympy (never imports torch).

* :class:`ExponentialFamily` — a family declared by ``t``, ``F``, base measure, support
  and natural-parameter domain; everything else derived (docs/theory.md §1);
* :mod:`families` — the registry of built-in families (``families.get("poisson")``);
* :func:`from_log_density` — a family from a log-density in any parametrisation;
* :func:`verify_family` / :func:`verify_all` — independent checks, as :class:`CheckResult`;
* :func:`check_theory` — symbolic proofs of the estimator theory (docs/theory.md §2–§5).
"""

from fishsym.symbolic import families, support
from fishsym.symbolic.canonical import from_log_density
from fishsym.symbolic.domain import Domain, natural_symbol
from fishsym.symbolic.family import ExponentialFamily
from fishsym.symbolic.records import CheckResult, format_table
from fishsym.symbolic.theory import check_theory, check_theory_suite, summary_table
from fishsym.symbolic.verify import verify_all, verify_family

__all__ = [
    "ExponentialFamily",
    "families",
    "support",
    "Domain",
    "natural_symbol",
    "CheckResult",
    "format_table",
    "verify_family",
    "verify_all",
    "from_log_density",
    "check_theory",
    "check_theory_suite",
    "summary_table",
]
