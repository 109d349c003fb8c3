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
