"""1 vs 2 processes: ``fisher_variances`` on the 10,000 bundled digits (MNIST-4L).

Each configuration runs in fresh processes started the way ``torchrun`` starts ranks
(gloo, CPU); each rank reads its half of the digits through a ``DistributedSampler`` and
a ``DataLoader``, and every rank gets the result over all 10,000. Printed side by side:
one process with all threads, one process with one thread, and 2 processes with one
thread each (the same cores as the first), wall time of the call (slowest rank) and the
largest relative difference from the one-process result.

    python benchmarks/bench_distributed.py [--n 10000] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np, torch, torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
import fishsym
from fishsym.data import load_mnist_10k
from fishsym.nets import mnist_mlp

out, n, dtype, world = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
if world > 1:
    dist.init_process_group("gloo")
rank = dist.get_rank() if world > 1 else 0
torch.manual_seed(0)
model = mnist_mlp()
images, _ = load_mnist_10k()
x = torch.from_numpy(images[:n].reshape(n, 784).astype(np.float32) / 255)
data = TensorDataset(x)
sampler = DistributedSampler(data, world, rank, shuffle=False) if world > 1 else None
loader = DataLoader(data, batch_size=512, sampler=sampler)
fishsym.fisher_variances(model, x[:64], "categorical", dtype=dtype)  # warm-up
if world > 1:
    dist.barrier()
t0 = time.perf_counter()
res = fishsym.fisher_variances(model, loader, "categorical", dtype=dtype)
seconds = time.perf_counter() - t0
torch.save({"var1": res.var1, "fisher": res.fisher, "n": res.n_inputs}, f"{out}/r{rank}.pt")
json.dump({"seconds": seconds}, open(f"{out}/r{rank}.json", "w"))
if world > 1:
    dist.destroy_process_group()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(world: int, threads: int, n: int, dtype: str, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    script = out / "worker.py"
    script.write_text(WORKER)
    port = _port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
        }
        procs.append(
            subprocess.Popen([sys.executable, str(script), str(out), str(n), dtype, str(world)],
                             env=env)
        )
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a rank failed (world {world})")
    import torch

    seconds = max(json.loads((out / f"r{r}.json").read_text())["seconds"] for r in range(world))
    return {"seconds": seconds, "result": torch.load(out / "r0.pt", weights_only=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args()
    import torch

    cores = os.cpu_count() or 1
    configs = [(1, cores), (1, 1), (2, max(1, cores // 2))]
    with tempfile.TemporaryDirectory() as tmp:
        rows = {c: run(*c, args.n, args.dtype, Path(tmp) / f"w{c[0]}t{c[1]}") for c in configs}
    base = rows[configs[0]]
    print(f"fisher_variances, MNIST-4L, {args.n} digits, {args.dtype}, {cores} cores")
    print(f"{'processes × threads':<22}{'seconds':>10}{'vs 1×' + str(cores):>10}"
          f"{'max |Δ|/max':>16}")
    for (world, threads), row in rows.items():
        # largest difference relative to the largest entry of each tensor (float32 results
        # hold exact zeros and subnormals, so entrywise ratios say nothing there)
        diff = max(
            float((row["result"]["var1"][k] - v).abs().max() / v.abs().max())
            for k, v in base["result"]["var1"].items()
        )
        assert row["result"]["n"] == args.n
        print(f"{f'{world} × {threads}':<22}{row['seconds']:>10.2f}"
              f"{row['seconds'] / base['seconds']:>10.2f}{diff:>16.2e}")
    del torch


if __name__ == "__main__":
    main()
