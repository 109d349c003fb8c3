"""Benchmark of fishsym on real architectures against named baselines, in one table.

    python benchmarks/bench_architectures.py [--repeats 3] [--threads 2] [--cases a,b,...]

float32, ``--threads`` torch threads, bundled MNIST digits, categorical head; each case
runs in two fresh Python processes: time (best of ``--repeats`` calls after a warm-up on
two inputs) in one that runs as a user's process does (glibc's own allocator, OpenMP's own
wait policy), peak memory (the rise of the peak resident set over the call) in one with
``OMP_WAIT_POLICY=PASSIVE`` and a fixed mmap threshold, as in ``bench_engine.py``, so that
the resident set follows live memory; that process's time, page-fault-bound (every block
above 64 KiB is mapped anew on each call), is printed under each row:

(a) ReLU CNN (Conv2d(1,8,5)-ReLU-MaxPool2d(2)-Conv2d(8,16,3,pad 1)-ReLU-AvgPool2d(2)-
    Flatten-Linear(576,10)), 64 digits: ``fishsym.fisher_variances`` (Fisher, V₁, V₂,
    bounds) vs BackPACK ``BatchDiagGGNExact`` — target ≤ 2×;
(b) the same CNN with Tanh and with Sigmoid, 16 digits: vs BackPACK ``BatchDiagHessian``
    (one label's diagonal Hessian; fishsym computes every label's worth) — target ≤ 0.1×;
(c) a ResNet-style ReLU network (conv stem + 2 basic blocks with BatchNorm in evaluation
    mode, global average pooling), 64 digits, and (d) a small transformer classifier (rows
    of the digit as 28 tokens, one encoder layer), 8 digits: vs the ``torch.func``
    per-input Jacobian (the floor for ``fisher``/``var1``) — ratio reported;
(e) MNIST-4L (784-256-128-64-10, sigmoid), 256 digits, through the graph path vs the
    structured MLP path — target ≤ 3×;
(f) the structured MLP path vs BackPACK ``DiagGGNExact`` (the summed exact Fisher alone):
    MNIST-4L, 256 digits, and a depth-8 × 128 sigmoid MLP — target ≤ 2×;
(g) the Fisher and V₁ alone (``var2=False, bounds=False``): the ReLU CNN of (a) vs
    ``BatchDiagGGNExact`` — target ≤ 0.5×; MNIST-4L and depth 8 vs ``DiagGGNExact`` —
    target ≤ 1.5×;
(f') the floor of exact V₂ on those nets: only the products that build the inter-layer
    Jacobians ``∂a_m/∂z_l = (∂a_m/∂a_{l+1}) W_{l+1}`` per input (one ``[n·u_m, u] @ [u, u_l]``
    GEMM and one scaling by ``σ'`` for every pair ``l ≤ m − 2`` of curved layers: 1 pair
    for MNIST-4L, 21 for depth 8; docs/theory.md §7), with nothing squared, contracted or
    reduced — what any exact diagonal of ``∂²h/∂a_l²`` must form, and ``DiagGGNExact``
    does not compute.

BackPACK is a benchmark-only extra (``pip install --no-deps backpack-for-pytorch einops
unfoldNd``); without it those rows say so.
"""

from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import _measure, parent_args, spawn_as_user  # noqa: E402

#: (label, fishsym case, baseline case, target ratio or None)
ROWS = [
    ("(a) ReLU CNN, 64 digits", "a_fishsym", "a_backpack", 2.0, "BatchDiagGGNExact"),
    ("(b) Tanh CNN, 16 digits", "b_fishsym_tanh", "b_backpack_tanh", 0.1, "BatchDiagHessian"),
    ("(b) Sigmoid CNN, 16 digits", "b_fishsym_sigmoid", "b_backpack_sigmoid", 0.1,
     "BatchDiagHessian"),
    ("(c) ResNet-style ReLU, 64 digits", "c_fishsym", "c_floor", None, "per-input Jacobian"),
    ("(d) transformer, 8 digits", "d_fishsym", "d_floor", None, "per-input Jacobian"),
    ("(e) MNIST-4L graph vs structured, 256", "e_graph", "e_structured", 3.0,
     "structured path"),
    ("(f) MNIST-4L structured, 256 digits", "f_structured", "f_backpack", 2.0, "DiagGGNExact"),
    ("(f) depth-8 x 128 structured, 256", "f8_structured", "f8_backpack", 2.0, "DiagGGNExact"),
    ("(g) ReLU CNN, Fisher+V1 only, 64", "a_lean", "a_backpack", 0.5, "BatchDiagGGNExact"),
    ("(g) MNIST-4L Fisher+V1 only, 256", "f_lean", "f_backpack", 1.5, "DiagGGNExact"),
    ("(g) depth-8 Fisher+V1 only, 256", "f8_lean", "f8_backpack", 1.5, "DiagGGNExact"),
    ("(f') MNIST-4L: V2's Jacobians alone", "f_jacfloor", "f_backpack", None, "DiagGGNExact"),
    ("(f') depth-8: V2's Jacobians alone", "f8_jacfloor", "f8_backpack", None, "DiagGGNExact"),
]


# --------------------------------------------------------------------------- networks
def cnn(act):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 8, 5), act(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), act(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(576, 10),
    )


def resnet():
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

        def forward(self, x):
            y = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
            return (x + y).relu()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.MaxPool2d(2))
            self.blocks = nn.Sequential(Block(8), Block(8))
            self.head = nn.Linear(8, 10)

        def forward(self, x):
            return self.head(self.blocks(self.stem(x)).mean((2, 3)))

    return Net().eval()


def transformer():
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(28, 16)
            self.pos = nn.Parameter(torch.zeros(28, 16))
            self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            return self.head(self.enc(self.embed(x.reshape(-1, 28, 28)) + self.pos).mean(1))

    return Net().eval()


# --------------------------------------------------------------------------- child side
def _child(spec: dict) -> dict:
    import torch

    from fishsym import nets
    from fishsym.data import mnist_tensors

    torch.set_num_threads(spec["threads"])
    warnings.filterwarnings("ignore")
    case = spec["case"]
    torch.manual_seed(0)
    x_all, y_all, _, _ = mnist_tensors(n_train=256, n_test=0)
    images = x_all.reshape(-1, 1, 28, 28)
    kind, _, rest = case.partition("_")
    if kind == "a":
        model, x = cnn(torch.nn.ReLU), images[:64]
    elif kind == "b":
        act = torch.nn.Tanh if case.endswith("tanh") else torch.nn.Sigmoid
        model, x = cnn(act), images[:16]
    elif kind == "c":
        model, x = resnet(), images[:64]
    elif kind == "d":
        model, x = transformer(), images[:8]
    elif kind in ("e", "f"):
        model, x = nets.mlp(nets.MNIST_WIDTHS, "sigmoid"), x_all
    elif kind == "f8":
        model, x = nets.mlp([784] + [128] * 8 + [10], "sigmoid"), x_all
    else:
        raise ValueError(case)
    y_all[: len(x)]

    if rest.startswith("fishsym") or rest in ("graph", "structured", "lean"):
        import fishsym

        path = "graph" if rest == "graph" else "auto"
        # (g): the Fisher and V₁ alone — no V₂, no bounds (what DiagGGNExact computes is
        # the Fisher alone)
        lean = {"var2": False, "bounds": False} if rest == "lean" else {}

        def run(xs=x):
            return fishsym.fisher_variances(
                model, xs, "categorical", dtype=torch.float32, progress=False, path=path, **lean
            )

        run(x[:2])
        out = _measure(run, spec["repeats"])
        out["routes"] = sorted(set(run(x[:2]).var2_routes.values()))
        return out

    if rest == "jacfloor":
        linears = [mod for mod in model if isinstance(mod, torch.nn.Linear)]
        weights = [lin.weight.detach() for lin in linears]
        with torch.no_grad():
            z, slopes = x, []
            for lin in linears[:-1]:  # the curved (sigmoid) layers
                s = torch.sigmoid(lin(z))
                slopes.append(s * (1 - s))
                z = s
        n = x.shape[0]

        def run():
            blocks = []
            for m in range(2, len(slopes)):
                jac = weights[m][None] * slopes[m - 1][:, None, :]  # ∂a_m/∂a_{m−1}
                for l in range(m - 2, -1, -1):
                    jac = (jac.reshape(-1, jac.shape[-1]) @ weights[l + 1]).reshape(
                        n, jac.shape[1], -1
                    ) * slopes[l][:, None, :]
                    blocks.append(jac.shape)
            return blocks

        run()
        out = _measure(run, spec["repeats"])
        out["routes"] = [f"{len(run())} Jacobian products"]
        return out

    if rest == "floor":
        from torch.func import functional_call, jacrev, vmap

        params = {k: v.detach() for k, v in model.named_parameters()}
        buffers = dict(model.named_buffers())

        def single(p, xi):
            return functional_call(model, (p, buffers), (xi.unsqueeze(0),))[0]

        jac = vmap(jacrev(single), in_dims=(None, 0))

        def run(xs=x):
            return jac(params, xs)

        run(x[:2])
        return _measure(run, spec["repeats"])

    if rest.startswith("backpack"):
        from backpack import backpack, extend
        from backpack.extensions import BatchDiagGGNExact, BatchDiagHessian, DiagGGNExact

        ext = {"a": BatchDiagGGNExact, "b": BatchDiagHessian}.get(kind, DiagGGNExact)
        attr = {
            BatchDiagGGNExact: "diag_ggn_exact_batch",
            BatchDiagHessian: "diag_h_batch",
            DiagGGNExact: "diag_ggn_exact",
        }[ext]
        model = extend(model)
        loss_fn = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
        with torch.no_grad():
            labels = model(x).argmax(1)  # one label per input (a model sample's cost)

        def run(xs=x, ys=labels):
            for p in model.parameters():
                p.grad = None
            loss = loss_fn(model(xs), ys)
            with backpack(ext()):
                loss.backward()
            return [getattr(p, attr) for p in model.parameters()]

        run(x[:2], labels[:2])
        return _measure(run, spec["repeats"])
    raise ValueError(case)


# --------------------------------------------------------------------------- parent side
def _spawn(spec: dict) -> dict | None:
    """Time as a user's process runs, memory under the fixed mmap threshold, that
    process's time kept beside (:func:`bench_engine.spawn_as_user`)."""
    return spawn_as_user(__file__, spec)


def main() -> None:
    args = parent_args(__doc__, "a,b,c,d,e,f,g", _child, "float32, categorical head")
    if args is None:
        return
    wanted = set(args.cases.split(","))
    head = (f"{'case':40s} {'fishsym':>10s} {'MiB':>7s} {'baseline':>10s} {'MiB':>7s} "
            f"{'ratio':>7s} {'target':>7s}  baseline / routes of V2")
    print(head)
    print("-" * len(head))
    verdicts = []
    for label, mine, theirs, target, name in ROWS:
        if label[1] not in wanted and label[1:3] not in wanted:
            continue
        base = {"threads": args.threads, "repeats": args.repeats}
        a = _spawn({**base, "case": mine})
        b = _spawn({**base, "case": theirs})

        def fmt(r):
            if r is None or "error" in r:
                return f"{'failed':>10s} {'':>7s}"
            return f"{r['time']:>8.3f} s {r['peak_mib']:>7.1f}"

        ok_a, ok_b = a and "error" not in a, b and "error" not in b
        ratio = a["time"] / b["time"] if ok_a and ok_b else float("nan")
        tgt = f"≤ {target:g}" if target is not None else "-"
        routes = ", ".join(a.get("routes", [])) if ok_a else a.get("error", "")
        note = name if ok_b else f"{name}: {b.get('error', '')}"
        print(f"{label:40s} {fmt(a)} {fmt(b)} {ratio:>7.3f} {tgt:>7s}  {note} / {routes}")
        if ok_a and ok_b:
            print(f"{'':40s} fixed mmap threshold, PASSIVE (memory's process): "
                  f"{a['time_fixed']:.3f} s vs {b['time_fixed']:.3f} s, "
                  f"{a['time_fixed'] / b['time_fixed']:.3f}")  # fmt: skip
        if target is not None and ok_a and ok_b:
            verdicts.append(f"{label}: {ratio:.3f} (target ≤ {target:g}: "
                            f"{'met' if ratio <= target else 'NOT met'})")
    print()
    for v in verdicts:
        print(v)
    print("load average after the table: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
