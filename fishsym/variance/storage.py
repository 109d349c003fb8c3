"""Results you can keep: the format of :meth:`FisherVariances.save` (this module writes
it and checks it) and of :func:`fishsym.load` (:func:`fishsym.variance.result.load`).

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

from fishsym.errors import InvalidArgumentError

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
        "shapes": {n: list(t.shape[1 if res.per_sample else 0 :]) for n, t in res.fisher.items()},
        "family_signature": family_signature(res.kernel),
        "skipped": list(res.skipped),
    }
    torch.save(
        {"format": FORMAT, "version": VERSION, "meta": json.dumps(meta), "tensors": tensors}, path
    )
    return path


#: the largest family size a file may ask the registry to build (a crafted file must not
#: make ``load`` build a huge family); a 50,257-token vocabulary fits
MAX_FAMILY_SIZE = 10**6
#: prefixes whose tensors carry a leading input axis when ``per_sample`` is true
PER_SAMPLE_PREFIXES = ("fisher", "var1", "var2", "bounds", "paper_bounds")
#: prefixes a file may hold, with the depth of their keys below the prefix
PREFIXES = {
    "fisher": 1, "var1": 1, "var2": 1, "var_x": 1, "means": 2, "bounds": 3,
    "mean_bounds": 3, "paper_bounds": 3, "mean": 2, "var": 2, "bias": 2,
}  # fmt: skip
#: metadata keys and the JSON types they must have
META_TYPES = {
    "family": str, "sizes": dict, "n_inputs": int, "path": str, "per_sample": bool,
    "groups": dict, "var2_routes": dict, "bounds_method": dict, "paper_bounds_method": dict,
    "cost": dict, "params": list,
}  # fmt: skip


def family_signature(kernel) -> str | None:
    """What defines the family of ``kernel`` (sufficient statistic, log-partition, base
    measure), as text: a file names its family by name and sizes, and ``load`` checks that
    the family it rebuilds is the one the file was computed with."""
    fam = getattr(kernel, "family", None)
    if fam is None:
        return None
    return " | ".join(
        str(getattr(fam, a, "")) for a in ("suff_stat", "log_partition", "log_base_measure")
    )


def _bad(path, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{str(path)!r} is not a valid fishsym result file: {what}")


def _check_meta(path, meta) -> None:
    if not isinstance(meta, dict):
        raise _bad(path, "its metadata is not a JSON object")
    for key, kind in META_TYPES.items():
        if key not in meta:
            raise _bad(path, f"its metadata has no {key!r}")
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _bad(path, f"metadata {key!r} must be a {kind.__name__}; got {value!r:.80}")
    if meta["n_inputs"] < 1:
        raise _bad(path, f"n_inputs must be positive; got {meta['n_inputs']}")
    for name, size in meta["sizes"].items():
        if name == "factors":
            continue  # the factor axes of a product family, checked where it is rebuilt
        if (
            not isinstance(name, str)
            or isinstance(size, bool)
            or not isinstance(size, int)
            or not 1 <= size <= MAX_FAMILY_SIZE
        ):
            raise _bad(
                path,
                f"family size {name!r}={size!r:.40} is not an integer in [1, {MAX_FAMILY_SIZE:,}]",
            )
    if not meta["params"] or not all(isinstance(n, str) for n in meta["params"]):
        raise _bad(path, "metadata 'params' must be a non-empty list of parameter names")


def _check_tensors(path, tensors, meta) -> None:
    """Every tensor: a known key, a floating non-empty finite tensor, shaped like its
    parameter (with the input axis where the quantity is per input)."""
    if not isinstance(tensors, dict) or not tensors:
        raise _bad(path, "it holds no tensors")
    params = meta["params"]
    shapes = meta.get("shapes")
    for n in params:
        if f"fisher/{n}" not in tensors:
            raise _bad(path, f"the Fisher of parameter {n!r} is missing")
    if shapes is None:  # files written before the shapes were stored
        shapes = {
            n: list(tensors[f"fisher/{n}"].shape[1 if meta["per_sample"] else 0 :])
            for n in params
            if isinstance(tensors[f"fisher/{n}"], torch.Tensor)
        }
    if not isinstance(shapes, dict) or set(shapes) != set(params):
        raise _bad(path, "metadata 'shapes' does not name the same parameters as 'params'")
    for key, t in tensors.items():
        prefix = key.split("/", 1)[0] if isinstance(key, str) else None
        if prefix not in PREFIXES or key.count("/") != PREFIXES[prefix]:
            raise _bad(path, f"unknown entry {key!r:.80}")
        name = key.rsplit("/", 1)[1]
        if name not in params:
            # a parameter name may itself hold no '/', so the last part names it
            raise _bad(path, f"entry {key!r} names a parameter not in 'params'")
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise _bad(path, f"entry {key!r} is not a floating-point tensor")
        if t.numel() == 0:
            raise _bad(path, f"entry {key!r} is empty")
        if not bool(torch.isfinite(t).all()):
            raise _bad(path, f"entry {key!r} contains NaN or inf")
        want = list(shapes[name])
        if meta["per_sample"] and prefix in PER_SAMPLE_PREFIXES:
            want = [meta["n_inputs"], *want]
        if list(t.shape) != want:
            raise _bad(path, f"entry {key!r} has shape {list(t.shape)}; its parameter's is {want}")


__all__ = ["FORMAT", "MAX_FAMILY_SIZE", "VERSION", "family_signature", "save"]
