"""Run claim checks in order, time them, and collect their results."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from paper_checks._core import ClaimResult, Context, NotAvailable


#: every check, in the order the report lists them (symbolic → numeric → experiments)
def _discover() -> tuple[str, ...]:
    """The claim checks: every module of this package not starting with ``_`` that
    defines ``CLAIM``, ordered by its ``ORDER`` (adding a claim is adding its module)."""
    found = []
    for info in pkgutil.iter_modules([str(Path(__file__).resolve().parent)]):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"paper_checks.{info.name}")
        if hasattr(mod, "CLAIM"):
            found.append((getattr(mod, "ORDER", 1000), info.name))
    return tuple(name for _, name in sorted(found))


CHECKS = _discover()

DEFAULT_OUT = Path(__file__).resolve().parent / "_out"


def resolve_names(only: list[str] | None) -> list[str]:
    """The checks to run: all of them, or those named (a comma-separated list works too)."""
    if not only:
        return list(CHECKS)
    wanted = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in CHECKS]
    if unknown:
        raise SystemExit(
            f"unknown check(s) {', '.join(unknown)}; the checks are: {', '.join(CHECKS)}"
        )
    return [n for n in CHECKS if n in wanted]


def run_check(name: str, tier: str, out_dir: Path, verbose: bool = True) -> ClaimResult:
    """Run one check module and return its :class:`ClaimResult` (a crash is a FAIL)."""
    ctx = Context(name, tier, out_dir, verbose)
    t0, c0 = time.perf_counter(), time.process_time()
    claim, where, method, explanation = name, "", "", ""
    try:
        mod = importlib.import_module(f"paper_checks.{name}")
        claim, where, method = mod.CLAIM, mod.WHERE, mod.METHOD
        explanation = inspect.cleandoc(mod.__doc__ or "").removeprefix("Claim: ")
        mod.run(ctx)
    except NotAvailable as exc:
        ctx.check(claim, "-", method or "-", False, str(exc))
    except Exception as exc:  # noqa: BLE001 - a crash is a FAIL with its reason
        ctx.check(claim, "-", method or "-", False, f"error: {type(exc).__name__}: {exc}")
        if verbose:
            traceback.print_exc(file=sys.stderr)
    if not ctx.records:
        ctx.check(claim, "-", "-", False, "the check recorded no result")
    return ClaimResult(
        name=name,
        claim=claim,
        where=where,
        method=method,
        passed=all(r.passed for r in ctx.records),
        numbers=ctx.numbers,
        figures=ctx.figures,
        records=ctx.records,
        settings=ctx.settings,
        notes=ctx.notes,
        explanation=explanation,
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
        tier=tier,
    )


def run_all(
    names=None, tier: str = "quick", out_dir: Path = DEFAULT_OUT, verbose: bool = True
) -> list[ClaimResult]:
    """Run the named checks (default: all) and return their results, printing progress."""
    names = resolve_names(names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        res = run_check(name, tier, out_dir, verbose)
        print(
            f"[{i}/{len(names)}] {name}: {res.status} in {res.seconds:.1f} s "
            f"(CPU {res.cpu_seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        results.append(res)
    return results


__all__ = ["CHECKS", "DEFAULT_OUT", "resolve_names", "run_check", "run_all", "NotAvailable"]
