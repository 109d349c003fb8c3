"""Foundation: every registered exponential family's derived quantities — mean, Fisher
information, 3rd and 4th central moments, moments about a point — equal direct
expectations over its density (exact sums, mpmath series and integrals) and
``sympy.stats``; the Fisher information is symmetric positive semi-definite
(docs/theory.md §1). Everything the variance formulas use rests on these.
"""

from __future__ import annotations

import time

from paper_checks._core import need

NAME = "family_verification"
#: position in the report (claims are discovered from their modules, sorted by it)
ORDER = 10
CLAIM = "Exponential-family moments (η, I, μ₃, μ₄) are right for every family"
WHERE = "setting of the paper (docs/theory.md §1, §4)"
METHOD = (
    "fishsym.symbolic.verify_all: cumulant-derived tensors vs direct expectations (exact "
    "sums / mpmath) and sympy.stats, for every registered family"
)

SETTINGS = {
    "tiny": dict(families=("bernoulli", "poisson")),
    "quick": dict(families=None),
    "full": dict(families=None),
}


def run(ctx) -> None:
    s = ctx.use_settings(SETTINGS)
    families = need("fishsym.symbolic", "families")
    verify_family = need("fishsym.symbolic", "verify_family")
    names = s["families"] or families.names()
    ctx.settings["families"] = ", ".join(names)
    n_checks = 0
    for name in ctx.progress(names, "families"):
        t0 = time.perf_counter()
        with ctx.part("verify_family", name, "fishsym.symbolic.verify_family"):
            records = verify_family(families.get(name))
            n_checks += len(records)
            for rec in records:
                ctx.check(rec.claim, rec.family, rec.method, rec.passed, rec.detail)
        ctx.log(f"{name}: {time.perf_counter() - t0:.1f} s")
    ctx.number("families", len(names))
    ctx.number("checks", n_checks)
    ctx.number("failed", sum(not r.passed for r in ctx.records))
