"""Every "docs/theory.md §N" reference in the code, notebooks and reports points to a
section that exists in docs/theory.md, the repository's own statement of its mathematics
(users never see the steering documents it was derived from)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("fishsym", "paper_checks", "notebooks", "tests", "benchmarks")


def _sections() -> set[int]:
    text = (ROOT / "docs" / "theory.md").read_text()
    return {int(m) for m in re.findall(r"^## (\d+)\.", text, flags=re.M)}


def test_every_theory_reference_names_an_existing_section():
    sections = _sections()
    assert sections == set(range(1, 14)), sections
    cited, bad = 0, []
    for top in SOURCES:
        for path in (ROOT / top).rglob("*"):
            if path.suffix not in (".py", ".ipynb", ".md") or not path.is_file():
                continue
            text = path.read_text(errors="replace")
            stale = "THEORY" + " §"  # split so that this file does not match itself
            assert stale not in text, f"{path}: a reference to a document not in the repo"
            for ref in re.findall(r"docs/theory\.md §(\d+)(?:\s*[–-]\s*§?(\d+))?", text):
                cited += 1
                for n in filter(None, ref):
                    if int(n) not in sections:
                        bad.append((str(path.relative_to(ROOT)), n))
    assert cited > 100 and not bad, bad
