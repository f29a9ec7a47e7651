"""The README's lesson table lists every lesson, with its exercise and solution links."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_lesson_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\d) \|.*$", readme, re.MULTILINE)}
    for solution in sorted((ROOT / "solutions").glob("*.ipynb")):
        number, name = solution.name[:2], solution.name
        assert number in rows, f"README lesson table has no row for {name}"
        assert f"(notebooks/{name})" in rows[number] and f"(solutions/{name})" in rows[number]
        assert re.search(r"\| \d+ \|", rows[number]), f"row {number} gives no minutes"
    assert set(rows) == {p.name[:2] for p in (ROOT / "solutions").glob("*.ipynb")}, "a row without a lesson"


def test_the_two_commands_are_there():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
