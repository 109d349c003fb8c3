"""Results you can keep: :meth:`FisherVariances.save` and :func:`fishsym.load`.

The file is a ``torch.save`` of a plain dict — tensors keyed by path strings, and one
JSON string of metadata — read back with ``torch.load(weights_only=True)``, which accepts
tensors and primitive containers only: loading a result never runs arbitrary pickled code.

Format (``FORMAT``, version ``VERSION``)::

    {"format": "fishsym.FisherVariances", "version": 1, "meta": "<json>",
     "tensors": {"fisher/<param>": …, "var1/<param>": …, "var2/<param>": …,
                 "var_x/<param>": …, "means/<q>/<param>": …,
                 "bounds/<estimator>/<lower|upper>/<param>": …,
                 "mean_bounds/…", "paper_bounds/<fisher|squared_score|neg_hessian>/…",
                 "mean/<estimator>/<param>": …, "var/…", "bias/…"}}

``meta`` holds the family name and sizes, ``n_inputs``, ``path``, ``per_sample``, the
groups, the routes of ``V₂``, the bound methods, the estimator costs and the fishsym
version that wrote the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fishsym.errors import ArgumentTypeError, InvalidArgumentError

FORMAT = "fishsym.FisherVariances"
VERSION = 1


def _flatten(prefix: str, tree, out: dict) -> None:
    if tree is None:
        return
    if isinstance(tree, torch.Tensor):
        out[prefix] = tree.detach().cpu()
        return
    for key, value in tree.items():
        _flatten(f"{prefix}/{key}" if prefix else str(key), value, out)


def _unflatten(tensors: dict, prefix: str, depth: int):
    """The nested dict under ``prefix`` (``depth`` levels of keys), or ``None``."""
    out: dict = {}
    found = False
    for key, value in tensors.items():
        if not key.startswith(prefix + "/"):
            continue
        found = True
        parts = key[len(prefix) + 1 :].split("/", depth - 1)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out if found else None


def save(res, path) -> Path:
    """Write ``res`` to ``path`` (see the module docstring); returns the path."""
    import fishsym

    path = Path(path)
    tensors: dict = {}
    _flatten("fisher", res.fisher, tensors)
    _flatten("var1", res.var1, tensors)
    _flatten("var2", res.var2, tensors)
    _flatten("var_x", res.var_fisher_over_inputs, tensors)
    _flatten("means", res.means, tensors)
    _flatten("bounds", res.bounds, tensors)
    _flatten("mean_bounds", res.mean_bounds, tensors)
    _flatten("paper_bounds", res.paper_bounds, tensors)
    _flatten("mean", res.mean, tensors)
    _flatten("var", res.var, tensors)
    _flatten("bias", res.bias, tensors)
    meta = {
        "fishsym_version": fishsym.__version__,
        "family": res.kernel.name,
        "sizes": res.kernel.sizes,
        "n_inputs": res.n_inputs,
        "path": res.path,
        "per_sample": res.per_sample,
        "groups": res.groups,
        "var2_routes": res.var2_routes,
        "bounds_method": res.bounds_method,
        "paper_bounds_method": res.paper_bounds_method,
        "cost": res.cost,
        "params": list(res.fisher),
    }
    torch.save(
        {"format": FORMAT, "version": VERSION, "meta": json.dumps(meta), "tensors": tensors}, path
    )
    return path


def load(path, family=None):
    """Read a result written by :meth:`FisherVariances.save`.

    ``family``: the family (name, symbolic family or kernel) for a user-defined family that
    the registry cannot rebuild from its stored name and sizes.
    """
    from fishsym import kernels
    from fishsym.variance.result import FisherVariances

    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"path {str(path)!r} is not a file written by res.save")
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for foreign files
        raise InvalidArgumentError(
            f"{str(path)!r} is not a fishsym result file (torch.load(weights_only=True): {err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InvalidArgumentError(f"{str(path)!r} is not a fishsym result file ({FORMAT})")
    if payload.get("version") != VERSION:
        raise InvalidArgumentError(
            f"{str(path)!r} has format version {payload.get('version')!r}; this fishsym reads "
            f"version {VERSION}"
        )
    meta = json.loads(payload["meta"])
    tensors = payload["tensors"]
    if family is None:
        try:
            kernel = kernels.get(meta["family"], **meta["sizes"])
        except Exception as err:  # noqa: BLE001 - an unregistered (user) family
            raise InvalidArgumentError(
                f"family {meta['family']!r} of {str(path)!r} is not registered; pass "
                "family= (the ExponentialFamily or kernel it was computed with)"
            ) from err
    elif hasattr(family, "log_prob"):
        kernel = family
    elif isinstance(family, str) or hasattr(family, "natural_params"):
        kernel = kernels.get(family, **meta["sizes"])
    else:
        raise ArgumentTypeError(
            f"family must be a name, an ExponentialFamily or a kernel; got {family!r}"
        )
    order = meta["params"]

    def params(prefix):
        flat = _unflatten(tensors, prefix, 1)
        return None if flat is None else {n: flat[n] for n in order if n in flat}

    def nested(prefix, depth):
        tree = _unflatten(tensors, prefix, depth)
        if tree is None:
            return None

        def reorder(node, level):
            if level == 1:
                return {n: node[n] for n in order if n in node}
            return {k: reorder(v, level - 1) for k, v in node.items()}

        return reorder(tree, depth)

    res = FisherVariances(
        fisher=params("fisher"),
        var1=params("var1"),
        var2=params("var2"),
        bounds=nested("bounds", 3),
        bounds_method=meta["bounds_method"],
        var_fisher_over_inputs=params("var_x"),
        per_sample=meta["per_sample"],
        kernel=kernel,
        n_inputs=meta["n_inputs"],
        path=meta["path"],
        groups=meta["groups"],
        means=nested("means", 2),
        mean_bounds=nested("mean_bounds", 3),
    )
    res.var2_routes = meta["var2_routes"]
    res.paper_bounds = nested("paper_bounds", 3)
    res.paper_bounds_method = meta["paper_bounds_method"]
    res.mean = nested("mean", 2) or {}
    res.var = nested("var", 2) or {}
    res.bias = nested("bias", 2) or {}
    res.cost = meta["cost"]
    return res


__all__ = ["FORMAT", "VERSION", "load", "save"]
