"""Benchmark of the symbolic theorem suite (issue 3, part A).

Runs :func:`fishsym.symbolic.theory.check_theory_suite` — every registered family plus the
user-defined inverse Gaussian, with the GLM and both networks (all claims 1–7) and
concrete activations (model-dependent claims) — in a fresh process, and prints:

* the wall and CPU time of the whole suite, side by side with the target (2 minutes);
* the time per family (in suite order: the first family also pays for the per-model
  derivations and the per-dimension identities, which are cached afterwards);
* the time of the three exact steps measured separately on a cold cache: the model step
  (sympy's chain rule through each network), the expectation-step identities (free
  cumulants, once per output dimension d) and the family links;
* the summary table (one row per family, one column per claim).

The machine is shared: the load average is printed with the figures.

Run:  python benchmarks/bench_theory.py
"""

from __future__ import annotations

import os
import time

from fishsym.symbolic import families, format_table, models, theory

#: the whole symbolic theorem suite must finish within this many seconds (issue 3)
TARGET_SUITE_S = 120.0


def timed(fn, *args, **kwargs):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared)")

    # --- the three steps on a cold cache --------------------------------------------
    dims = sorted({families.get(n).dim for n in families.names()} | {2})
    t_model = 0.0
    for kind, act, _ in theory.SUITE_MODELS:
        for d in dims:
            net = models.build(kind, d) if kind == "glm" else models.build(kind, d, activation=act)
            _, dt, _ = timed(theory.model_step, net)
            t_model += dt
    t_ident = 0.0
    for d in dims:
        for claim in (1, 2, 3, 4, 6):
            _, dt, _ = timed(theory.identities, d, claim)
            t_ident += dt
        _, dt, _ = timed(theory.empirical_identities, d)
        t_ident += dt
    fams = [families.get(n) for n in families.names()] + [theory.inverse_gaussian()]
    t_link = sum(
        timed(theory.family_link, f)[1] + timed(theory.family_shift_link, f)[1] for f in fams
    )
    print(f"\nmodel step (all suite networks, d in {dims}):  {t_model:7.2f} s")
    print(f"expectation-step identities (per d):          {t_ident:7.2f} s")
    print(f"family links ({len(fams)} families):                  {t_link:7.2f} s")

    # --- the rest of the suite (steps above are cached), per family -----------------
    per_family = []
    records = []
    start, cpu = time.perf_counter(), time.process_time()
    for fam in fams:
        t0 = time.perf_counter()
        for kind, act, claims in theory.SUITE_MODELS:
            records += theory.check_theory(fam, kind, activation=act, claims=claims)
        per_family.append((theory._family_label(fam), time.perf_counter() - t0))
    wall_warm, cpu_warm = time.perf_counter() - start, time.process_time() - cpu
    total_wall = wall_warm + t_model + t_ident + t_link

    print("\nper family (networks and identities already derived):")
    for name, dt in per_family:
        print(f"  {name:<28} {dt:6.2f} s")
    print(
        f"\nwhole suite, {len(records)} records: {total_wall:.1f} s wall "
        f"(cold steps {t_model + t_ident + t_link:.1f} s + checks {wall_warm:.1f} s; "
        f"checks CPU {cpu_warm:.1f} s)   target < {TARGET_SUITE_S:.0f} s   "
        f"{'OK' if total_wall < TARGET_SUITE_S else 'MISSED'}"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print()
    print(theory.summary_table(records))
    print(format_table(records, only_failures=True))


if __name__ == "__main__":
    main()
