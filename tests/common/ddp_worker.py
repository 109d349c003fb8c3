"""One rank of the 2-process test (tests/common/test_distributed.py), started the way
``torchrun`` starts ranks (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``).

Each rank passes only its own inputs — half of the digits, through a
``DistributedSampler`` as a DDP user would — and saves what every entry point returned.
"""

import sys

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import fishsym
from fishsym.montecarlo import estimate
from fishsym.variance.empirical import empirical_fisher_exact

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from ddp_case import ESTIMATORS, case  # noqa: E402


class CappedHead(torch.nn.Module):
    """``model`` with its logits capped in place at ``cap``."""

    def __init__(self, model, cap):
        super().__init__()
        self.model, self.cap = model, cap

    def forward(self, x):
        return self.model(x).clamp_(max=self.cap)


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, x, y = case()
    sampler = DistributedSampler(TensorDataset(x, y), world, rank, shuffle=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=7, sampler=sampler)
    res = fishsym.fisher_variances(model, loader, "categorical", estimators=ESTIMATORS)
    half = x.shape[0] // world
    own = slice(rank * half, (rank + 1) * half)
    per = fishsym.fisher_variances(model, x[own], "categorical", per_sample=True)
    emp = empirical_fisher_exact(model, loader, "categorical")
    gen = torch.Generator().manual_seed(5)  # seeded alike on every rank
    diag = fishsym.diagonal_fisher(
        model, x[own], "categorical", generator=gen, exact=False, max_labels=64
    )
    # a head whose logits are capped in place for rank 1's inputs only: proved on rank 0's,
    # not on rank 1's — every rank must then sample it (issue 23 C10: ranks disagreed)
    capped = CappedHead(model, float(model(x[:half]).max()) + 1e-3)
    cap = fishsym.diagonal_fisher(
        capped,
        x[own] * (1 + 9 * rank),
        "categorical",
        generator=torch.Generator().manual_seed(7),
        exact=False,
        max_labels=64,
    )
    mc = estimate(model, x[own], "categorical", 1, 3, torch.Generator().manual_seed(6))
    local = fishsym.fisher_variances(model, x[own], "categorical", distributed=False)
    torch.save(
        {
            "n_inputs": res.n_inputs,
            "fisher": res.fisher,
            "var1": res.var1,
            "var2": res.var2,
            "var": res.var,
            "bounds_upper": res.bounds["squared_score"]["upper"],
            "var_x": res.var_fisher_over_inputs,
            "per_var1": per.var1,
            "emp_var": emp.emp_var,
            "diag": diag.value,
            "diag_n": diag.n_inputs,
            "capped": cap.value,
            "capped_estimators": cap.estimators,
            "mc_n": mc.n_inputs,
            "mc_mean": mc.mean["squared_score"],
            "local_n": local.n_inputs,
        },
        f"{out}/rank{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
