"""The documentation site builds with ``mkdocs build --strict``: every page, the API
reference rendered from the docstrings, and the notebooks executed at build time (small
settings) with their figures."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: seconds the build may take (it executes every notebook at the small settings)
TIMEOUT = 1200


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    if os.environ.get("CI") is None:
        pytest.importorskip("mkdocs")
        pytest.importorskip("mkdocs_jupyter")
        pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    env = {**os.environ, "FISHSYM_SMALL": "1", "NO_MKDOCS_2_WARNING": "1"}
    env.pop("MPLBACKEND", None)
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    log = run.stdout + run.stderr
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert run.returncode == 0, "\n".join(warnings) or log[-4000:]
    assert (site / "theory" / "index.html").exists()
    api = (site / "api" / "variance" / "index.html").read_text()
    assert "fisher_variances" in api and "per_sample" in api
    # the executed notebooks carry their figures
    cnn = (site / "notebooks" / "08_your_own_cnn" / "index.html").read_text()
    assert len(re.findall(r"data:image/png;base64", cnn)) >= 3
