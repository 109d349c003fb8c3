"""The pipeline's stage order, enforced on the import graph (every ``import`` statement,
module-level or inside a function):

    symbolic → kernels → common → engine → variance → sampling → reference
             → montecarlo → auditing → experiments → nets → paper_checks → cli (python -m fishsym)

A stage imports only from earlier stages (and ``errors``/``data``, which import nothing of
fishsym's). ``fishsym/__init__.py`` (lazy re-exports) is the only exception.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: rank of each stage; a module may import only stages of strictly lower rank
RANK = {
    "errors": 0,
    "data": 0,
    "symbolic": 1,
    "kernels": 2,
    "common": 3,
    "engine": 4,
    "variance": 5,
    "sampling": 5.5,  # diagonal_fisher: the sampled estimate as a product (after variance)
    "reference": 6,
    "montecarlo": 7,
    "auditing": 7.5,  # holds a Fisher against the exact one or a diagonal_fisher estimate
    "experiments": 8,
    "nets": 9,
    "paper_checks": 10,
    "cli": 11,
    "__main__": 12,
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "paper_checks":
        return "paper_checks"
    if parts[0] != "fishsym" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "fishsym":  # from fishsym import kernels, ...
                yield from (f"fishsym.{a.name}" for a in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def _edges():
    for top in ("fishsym", "paper_checks"):
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if rel == Path("fishsym/__init__.py"):
                continue
            src = _stage(".".join(rel.with_suffix("").parts))
            for target in _imports(path):
                dst = _stage(target)
                if src and dst and dst != src:
                    yield str(rel), src, dst


def test_every_stage_imports_only_earlier_stages():
    seen = set()
    bad = []
    for where, src, dst in _edges():
        assert src in RANK and dst in RANK, (where, src, dst)
        seen.add((src, dst))
        if RANK[dst] >= RANK[src]:
            bad.append((where, src, dst))
    assert not bad, bad
    assert ("engine", "common") in seen and ("variance", "engine") in seen  # the test sees edges


def test_the_symbolic_stage_never_imports_torch():
    for path in (ROOT / "fishsym" / "symbolic").rglob("*.py"):
        assert not any(t == "torch" or t.startswith("torch.") for t in _imports(path)), path
