"""``python -m fishsym``: the per-layer report for a model you name, from the shell.

    python -m fishsym --version
    python -m fishsym report --model fishsym.nets:mnist_mlp --data mnist --family categorical
    python -m fishsym report --model mypkg.models:make_net --weights net.pt \\
        --data inputs.pt --family categorical --n-inputs 512 --out fishsym_report

``--model module:factory`` is imported and called with no arguments; ``--weights`` loads a
``state_dict`` into it (``torch.load(weights_only=True)``: tensors only, no pickled code).
``--data`` is ``mnist`` (the bundled 10,000 digits: the last ``--n-inputs`` of them, scaled
to [0, 1], shaped ``[n, 784]`` or ``[n, 1, 28, 28]`` — whichever the model takes) or a
``.pt`` / ``.npy`` file holding an input tensor ``[n, ...]``. ``--no-var2`` skips ``V₂``
(no second derivatives: the Fisher, ``V₁`` and the first-order estimators only).

The report directory gets ``report.md`` (the per-layer summary, the estimator comparison
and the label budget), ``summary.csv``, ``result.pt`` (:func:`fishsym.load` reads it) and
``figure.png`` (:meth:`FisherVariances.plot`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fishsym.variance.estimators import DATA_LABEL_ESTIMATORS, ESTIMATOR_NAMES

#: the estimators the report compares: every model-label estimator (the CLI has no labels)
REPORT_ESTIMATORS = tuple(e for e in ESTIMATOR_NAMES if e not in DATA_LABEL_ESTIMATORS)


class CommandLineError(Exception):
    """A bad command-line argument (reported as a one-line message, exit status 2)."""


def load_factory(spec: str):
    """``module:factory`` → the model ``factory()`` returns."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CommandLineError(
            f"--model must be 'module:factory', e.g. fishsym.nets:mnist_mlp; got {spec!r}"
        )
    if module_name.startswith("."):
        raise CommandLineError(
            f"--model: {module_name!r} is a relative import; name the module from the top, "
            "e.g. mypkg.models:make_net"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - importing runs the user's module code
        raise CommandLineError(
            f"--model: cannot import {module_name!r} ({type(err).__name__}: {_line(err)})"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise CommandLineError(f"--model: {module_name!r} has no callable {attr!r}")
    try:
        model = factory()
    except Exception as err:  # noqa: BLE001 - the user's factory
        raise CommandLineError(
            f"--model: calling {spec}() with no arguments failed ({type(err).__name__}: "
            f"{_line(err)}); the factory must build the model without arguments"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise CommandLineError(
            f"--model: {spec}() returned {type(model).__name__}, not an nn.Module"
        )
    if next(iter(model.parameters()), None) is None:
        raise CommandLineError(f"--model: {spec}() has no parameters; there is no Fisher to report")
    return model


def _line(err: BaseException) -> str:
    """The first line of an error's message, at most 200 characters."""
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


def _torch_load(path, argname: str):
    """``torch.load(path, weights_only=True)`` with its failures as one-line
    :class:`CommandLineError` s: a pickle of anything but tensors is refused, never run."""
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        raise CommandLineError(
            f"{argname} {path}: refused — it holds objects other than tensors (a pickle that "
            "could run code); nothing in it was run"
        ) from None
    except Exception as err:  # noqa: BLE001 - corrupt or foreign files
        raise CommandLineError(
            f"{argname} {path}: not a torch file of tensors ({type(err).__name__}: "
            f"{_line(err)}); nothing in it was run"
        ) from None


def load_weights(model, path: str) -> None:
    """Load the ``state_dict`` in ``path`` into ``model`` (tensors only, no pickled code)."""
    if not Path(path).is_file():
        raise CommandLineError(f"--weights: no such file {path!r}")
    state = _torch_load(path, "--weights")
    if not isinstance(state, dict):
        raise CommandLineError(f"--weights {path}: holds {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - missing, unexpected or mis-shaped keys
        raise CommandLineError(f"--weights {path}: does not fit the model ({_line(err)})") from None


def load_inputs(data: str, n_inputs: int, model) -> torch.Tensor:
    """The inputs of ``--data`` (see the module docstring), ``n_inputs`` at most."""
    if data == "mnist":
        from fishsym.data import load_mnist_10k

        images, _ = load_mnist_10k()
        x = torch.from_numpy(images[-n_inputs:].astype(np.float32) / 255.0)
        dtype = next(iter(model.parameters())).dtype
        for shape in ((-1, 784), (-1, 1, 28, 28)):
            candidate = x.reshape(*shape).to(dtype)
            try:
                with torch.no_grad():
                    model.eval()(candidate[:2])
            except Exception:  # noqa: BLE001 - the other shape, or a model that fails
                continue
            return candidate
        raise CommandLineError("--data mnist: the model takes neither [n, 784] nor [n, 1, 28, 28]")
    path = Path(data)
    if not path.exists():
        raise CommandLineError(f"--data must be 'mnist' or an existing .pt/.npy file; got {data!r}")
    if path.suffix not in (".npy", ".pt"):
        raise CommandLineError(f"--data {data}: use a .pt or .npy file")
    if path.suffix == ".pt":
        x = _torch_load(path, "--data")
    else:
        try:
            x = torch.from_numpy(np.load(path, allow_pickle=False))
        except Exception as err:  # noqa: BLE001 - corrupt files, object arrays
            raise CommandLineError(
                f"--data {data}: cannot be read as a numeric array ({type(err).__name__}: "
                f"{_line(err)})"
            ) from None
    if not isinstance(x, torch.Tensor):
        raise CommandLineError(f"--data {data}: holds {type(x).__name__}, not a tensor")
    if x.dim() == 0:
        raise CommandLineError(f"--data {data}: holds a scalar; inputs are [n, ...]")
    return x[:n_inputs]


def report(args) -> int:
    import fishsym

    model = load_factory(args.model)
    if args.weights:
        load_weights(model, args.weights)
    model.eval()
    x = load_inputs(args.data, args.n_inputs, model)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    estimators = tuple(e for e in REPORT_ESTIMATORS if args.var2 or e != "neg_hessian")
    res = fishsym.fisher_variances(
        model, x, args.family, dtype=dtype, estimators=estimators, progress=None, var2=args.var2
    )
    seconds = time.perf_counter() - t0
    summary = res.summary(rel_error=args.rel_error)
    summary.to_csv(out / "summary.csv")
    res.save(out / "result.pt")
    res.plot(
        rel_error=args.rel_error, path=out / "figure.png", title=f"{args.model} on {args.data}"
    )
    n_params = sum(t.numel() for t in res.fisher.values())
    text = "\n".join(
        [
            f"# fishsym report: `{args.model}`",
            "",
            f"fishsym {fishsym.__version__}; family `{args.family}`; {res.n_inputs} inputs from "
            f"`{args.data}`; {n_params:,} parameters; {res.path} path, {args.dtype}, "
            f"{seconds:.1f} s.",
            "",
            "All numbers are exact (no sampling): the mean Fisher over the inputs, the "
            "one-draw variance of each estimator, certified bounds (docs/theory.md)."
            + ("" if args.var2 else " V₂ was skipped (--no-var2)."),
            "",
            "![per layer](figure.png)",
            "",
            "## Per layer",
            "",
            "```",
            str(summary),
            "```",
            "",
            "## V₂ routes",
            "",
            *[f"* {group}: {route}" for group, route in res.methods.items()],
            "",
            "## Estimators compared",
            "",
            "```",
            str(res.compare_estimators(rel_error=args.rel_error)),
            "```",
            "",
            "## Relative error with 1 label per input",
            "",
            "```",
            str(res.relative_error(1, estimators=[e for e in estimators if e != "merging_recipe"])),
            "```",
            "",
        ]
    )
    (out / "report.md").write_text(text)
    print(text)
    print(f"written: {out / 'report.md'}, figure.png, summary.csv, result.pt")
    return 0


def parser() -> argparse.ArgumentParser:
    import fishsym

    p = argparse.ArgumentParser(
        prog="python -m fishsym",
        description="Exact variances of diagonal Fisher estimators for a model you name.",
    )
    p.add_argument("--version", action="version", version=f"fishsym {fishsym.__version__}")
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("report", help="write the per-layer report with figures")
    r.add_argument("--model", required=True, help="module:factory returning an nn.Module")
    r.add_argument("--weights", help="a state_dict file (.pt) to load into the model")
    r.add_argument(
        "--data", default="mnist", help="'mnist' (bundled digits) or a .pt/.npy input tensor"
    )
    r.add_argument("--family", default="categorical", help="the output family (a registered name)")
    r.add_argument("--n-inputs", type=int, default=256, help="inputs used (default 256)")
    r.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    r.add_argument("--rel-error", type=float, default=0.1, help="target relative error (0.1)")
    r.add_argument("--out", default="fishsym_report", help="report directory")
    r.add_argument(
        "--no-var2",
        dest="var2",
        action="store_false",
        help="skip V₂ and the negative-Hessian estimator (no second derivatives: faster)",
    )
    return p


def main(argv=None) -> int:
    from fishsym.errors import FishsymError

    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help()
        return 2
    try:
        if args.n_inputs < 1:
            raise CommandLineError(f"--n-inputs must be ≥ 1; got {args.n_inputs}")
        return report(args)
    except (CommandLineError, FishsymError) as err:
        print(f"python -m fishsym: error: {err}", file=sys.stderr)
        return 2


__all__ = ["CommandLineError", "load_weights", "main", "parser", "report"]
