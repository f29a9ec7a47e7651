"""Tests of workshop.exercises (solution -> learner notebook) and workshop.notebooks helpers.

The fixture notebooks live in tests/fixtures/exercises/ and are built by build_fixtures.py there.
"""

import copy
import runpy
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from workshop import exercises, notebooks
from workshop.exercises import (
    ExerciseMarkerError,
    check_exercises,
    exercise_ids,
    generate_notebook,
    notebook_number,
    write_exercises,
)
from workshop.notebooks import (
    CellError,
    ExerciseRun,
    clean_notebook,
    execute_notebook,
    hygiene_problems,
    notebook_text,
    run_exercise_notebook,
    write_notebook,
)

FIXTURES = Path(__file__).parent / "fixtures" / "exercises"
VALID_FIXTURES = [
    "00_region_in_function.ipynb",
    "01_regions_and_descriptions.ipynb",
    "02_solution_cells.ipynb",
    "07_add_exercise.ipynb",
]


@pytest.fixture
def dirty_path(tmp_path: Path) -> Path:
    """A notebook with outputs, counts and volatile metadata, written for this test only."""
    dirty = runpy.run_path(str(FIXTURES / "build_fixtures.py"))["dirty_notebook"]()
    path = tmp_path / "03_dirty.ipynb"
    write_notebook(dirty, path)
    return path


def read_fixture(name: str) -> nbformat.NotebookNode:
    return nbformat.read(FIXTURES / name, as_version=4)


def generate_fixture(name: str) -> nbformat.NotebookNode:
    return generate_notebook(read_fixture(name), notebook_number(name))


def sources(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {cell.id: cell.source for cell in nb.cells}


def one_cell_notebook(source: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_code_cell(source, id="only")])


def copy_fixtures(names: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def test_fixtures_match_their_builder():
    built = runpy.run_path(str(FIXTURES / "build_fixtures.py"))["fixture_notebooks"]()
    assert sorted(built) == sorted(path.name for path in FIXTURES.glob("*.ipynb"))
    for name, nb in built.items():
        assert (FIXTURES / name).read_text(encoding="utf-8") == notebook_text(nb), (
            f"{name} is stale: run python tests/fixtures/exercises/build_fixtures.py"
        )


# --- marker rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "number"),
    [("00_intro.ipynb", 0), ("03_sse.ipynb", 3), (Path("a/b/12_x_y.ipynb"), 12)],
)
def test_notebook_number(name, number):
    assert notebook_number(name) == number


@pytest.mark.parametrize("name", ["intro.ipynb", "3_sse.ipynb", "123_sse.ipynb", "03-sse.ipynb"])
def test_notebook_number_rejects_bad_names(name):
    with pytest.raises(ValueError, match="two digits"):
        notebook_number(name)


def test_region_inside_a_function_keeps_its_indentation():
    nb = generate_fixture("00_region_in_function.ipynb")
    assert sources(nb)["add"] == (
        "def add(a, b):\n"
        '    """Return the sum of a and b."""\n'
        '    raise NotImplementedError("Exercise 0.1: write your solution here")'
    )
    assert exercise_ids(nb) == ["0.1"]


def test_two_regions_in_one_cell_with_and_without_description():
    nb = generate_fixture("01_regions_and_descriptions.ipynb")
    assert sources(nb)["two-regions"] == (
        "x = 1\n"
        'raise NotImplementedError("Exercise 1.1: compute y from x")\n'
        "z = 2\n"
        'raise NotImplementedError("Exercise 1.2: write your solution here")\n'
        "print(y, w)"
    )
    assert exercise_ids(nb) == ["1.1", "1.2", "1.3"]


def test_quotes_and_backslashes_in_a_description_cannot_break_the_stub():
    stub = sources(generate_fixture("01_regions_and_descriptions.ipynb"))["quoted"]
    with pytest.raises(NotImplementedError) as raised:
        exec(stub, {})
    assert str(raised.value) == 'Exercise 1.3: say "hi" \\ it\'s fine'


@pytest.mark.parametrize(
    ("marker", "description"),
    [
        ("### BEGIN SOLUTION", "write your solution here"),
        ("### BEGIN SOLUTION:", "write your solution here"),
        ("### BEGIN SOLUTION:encode one SSE frame", "encode one SSE frame"),
        ("### BEGIN SOLUTION: encode one SSE frame  ", "encode one SSE frame"),
        ("### BEGIN SOLUTION   encode one SSE frame", "encode one SSE frame"),
        ("### BEGIN SOLUTION : a: b", "a: b"),
        ("### BEGIN SOLUTION: café ✓", "café ✓"),
    ],
)
def test_description_after_colon_or_whitespace(marker, description):
    nb = generate_notebook(one_cell_notebook(f"{marker}\nx = 1\n### END SOLUTION\n"), 4)
    assert nb.cells[0].source == f'raise NotImplementedError("Exercise 4.1: {description}")\n'


def test_marker_must_be_followed_by_a_separator():
    with pytest.raises(ExerciseMarkerError, match="unknown marker '### BEGIN SOLUTIONS'"):
        generate_notebook(one_cell_notebook("### BEGIN SOLUTIONS\nx = 1\n### END SOLUTION"), 4)


def test_solution_tagged_cells_become_stubs_or_disappear():
    nb = generate_fixture("02_solution_cells.ipynb")
    assert [cell.id for cell in nb.cells] == ["intro", "frame", "region", "plain", "shown"]
    assert sources(nb)["frame"] == 'raise NotImplementedError("Exercise 2.1: build the frame")'
    assert (
        sources(nb)["region"]
        == 'raise NotImplementedError("Exercise 2.2: write your solution here")'
    )
    assert (
        sources(nb)["plain"]
        == 'raise NotImplementedError("Exercise 2.3: write your solution here")'
    )
    tags = {cell.id: cell.metadata.get("tags") for cell in nb.cells}
    assert tags == {
        "intro": None,
        "frame": ["keep-me"],
        "region": None,
        "plain": None,
        "shown": ["hide-input"],
    }
    assert exercise_ids(nb) == ["2.1", "2.2", "2.3"]


@pytest.mark.parametrize(
    ("name", "cell_index", "line", "words"),
    [
        (
            "04_nested_markers.ipynb",
            1,
            4,
            "nested '### BEGIN SOLUTION': the region opened at line 2",
        ),
        ("05_unterminated_marker.ipynb", 0, 2, "'### BEGIN SOLUTION' is never closed"),
        ("06_end_without_begin.ipynb", 2, 3, "'### END SOLUTION' without a '### BEGIN SOLUTION'"),
    ],
)
def test_marker_errors_name_cell_and_line(name, cell_index, line, words):
    with pytest.raises(ExerciseMarkerError) as raised:
        generate_fixture(name)
    assert (raised.value.cell_index, raised.value.line) == (cell_index, line)
    assert str(raised.value).startswith(f"cell index {cell_index}, line {line}: {words}")
    assert isinstance(raised.value, ValueError)


def test_marker_errors_from_files_name_the_file(tmp_path):
    solutions = copy_fixtures(["05_unterminated_marker.ipynb"], tmp_path / "solutions")
    with pytest.raises(
        ExerciseMarkerError, match=r"05_unterminated_marker.ipynb: cell index 0, line 2: "
    ):
        write_exercises(solutions, tmp_path / "notebooks")
    [problem] = check_exercises(solutions, tmp_path / "notebooks")
    assert (
        "05_unterminated_marker.ipynb: cell index 0, line 2: '### BEGIN SOLUTION' is never closed"
        in problem
    )


# --- the generated notebook ---------------------------------------------------------------------


def test_generated_notebook_is_clean_and_otherwise_equal_to_the_solution(dirty_path):
    solution = nbformat.read(dirty_path, as_version=4)
    generated = generate_notebook(solution, 3)
    assert [(c.id, c.cell_type, c.source) for c in generated.cells] == [
        (c.id, c.cell_type, c.source) for c in solution.cells
    ]
    code = generated.cells[0]
    assert (code.outputs, code.execution_count, code.metadata) == ([], None, {})
    assert generated.cells[1].metadata == {}
    assert generated.metadata == {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
    }
    assert (generated.nbformat, generated.nbformat_minor) == (4, 5)


def test_generation_is_pure():
    solution = read_fixture("02_solution_cells.ipynb")
    before = copy.deepcopy(solution)
    generate_notebook(solution, 2)
    assert solution == before


def test_cell_ids_are_preserved():
    solution = read_fixture("07_add_exercise.ipynb")
    assert [c.id for c in generate_notebook(solution, 7).cells] == [c.id for c in solution.cells]


def test_write_is_byte_identical_and_then_in_sync(tmp_path):
    solutions = copy_fixtures(VALID_FIXTURES, tmp_path / "solutions")
    learner = tmp_path / "notebooks"
    written = write_exercises(solutions, learner)
    assert [path.name for path in written] == VALID_FIXTURES
    first = {path.name: path.read_bytes() for path in written}
    assert write_exercises(solutions, learner) == []  # unchanged files are not rewritten
    shutil.rmtree(learner)
    write_exercises(solutions, learner)
    assert {path.name: path.read_bytes() for path in learner.iterdir()} == first
    for name, data in first.items():
        assert data.endswith(b"}\n") and b"\r\n" not in data
        assert data == notebook_text(generate_fixture(name)).encode("utf-8")
        assert hygiene_problems(learner / name) == []
    assert check_exercises(solutions, learner) == []


def test_check_reports_stale_missing_and_orphan_notebooks(tmp_path):
    solutions = copy_fixtures(VALID_FIXTURES[:3], tmp_path / "solutions")
    learner = tmp_path / "notebooks"
    write_exercises(solutions, learner)
    (learner / VALID_FIXTURES[0]).unlink()
    stale = learner / VALID_FIXTURES[1]
    stale.write_text(
        stale.read_text(encoding="utf-8").replace("compute y", "compute z"), encoding="utf-8"
    )
    shutil.copy(FIXTURES / "07_add_exercise.ipynb", learner / "07_orphan.ipynb")
    problems = check_exercises(solutions, learner)
    assert len(problems) == 3
    assert problems[0].startswith(f"{learner / VALID_FIXTURES[0]}: missing")
    assert problems[1].startswith(
        f"{stale}: differs from what {solutions / VALID_FIXTURES[1]} generates"
    )
    assert problems[2].startswith(f"{learner / '07_orphan.ipynb'}: has no solution twin")


def test_exercises_cli(tmp_path, capsys):
    solutions = copy_fixtures(VALID_FIXTURES[:2], tmp_path / "solutions")
    args = ["--solutions", str(solutions), "--notebooks", str(tmp_path / "notebooks")]
    assert exercises.main([*args, "--check"]) == 1
    assert "missing" in capsys.readouterr().out
    assert exercises.main(args) == 0
    assert capsys.readouterr().out.count("wrote ") == 2
    assert exercises.main([*args, "--check"]) == 0


# --- hygiene ------------------------------------------------------------------------------------


def test_hygiene_problems_list_what_is_not_clean(dirty_path):
    problems = hygiene_problems(dirty_path)
    text = "\n".join(problems)
    for words in [
        "notebook metadata has ['widgets']",
        "notebook metadata kernelspec is",
        "notebook metadata language_info is",
        "cell 0: has outputs",
        "cell 0: has execution count 7",
        "cell 0: has metadata ['collapsed', 'scrolled']",
        "cell 0: has an empty tags list",
        "cell 1: has metadata ['editable']",
    ]:
        assert words in text
    assert len(problems) == 8


def test_hygiene_rejects_unreadable_and_old_notebooks(tmp_path):
    broken = tmp_path / "01_broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    assert "cannot read notebook" in hygiene_problems(broken)[0]
    old = tmp_path / "02_old.ipynb"
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    nb.nbformat_minor = 4
    del nb.cells[0]["id"]
    old.write_text(notebook_text(nb), encoding="utf-8")
    assert hygiene_problems(old) == [f"{old}: nbformat 4.4 instead of 4.5 (run clean)"]


def test_hygiene_wants_nbformat_layout(tmp_path):
    path = tmp_path / "01_indented.ipynb"
    path.write_text(
        notebook_text(read_fixture("00_region_in_function.ipynb")).replace("\n ", "\n  ")
    )
    assert hygiene_problems(path) == [f"{path}: not in nbformat's own layout (run clean)"]


def test_clean_notebook_gives_deterministic_ids_to_old_notebooks():
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("y = 2", id="cell-0")])
    nb.nbformat_minor = 4
    del nb.cells[0]["id"]
    cleaned = clean_notebook(nb)
    assert [cell.id for cell in cleaned.cells] == ["cell-0-1", "cell-0"]
    assert notebook_text(clean_notebook(nb)) == notebook_text(cleaned)
    nbformat.validate(cleaned)


def test_notebooks_cli_cleans_in_place(dirty_path, capsys):
    path = dirty_path
    tmp_path = dirty_path.parent
    assert notebooks.main(["check", str(tmp_path)]) == 1
    assert notebooks.main(["clean", str(path)]) == 0
    assert "cleaned" in capsys.readouterr().out
    assert hygiene_problems(path) == []
    assert notebooks.main(["check", str(path)]) == 0


# --- executing learner notebooks ----------------------------------------------------------------


def test_exercise_run_problems_without_a_kernel():
    run = ExerciseRun(
        Path("03_x.ipynb"),
        new_notebook(),
        [
            CellError(1, "NotImplementedError", "Exercise 3.1: write your solution here"),
            CellError(2, "NotImplementedError", "not yet"),
            CellError(3, "NameError", "name 'y' is not defined"),
            CellError(4, "NotImplementedError", "Exercise 9.9: stale stub"),
        ],
    )
    assert run.raised_ids == {"3.1", "9.9"}
    assert run.problems(["3.1", "3.2"]) == [
        "03_x.ipynb: cell 2: unexpected NotImplementedError: not yet",
        "03_x.ipynb: cell 3: unexpected NameError: name 'y' is not defined",
        "03_x.ipynb: cell 4: stub of an unknown exercise: Exercise 9.9: stale stub",
        "03_x.ipynb: exercise 3.2 never raised its NotImplementedError; "
        "does a later cell (e.g. its check cell) call it and let the error through?",
    ]


def run_generated(name: str, tmp_path: Path) -> tuple[ExerciseRun, list[str]]:
    """Generate the learner copy of fixture ``name`` and execute all of its cells."""
    write_exercises(copy_fixtures([name], tmp_path / "solutions"), tmp_path / "notebooks")
    path = tmp_path / "notebooks" / name
    return run_exercise_notebook(path, timeout=60), exercise_ids(nbformat.read(path, as_version=4))


@pytest.mark.notebook
def test_solution_passes_its_check_cell():
    executed = execute_notebook(FIXTURES / "07_add_exercise.ipynb", timeout=60)
    assert executed.cells[-1].outputs[0].text.strip() == sys.executable


@pytest.mark.notebook
def test_learner_notebook_stops_only_at_its_stub(tmp_path):
    run, ids = run_generated("07_add_exercise.ipynb", tmp_path)
    assert ids == ["7.1"]
    assert run.problems(ids) == []
    assert run.raised_ids == {"7.1"}
    assert [error.cell_index for error in run.errors] == [2]  # raised by the check cell
    # the cell after the exercise still ran, in a kernel of this very interpreter
    assert run.notebook.cells[-1].outputs[0].text.strip() == sys.executable


@pytest.mark.notebook
def test_an_error_outside_the_exercises_is_a_problem(tmp_path):
    run, ids = run_generated("08_unexpected_error.ipynb", tmp_path)
    assert run.problems(ids) == [
        f"{tmp_path / 'notebooks' / '08_unexpected_error.ipynb'}: cell 2: "
        "unexpected ZeroDivisionError: division by zero"
    ]


@pytest.mark.notebook
def test_a_stub_that_is_never_called_is_a_problem(tmp_path):
    run, ids = run_generated("09_stub_never_called.ipynb", tmp_path)
    [problem] = run.problems(ids)
    assert "exercise 9.1 never raised its NotImplementedError" in problem
