"""Reading a printed trace tree (the demo's and the viewer's) back into its structure."""

from __future__ import annotations


def node(line: str) -> tuple[int, str, str, str, str]:
    """(depth, name, kind, service, the rest) of a line of the printed tree."""
    body = line.lstrip("│├└─ ")
    name, _, columns = body.partition("  ")  # the name column is padded with two or more spaces
    kind, service, *rest = columns.split(maxsplit=2)
    return (len(line) - len(body)) // 3 - 1, name.strip(), kind, service, rest[0] if rest else ""
