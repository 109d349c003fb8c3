"""Monte Carlo Î₁ / Î₂ on MNIST-4L: fishsym.montecarlo.estimate against the BackPACK route.

Workload (the issue's): MNIST-4L (784-256-128-64-10, sigmoid, 242,762 parameters), 64
inputs × 4096 labels drawn from the model, split into 64 replicates of 64 labels;
``Î₁`` (squared score) for every parameter and ``Î₂`` (negative Hessian diagonal) for
1,000 sampled entries per layer (4,000 in all). Both routes see the same labels (same
generator seed) and produce the same per-replicate estimates; the script checks that
they agree.

* fishsym: ``estimate(..., params=None, hessian_params=<1,000 per layer>)``.
* BackPACK, the way a user would do it today: batches of (input, label) pairs through
  ``extend``-ed model and ``CrossEntropyLoss(reduction="sum")``, ``BatchGrad`` for
  per-sample gradients (squared, summed per replicate) and ``BatchDiagHessian`` for
  per-sample Hessian diagonals (it has no way to select entries, so it computes all of
  them; the sampled ones are then summed per replicate).

BackPACK is a benchmark-only dependency (never a runtime one):

    pip install --no-deps backpack-for-pytorch einops unfoldNd

Usage::

    python benchmarks/bench_montecarlo.py            # full size (BackPACK's Hessian part
                                                     # takes ~40 min on one core)
    python benchmarks/bench_montecarlo.py --quick    # 8 inputs, then extrapolated to 64

The costs of both routes are linear in the number of inputs (every input is processed
the same way), so ``--quick`` times 8 inputs and reports the measured time and the
linear extrapolation to 64, saying which is which. ``--backpack-inputs K`` measures
BackPACK on only the first K inputs and extrapolates its time (labels and everything
else unchanged).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import nn

from fishsym import kernels
from fishsym.data import mnist_tensors
from fishsym.montecarlo import draw_labels, estimate
from fishsym.nets import mnist_mlp
from fishsym.reference import sample_params


def fishsym_route(net, x, n_labels, replicates, seed, hessian_params):
    times, results = {}, {}
    for est, kwargs in (("squared_score", {}), ("neg_hessian", {"hessian_params": hessian_params})):
        t0 = time.perf_counter()
        results[est] = estimate(
            net,
            x,
            "categorical",
            n_labels,
            replicates,
            torch.Generator().manual_seed(seed),
            estimators=(est,),
            **kwargs,
        )
        times[est] = time.perf_counter() - t0
    return times, results


def backpack_route(net, x, labels, n_labels, replicates, hessian_params, batch, which):
    """Per-replicate means of Î₁ (all entries) and Î₂ (sampled entries) per input,
    from BackPACK's per-sample quantities. Returns times and {est: {name: [n, R, k]}}."""
    from backpack import backpack, extend
    from backpack.extensions import BatchDiagHessian, BatchGrad

    # BackPACK's hooks on the first layer warn that its input needs no gradient; harmless
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    model = extend(net)
    loss_fn = extend(nn.CrossEntropyLoss(reduction="sum"))
    params = dict(model.named_parameters())
    M = n_labels * replicates
    times = {"squared_score": 0.0, "neg_hessian": 0.0}
    out = {"squared_score": {n: [] for n in params}, "neg_hessian": {n: [] for n in hessian_params}}
    for i in range(x.shape[0]):
        acc1 = {n: torch.zeros(replicates, p.numel()) for n, p in params.items()}
        acc2 = {n: torch.zeros(replicates, len(idx)) for n, idx in hessian_params.items()}
        for m0 in range(0, M, batch):
            m1 = min(M, m0 + batch)
            xb = x[i : i + 1].expand(m1 - m0, -1)
            yb = labels[i, m0:m1]
            rep = torch.arange(m0, m1) // n_labels
            if "squared_score" in which:
                t0 = time.perf_counter()
                model.zero_grad()
                loss = loss_fn(model(xb), yb)
                with backpack(BatchGrad()):
                    loss.backward()
                for n, p in params.items():
                    acc1[n].index_add_(0, rep, p.grad_batch.reshape(m1 - m0, -1) ** 2)
                times["squared_score"] += time.perf_counter() - t0
            if "neg_hessian" in which:
                t0 = time.perf_counter()
                model.zero_grad()
                loss = loss_fn(model(xb), yb)
                with backpack(BatchDiagHessian()):
                    loss.backward()
                for n, idx in hessian_params.items():
                    # the loss is −ℓ, so its Hessian diagonal is −∂²ℓ: Î₂'s summand
                    acc2[n].index_add_(0, rep, params[n].diag_h_batch.reshape(m1 - m0, -1)[:, idx])
                times["neg_hessian"] += time.perf_counter() - t0
        for n in acc1:
            out["squared_score"][n].append(acc1[n] / n_labels)
        for n in acc2:
            out["neg_hessian"][n].append(acc2[n] / n_labels)
    return times, {e: {n: torch.stack(v) for n, v in d.items() if v} for e, d in out.items()}


def max_rel_diff(ours, theirs, est, names):
    """max |ours − theirs| / max |theirs| over the replicate means' input means."""
    worst = 0.0
    for n in names:
        a = ours.mean[est][n].reshape(theirs[n].shape[0], -1)
        b = theirs[n].double().mean(1)
        worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 inputs, extrapolated to --inputs")
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--labels", type=int, default=4096, help="labels per input")
    ap.add_argument("--replicates", type=int, default=64)
    ap.add_argument("--per-layer", type=int, default=1000, help="Î₂ entries per layer")
    ap.add_argument(
        "--backpack-inputs",
        type=int,
        default=None,
        help="time BackPACK on this many inputs and extrapolate",
    )
    ap.add_argument("--batch", type=int, default=256, help="BackPACK batch of (input, label) pairs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    target_inputs = args.inputs
    run_inputs = 8 if args.quick else args.inputs
    bp_inputs = min(args.backpack_inputs or run_inputs, run_inputs)
    n_labels = args.labels // args.replicates
    net = mnist_mlp(generator=torch.Generator().manual_seed(args.seed))
    _, _, x_test, _ = mnist_tensors(0, run_inputs)
    x = x_test[:run_inputs]
    hessian_params = sample_params(
        net, args.per_layer, torch.Generator().manual_seed(args.seed + 1)
    )
    n_hess = sum(len(v) for v in hessian_params.values())
    print(
        f"MNIST-4L ({sum(p.numel() for p in net.parameters()):,} parameters), float32, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )
    print(
        f"labels: {n_labels * args.replicates} per input = {args.replicates} replicates × "
        f"{n_labels}; Î₁ all entries, Î₂ {n_hess} entries ({args.per_layer} per layer, or "
        f"the whole layer when smaller)"
    )
    measured = run_inputs == target_inputs and bp_inputs == target_inputs
    print(
        f"timed on {run_inputs} inputs (fishsym) and {bp_inputs} inputs (BackPACK); "
        f"figures for {target_inputs} inputs are "
        + ("measured" if measured else "linear extrapolations where marked *")
    )

    ours_t, ours = fishsym_route(net, x, n_labels, args.replicates, args.seed, hessian_params)

    try:
        import backpack  # noqa: F401
    except ImportError:
        print(
            "\nBackPACK is not installed; install it (benchmark only) with\n"
            "    pip install --no-deps backpack-for-pytorch einops unfoldNd\n"
            "fishsym alone:"
        )
        for est, t in ours_t.items():
            print(f"  {est:14s} {t:8.2f} s for {run_inputs} inputs")
        return

    kernel = kernels.get("categorical", C=10)
    with torch.no_grad():
        h = net(x)
    labels = draw_labels(
        kernel, h, n_labels * args.replicates, torch.Generator().manual_seed(args.seed)
    )
    bp_t, bp = backpack_route(
        net,
        x[:bp_inputs],
        labels[:bp_inputs],
        n_labels,
        args.replicates,
        hessian_params,
        args.batch,
        which=("squared_score", "neg_hessian"),
    )

    def scaled(t, measured_on):
        value = t * target_inputs / measured_on
        return f"{value:9.1f} s{'*' if measured_on != target_inputs else ' '}"

    print()
    print(f"{'quantity':34s}{'fishsym':>13s}{'BackPACK':>14s}   {'speed-up':>8s}  agreement")
    rows = (
        ("squared_score", "Î₁, all 242,762 entries", "BatchGrad"),
        ("neg_hessian", f"Î₂, {n_hess} sampled entries", "BatchDiagHessian"),
    )
    for est, label, ext in rows:
        ours_total = ours_t[est] * target_inputs / run_inputs
        bp_total = bp_t[est] * target_inputs / bp_inputs
        sub = _FirstInputs(ours[est], bp_inputs)
        agree = max_rel_diff(sub, bp[est], est, list(bp[est]))
        print(
            f"{label:34s}{scaled(ours_t[est], run_inputs):>13s}{scaled(bp_t[est], bp_inputs):>14s}"
            f"   {bp_total / ours_total:7.1f}×  max rel diff {agree:.1e} ({ext})"
        )
    print(
        f"\nmeasured: fishsym {sum(ours_t.values()):.1f} s on {run_inputs} inputs; BackPACK "
        f"BatchGrad {bp_t['squared_score']:.1f} s + BatchDiagHessian {bp_t['neg_hessian']:.1f} s "
        f"on {bp_inputs} inputs (* = scaled linearly to {target_inputs} inputs)"
    )


class _FirstInputs:
    """View of a MonteCarloEstimate's means restricted to its first n inputs."""

    def __init__(self, mc, n):
        self.mean = {e: {k: v[:n] for k, v in d.items()} for e, d in mc.mean.items()}


if __name__ == "__main__":
    main()
