"""Fixed-width text tables for the reports that print (one layout for all of them)."""

from __future__ import annotations


def text_table(title: str, head: list[str], body: list[list[str]]) -> str:
    """``title``, then ``head`` and ``body`` (rows of strings) left-aligned in columns two
    spaces apart, with a rule under the header."""
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    lines = [
        title,
        "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


__all__ = ["text_table"]
