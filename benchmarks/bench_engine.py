"""Benchmark of the numeric engine on MNIST-4L against BackPACK (issue #4).

    python benchmarks/bench_engine.py [--repeats 3] [--threads 2] [--no-scaling]

Net "MNIST-4L" (784-256-128-64-10, sigmoid, 242,762 parameters), categorical head, the
first 256 bundled MNIST digits, ``--threads`` torch threads, float32 and float64:

(a) ``fishsym.fisher_variances`` — fast structured path, all parameters: Fisher diagonal,
    V₁, V₂ and the bounds of both;
(a') the same with ``bounds=False``: without the kernel's ``spectrum`` (the bounds need
    only its certified fields, ``spectrum(h, local=False)``: no power iteration), so
    (a) − (a') is the cost of the bounds;
(b) BackPACK ``BatchDiagHessian`` for ``CrossEntropyLoss`` (one diagonal Hessian per input,
    of the loss only — the closest existing computation);
(c) BackPACK ``BatchGrad`` (one gradient per input — the floor for anything per input);
(d) the generic ``torch.func`` path on a 200-entry slice (50 entries of each weight
    matrix) and the first ``--generic-inputs`` inputs (default 32), extrapolated linearly
    to all 242,762 entries and 256 inputs (its cost is one forward-over-forward pass per
    entry and input, the same for every entry and input).

Each case runs in a fresh Python process (so allocator state does not leak between
cases) with ``OMP_WAIT_POLICY=PASSIVE`` (see :data:`OMP_WAIT_POLICY`) and
``MALLOC_MMAP_THRESHOLD_`` fixed, so that freed blocks return to the system
and the resident set follows live memory. Peak memory is the rise of the peak resident
set (``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident set just
before the measured call, after a warm-up on two inputs; time is the best of
``--repeats`` calls (the machine may be shared; the load average is printed).

Targets (issue #4): (a) ≤ 0.1 × (b) and (a) ≤ 2 × (c) in time, peak memory of (a) ≤ (b).
Then the scaling of (a) with the number of inputs, the width and the depth.

BackPACK is a benchmark-only extra, never a dependency of fishsym:
``pip install --no-deps backpack-for-pytorch einops unfoldNd``. Without it the script says
so and still prints (a) and (d).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import warnings

#: fixed mmap threshold for the child processes (bytes): every block above it is
#: mmap-ed and returned to the system when freed, so RSS tracks live memory
MMAP_THRESHOLD = 65536
#: OpenMP threads sleep instead of spinning while they wait (all cases alike): on a shared,
#: oversubscribed machine a spinning thread steals the core of the thread it waits for,
#: which inflates the time of code made of many small operations tenfold
OMP_WAIT_POLICY = "PASSIVE"
#: parameter entries the generic path is timed on (case d), spread over the weights
GENERIC_SLICE = 200
N_INPUTS = 256

DTYPES = {"float32": "float32", "float64": "float64"}


# --------------------------------------------------------------------------- child side
def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _measure(run, repeats: int) -> dict:
    """Peak RSS rise of one call (MiB) and the best / median time of ``repeats`` calls."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = run()
    first = time.perf_counter() - t0
    peak = (_status_kib("VmHWM") - before) / 1024
    del out
    times = [first]
    for _ in range(repeats - 1):
        gc.collect()
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
        del out
    times.sort()
    return {"time": times[0], "median": times[len(times) // 2], "peak_mib": peak}


def _child(spec: dict) -> dict:
    import torch

    from fishsym import nets
    from fishsym.data import mnist_tensors

    torch.set_num_threads(spec["threads"])
    dtype = getattr(torch, spec["dtype"])
    widths = spec.get("widths") or list(nets.MNIST_WIDTHS)
    n = spec.get("n", N_INPUTS)
    x_all, y_all, _, _ = mnist_tensors(n_train=min(n, 8000), n_test=0)
    reps = -(-n // len(x_all))
    x, y = x_all.repeat(reps, 1)[:n], y_all.repeat(reps)[:n]
    case = spec["case"]
    warnings.filterwarnings("ignore")

    if case in ("fishsym", "fishsym_nobounds"):
        import fishsym

        model = nets.mlp(widths, "sigmoid")
        bounds = case == "fishsym"

        def run(xs=x):
            return fishsym.fisher_variances(
                model, xs, "categorical", dtype=dtype, progress=False, bounds=bounds
            )

        run(x[:2])
        return _measure(run, spec["repeats"])

    if case == "generic":
        import fishsym
        from fishsym.engine import GenericModel
        from fishsym.engine.generic import GENERIC_INPUT_CHUNK
        from fishsym.variance import resolve_kernel, unit_moments

        model = nets.mlp(widths, "sigmoid")
        engine = GenericModel(model, dtype)
        kernel = resolve_kernel("categorical", widths[-1])
        weights = [name for name in engine.param_names() if name.endswith("weight")]
        per = GENERIC_SLICE // len(weights)
        entries = {name: slice(0, per) for name in weights}
        n_slice = per * len(weights)

        xg = x[: spec["generic_inputs"]]

        def run(xs=xg):
            total = 0.0
            for start in range(0, len(xs), GENERIC_INPUT_CHUNK):
                xc = xs[start : start + GENERIC_INPUT_CHUNK]
                h = engine.output(xc)
                kernel.check_h(h)
                spectrum = kernel.spectrum(h, local=False)  # as fisher_variances does
                for pd in engine.blocks(xc, entries=entries):
                    m = unit_moments(kernel, h, pd.jac, pd.hess_diag, spectrum)
                    total += float(m["var1"].sum() + m["var2"].sum())
            return total

        run(x[:2])
        out = _measure(run, spec["repeats"])
        out["scale"] = engine.n_entries() / n_slice * n / len(xg)
        out["slice"] = n_slice
        del fishsym
        return out

    if case in ("diag_hessian", "batch_grad"):
        from backpack import backpack, extend
        from backpack.extensions import BatchDiagHessian, BatchGrad

        model = extend(nets.mlp(widths, "sigmoid", dtype=dtype))
        loss_fn = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
        xd = x.to(dtype)
        extension = BatchDiagHessian if case == "diag_hessian" else BatchGrad
        attr = "diag_h_batch" if case == "diag_hessian" else "grad_batch"

        def run(xs=xd, ys=y):
            for p in model.parameters():
                p.grad = None
                if hasattr(p, attr):
                    delattr(p, attr)
            loss = loss_fn(model(xs), ys)
            with backpack(extension()):
                loss.backward()
            return [getattr(p, attr) for p in model.parameters()]

        run(xd[:2], y[:2])
        return _measure(run, spec["repeats"])

    raise ValueError(case)


# --------------------------------------------------------------------------- parent side
def spawn_child(script: str, spec: dict, env: dict) -> dict:
    """Run ``script --child spec`` in a fresh process with ``env``; its last stdout line
    (JSON), or ``{"error": the last line of stderr}``."""
    proc = subprocess.run(
        [sys.executable, script, "--child", json.dumps(spec)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spawn_as_user(script: str, spec: dict) -> dict:
    """A case's figures from two fresh processes: time from one that runs as a user's
    process does (the environment as inherited: glibc's own allocator, OpenMP's own wait
    policy), peak memory from one under :data:`MMAP_THRESHOLD` and
    :data:`OMP_WAIT_POLICY`, where the resident set follows live memory. That process's
    time is kept as ``time_fixed``: every block above the threshold is mapped and
    page-faulted anew on every call there, so it counts the bytes a call touches more than
    its arithmetic. Run on a quiet machine: with other work on the cores, OpenMP's
    spinning threads inflate the time of code made of many small operations."""
    timed = spawn_child(script, spec, dict(os.environ))
    memory = spawn_child(
        script,
        spec,
        dict(os.environ, OMP_WAIT_POLICY=OMP_WAIT_POLICY,
             MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD)),
    )  # fmt: skip
    for r in (timed, memory):
        if "error" in r:
            return r
    return {**timed, "peak_mib": memory["peak_mib"], "time_fixed": memory["time"]}


def parent_args(doc: str, cases: str, child, setting: str) -> argparse.Namespace | None:
    """The command line of a side-by-side benchmark script: ``--repeats``, ``--threads``,
    ``--cases``; in a child process (``--child spec``) run ``child(spec)``, print its JSON
    and return ``None``; in the parent print the settings line (``setting`` first)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default=cases, help="row letters to run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return None
    import torch

    print(
        f"{setting}, {args.threads} threads, best of {args.repeats}; torch "
        f"{torch.__version__}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print()
    return args


def _spawn(spec: dict) -> dict | None:
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD),
        OMP_WAIT_POLICY=OMP_WAIT_POLICY,
        OMP_NUM_THREADS=str(spec["threads"]),
        MKL_NUM_THREADS=str(spec["threads"]),
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        print(f"    [{spec['case']} {spec['dtype']} failed: {' | '.join(tail)}]")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _have_backpack() -> bool:
    try:
        import backpack  # noqa: F401
    except ImportError:
        return False
    return True


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _fmt_time(t):
    return "-" if t is None else (f"{t:.3f} s" if t < 100 else f"{t:,.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--generic-inputs", type=int, default=32)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    sys.stdout.reconfigure(line_buffering=True)

    import torch

    from fishsym import nets

    backpack_ok = _have_backpack()
    print(
        f"MNIST-4L (784-256-128-64-10, sigmoid, 242,762 parameters), categorical head, "
        f"{N_INPUTS} bundled MNIST inputs, {args.threads} threads, best of {args.repeats}; "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_WAIT_POLICY={OMP_WAIT_POLICY}, "
        f"load average {_load()}"
    )
    if not backpack_ok:
        print(
            "BackPACK is not installed: (b) and (c) are skipped. Install it (benchmark only) "
            "with:  pip install --no-deps backpack-for-pytorch einops unfoldNd"
        )
    base = {"threads": args.threads, "repeats": args.repeats}
    rows = []
    for dtype in DTYPES:
        res = {"a": _spawn({**base, "case": "fishsym", "dtype": dtype})}
        res["a'"] = _spawn({**base, "case": "fishsym_nobounds", "dtype": dtype})
        if backpack_ok:
            res["b"] = _spawn({**base, "case": "diag_hessian", "dtype": dtype})
            res["c"] = _spawn({**base, "case": "batch_grad", "dtype": dtype})
        res["d"] = _spawn(
            {
                **base,
                "case": "generic",
                "dtype": dtype,
                "repeats": 1,
                "generic_inputs": args.generic_inputs,
            }
        )
        rows.append((dtype, res))

    head = (
        f"{'case':<52} {'dtype':<8} {'time':>10} {'peak MiB':>9} {'t/(b)':>7} {'t/(c)':>7} "
        f"{'mem/(b)':>8}"
    )
    print()
    print(head)
    print("-" * len(head))
    names = {
        "a": "(a) fishsym.fisher_variances (all params, bounds)",
        "a'": "(a') the same, bounds=False (no kernel.spectrum)",
        "b": "(b) BackPACK BatchDiagHessian (CrossEntropyLoss)",
        "c": "(c) BackPACK BatchGrad",
        "d": "(d) generic torch.func path, extrapolated",
    }
    verdicts = []
    for dtype, res in rows:
        b, c = res.get("b"), res.get("c")
        for key in ("a", "a'", "b", "c", "d"):
            r = res.get(key)
            if key in "bc" and not backpack_ok:
                continue
            if r is None:
                print(f"{names[key]:<52} {dtype:<8} {'failed':>10}")
                continue
            t = r["time"] * r.get("scale", 1.0)
            label = names[key]
            if key == "d":
                label = f"(d) generic path, {r['slice']} entries, {args.generic_inputs} inputs"
            tb = f"{t / b['time']:.3f}" if b else "-"
            tc = f"{t / c['time']:.2f}" if c else "-"
            mb = f"{r['peak_mib'] / b['peak_mib']:.3f}" if b and key != "d" else "-"
            print(
                f"{label:<52} {dtype:<8} {_fmt_time(t):>10} {r['peak_mib']:>9.1f} {tb:>7} "
                f"{tc:>7} {mb:>8}"
            )
        a = res.get("a")
        if a and b and c:
            verdicts.append(
                f"{dtype}: (a)/(b) = {a['time'] / b['time']:.3f} (target ≤ 0.1: "
                f"{'met' if a['time'] <= 0.1 * b['time'] else 'NOT met'}), "
                f"(a)/(c) = {a['time'] / c['time']:.2f} (target ≤ 2: "
                f"{'met' if a['time'] <= 2 * c['time'] else 'NOT met'}), "
                f"peak (a)/(b) = {a['peak_mib'] / b['peak_mib']:.3f} (target ≤ 1: "
                f"{'met' if a['peak_mib'] <= b['peak_mib'] else 'NOT met'})"
            )
    print(
        f"(d): time extrapolated ×{rows[0][1]['d']['scale']:.0f} from {GENERIC_SLICE} entries and "
        f"{args.generic_inputs} inputs; peak memory of that slice run (it works in chunks)."
        if rows and rows[0][1].get("d")
        else "(d) failed"
    )
    for v in verdicts:
        print("targets " + v)
    print(f"load average after the main table: {_load()}")

    if args.no_scaling:
        return
    print("\nScaling of (a), float64 (the default), sigmoid, categorical head")
    head = (
        f"{'what':<12} {'network':<34} {'inputs':>7} {'time':>10} {'ms/input':>9} {'peak MiB':>9}"
    )
    print(head)
    print("-" * len(head))
    mnist = list(nets.MNIST_WIDTHS)
    studies = [("inputs", mnist, n) for n in (64, 256, 1024)]
    studies += [("width", uniform_widths(4, w), N_INPUTS) for w in (64, 128, 256, 512, 1024)]
    studies += [("depth", uniform_widths(L, 128), N_INPUTS) for L in (2, 3, 4, 6, 8)]
    for what, widths, n in studies:
        r = _spawn({**base, "case": "fishsym", "dtype": "float64", "widths": widths, "n": n})
        net = (
            "-".join(map(str, widths))
            if len(widths) <= 6
            else f"784-{widths[1]}×{len(widths) - 2}-10"
        )
        if r is None:
            print(f"{what:<12} {net:<34} {n:>7} {'failed':>10}")
            continue
        print(
            f"{what:<12} {net:<34} {n:>7} {_fmt_time(r['time']):>10} "
            f"{1e3 * r['time'] / n:>9.2f} {r['peak_mib']:>9.1f}"
        )
    print(f"load average at the end: {_load()}")


def uniform_widths(depth: int, width: int) -> list[int]:
    """784 → ``depth − 1`` hidden layers of ``width`` → 10 (``depth`` Linear layers)."""
    return [784, *([width] * (depth - 1)), 10]


if __name__ == "__main__":
    main()
