"""The README's lesson table lists every lesson, with its exercise and solution links, and the
same minutes as the lesson's own first cell."""

import re
from pathlib import Path

import nbformat

from workshop.readme import lesson_rows, minutes

ROOT = Path(__file__).resolve().parents[1]
# Lessons whose minutes come from walkthroughs by people new to the material (issue 12). Any other
# lesson, a new one included, states an estimate until someone measures it and adds it here.
MEASURED = {"00", "01", "02", "03", "04", "05", "06", "07", "10"}  # 09: its Exercise 9.1 came later


def solutions() -> list[Path]:
    return sorted((ROOT / "solutions").glob("*.ipynb"))


def test_every_lesson_is_in_the_readme_table():
    rows = lesson_rows()
    for solution in solutions():
        number, name = solution.name[:2], solution.name
        assert number in rows, f"README lesson table has no row for {name}"
        assert f"(notebooks/{name})" in rows[number] and f"(solutions/{name})" in rows[number]
        assert minutes(rows[number]), f"row {number} gives no minutes"
    assert set(rows) == {p.name[:2] for p in solutions()}, "a row without a lesson"


def test_the_readme_states_the_minutes_each_lesson_states():
    rows = lesson_rows()
    for solution in solutions():
        number = solution.name[:2]
        stated_minutes, estimate = minutes(rows[number]).groups()
        first = nbformat.read(solution, as_version=4).cells[0].source
        time = re.search(r"\*\*Time:\*\*(.*?)(?:\n\n|\*\*Prerequisites|$)", first, re.S)
        assert time, f"{solution.name}: its first cell states no **Time:**"
        stated = " ".join(time.group(1).split())
        expected = f"{stated_minutes} minutes"
        expected = expected if "-" in stated_minutes else f"about {expected}"
        assert stated.startswith(expected), f"{solution.name} says {stated!r}, the README {stated_minutes}"
        if number in MEASURED:
            assert not estimate and "estimate" not in stated, f"{number} was measured"
        else:
            assert estimate and "an estimate" in stated, (
                f"lesson {number}'s time was not measured: mark it '(estimate)' in the README and "
                "'an estimate' in its first cell")


def test_optional_sections_are_marked_in_the_readme_row():
    rows = lesson_rows()
    for solution in solutions():
        optional = [cell.source.splitlines()[0] for cell in nbformat.read(solution, as_version=4).cells
                    if cell.cell_type == "markdown" and cell.source.startswith("#")
                    and cell.source.splitlines()[0].endswith("(optional)")]
        if optional:
            assert "optional" in rows[solution.name[:2]], f"{solution.name}: {optional}"


def test_the_two_commands_are_there():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme


def test_the_guides_are_linked():
    readme = (ROOT / "README.md").read_text()
    for guide in ("FACILITATORS.md", "SNIPPETS.md"):
        assert f"]({guide})" in readme and (ROOT / guide).is_file(), guide
