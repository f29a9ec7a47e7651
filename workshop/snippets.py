"""SNIPPETS.md quotes regions of files the tests execute; this reads both sides.

A region in a source file sits between two comment lines, ``#`` in Python and nginx, ``//`` in
JavaScript::

    # [snippet: fastapi-endpoint]
    ...
    # [end snippet]

Regions may nest; marker lines never belong to a region's text, which is dedented. SNIPPETS.md
quotes a region as an HTML comment naming it and its file, then a fenced block::

    <!-- snippet: fastapi-endpoint examples/minimal_sse_endpoint.py -->
    ```python
    ...
    ```

``tests/test_snippets.py`` compares the two, so a quoted snippet cannot drift from what CI runs.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

START = re.compile(r"^\s*(?:#|//) \[snippet: (?P<name>[a-z0-9-]+)\]\s*$")
END = re.compile(r"^\s*(?:#|//) \[end snippet\]\s*$")
QUOTE = re.compile(
    r"^<!-- snippet: (?P<name>[a-z0-9-]+) (?P<path>\S+) -->\n```(?P<lang>\w*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


class MarkerError(ValueError):
    """Unbalanced or duplicated snippet markers."""


@dataclass(frozen=True)
class Quote:
    name: str
    path: str
    lang: str
    code: str  # without the final newline


def is_marker(line: str) -> bool:
    return bool(START.match(line) or END.match(line))


def strip_markers(text: str) -> str:
    """``text`` without its marker lines (what the code is, to a reader or a comparison)."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_marker(line))


def regions(text: str, where: str = "") -> dict[str, str]:
    """Every marked region of ``text``: name -> its lines, dedented, marker lines left out."""
    open_regions: list[tuple[str, int]] = []  # (name, line number) of each region still open
    lines: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if start := START.match(line):
            name = start["name"]
            if name in lines:
                raise MarkerError(f"{where}:{number}: snippet {name!r} is marked twice")
            lines[name] = []
            open_regions.append((name, number))
        elif END.match(line):
            if not open_regions:
                raise MarkerError(f"{where}:{number}: [end snippet] without a start")
            open_regions.pop()
        else:
            for name, _ in open_regions:
                lines[name].append(line)
    if open_regions:
        name, number = open_regions[-1]
        raise MarkerError(f"{where}:{number}: snippet {name!r} has no [end snippet]")
    return {name: textwrap.dedent("\n".join(body)).strip("\n") for name, body in lines.items()}


def file_regions(path: Path, root: Path) -> dict[str, str]:
    return regions(path.read_text(encoding="utf-8"), str(path.relative_to(root)))


def quotes(markdown: str) -> list[Quote]:
    """The snippets a Markdown page quotes, in order."""
    return [Quote(m["name"], m["path"], m["lang"], m["code"].rstrip("\n"))
            for m in QUOTE.finditer(markdown)]
