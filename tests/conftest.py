"""Shared pytest configuration.

``--family NAME`` restricts every test parametrised over the family registry to that
family (repeat the option for several), for focused runs:

    python -m pytest tests/symbolic --family poisson
"""


from types import SimpleNamespace

import pytest
import torch
from torch import nn

def snapshot(model: nn.Module) -> dict:
    """Everything an entry point could change: every parameter (under every alias) with
    its identity, type, flag, dtype, device, value and grad; buffers; modes; hooks."""
    snap = {"params": [], "buffers": [], "modules": []}
    for name, p in model.named_parameters(remove_duplicate=False):
        snap["params"].append(
            (
                name,
                id(p),
                type(p).__name__,
                p.requires_grad,
                p.dtype,
                p.device,
                p.detach().clone(),
                None if p.grad is None else p.grad.clone(),
            )
        )
    for name, b in model.named_buffers(remove_duplicate=False):
        snap["buffers"].append((name, id(b), b.dtype, b.detach().clone()))
    for name, m in model.named_modules(remove_duplicate=False):
        hooks = tuple(
            len(getattr(m, attr))
            for attr in (
                "_forward_hooks",
                "_forward_pre_hooks",
                "_backward_hooks",
                "_backward_pre_hooks",
                "_state_dict_hooks",
                "_load_state_dict_pre_hooks",
            )
        )
        snap["modules"].append((name, id(m), type(m).__name__, m.training, hooks))
    return snap


def _assert_unchanged(before: dict, model: nn.Module) -> None:
    after = snapshot(model)
    assert len(before["params"]) == len(after["params"])
    for b, a in zip(before["params"], after["params"], strict=True):
        assert b[:6] == a[:6], f"parameter {b[0]} changed: {b[:6]} -> {a[:6]}"
        assert torch.equal(b[6], a[6]), f"value of {b[0]} changed"
        assert (b[7] is None) == (a[7] is None), f"grad of {b[0]} changed"
    for b, a in zip(before["buffers"], after["buffers"], strict=True):
        assert b[:3] == a[:3] and torch.equal(b[3], a[3]), f"buffer {b[0]} changed"
    assert before["modules"] == after["modules"]



@pytest.fixture
def unchanged():
    """``unchanged.snapshot(model)`` and ``unchanged.check(before, model)``: that an entry
    point left the user's model exactly as it was (issue 9.1)."""
    return SimpleNamespace(snapshot=snapshot, check=_assert_unchanged)


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
