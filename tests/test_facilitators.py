"""FACILITATORS.md stays true to the lessons: agendas add up and use the README's minutes, every
lesson and exercise is covered, and the troubleshooting rows point at sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "FACILITATORS.md"


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(title: str) -> str:
    text = guide()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines()
            if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line)][1:]


def readme_minutes() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    return {m.group(1): m.group(2).split()[0]
            for m in re.finditer(r"^\| (\d\d) \|[^|]*\|[^|]*\| ([^|]+) \|", readme, re.MULTILINE)}


def lessons() -> dict[str, Path]:
    return {path.name[:2]: path for path in sorted((ROOT / "solutions").glob("*.ipynb"))}


def exercises(path: Path) -> list[str]:
    return [m.group(1) for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"
            for m in re.finditer(r"^## Exercise (\d+\.\d+)", cell.source, re.MULTILINE)]


def headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "markdown" for line in cell.source.splitlines() if line.startswith("#")}


def agendas() -> dict[str, list[list[str]]]:
    parts = re.split(r"^### (.+)$", section("Agendas"), flags=re.MULTILINE)
    return {title: table_rows(body) for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def minutes_of(start: str) -> int:
    hours, minutes = start.split(":")
    return int(hours) * 60 + int(minutes)


def test_the_times_table_is_the_readme_s():
    stated = {row[0][:2]: row[1] for row in table_rows(section("Times"))}
    assert stated == readme_minutes()


def test_agendas_add_up_and_plan_each_lesson_at_the_top_of_its_range():
    planned = {number: int(minutes.split("-")[-1]) for number, minutes in readme_minutes().items()}
    found = agendas()
    assert {"90 minutes", "Half day", "Full day", "Two days"} <= {title.split(" (")[0].split(":")[0]
                                                                  for title in found}
    for title, rows in found.items():
        clock = 0
        for start, block, how, minutes in rows:
            assert minutes_of(start) == clock, f"{title}: {block!r} starts at {start}, not {clock} min"
            clock += int(minutes)
            lesson = re.match(r"Lesson (\d\d) · ", block)
            if how == "hands-on" and lesson:
                assert int(minutes) == planned[lesson.group(1)], (
                    f"{title}: lesson {lesson.group(1)} planned for {minutes} min; the README says "
                    f"{readme_minutes()[lesson.group(1)]}")
        length = re.search(r"\((\d+) (minutes|hours)\)", title) or re.match(r"(\d+) (minutes)", title)
        if length:
            expected = int(length.group(1)) * (60 if length.group(2) == "hours" else 1)
            assert clock == expected, f"{title}: the blocks add up to {clock} minutes"


def test_every_lesson_and_exercise_is_covered():
    demo = {row[0]: row for row in table_rows(section("Demonstrate or assign"))}
    mistakes = section("Common mistakes per exercise")
    for number, path in lessons().items():
        assert number in demo, f"'Demonstrate or assign' has no row for lesson {number}"
        for exercise in exercises(path):
            assert exercise in demo[number][2], f"exercise {exercise} is not assigned"
            assert re.search(rf"^### {re.escape(exercise)} ", mistakes, re.MULTILINE) or (
                "TODO" in mistakes and exercise in mistakes), f"no common mistakes for {exercise}"


def test_each_troubleshooting_row_points_at_sections_that_exist():
    rows = table_rows(section("Troubleshooting"))
    assert [row[0] for row in rows] == ["No streaming events", "Model not supported",
                                        "Function calls execute twice"]  # the seed's three rows
    for symptom, _, _, where in rows:
        links = re.findall(r"\]\((solutions/[^)]+\.ipynb)\)", where)
        assert links, f"{symptom}: no link to a notebook"
        path = ROOT / links[0]
        assert path.is_file(), f"{symptom}: {links[0]} does not exist"
        names = re.findall(r'"([^"]+)"', where.split("sections")[-1].split("section")[-1])
        names = [name for name in names if not name.startswith("...")]
        assert names, f"{symptom}: name the section(s) where it is shown"
        for name in names:
            assert name in headings(path), f"{symptom}: {path.name} has no section {name!r}"


def test_the_live_only_model_is_shown_in_lesson_01():
    cells = nbformat.read(lessons()["01"], as_version=4).cells
    assert any(cell.cell_type == "code" and 'model="gemini-live-' in cell.source for cell in cells)
