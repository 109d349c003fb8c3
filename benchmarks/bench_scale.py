"""``diagonal_fisher`` at scale against named baselines, ratios in one run (issue 24 item 5).

    python benchmarks/bench_scale.py [--repeats 3] [--threads 2] [--cases a,b]

float32, ``--threads`` torch threads, each case in fresh Python processes, time = best of
``--repeats`` calls after a warm-up. Rows (a), (d), (e) are timed in a process that runs
as a user's does (the environment as inherited: glibc's own allocator, OpenMP's own wait
policy), and their peak memory (the rise of the peak resident set over the call) is
measured in a second process, as in ``bench_engine.py``, with ``OMP_WAIT_POLICY=PASSIVE``
and a fixed mmap threshold so that the resident set follows live memory. That second
process's time is printed beside: there every block above 64 KiB is a fresh mapping whose
pages are faulted in on every call (about 2 µs a page on this VM), so it measures the
bytes a call touches more than its arithmetic. Rows (b) and (c) run in one process each
with ``OMP_WAIT_POLICY=PASSIVE`` and glibc's own threshold (see :func:`_spawn`):

(a) one ``diagonal_fisher`` label round — one sampled label per input, the squared score,
    every parameter sampled (no closed-form head), summed squared per-input gradients by
    the layer rules of docs/theory.md §12 — against BackPACK ``DiagGGNMC`` with one MC
    sample (the same quantity: per input one sampled-label backward, squared gradients
    summed), on MNIST-4L (256 digits) and the ReLU CNN of ``bench_architectures`` (64
    digits) — target ≤ 1.5×;
(b) a GPT-2-small-shaped decoder (``fishsym.nets.gpt2``: 12 layers, width 768, 12 heads,
    vocabulary 50,257, 128 tokens, random init, untied head, batch 4): one
    ``diagonal_fisher`` round (one sampled label per token, every parameter) against one
    training step (forward and backward of the mean token cross-entropy, the gradients
    freed before each step as ``zero_grad(set_to_none=True)`` does) — targets ≤ 3× time
    and ≤ 2× peak memory. Memory here is the **peak over the loaded model** (resident set
    after the model and the tokens are built, nothing else): each call starts from a
    settled heap (``gc`` and ``malloc_trim``, so freed memory is not hidden in the
    allocator's free lists and then reused unseen), and counts what the job holds — for
    fishsym its private copy of the model and the model's outputs, for the step the
    gradients. The steady figure (a round of a run of rounds, a step of a training loop) is
    the target's; the first call (fishsym: building the sampler, and the round that checks
    every layer rule against the batch gradient) is printed beside it. Also printed: the
    rounds ``diagonal_fisher`` needs for 10 % per layer (median entry, 95 %) on a 2-layer
    version of the same shape, extrapolated from ``PROBE_ROUNDS`` rounds by the
    ``1/√rounds`` law, and what that costs at full size.

(c) ResNet-18 (``fishsym.nets.resnet18``, torchvision's layout and init, evaluation mode,
    10 classes; the bundled digits padded to 32×32 and repeated over 3 channels), exact
    Fisher and ``V₁`` (``fisher_variances``, ``bounds=False``; ``V₂`` proven a structural
    zero by the graph, nothing computed for it) over ``RESNET_INPUTS`` inputs, against the
    per-input Jacobian floor (``vmap(jacrev)`` of the whole model, chunks of 8 — measured
    on ``RESNET_FLOOR_INPUTS`` inputs and scaled by the inputs: its work is per input) —
    target ≤ 1×; and against BackPACK ``DiagGGNExact`` (the Fisher alone, one label per
    input) with its graph converter, in chunks of 8 inputs (all 256 at once are killed for
    memory on a 24 GiB machine), measured and scaled like the floor;
(d) the ReLU CNN of (a), the Fisher and ``V₁`` alone, 64 digits, against BackPACK
    ``BatchDiagGGNExact`` — target ≤ 0.5× (row (g) of ``bench_architectures``);
(e) MNIST-4L, the Fisher and ``V₁`` alone, 256 digits, against BackPACK ``DiagGGNExact`` —
    target ≤ 1.5× (row (g) of ``bench_architectures``).

BackPACK is a benchmark-only extra (``pip install --no-deps backpack-for-pytorch einops
unfoldNd``); without it those rows say so.
"""

from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_architectures import cnn  # noqa: E402
from bench_engine import (  # noqa: E402
    OMP_WAIT_POLICY,
    _measure,
    parent_args,
    spawn_as_user,
    spawn_child,
)

#: (label, fishsym case, baseline case, time target, memory target, baseline name)
ROWS = [
    ("(a) MNIST-4L, one label round, 256", "a_mlp_round", "a_mlp_backpack", 1.5, None,
     "DiagGGNMC (1 sample)"),
    ("(a) ReLU CNN, one label round, 64", "a_cnn_round", "a_cnn_backpack", 1.5, None,
     "DiagGGNMC (1 sample)"),
    ("(b) GPT-2-small shape, batch 4 x 128", "b_round", "b_train", 3.0, 2.0,
     "training step"),
    ("(c) ResNet-18, Fisher+V1, 256", "c_fishsym", "c_floor", 1.0, None,
     "vmap(jacrev) floor"),
    ("(c) ResNet-18, Fisher+V1, 256", "c_fishsym", "c_backpack", None, None,
     "DiagGGNExact (Fisher only)"),
    ("(d) ReLU CNN, Fisher+V1 only, 64", "arch:a_lean", "arch:a_backpack", 0.5, None,
     "BatchDiagGGNExact"),
    ("(e) MNIST-4L, Fisher+V1 only, 256", "arch:f_lean", "arch:f_backpack", 1.5, None,
     "DiagGGNExact"),
]  # fmt: skip
RESNET_INPUTS, RESNET_FLOOR_INPUTS = 256, 32

#: rounds run on the 2-layer version before extrapolating the rounds needed for 10 %
PROBE_ROUNDS = 16
GPT2_SMALL = {"vocab": 50257, "width": 768, "layers": 12, "heads": 12, "context": 128}
BATCH, TOKENS = 4, 128


def _sampler(model, x, family="categorical"):
    """``diagonal_fisher``'s round machinery on ``model``: the model view, probed, and a
    sampler over every parameter (what one round of ``diagonal_fisher`` runs)."""
    import torch

    from fishsym import kernels
    from fishsym.common import ModelView
    from fishsym.sampling.diagonal import _Sampler

    view = ModelView(model, torch.float32)
    d = view.probe(x)
    kernel = kernels.for_output(family, d, view.out_shape)
    return _Sampler(view, kernel, x, torch.Generator().manual_seed(0))


def _settle() -> None:
    """Collect garbage and hand the allocator's free memory back to the system (glibc's
    ``malloc_trim``), so that the resident set is what is live."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the resident set may then include free-list memory
        pass


def _measure_loaded(setup, run, repeats: int) -> dict:
    """Time and peak memory over the loaded model (row (b)): ``state = setup()`` and a
    first ``run(state)``, then ``repeats`` more; each call from a settled heap
    (:func:`_settle`), its peak resident set over the one before ``setup``. ``time`` and
    ``peak_mib`` are the steady calls' (best time, largest peak); ``first_*`` the first's,
    setup included."""
    import time

    from bench_engine import _status_kib

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")

    _settle()
    reset_peak()
    loaded = _status_kib("VmRSS")
    t0 = time.perf_counter()
    state = setup()
    run(state)
    first = {"first_time": time.perf_counter() - t0,
             "first_mib": (_status_kib("VmHWM") - loaded) / 1024}  # fmt: skip
    times, peaks = [], []
    for _ in range(repeats):
        _settle()
        reset_peak()
        t0 = time.perf_counter()
        run(state)
        times.append(time.perf_counter() - t0)
        peaks.append((_status_kib("VmHWM") - loaded) / 1024)
    return {"time": min(times), "peak_mib": max(peaks), **first}


def _time_round(model, x, repeats: int) -> dict:
    """Time and peak memory of one squared-score round (after one warm-up round, which
    also checks the layer rules on these inputs), and the routes taken."""
    sampler = _sampler(model, x)
    sampler.round("squared_score")
    out = _measure(lambda: sampler.round("squared_score"), repeats)
    out["routes"] = sorted(set(sampler.sums.routes.values()))
    return out


def _cifar_shaped(n: int):
    """``n`` bundled digits as CIFAR-shaped inputs: padded to 32×32, 3 channels."""
    import torch

    from fishsym.data import mnist_tensors

    x, _, _, _ = mnist_tensors(n_train=n, n_test=0)
    x = torch.nn.functional.pad(x.reshape(-1, 1, 28, 28), (2, 2, 2, 2))
    return x.expand(-1, 3, -1, -1).contiguous()


def _resnet_case(case: str, repeats: int) -> dict:
    import torch

    from fishsym import nets

    model = nets.resnet18(10, generator=torch.Generator().manual_seed(0)).eval()
    x = _cifar_shaped(RESNET_INPUTS)
    if case == "c_fishsym":
        import fishsym

        def run(xs=x):
            return fishsym.fisher_variances(
                model, xs, "categorical", dtype=torch.float32, bounds=False, progress=False
            )

        res = run(x[:2])
        out = _measure(run, repeats)
        out["routes"] = sorted(set(res.var2_routes.values()))
        return out
    if case == "c_floor":
        from torch.func import functional_call, jacrev, vmap

        params = {k: v.detach() for k, v in model.named_parameters()}
        buffers = dict(model.named_buffers())

        def single(p, xi):
            return functional_call(model, (p, buffers), (xi.unsqueeze(0),))[0]

        jac = vmap(jacrev(single), in_dims=(None, 0))
        xs = x[:RESNET_FLOOR_INPUTS]

        def run():
            for start in range(0, xs.shape[0], 8):
                jac(params, xs[start : start + 8])

        jac(params, x[:2])
        out = _measure(run, repeats)
        scale = RESNET_INPUTS / RESNET_FLOOR_INPUTS
        out["time"] *= scale
        out["note"] = f"measured on {RESNET_FLOOR_INPUTS} inputs, ×{scale:g}"
        return out
    # BackPACK's DiagGGNExact through its graph converter (residual additions)
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact

    model = extend(model, use_converter=True)
    loss_fn = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
    # all 256 inputs at once take more than this machine's 24 GiB (killed): chunks of 8,
    # measured on RESNET_FLOOR_INPUTS inputs and scaled, as the floor
    xs = x[:RESNET_FLOOR_INPUTS]
    with torch.no_grad():
        labels = model(xs).argmax(1)

    def run():
        out = None
        for start in range(0, xs.shape[0], 8):
            for p in model.parameters():
                p.grad = None
            loss = loss_fn(model(xs[start : start + 8]), labels[start : start + 8])
            with backpack(DiagGGNExact()):
                loss.backward()
            part = [p.diag_ggn_exact for p in model.parameters()]
            out = part if out is None else [a + b for a, b in zip(out, part, strict=True)]
        return out

    run()
    out = _measure(run, repeats)
    scale = RESNET_INPUTS / RESNET_FLOOR_INPUTS
    out["time"] *= scale
    out["note"] = f"chunks of 8, measured on {RESNET_FLOOR_INPUTS} inputs, ×{scale:g}"
    return out


def _child(spec: dict) -> dict:
    import torch

    from fishsym import nets
    from fishsym.data import mnist_tensors

    torch.set_num_threads(spec["threads"])
    warnings.filterwarnings("ignore")
    case = spec["case"]
    torch.manual_seed(0)
    if case.startswith("arch:"):  # a row of bench_architectures, run here
        import bench_architectures

        return bench_architectures._child({**spec, "case": case[len("arch:") :]})
    if case.startswith("c_"):
        return _resnet_case(case, spec["repeats"])
    if case.startswith("a_"):
        x_all, _, _, _ = mnist_tensors(n_train=256, n_test=0)
        if "_mlp_" in case:
            model, x = nets.mlp(nets.MNIST_WIDTHS, "sigmoid"), x_all
        else:
            model, x = cnn(torch.nn.ReLU), x_all.reshape(-1, 1, 28, 28)[:64]
        if case.endswith("round"):
            return _time_round(model, x, spec["repeats"])
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNMC

        model = extend(model)
        loss_fn = extend(torch.nn.CrossEntropyLoss(reduction="sum"))

        def run():
            for p in model.parameters():
                p.grad = None
            loss = loss_fn(model(x), torch.zeros(x.shape[0], dtype=torch.int64))
            with backpack(DiagGGNMC(mc_samples=1)):
                loss.backward()
            return [p.diag_ggn_mc for p in model.parameters()]

        run()
        return _measure(run, spec["repeats"])
    if case.startswith("b_"):
        model = nets.gpt2(**GPT2_SMALL, generator=torch.Generator().manual_seed(0))
        ids = torch.randint(0, GPT2_SMALL["vocab"], (BATCH, TOKENS),
                            generator=torch.Generator().manual_seed(1))  # fmt: skip
        if case == "b_round":
            made = []
            out = _measure_loaded(
                lambda: made.append(_sampler(model, ids)) or made[0],
                lambda sampler: sampler.round("squared_score"),
                spec["repeats"],
            )
            out["routes"] = sorted(set(made[0].sums.routes.values()))
            return out
        if case == "b_train":

            def step(opt):
                opt.zero_grad(set_to_none=True)
                logits = model(ids)
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), ids.reshape(-1)
                )
                loss.backward()
                opt.step()

            return _measure_loaded(
                lambda: torch.optim.SGD(model.parameters(), lr=0.0), step, spec["repeats"]
            )
        if case == "b_rounds":
            import math

            import fishsym

            small = nets.gpt2(**{**GPT2_SMALL, "layers": 2},
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
            est = fishsym.diagonal_fisher(
                small, ids, "categorical", exact=False, estimator="squared_score",
                max_labels=PROBE_ROUNDS, generator=torch.Generator().manual_seed(2),
            )  # fmt: skip
            # the median entry's error falls as 1/√rounds: the rounds each layer needs
            need = {g: math.ceil(est.rounds[g] * (e / 0.1) ** 2) for g, e in est.achieved.items()
                    if est.rounds[g] > 0}  # fmt: skip
            return {"rounds": max(need.values()), "hardest": max(need, key=need.get)}
    raise ValueError(case)


def _spawn(spec: dict) -> dict | None:
    """A case's figures. (b) and (c): one child, glibc's own mmap threshold (at their size
    a fixed one makes every block a fresh mapping, and first-touch page faults — on a VM
    most of the system time — swamp both sides). The smaller rows: time as a user's
    process runs, memory under the fixed threshold, that child's time printed beside
    (:func:`bench_engine.spawn_as_user`)."""
    if spec["case"].startswith(("b_", "c_")):
        return spawn_child(__file__, spec, dict(os.environ, OMP_WAIT_POLICY=OMP_WAIT_POLICY))
    return spawn_as_user(__file__, spec)


def main() -> None:
    args = parent_args(__doc__, "a,b,c,d,e", _child, "float32")
    if args is None:
        return
    wanted = set(args.cases.split(","))
    head = (
        f"{'case':38s} {'fishsym':>10s} {'MiB':>7s} {'baseline':>10s} {'MiB':>7s} "
        f"{'time':>6s} {'target':>7s} {'memory':>6s} {'target':>6s}  baseline / routes"
    )
    print(head)
    print("-" * len(head))
    verdicts = []
    done: dict[str, dict | None] = {}  # a fishsym case measured once for several baselines
    for label, mine, theirs, t_target, m_target, name in ROWS:
        if label[1] not in wanted:
            continue
        base = {"threads": args.threads, "repeats": args.repeats}
        if mine not in done:
            done[mine] = _spawn({**base, "case": mine})
        a, b = done[mine], _spawn({**base, "case": theirs})
        ok_a, ok_b = a is not None and "error" not in a, b is not None and "error" not in b

        def fmt(r, ok):
            if not ok:
                return f"{'failed':>10s} {'':>7s}"
            return f"{r['time']:>8.3f} s {r['peak_mib']:>7.1f}"

        ratio = a["time"] / b["time"] if ok_a and ok_b else float("nan")
        mem = a["peak_mib"] / max(b["peak_mib"], 1e-9) if ok_a and ok_b else float("nan")
        t_tgt = f"≤ {t_target:g}" if t_target else "-"
        m_tgt = f"≤ {m_target:g}" if m_target else "-"
        routes = ", ".join(a.get("routes", [])) if ok_a else a.get("error", "")
        note = name if ok_b else f"{name}: {b.get('error', '')}"
        if ok_b and b.get("note"):
            note += f" ({b['note']})"
        print(f"{label:38s} {fmt(a, ok_a)} {fmt(b, ok_b)} {ratio:>6.2f} {t_tgt:>7s} "
              f"{mem:>6.2f} {m_tgt:>6s}  {note} / {routes}")  # fmt: skip
        if t_target and ok_a and ok_b:
            verdicts.append((label, "time", ratio, t_target))
        if m_target and ok_a and ok_b:
            verdicts.append((label, "memory", mem, m_target))
        if "time_fixed" in a and ok_b and "time_fixed" in b:
            print(f"{'':38s} under the memory child's settings (fixed mmap threshold, "
                  f"PASSIVE): {a['time_fixed']:.3f} s vs {b['time_fixed']:.3f} s, "
                  f"{a['time_fixed'] / b['time_fixed']:.2f}×")  # fmt: skip
        if "first_mib" in a and ok_b and "first_mib" in b:
            print(f"{'':38s} first call: {a['first_time']:.3f} s {a['first_mib']:.1f} MiB "
                  f"(sampler built, every layer rule checked) vs {b['first_time']:.3f} s "
                  f"{b['first_mib']:.1f} MiB: {a['first_time'] / b['first_time']:.2f}× time, "
                  f"{a['first_mib'] / b['first_mib']:.2f}× memory")  # fmt: skip
        if mine == "b_round" and ok_a:
            r = _spawn({**base, "case": "b_rounds"})
            if r and "error" not in r:
                print(f"{'':38s} rounds for 10 % per layer (2-layer version, batch {BATCH}, "
                      f"extrapolated from {PROBE_ROUNDS} rounds): {r['rounds']} (hardest: "
                      f"{r['hardest']}); at {a['time']:.1f} s per round about "
                      f"{r['rounds'] * a['time'] / 60:.1f} min at full size")  # fmt: skip
    print()
    for label, what, value, target in verdicts:
        print(f"{label}: {what} {value:.2f}× — target ≤ {target:g}× "
              f"{'met' if value <= target else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
