"""Shared pytest configuration.

``--family NAME`` restricts every test parametrised over the family registry to that
family (repeat the option for several), for focused runs:

    python -m pytest tests/symbolic --family poisson
"""


def pytest_addoption(parser):
    parser.addoption(
        "--family",
        action="append",
        default=[],
        help="run registry-parametrised tests only for this family name (repeatable)",
    )


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--family")
    if not wanted:
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        fam = callspec.params.get("family_name") if callspec else None
        (drop if fam is not None and fam not in wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
