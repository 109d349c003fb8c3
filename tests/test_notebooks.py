"""Execute every notebook in notebooks/ with small settings so none can rot.

Each notebook reads ``FISHSYM_SMALL=1`` from the environment and shrinks its sizes. A
notebook that raises fails the test with the cell's traceback. The kernel keeps Jupyter's
own (inline) backend, and every cell that shows a figure must come back with an image:
a notebook, or a library call, that forces a non-interactive backend shows none.
"""

from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: seconds one cell may take at the small settings before the test fails
CELL_TIMEOUT = 600


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("FISHSYM_SMALL", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "plt.show()" in cell.source:
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"{path.name} cell {i} shows a figure but no image came back"


def test_no_forced_backend():
    """Neither the notebooks nor the library choose a matplotlib backend (the report
    runner, a batch job, is the one place that does)."""
    root = NOTEBOOK_DIR.parent
    sources = [
        *NOTEBOOKS,
        *(root / "fishsym").rglob("*.py"),
        *(root / "paper_checks").rglob("*.py"),
    ]
    offenders = [
        p.name
        for p in sources
        if p.name != "__main__.py"
        and any(u in p.read_text() for u in ("matplotlib.use(", "mpl.use("))
    ]
    assert not offenders, f"these force a matplotlib backend: {offenders}"


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
