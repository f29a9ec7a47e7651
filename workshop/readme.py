"""The README's lesson table, read by tests/test_readme.py and the pilot report (workshop/pilot.py).

Each row is ``| 03 | [notebook](...) | [solution](...) | 40 | what you learn |``; the fourth column
holds the minutes: ``45``, ``75-90`` or ``30 (estimate)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MINUTES = re.compile(r"(\d+(?:-\d+)?)( \(estimate\))?")  # the fourth column: 45, 75-90, 30 (estimate)


@dataclass(frozen=True)
class Stated:
    """A lesson's minutes as the README states them: a range (low == high for one number)."""

    low: int
    high: int
    estimate: bool

    def __str__(self) -> str:
        span = f"{self.low}" if self.low == self.high else f"{self.low}-{self.high}"
        return span + (" (estimate)" if self.estimate else "")


def lesson_rows(readme: str | None = None) -> dict[str, str]:
    """The table's rows by lesson number (``"03"``), from README.md unless ``readme`` is given."""
    text = README.read_text(encoding="utf-8") if readme is None else readme
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\d) \|.*$", text, re.MULTILINE)}


def minutes(row: str) -> re.Match | None:
    """The minutes column of one row, matched: groups (``"75-90"``, ``" (estimate)"`` or None)."""
    return MINUTES.fullmatch(row.split("|")[4].strip())


def stated_minutes(readme: str | None = None) -> dict[str, Stated]:
    """Every lesson's stated minutes, by lesson number; rows without minutes are left out."""
    stated = {}
    for number, row in lesson_rows(readme).items():
        match = minutes(row)
        if match:
            low, _, high = match.group(1).partition("-")
            stated[number] = Stated(int(low), int(high or low), bool(match.group(2)))
    return stated
