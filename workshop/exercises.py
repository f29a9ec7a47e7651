"""Generate the learner notebooks (notebooks/) from the solution notebooks (solutions/).

Solutions are the single source of truth: they run top to bottom and pass their check cells.
The learner copy swaps each answer for a stub that raises
``NotImplementedError("Exercise N.M: <description>")``, so CI can prove that a learner notebook
stops only at its stubs (``workshop.notebooks.run_exercise_notebook``).

Marker grammar (nbgrader's), in code cells:

    ### BEGIN SOLUTION: encode one SSE frame      <- optional description after ":" or a space
    ...answer lines...
    ### END SOLUTION

becomes one stub line at the BEGIN marker's indentation. A code cell tagged ``solution`` becomes
one stub (its description comes from a first line ``# Exercise: <text>``); any other cell
tagged ``solution`` (e.g. markdown discussing the answer) is removed. N is the notebook number
from its ``NN_`` file name prefix, M counts exercises in cell order.

    python -m workshop.exercises            # write notebooks/ from solutions/
    python -m workshop.exercises --check    # exit 1 if notebooks/ is not what would be written
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from workshop.notebooks import REPO_ROOT, clean_notebook, notebook_text, write_notebook

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
SOLUTION_TAG = "solution"
DEFAULT_DESCRIPTION = "write your solution here"
STUB = re.compile(r"""^[ \t]*raise NotImplementedError\(\s*["']Exercise (\d+\.\d+):""", re.M)
CELL_DESCRIPTION = re.compile(r"\s*#\s*Exercise:\s*(.*)")


class ExerciseMarkerError(ValueError):
    """A misplaced solution marker, located by cell index (0-based) and line (1-based)."""

    def __init__(
        self, problem: str, cell_index: int, line: int, notebook: str | Path | None = None
    ):
        super().__init__(problem)
        self.problem = problem
        self.cell_index = cell_index
        self.line = line
        self.notebook = notebook

    def __str__(self) -> str:
        prefix = f"{self.notebook}: " if self.notebook else ""
        return f"{prefix}cell index {self.cell_index}, line {self.line}: {self.problem}"


def notebook_number(path: str | Path) -> int:
    """The notebook's number from its two-digit file name prefix: ``03_sse.ipynb`` -> 3."""
    match = re.match(r"(\d\d)_", Path(path).name)
    if not match:
        raise ValueError(
            f"{Path(path).name!r}: notebook names start with two digits and '_', like 03_topic.ipynb"
        )
    return int(match[1])


def stub_line(exercise_id: str, description: str, indent: str = "") -> str:
    """The line a learner replaces; JSON string quoting is also a valid Python literal."""
    message = json.dumps(f"Exercise {exercise_id}: {description}", ensure_ascii=False)
    return f"{indent}raise NotImplementedError({message})"


def generate_notebook(nb: NotebookNode, number: int) -> NotebookNode:
    """Return the learner notebook for solution ``nb`` (a new, clean notebook; ``nb`` is untouched)."""
    nb = clean_notebook(nb)
    cells, count = [], 0
    for index, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if SOLUTION_TAG not in tags:
            if cell.cell_type == "code":
                cell.source, count = _replace_regions(cell.source, number, count, index)
        elif cell.cell_type != "code":
            continue  # e.g. markdown that discusses the answer
        else:
            count += 1
            match = CELL_DESCRIPTION.fullmatch(cell.source.split("\n", 1)[0])
            description = (match and match[1].strip()) or DEFAULT_DESCRIPTION
            cell.source = stub_line(f"{number}.{count}", description)
            cell.metadata.tags = [tag for tag in tags if tag != SOLUTION_TAG]
            if not cell.metadata.tags:
                del cell.metadata["tags"]
        cells.append(cell)
    nb.cells = cells
    return nb


def _replace_regions(source: str, number: int, count: int, cell_index: int) -> tuple[str, int]:
    """Swap each BEGIN/END region of one cell for a stub; return the source and exercise count."""
    kept: list[str] = []
    region = None  # (line number, indentation, description) of the open BEGIN marker
    for line_number, line in enumerate(source.split("\n"), start=1):
        text = line.strip()
        if text.startswith(BEGIN):
            if region:
                raise ExerciseMarkerError(
                    f"nested {BEGIN!r}: the region opened at line {region[0]} is not closed",
                    cell_index,
                    line_number,
                )
            indent = line[: len(line) - len(line.lstrip())]
            region = (line_number, indent, _description(text, cell_index, line_number))
        elif text.startswith(END):
            if not region:
                raise ExerciseMarkerError(
                    f"{END!r} without a {BEGIN!r} before it", cell_index, line_number
                )
            count += 1
            kept.append(stub_line(f"{number}.{count}", region[2], region[1]))
            region = None
        elif not region:
            kept.append(line)
    if region:
        raise ExerciseMarkerError(f"{BEGIN!r} is never closed by {END!r}", cell_index, region[0])
    return "\n".join(kept), count


def _description(marker: str, cell_index: int, line_number: int) -> str:
    """The text after ``### BEGIN SOLUTION``, separated by ":" or whitespace."""
    rest = marker[len(BEGIN) :]
    if rest and rest[0] != ":" and not rest[0].isspace():
        raise ExerciseMarkerError(
            f"unknown marker {marker!r}; write '{BEGIN}' or '{BEGIN}: description'",
            cell_index,
            line_number,
        )
    rest = rest.strip()
    description = rest[1:].strip() if rest.startswith(":") else rest
    return description or DEFAULT_DESCRIPTION


def exercise_ids(nb: NotebookNode) -> list[str]:
    """Ids like ``"3.2"`` of the stubs in a generated notebook, in cell order."""
    return [
        match[1]
        for cell in nb.cells
        if cell.cell_type == "code"
        for match in STUB.finditer(cell.source)
    ]


def _generate_file(solution: Path) -> NotebookNode:
    """Generate from a solution file; every error names the file."""
    try:
        return generate_notebook(nbformat.read(solution, as_version=4), notebook_number(solution))
    except ExerciseMarkerError as err:
        err.notebook = solution
        raise
    except ValueError as err:  # a bad name, unreadable JSON
        raise ValueError(f"{solution}: {err}") from err


def write_exercises(solutions_dir: str | Path, notebooks_dir: str | Path) -> list[Path]:
    """Regenerate every learner notebook; return the paths whose content changed.

    Unchanged files are not rewritten, so an open notebook in Jupyter is not disturbed.
    """
    notebooks_dir = Path(notebooks_dir)
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for solution in sorted(Path(solutions_dir).glob("*.ipynb")):
        exercise = _generate_file(solution)
        target = notebooks_dir / solution.name
        if not target.exists() or target.read_text(encoding="utf-8") != notebook_text(exercise):
            write_notebook(exercise, target)
            written.append(target)
    return written


def check_exercises(solutions_dir: str | Path, notebooks_dir: str | Path) -> list[str]:
    """Problems that keep notebooks/ from being exactly what solutions/ generates; [] if none."""
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    hint = "run `python -m workshop.exercises`"
    problems = []
    for solution in sorted(solutions_dir.glob("*.ipynb")):
        target = notebooks_dir / solution.name
        try:
            text = notebook_text(_generate_file(solution))
        except ValueError as err:
            problems.append(str(err))
            continue
        if not target.exists():
            problems.append(f"{target}: missing; {hint}")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{target}: differs from what {solution} generates; {hint}")
    for notebook in sorted(notebooks_dir.glob("*.ipynb")):
        if not (solutions_dir / notebook.name).exists():
            problems.append(
                f"{notebook}: has no solution twin {solutions_dir / notebook.name}; "
                "learner notebooks are generated, so write the solution or delete this file"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workshop.exercises", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if notebooks/ is out of date")
    parser.add_argument("--solutions", type=Path, default=REPO_ROOT / "solutions")
    parser.add_argument("--notebooks", type=Path, default=REPO_ROOT / "notebooks")
    args = parser.parse_args(argv)

    if args.check:
        problems = check_exercises(args.solutions, args.notebooks)
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{args.notebooks} is up to date with {args.solutions}")
        return 1 if problems else 0

    try:
        written = write_exercises(args.solutions, args.notebooks)
    except ValueError as err:
        print(f"error: {err}")
        return 1
    for path in written:
        print(f"wrote {path}")
    orphans = [
        p for p in check_exercises(args.solutions, args.notebooks) if "no solution twin" in p
    ]
    for orphan in orphans:
        print(f"warning: {orphan}")
    if not written:
        print(f"{args.notebooks} was already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
