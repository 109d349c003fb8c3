"""The EWC claim of issue 25 at its tiny tier (the runner's size): every Fisher audited, the
deterministic shortcuts' formulas held to per-input autograd, one mini-batch draw held to
its exact mean; and the split-MNIST tasks themselves."""

from pathlib import Path

from paper_checks import _runner


def test_ewc_claim_tiny_tier(tmp_path: Path):
    result = _runner.run_check("ewc_split_mnist", "tiny", tmp_path, verbose=False)
    failures = [f"{r.claim}: {r.detail}" for r in result.records if not r.passed]
    assert not failures, failures
    assert len(result.records) >= 3
    assert all((tmp_path / fig).stat().st_size > 1000 for fig in result.figures)


def test_split_mnist_tasks_are_disjoint_pairs_of_digits():
    from fishsym.experiments import ewc

    tasks = ewc.split_mnist(2000, 500)
    assert [t.digits for t in tasks] == list(ewc.TASKS)
    for t in tasks:
        assert set(t.y.tolist()) == {0, 1} and set(t.y_test.tolist()) == {0, 1}
        assert len(t.x) == len(t.y) and t.x.shape[1] == 784
    rows = ewc.minibatch_rows(300, __import__("torch").Generator().manual_seed(0))
    assert len(rows) == 256 and len(set(rows.tolist())) == 256
