"""Reproduce and verify the claims of Soen & Sun, *Trade-Offs of Diagonal Fisher
Information Matrix Estimators* (NeurIPS 2024), that fishsym covers.

One module per claim, named after it; each defines ``CLAIM``, ``WHERE``, ``METHOD``,
``SETTINGS`` (per tier) and ``run(ctx)`` and yields a :class:`ClaimResult` (claim, where
in the paper, method, passed, figures, key numbers, sub-checks). Run them all with

    python -m paper_checks            # quick tier (< 10 minutes on 2 cores)
    python -m paper_checks --full     # the complete runs
    python -m paper_checks --only bounds_hold,gaussian_cv

which writes ``paper_checks/_out/report.md`` with the figures, prints the table and
exits non-zero if any claim fails.
"""

from paper_checks._core import ClaimResult, Context, NotAvailable
from paper_checks._report import text_table, write_report
from paper_checks._runner import CHECKS, DEFAULT_OUT, run_all, run_check

__all__ = [
    "CHECKS",
    "DEFAULT_OUT",
    "ClaimResult",
    "Context",
    "NotAvailable",
    "run_all",
    "run_check",
    "text_table",
    "write_report",
]
