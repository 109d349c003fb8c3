"""Structured results of verification checks.

Every check in fishsym — a family's normalisation, a closed-form variance proved
symbolically, a paper claim — returns :class:`CheckResult` records, so that tests, the
README's main command and ``paper_checks`` can list them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CheckResult:
    """One verified (or refuted) claim.

    Attributes
    ----------
    claim:  what is asserted, in words (``"normalisation"``, ``"V1 closed form"``…)
    family: the family (or model/network) it concerns
    method: how it was checked (``"symbolic-simplify"``, ``"exact-rational-points"``,
            ``"mpmath-quad(dps=40)"``, ``"sympy.stats"``…)
    passed: whether the check passed
    detail: numbers or the reason of a failure
    """

    claim: str
    family: str
    method: str
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def format_table(records: Iterable[CheckResult], only_failures: bool = False) -> str:
    """A fixed-width text table of records (one line each)."""
    rows = [r for r in records if not (only_failures and r.passed)]
    if not rows:
        return "(no records)"
    w_claim = min(48, max(len(r.claim) for r in rows))
    w_fam = min(28, max(len(r.family) for r in rows))
    w_meth = min(30, max(len(r.method) for r in rows))
    lines = [
        f"{'claim':<{w_claim}}  {'family':<{w_fam}}  {'method':<{w_meth}}  result  detail",
        "-" * (w_claim + w_fam + w_meth + 24),
    ]
    for r in rows:
        lines.append(
            f"{r.claim[:w_claim]:<{w_claim}}  {r.family[:w_fam]:<{w_fam}}  "
            f"{r.method[:w_meth]:<{w_meth}}  {'PASS' if r.passed else 'FAIL':<6}  {r.detail}"
        )
    return "\n".join(lines)
