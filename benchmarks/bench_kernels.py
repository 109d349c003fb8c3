"""Benchmark: the categorical quartic form μ_4(h)[v⁴] = Σ_c p_c (v_c − pᵀv)⁴ (docs/theory.md §4).

Structured O(C) kernel (fishsym.kernels.get("categorical", C=...)) at C = 10, 100, 1000,
batch B = 256 logit vectors h, K = 1024 vectors v, in two layouts:

* shared   v [C, K]     (one set of vectors for the whole batch, broadcast),
* batched  v [B, C, K]  (one set per batch element — the engine's layout).

Baseline, side by side at C = 10: the lambdified generic kernel (sympy → torch from the
715 distinct entries of μ_4; its code generation time is printed separately), which is
infeasible beyond small C (C⁴/24 entries).

Each measurement runs in a fresh subprocess with one torch thread and transparent huge
pages disabled (with them, runs on large inputs were intermittently up to ~8× faster and
their resident-set figures jumped by up to 1 GB, so figures were not reproducible):
time is the minimum of REPEATS calls (the machine is shared, so the minimum is the least
disturbed figure);
peak memory is the rise of the process's peak resident set size during the first call
(no warm-up: the allocator would keep the working set resident and hide it), beyond the
inputs already allocated (Linux: VmHWM after resetting it via
/proc/self/clear_refs; elsewhere ``ru_maxrss``) — torch's CPU allocations are invisible
to tracemalloc, the resident set sees them.

    python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import json
import subprocess
import sys

REPEATS = 5
B, K = 256, 1024

_CHILD = r"""
import ctypes, json, resource, sys, time
try:  # no transparent huge pages: their background collapsing made the RSS figures and
    # the timings of large inputs jump between runs (PR_SET_THP_DISABLE = 41)
    ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)
except (OSError, AttributeError):
    pass
import torch
torch.set_num_threads(1)
import fishsym.kernels as kernels
C, layout, which, dtype = int(sys.argv[1]), sys.argv[2], sys.argv[3], getattr(torch, sys.argv[4])
B, K, REPEATS = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
gen = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
if which == "structured":
    kernel = kernels.get("categorical", C=C)
else:
    kernel = kernels.generic("categorical", C=C)
h = torch.randn(B, C, generator=gen, dtype=dtype)
shape = (C, K) if layout == "shared" else (B, C, K)
v = torch.randn(*shape, generator=gen, dtype=dtype)
if which == "generic":  # generate the code (and the symbolic μ_4) before timing
    kernel.quartic(h[:1], v[..., :1] if layout == "shared" else v[:1, :, :1])
setup = time.perf_counter() - t0


def status_kib(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


try:  # Linux: reset the peak RSS (VmHWM) to the current RSS, then read it after one call
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    rss0 = status_kib("VmRSS")
    out = kernel.quartic(h, v)
    rss1 = status_kib("VmHWM")
except OSError:  # elsewhere: the lifetime peak
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = kernel.quartic(h, v)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(REPEATS):
    t = time.perf_counter(); kernel.quartic(h, v); times.append(time.perf_counter() - t)
diff = 0.0
if which == "generic":  # the structured kernel on the same inputs, for the side-by-side
    fast = kernels.get("categorical", C=C).quartic(h, v)
    diff = float((fast - out).abs().max() / out.abs().max())
print(json.dumps({"time": min(times), "peak_mib": (rss1 - rss0) / 1024,
                  "input_mib": v.numel() * v.element_size() / 2**20, "setup": setup,
                  "max_rel_diff": diff}))
"""


def measure(C, layout, which, dtype="float64"):
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(C), layout, which, dtype, str(B), str(K), str(REPEATS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    print(
        f"categorical quartic form μ_4[v⁴], batch B = {B}, K = {K} vectors, 1 torch thread, "
        "no transparent huge pages,"
    )
    print(
        f"min of {REPEATS} calls; peak = rise of peak RSS during the first call (beyond inputs)\n"
    )
    header = (
        f"{'layout':8} {'dtype':8} {'C':>5} {'structured s':>13} {'µs/(B·K)':>9} "
        f"{'s/C (×1e-3)':>12} {'peak MiB':>9} {'v MiB':>8}   baseline (lambdified generic)"
    )
    print(header)
    print("-" * len(header))
    for layout, dtype in (("shared", "float64"), ("batched", "float32")):
        for C in (10, 100, 1000):
            r = measure(C, layout, "structured", dtype)
            line = (
                f"{layout:8} {dtype:8} {C:5d} {r['time']:13.4f} {1e6 * r['time'] / (B * K):9.3f} "
                f"{1e3 * r['time'] / C:12.3f} {r['peak_mib']:9.1f} {r['input_mib']:8.1f}"
            )
            if C == 10:
                g = measure(C, layout, "generic", dtype)
                line += (
                    f"   {g['time']:.4f} s, peak {g['peak_mib']:.1f} MiB "
                    f"(codegen {g['setup']:.1f} s; max rel. difference {g['max_rel_diff']:.1e})"
                )
            else:
                line += "   infeasible (C⁴/24 symbolic entries)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
