"""Benchmark of ``fishsym.diagonal_fisher`` on a 1,000-class head, in one table.

    python benchmarks/bench_diagonal.py [--threads 2] [--inputs 128] [--rel-error 0.1]

Net: 784-64-1000 (tanh), float32, the first ``--inputs`` bundled MNIST digits as inputs
(a 1,000-way categorical head on them: the regime where the exact route costs ``d = 1000``
reverse passes per input). Rows, with the achieved accuracy measured against the exact
mean Fisher (median relative error over each layer's entries):

(a) the exact route, ``fishsym.fisher_variances`` (Fisher, V₁, V₂, no bounds);
(b) ``fishsym.diagonal_fisher(rel_error=…)`` — the head in closed form (exact: it is the
    final Linear layer), the other layer sampled until the target is reached; (b') the
    same with ``exact_head=False`` (every layer sampled);
(c) BackPACK ``DiagGGNMC``: with as many Monte Carlo labels per input as (b) used draws,
    and at (b)'s accuracy on the layers (b) samples (its error falls as 1/√samples:
    measured at up to 16× the samples, extrapolated beyond — the output says which; no
    number of samples matches the exact head).

Ratios are times against (a) and (c). BackPACK is a benchmark-only extra.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=128)
    parser.add_argument("--rel-error", type=float, default=0.1)
    args = parser.parse_args()
    import torch
    from torch import nn

    import fishsym
    from fishsym.data import mnist_tensors

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, _, _, _ = mnist_tensors(n_train=args.inputs, n_test=0)
    model = nn.Sequential(nn.Linear(784, 64), nn.Tanh(), nn.Linear(64, 1000))
    names = [n for n, _ in model.named_parameters()]

    def median_error(value, truth):
        out = {}
        for group in ("0", "2"):
            v = torch.cat([value[n].double().reshape(-1) for n in names if n.startswith(group)])
            t = torch.cat([truth[n].double().reshape(-1) for n in names if n.startswith(group)])
            keep = t > 0
            out[group] = float(((v[keep] - t[keep]).abs() / t[keep]).median())
        return out

    t0 = time.perf_counter()
    exact = fishsym.fisher_variances(model, x, "categorical", dtype=torch.float32, bounds=False,
                                     progress=False)
    t_exact = time.perf_counter() - t0
    truth = {n: t.double() for n, t in exact.fisher.items()}

    t0 = time.perf_counter()
    est = fishsym.diagonal_fisher(model, x, "categorical", rel_error=args.rel_error,
                                  exact=False, dtype=torch.float32,
                                  generator=torch.Generator().manual_seed(1))
    t_diag = time.perf_counter() - t0
    draws = max(est.rounds.values())
    sampled = [g for g in est.groups if est.status[g] != "exact"]

    t0 = time.perf_counter()
    est_all = fishsym.diagonal_fisher(model, x, "categorical", rel_error=args.rel_error,
                                      exact=False, exact_head=False, dtype=torch.float32,
                                      generator=torch.Generator().manual_seed(1))
    t_all = time.perf_counter() - t0

    row_c = None
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNMC

        bp = extend(model)
        loss_fn = extend(nn.CrossEntropyLoss(reduction="sum"))

        def ggn_mc(samples):
            for p in bp.parameters():
                p.grad = None
            t0 = time.perf_counter()
            loss = loss_fn(bp(x), torch.zeros(len(x), dtype=torch.int64))
            with backpack(DiagGGNMC(mc_samples=samples)):
                loss.backward()
            elapsed = time.perf_counter() - t0
            value = {n: p.diag_ggn_mc.detach() / len(x) for n, p in bp.named_parameters()}
            return elapsed, median_error(value, truth)

        matched = ggn_mc(draws)
        # matched accuracy: its error falls as 1/√samples, so it needs (its error / ours)²
        # times the samples; measured at up to 16× and extrapolated beyond, and said so
        ours = median_error(est.value, truth)
        factor = max(matched[1][g] / max(ours[g], 1e-12) for g in sampled) ** 2
        probe = min(16, max(1, round(factor)))
        bigger = ggn_mc(draws * probe)
        row_c = (matched, bigger, probe, factor)
    except ImportError:
        pass

    print(
        f"784-64-1000 tanh, {args.inputs} digits, float32, {args.threads} threads, torch "
        f"{torch.__version__}, load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print()
    print(f"{'case':52s} {'time':>9s} {'median rel. error (layer 0, 2)':>32s}")
    print("-" * 96)
    print(f"{'(a) exact route (fisher_variances)':52s} {t_exact:>7.2f} s {'0 (exact)':>32s}")
    err = median_error(est.value, truth)
    label = f"(b) diagonal_fisher(rel_error={args.rel_error}), {draws} draws/input"
    print(f"{label:52s} {t_diag:>7.2f} s {err['0']:>15.3%} {err['2']:>15.3%}")
    print(f"    estimators {est.estimators}, status {est.status}")
    err_all = median_error(est_all.value, truth)
    label = f"(b') the same, exact_head=False, {max(est_all.rounds.values())} draws/input"
    print(f"{label:52s} {t_all:>7.2f} s {err_all['0']:>15.3%} {err_all['2']:>15.3%}")
    print(f"    estimators {est_all.estimators}, status {est_all.status}")
    if row_c is not None:
        (t1, e1), (t2, e2), probe, factor = row_c
        label = f"(c) BackPACK DiagGGNMC, mc_samples={draws} (same labels)"
        print(f"{label:52s} {t1:>7.2f} s {e1['0']:>15.3%} {e1['2']:>15.3%}")
        label = f"(c) BackPACK DiagGGNMC, mc_samples={draws * probe}"
        print(f"{label:52s} {t2:>7.2f} s {e2['0']:>15.3%} {e2['2']:>15.3%}")
        t_match = t2 * factor / probe
        print(f"(c) at (b)'s accuracy in layer(s) {', '.join(sampled)}: ×{factor:,.0f} the "
              f"samples of the first row, about {t_match:,.1f} s (extrapolated linearly in "
              "samples from the second row; (b)'s head is exact, which no sample count matches)")
    else:
        print("(c) BackPACK not installed")
    print()
    line = f"(b)/(a) time = {t_diag / t_exact:.3f}"
    if row_c is not None:
        line += (f", (b)/(c) time at the same labels = {t_diag / row_c[0][0]:.1f}, at matched "
                 f"accuracy = {t_diag / t_match:.4f}")
    print(line)


if __name__ == "__main__":
    main()
