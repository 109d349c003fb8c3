"""Progress bars that appear only where a person is watching.

``progress=None`` (the default of every entry point) shows a bar only on a terminal
(``stderr`` is a TTY) or in a Jupyter kernel, so CI logs and files get none;
``progress=True`` forces one, ``progress=False`` suppresses it.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def interactive() -> bool:
    """Whether a person is likely watching: ``stderr`` is a terminal, or this is a
    Jupyter (IPython kernel) session."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = getattr(shell, "get_ipython", lambda: None)()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress_bar(total: int, desc: str, progress: bool | None, delay: float = 0.0, **kw):
    """A ``tqdm`` bar over ``total`` steps: shown when ``progress`` is True, or when it is
    None and :func:`interactive` (after ``delay`` seconds)."""
    if progress is not None and not isinstance(progress, bool):
        from fishsym.errors import ArgumentTypeError

        raise ArgumentTypeError(f"progress must be True, False or None; got {progress!r}")
    show = progress if progress is not None else interactive()
    return tqdm(
        total=total, desc=desc, disable=not show, delay=0 if progress else delay, leave=False, **kw
    )


__all__ = ["interactive", "progress_bar"]
