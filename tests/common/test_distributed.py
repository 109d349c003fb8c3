"""Many processes: 2 gloo ranks, each passing half of the inputs, get the single-process
result on all of them (float64, ≤ 1e−12 relative); sampling routes agree across ranks and
draw independent streams."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fishsym
from fishsym.variance.empirical import empirical_fisher_exact

sys.path.insert(0, str(Path(__file__).parent))
from ddp_case import ESTIMATORS, N_INPUTS, case  # noqa: E402

#: sums over the inputs in a different order (per rank, then across ranks): round-off only
RTOL = 1e-12
WORLD = 2
#: seconds the two ranks may take (imports, a few small runs)
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    port = _free_port()
    worker = Path(__file__).with_name("ddp_worker.py")
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(worker), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=TIMEOUT)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the 2-process run did not finish in time")
    for rank, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"rank {rank} failed:\n{log}"
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=0)


def test_every_rank_gets_the_result_over_all_inputs(ranks):
    model, x, y = case()
    ref = fishsym.fisher_variances(model, x, "categorical", estimators=ESTIMATORS)
    for got in ranks:
        assert got["n_inputs"] == N_INPUTS
        _close(got["fisher"], ref.fisher)
        _close(got["var1"], ref.var1)
        _close(got["var2"], ref.var2)
        # Var_x I = mean(I²) − mean(I)² cancels: its error is absolute, of order
        # n·eps·mean(I²) (FisherVariances.var_fisher_over_inputs)
        for k, v in ref.var_fisher_over_inputs.items():
            scale = v + ref.fisher[k] ** 2
            tol = (N_INPUTS + 8) * torch.finfo(torch.float64).eps * scale
            assert bool(((got["var_x"][k] - v).abs() <= tol).all())
        _close(got["bounds_upper"], ref.bounds["squared_score"]["upper"])
        for e in ESTIMATORS:  # batch estimators: the batch is every rank's inputs
            _close(got["var"][e], ref.var[e])


def test_per_sample_rows_are_gathered_in_rank_order(ranks):
    model, x, _ = case()
    ref = fishsym.fisher_variances(model, x, "categorical", per_sample=True)
    for got in ranks:
        _close(got["per_var1"], ref.var1)


def test_empirical_fisher_over_all_ranks(ranks):
    model, x, y = case()
    ref = empirical_fisher_exact(model, x, "categorical", labels=y)
    for got in ranks:
        _close(got["emp_var"], ref.emp_var)


def test_sampling_routes_agree_across_ranks(ranks):
    a, b = ranks
    assert a["diag_n"] == b["diag_n"] == N_INPUTS
    for k in a["diag"]:  # the same reduced rounds on every rank
        assert torch.equal(a["diag"][k], b["diag"][k])
    # a head proved on one rank's inputs only is sampled on both, with equal results
    assert a["capped_estimators"] == b["capped_estimators"]
    assert "closed-form head" not in a["capped_estimators"].values()
    for k in a["capped"]:
        assert torch.equal(a["capped"][k], b["capped"][k])
    assert a["mc_n"] == b["mc_n"] == N_INPUTS
    for k in a["mc_mean"]:
        assert torch.equal(a["mc_mean"][k], b["mc_mean"][k])
        half = N_INPUTS // WORLD
        # independent streams per rank: the ranks' rows are not copies of each other
        assert not torch.equal(a["mc_mean"][k][:half], a["mc_mean"][k][half:])


def test_opting_out_keeps_a_rank_to_its_inputs(ranks):
    assert all(got["local_n"] == N_INPUTS // WORLD for got in ranks)


def test_rank_streams_are_reproducible_and_distinct():
    from fishsym.common.distributed import rank_generator

    a = rank_generator(torch.Generator().manual_seed(1))
    b = rank_generator(torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_distributed_true_without_a_group_is_refused():
    from fishsym.errors import InvalidArgumentError

    model, x, _ = case()
    with pytest.raises(InvalidArgumentError, match="init_process_group"):
        fishsym.fisher_variances(model, x, "categorical", distributed=True)
