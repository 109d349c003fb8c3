"""``python -m fishsym``: --version, the report for a named model (files written, numbers
those of the library call), and one-line errors for bad arguments."""

import subprocess
import sys

import numpy as np
import torch

import fishsym
from fishsym.cli import main


def test_version():
    run = subprocess.run(
        [sys.executable, "-m", "fishsym", "--version"], capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.strip() == f"fishsym {fishsym.__version__}"


def _small_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 8), torch.nn.Tanh(), torch.nn.Linear(8, 10))


def _small_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 5, stride=4),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(72, 10),
    )


def test_report_for_a_named_model(tmp_path, capsys):
    out = tmp_path / "rep"
    spec = f"{__name__}:_small_mlp"
    assert main(["report", "--model", spec, "--n-inputs", "16", "--out", str(out)]) == 0
    for name in ("report.md", "figure.png", "summary.csv", "result.pt"):
        assert (out / name).stat().st_size > 0
    saved = fishsym.load(out / "result.pt")
    images, _ = fishsym.data.load_mnist_10k()
    x = torch.from_numpy(images[-16:].astype(np.float32) / 255).reshape(16, 784)
    ref = fishsym.fisher_variances(_small_mlp(), x, "categorical")
    for name, t in ref.var1.items():
        torch.testing.assert_close(saved.var1[name], t, rtol=1e-12, atol=0)
    assert "## Per layer" in (out / "report.md").read_text()


def test_report_reshapes_digits_for_a_cnn(tmp_path):
    spec = f"{__name__}:_small_cnn"
    assert main(["report", "--model", spec, "--n-inputs", "4", "--out", str(tmp_path)]) == 0
    assert fishsym.load(tmp_path / "result.pt").n_inputs == 4


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert main(["report", "--model", "no_colon"]) == 2
    assert "module:factory" in capsys.readouterr().err
    assert main(["report", "--model", "fishsym.nets:nope"]) == 2
    assert "no callable 'nope'" in capsys.readouterr().err
    spec = f"{__name__}:_small_mlp"
    assert main(["report", "--model", spec, "--data", str(tmp_path / "missing.pt")]) == 2
    assert "--data must be" in capsys.readouterr().err
    assert main(["report", "--model", spec, "--family", "poisson", "--out", str(tmp_path)]) == 2
    assert "poisson" in capsys.readouterr().err


def _needs_args(width):
    return torch.nn.Linear(784, width)


def _raises():
    raise RuntimeError("no GPU here")


def _no_params():
    return torch.nn.Sequential(torch.nn.Tanh())


def _malicious(path, marker):
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(path, "wb") as f:
        pickle.dump({"0.weight": Evil()}, f)


def test_every_bad_argument_is_one_line_and_status_2(tmp_path):
    """Issue 23 D14: these printed Python tracebacks. Each now prints one line naming the
    argument and exits with status 2 (through the real entry point, as a user runs it)."""
    here = f"{__name__}"
    spec = f"{here}:_small_mlp"
    marker = tmp_path / "ran"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04not a torch file at all")
    wrong = tmp_path / "wrong.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), wrong)
    evil = tmp_path / "evil.pt"
    _malicious(evil, marker)
    bad_npy = tmp_path / "bad.npy"
    bad_npy.write_bytes(b"\x93NUMPY garbage")
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = {
        "factory needs arguments": (["--model", f"{here}:_needs_args"], "--model"),
        "factory raises": (["--model", f"{here}:_raises"], "no GPU here"),
        "relative import": (["--model", ".models:make"], "relative import"),
        "no parameters": (["--model", f"{here}:_no_params"], "no parameters"),
        "missing weights": (["--model", spec, "--weights", str(tmp_path / "nope.pt")], "--weights"),
        "corrupt weights": (["--model", spec, "--weights", str(corrupt)], "--weights"),
        "wrong-keyed weights": (["--model", spec, "--weights", str(wrong)], "does not fit"),
        "malicious pickle": (["--model", spec, "--weights", str(evil)], "nothing in it was run"),
        "corrupt .npy": (["--model", spec, "--data", str(bad_npy)], "--data"),
        "object .npy": (["--model", spec, "--data", str(objects)], "--data"),
        "corrupt .pt data": (["--model", spec, "--data", str(corrupt)], "--data"),
    }
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for what, (args, words) in cases.items():
        argv = ["report", *args, "--n-inputs", "4", "--out", str(tmp_path / "out")]
        if what in ("factory needs arguments", "factory raises", "no parameters"):
            # factories of this test module: in-process (the module is not importable by
            # name from a fresh interpreter)
            import contextlib
            import io

            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                assert main(argv) == 2, what
            text = err.getvalue()
        else:
            run = subprocess.run(
                [sys.executable, "-m", "fishsym", *argv], capture_output=True, text=True, env=env
            )
            assert run.returncode == 2, (what, run.stderr[-800:])
            text = run.stderr
        assert "Traceback" not in text, (what, text)
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0], (what, text)
    assert not marker.exists()


def test_report_without_v2(tmp_path, capsys):
    """--no-var2: the report of the Fisher and V₁ alone, V₂ said to be skipped."""
    out = tmp_path / "lean"
    spec = f"{__name__}:_small_mlp"
    argv = ["report", "--model", spec, "--n-inputs", "8", "--no-var2", "--out", str(out)]
    assert main(argv) == 0
    text = (out / "report.md").read_text()
    assert "V₂ was skipped" in text and "skipped" in text
    res = fishsym.load(out / "result.pt")
    assert res.var2 is None and res.skipped == ("var2",)
