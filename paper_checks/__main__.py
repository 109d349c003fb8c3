"""``python -m paper_checks``: run the claim checks, write the report, print the table.

Exit status 0 when every claim passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from paper_checks._core import TIERS
from paper_checks._report import text_table, write_report
from paper_checks._runner import CHECKS, DEFAULT_OUT, run_all


def main(argv: list[str] | None = None) -> int:
    import matplotlib as mpl

    # a batch job that writes files: no window, whatever the desktop has
    mpl.use("Agg")
    parser = argparse.ArgumentParser(
        prog="python -m paper_checks",
        description="Verify the claims of Soen & Sun (NeurIPS 2024) with fishsym and write "
        "a report with figures.",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="complete runs (e.g. MNIST: 20 epochs); default is the quick tier",
    )
    parser.add_argument(
        "--tier",
        choices=TIERS,
        default=None,
        help="size tier explicitly (tiny is for the runner's own tests)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these checks (repeat or comma-separate); choices: {', '.join(CHECKS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output folder for report.md and figures (default {DEFAULT_OUT})",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--quiet", action="store_true", help="no per-step progress output")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CHECKS))
        return 0
    tier = args.tier or ("full" if args.full else "quick")
    t0 = time.perf_counter()
    results = run_all(args.only, tier=tier, out_dir=args.out, verbose=not args.quiet)
    path = write_report(results, args.out, tier)
    print(text_table(results))
    print(f"report: {path}  (wall time {time.perf_counter() - t0:.1f} s)")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
