"""The paper_checks runner: discovery, FAIL on missing components and crashes, the report,
the exit status; and a tiny-tier run of real checks."""

import importlib
import sys
import types
from pathlib import Path

import pytest

import paper_checks
from paper_checks import _runner
from paper_checks.__main__ import main
from paper_checks._core import TIERS, NotAvailable, need

#: every module of paper_checks/ that is a claim (not a helper module): discovered from
#: the files, independently of the runner's own discovery
CLAIM_FILES = tuple(
    sorted(
        p.stem
        for p in (Path(paper_checks.__file__).parent).glob("*.py")
        if not p.stem.startswith("_") and "\nCLAIM = " in p.read_text()
    )
)


def test_every_claim_has_its_module():
    assert len(CLAIM_FILES) >= 13
    assert set(CLAIM_FILES) == set(paper_checks.CHECKS)
    orders = [importlib.import_module(f"paper_checks.{n}").ORDER for n in paper_checks.CHECKS]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    for name in CLAIM_FILES:
        mod = importlib.import_module(f"paper_checks.{name}")
        assert mod.NAME == name
        for attr in ("CLAIM", "WHERE", "METHOD"):
            assert isinstance(getattr(mod, attr), str) and getattr(mod, attr)
        assert set(mod.SETTINGS) == set(TIERS), name
        assert callable(mod.run)


def _fake(monkeypatch, name, run):
    mod = types.ModuleType(f"paper_checks.{name}")
    mod.NAME, mod.CLAIM, mod.WHERE, mod.METHOD = name, f"claim {name}", "nowhere", "by test"
    mod.SETTINGS = {t: {} for t in TIERS}
    mod.run = run
    monkeypatch.setitem(sys.modules, f"paper_checks.{name}", mod)
    monkeypatch.setattr(_runner, "CHECKS", _runner.CHECKS + (name,))


def test_passing_and_failing_checks_and_exit_status(monkeypatch, tmp_path, capsys):
    def good(ctx):
        ctx.use_settings({"tiny": {"n": 1}, "quick": {}, "full": {}})
        ctx.check("one plus one", "-", "arithmetic", 1 + 1 == 2, "2")
        ctx.number("answer", 42)

    def missing(ctx):
        ctx.check("something that works", "-", "-", True)
        with ctx.part("needs a module", "x", "import"):
            need("fishsym.no_such_module")

    def crashes(ctx):
        raise RuntimeError("boom")

    def silent(ctx):
        pass

    for name, fn in (
        ("fake_good", good),
        ("fake_missing", missing),
        ("fake_crash", crashes),
        ("fake_silent", silent),
    ):
        _fake(monkeypatch, name, fn)

    code = main(["--tier", "tiny", "--only", "fake_good", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "fake_good" in out and "PASS" in out and "answer = 42" in out
    report = (tmp_path / "report.md").read_text()
    assert "| [claim fake_good](#fake_good)" in report and "**PASS**" in report
    assert "n = 1" in report  # the settings are stated

    results = _runner.run_all(
        ["fake_missing,fake_crash", "fake_silent"], tier="tiny", out_dir=tmp_path, verbose=False
    )
    by_name = {r.name: r for r in results}
    miss = by_name["fake_missing"]
    assert not miss.passed
    assert any(
        not r.passed and r.detail.startswith("not available: fishsym.no_such_module")
        for r in miss.records
    )
    crash = by_name["fake_crash"]
    assert not crash.passed and "RuntimeError: boom" in crash.records[-1].detail
    assert not by_name["fake_silent"].passed
    assert "no result" in by_name["fake_silent"].records[0].detail

    code = main(
        ["--tier", "tiny", "--only", "fake_good,fake_crash", "--out", str(tmp_path), "--quiet"]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "FAIL: claim fake_crash" in out and "1/2 claims PASS" in out


def test_unknown_check_name():
    with pytest.raises(SystemExit, match="unknown check"):
        _runner.resolve_names(["no_such_claim"])


def test_need_reports_import_errors():
    with pytest.raises(NotAvailable, match="not available: fishsym.nope"):
        need("fishsym.nope")
    with pytest.raises(NotAvailable, match="no_such_attr"):
        need("fishsym.nets", "no_such_attr")
    assert need("fishsym.nets", "mlp").__name__ == "mlp"


def test_list(capsys):
    assert main(["--list"]) == 0
    assert capsys.readouterr().out.split() == list(paper_checks.CHECKS)


@pytest.mark.slow
def test_tiny_tier_of_real_checks(tmp_path):
    names = [
        "bounds_hold",
        "last_layer_zero_var2",
        "negative_neg_hessian",
        "toy_natural_gradient",
        "mnist_over_training",
        "empirical_fisher",
        "theorem_4_1",
        "cor_4_2_m_spectrum",
        "app_c_off_diagonal",
        "remark_4_5_second_to_last",
        "mnist_paper_protocol",
        "ewc_split_mnist",
    ]
    results = _runner.run_all(names, tier="tiny", out_dir=tmp_path, verbose=False)
    failures = [
        f"{r.name}: {rec.claim} {rec.detail}"
        for r in results
        for rec in r.records
        if not rec.passed
    ]
    assert not failures, failures
    report = tmp_path / "report.md"
    from paper_checks._report import write_report

    write_report(results, tmp_path, "tiny")
    text = report.read_text()
    for r in results:
        for fig in r.figures:
            assert (tmp_path / fig).stat().st_size > 1000
            assert f"]({fig})" in text
