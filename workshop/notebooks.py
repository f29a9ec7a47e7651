"""Notebook hygiene and execution helpers.

Notebooks are kept in git without outputs, execution counts or volatile metadata, so a diff shows
only what a learner reads. CI executes them in a fresh kernel so they cannot silently rot, and
``run_exercise_notebook`` proves that a learner notebook stops only at its exercise stubs.

    python -m workshop.notebooks clean [PATHS...]   # rewrite notebooks clean, in place
    python -m workshop.notebooks check [PATHS...]   # exit 1 and list what is not clean
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from ipykernel.kernelspec import make_ipkernel_cmd
from nbclient import NotebookClient
from nbformat import NotebookNode

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("solutions", "notebooks")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}
NBFORMAT_VERSION = (4, 5)  # 4.5 is the first minor version with cell ids
# A stub message, as written by workshop.exercises: "Exercise 3.2: <description>".
EXERCISE_MESSAGE = re.compile(r"Exercise (\d+\.\d+):")


def clean_notebook(nb: NotebookNode) -> NotebookNode:
    """Return a clean copy of ``nb``: no outputs, counts or metadata beyond tags and kernel."""
    nb = copy.deepcopy(nb)
    nb.nbformat, nb.nbformat_minor = NBFORMAT_VERSION
    nb.metadata = nbformat.from_dict(
        {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    )
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if not cell.get("id") or cell.id in seen:
            cell.id = _new_cell_id(index, seen | {c.get("id") for c in nb.cells})
        seen.add(cell.id)
        tags = list(cell.get("metadata", {}).get("tags", []))
        cell.metadata = nbformat.from_dict({"tags": tags} if tags else {})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def _new_cell_id(index: int, taken: set) -> str:
    """A deterministic id, so cleaning the same notebook twice gives the same bytes."""
    candidate, suffix = f"cell-{index}", 0
    while candidate in taken:
        suffix += 1
        candidate = f"cell-{index}-{suffix}"
    return candidate


def notebook_text(nb: NotebookNode) -> str:
    """The exact text ``write_notebook`` puts on disk (nbformat's layout, final newline)."""
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb: NotebookNode, path: str | Path) -> None:
    """Write with nbformat, UTF-8 and ``\\n`` line ends on every platform, so bytes are stable."""
    with Path(path).open("w", encoding="utf-8", newline="\n") as file:
        nbformat.write(nb, file, version=nbformat.NO_CONVERT)


def hygiene_problems(path: str | Path) -> list[str]:
    """Describe everything that keeps the notebook at ``path`` from being clean; [] if clean."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.from_dict(json.loads(text))
    except (OSError, ValueError) as err:
        return [f"{path}: cannot read notebook: {err}"]
    version = (nb.get("nbformat"), nb.get("nbformat_minor"))
    if version != NBFORMAT_VERSION:
        return [f"{path}: nbformat {version[0]}.{version[1]} instead of 4.5 (run clean)"]
    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        problems.append(f"{path}: invalid nbformat: {err.message}")
    metadata, expected = (
        nb.get("metadata", {}),
        {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO},
    )
    extra = sorted(set(metadata) - set(expected))
    if extra:
        problems.append(
            f"{path}: notebook metadata has {extra} (only kernelspec and language_info are kept)"
        )
    problems += [
        f"{path}: notebook metadata {key} is {json.dumps(metadata.get(key))}, expected {json.dumps(value)}"
        for key, value in expected.items()
        if metadata.get(key) != value
    ]
    for index, cell in enumerate(nb.get("cells", [])):
        where = f"{path}: cell {index}"
        if not cell.get("id"):
            problems.append(f"{where}: has no id")
        if cell.get("outputs"):
            problems.append(f"{where}: has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"{where}: has execution count {cell.execution_count}")
        metadata = cell.get("metadata", {})
        extra = sorted(set(metadata) - {"tags"})
        if extra:
            problems.append(f"{where}: has metadata {extra} (only tags are kept)")
        if metadata.get("tags") == []:
            problems.append(f"{where}: has an empty tags list")
    if not problems and text != notebook_text(clean_notebook(nb)):
        problems.append(f"{path}: not in nbformat's own layout (run clean)")
    return problems


def execute_notebook(
    path: str | Path, timeout: int = 120, allow_errors: bool = False, cwd: str | Path | None = None
) -> NotebookNode:
    """Run every cell in a fresh kernel and return the executed notebook.

    ``timeout`` is per cell; ``cwd`` defaults to the notebook's folder, as in Jupyter.
    """
    path = Path(path)
    client = NotebookClient(
        nbformat.read(path, as_version=4),
        timeout=timeout,
        allow_errors=allow_errors,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd or path.parent)}},
    )
    # "python3" resolves to this venv's kernelspec (its argv "python" becomes sys.executable),
    # but a user-level kernelspec could point elsewhere: pin this interpreter explicitly.
    client.create_kernel_manager().kernel_spec.argv = make_ipkernel_cmd()
    return client.execute()


@dataclass(frozen=True)
class CellError:
    """An error output left by one code cell."""

    cell_index: int
    ename: str
    evalue: str


@dataclass
class ExerciseRun:
    """What happened when every cell of a learner notebook ran, errors included."""

    path: Path
    notebook: NotebookNode
    errors: list[CellError]

    @property
    def raised_ids(self) -> set[str]:
        """Ids of the exercises whose stub raised ``NotImplementedError("Exercise N.M: ...")``."""
        return {
            match[1]
            for error in self.errors
            if error.ename == "NotImplementedError"
            and (match := EXERCISE_MESSAGE.match(error.evalue))
        }

    def problems(self, expected_ids: list[str]) -> list[str]:
        """Errors other than exercise stubs, and expected stubs that no cell ever reached.

        A tag like nbmake's ``raises-exception`` only tolerates an error; this proves that each
        exercise actually stops at its own stub and that nothing else fails.
        """
        problems = []
        for error in self.errors:
            where = f"{self.path}: cell {error.cell_index}"
            match = EXERCISE_MESSAGE.match(error.evalue)
            if error.ename != "NotImplementedError" or not error.evalue.startswith("Exercise "):
                problems.append(f"{where}: unexpected {error.ename}: {error.evalue}")
            elif not match or match[1] not in expected_ids:
                problems.append(f"{where}: stub of an unknown exercise: {error.evalue}")
        problems += [
            f"{self.path}: exercise {exercise_id} never raised its NotImplementedError; "
            "does a later cell (e.g. its check cell) call it and let the error through?"
            for exercise_id in expected_ids
            if exercise_id not in self.raised_ids
        ]
        return problems


def run_exercise_notebook(path: str | Path, timeout: int = 120) -> ExerciseRun:
    """Execute all cells of a learner notebook, carrying on after errors, and collect them."""
    executed = execute_notebook(path, timeout=timeout, allow_errors=True)
    errors = [
        CellError(index, output.ename, output.evalue)
        for index, cell in enumerate(executed.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    return ExerciseRun(Path(path), executed, errors)


def default_notebook_paths() -> list[Path]:
    """solutions/*.ipynb and notebooks/*.ipynb of the repository."""
    return [
        path for folder in NOTEBOOK_DIRS for path in sorted((REPO_ROOT / folder).glob("*.ipynb"))
    ]


def _expand(paths: list[Path]) -> list[Path]:
    """Folders stand for the notebooks they hold."""
    return [
        notebook
        for path in paths
        for notebook in (sorted(path.glob("*.ipynb")) if path.is_dir() else [path])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workshop.notebooks", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("clean", "rewrite notebooks without outputs, counts or volatile metadata"),
        ("check", "exit 1 and list the notebooks that are not clean"),
    ]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "paths",
            nargs="*",
            type=Path,
            help="notebooks or folders (default: solutions/*.ipynb notebooks/*.ipynb)",
        )
    args = parser.parse_args(argv)
    paths = _expand(args.paths) if args.paths else default_notebook_paths()

    if args.command == "clean":
        for path in paths:
            clean = clean_notebook(nbformat.read(path, as_version=4))
            if path.read_text(encoding="utf-8") != notebook_text(clean):
                write_notebook(clean, path)
                print(f"cleaned {path}")
        return 0

    problems = [problem for path in paths for problem in hygiene_problems(path)]
    for problem in problems:
        print(problem)
    if problems:
        print("Fix with: python -m workshop.notebooks clean")
        return 1
    print(f"{len(paths)} notebook(s) clean")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
