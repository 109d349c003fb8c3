"""The pieces every claim check uses: its context, its result, and missing components.

A check module defines ``CLAIM`` (what the paper asserts, in words), ``WHERE`` (where the
paper shows it), ``METHOD`` (how fishsym checks it), ``SETTINGS`` (one dict per tier:
``"tiny"`` for the runner's own tests, ``"quick"`` by default, ``"full"`` for the complete
runs) and ``run(ctx)``, which records sub-checks, key numbers and figures on the
:class:`Context`. The claim passes when every sub-check passed (and there is at least
one). A component of fishsym that cannot be imported makes the sub-checks that need it
FAIL with ``not available: <import error>`` — never a silent pass.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fishsym.symbolic.records import CheckResult

TIERS = ("tiny", "quick", "full")


class NotAvailable(Exception):
    """A fishsym component a check needs cannot be imported (yet)."""


def need(module: str, *attrs: str):
    """Import ``module`` and return it (or its attribute ``attrs[0]``, or a tuple of
    several); raise :class:`NotAvailable` with the import error otherwise."""
    try:
        mod = importlib.import_module(module)
        found = tuple(getattr(mod, a) for a in attrs)
    except (ImportError, AttributeError) as exc:
        what = module + (f".{'/'.join(attrs)}" if attrs else "")
        raise NotAvailable(f"not available: {what}: {type(exc).__name__}: {exc}") from exc
    if not attrs:
        return mod
    return found[0] if len(found) == 1 else found


@dataclass
class ClaimResult:
    """The outcome of one claim check (what the report lists)."""

    name: str
    claim: str
    where: str
    method: str
    passed: bool
    numbers: dict[str, str] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    records: list[CheckResult] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    explanation: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    tier: str = "quick"

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"


class Context:
    """What a check writes to while it runs.

    ``tier`` selects its ``SETTINGS``; ``out_dir`` receives its figures.
    """

    def __init__(self, name: str, tier: str, out_dir: Path, verbose: bool = True):
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}; got {tier!r}")
        self.name, self.tier, self.out_dir, self.verbose = name, tier, Path(out_dir), verbose
        self.records: list[CheckResult] = []
        self.numbers: dict[str, str] = {}
        self.figures: list[str] = []
        self.notes: list[str] = []
        self.settings: dict = {}
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ settings
    def use_settings(self, table: dict[str, dict]) -> dict:
        """The settings of this tier (stated in the report)."""
        self.settings = dict(table[self.tier])
        return self.settings

    # ------------------------------------------------------------------ records
    def check(self, claim: str, subject: str, method: str, passed: bool, detail: str = "") -> bool:
        """Record one sub-check; returns ``passed``."""
        self.records.append(CheckResult(claim, subject, method, bool(passed), detail))
        self.log(f"{'PASS' if passed else 'FAIL'}  {claim} [{subject}] {detail}")
        return bool(passed)

    def number(self, key: str, value) -> None:
        """A key number for the report's table and the claim's section."""
        self.numbers[key] = value if isinstance(value, str) else fmt(value)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @contextmanager
    def part(self, claim: str, subject: str = "", method: str = ""):
        """Run a block; if it raises, record a FAIL for ``claim`` saying why (a missing
        component: ``not available: …``; anything else: the exception and where)."""
        try:
            yield
        except NotAvailable as exc:
            self.check(claim, subject, method or "-", False, str(exc))
        except Exception as exc:  # noqa: BLE001 - a crash is a FAIL with its reason
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
            self.check(
                claim, subject, method or "-", False, f"error: {type(exc).__name__}: {exc}{where}"
            )
            if self.verbose:
                traceback.print_exc(file=sys.stderr)

    # ------------------------------------------------------------------ figures
    def save_figure(self, fig, filename: str) -> str:
        """Save a matplotlib figure as ``out_dir/filename`` (PNG) and list it."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / filename
        fig.savefig(path, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.figures.append(filename)
        return filename

    # ------------------------------------------------------------------ progress
    def log(self, msg: str) -> None:
        if self.verbose:
            print(
                f"    [{self.name} {time.perf_counter() - self._t0:6.1f}s] {msg}",
                file=sys.stderr,
                flush=True,
            )

    def progress(self, iterable, desc: str, total: int | None = None):
        """``tqdm`` progress bar on stderr when verbose and a person is watching (a terminal
        or a notebook: :func:`fishsym.common.progress.interactive`), else the plain
        iterable — no bars in CI logs or files."""
        from fishsym.common.progress import interactive

        if not (self.verbose and interactive()):
            return iterable
        from tqdm.auto import tqdm

        return tqdm(
            iterable, desc=f"    {self.name}: {desc}", total=total, leave=False, file=sys.stderr
        )


def fmt(value) -> str:
    """Compact display of a number (or a pass-through string)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if value == 0:
            return "0"
        if abs(value) >= 1e4 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def matplotlib():
    """``matplotlib.pyplot`` with whatever backend the session has: inline in Jupyter,
    a window on a desktop, Agg where there is no display (the report runner,
    ``python -m paper_checks``, chooses Agg itself)."""
    import matplotlib.pyplot as plt

    return plt


__all__ = ["TIERS", "NotAvailable", "need", "ClaimResult", "Context", "fmt", "matplotlib"]
