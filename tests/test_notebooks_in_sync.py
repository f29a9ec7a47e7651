"""The workshop's own notebooks: generated from solutions, clean, well named, and stopping only at
their exercise stubs when a learner runs them top to bottom.
"""

import re

import nbformat
import pytest

from workshop.exercises import check_exercises, exercise_ids
from workshop.notebooks import REPO_ROOT, hygiene_problems, run_exercise_notebook

SOLUTIONS = REPO_ROOT / "solutions"
NOTEBOOKS = REPO_ROOT / "notebooks"
NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def workshop_notebooks() -> list:
    return sorted(SOLUTIONS.glob("*.ipynb")) + sorted(NOTEBOOKS.glob("*.ipynb"))


def learner_notebook_params() -> list:
    """One param per notebooks/*.ipynb, or a single skipped param while there are none."""
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        reason = "notebooks/ holds no notebooks yet"
        return [pytest.param(None, id="none", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(path, id=path.name) for path in paths]


def test_both_folders_hold_the_same_notebooks():
    solutions = sorted(path.name for path in SOLUTIONS.glob("*.ipynb"))
    learner = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert solutions == learner


def test_learner_notebooks_are_generated_from_solutions():
    problems = check_exercises(SOLUTIONS, NOTEBOOKS)
    assert problems == [], "\n".join(problems)


def test_notebooks_are_clean():
    problems = [problem for path in workshop_notebooks() for problem in hygiene_problems(path)]
    assert problems == [], "\n".join([*problems, "Fix with: python -m workshop.notebooks clean"])


def test_notebook_names():
    bad = [str(path) for path in workshop_notebooks() if not NAME.match(path.name)]
    assert bad == [], f"names must match {NAME.pattern}"


@pytest.mark.notebook
@pytest.mark.parametrize("path", learner_notebook_params())
def test_learner_notebook_stops_only_at_its_stubs(path):
    ids = exercise_ids(nbformat.read(path, as_version=4))
    problems = run_exercise_notebook(path).problems(ids)
    assert problems == [], "\n".join(problems)
