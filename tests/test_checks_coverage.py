"""Every exercise of lessons 00-04 keeps its check honest: at least five wrong answers from distinct
mistakes and two right answers in different styles, each run through the check (issue 12).

Counted from the parametrized tests of tests/test_checks_0N.py, so removing a case fails here.
"""

import importlib
import math

import pytest

MIN_WRONG, MIN_RIGHT = 5, 2
# exercise: (test module, tests of right answers, tests of wrong answers)
EXERCISES = {
    "0.1": ("test_checks_00", ["test_right_answers_pass"], ["test_wrong_answers_are_explained"]),
    "1.1": ("test_checks_01", ["test_right_run_config_passes", "test_string_sse_is_also_right",
                               "test_a_copied_base_config_is_also_right"], ["test_wrong_run_configs_are_explained"]),
    "1.2": ("test_checks_01", ["test_right_measures_pass"], ["test_wrong_measures_are_explained"]),
    "2.1": ("test_checks_02", ["test_right_typewriters_pass"], ["test_wrong_typewriters_are_explained"]),
    "2.2": ("test_checks_02", ["test_right_verifications_pass"], ["test_wrong_verifications_are_explained"]),
    "3.1": ("test_checks_03", ["test_run_many_right_answers_pass"], ["test_run_many_wrong_answers_are_explained"]),
    "3.2": ("test_checks_03", ["test_first_words_right_answers_pass"],
            ["test_first_words_wrong_answers_are_explained"]),
    "4.1": ("test_checks_04", ["test_encoder_right_answers_pass"], ["test_encoder_wrong_answers_are_explained"]),
    "4.2": ("test_checks_04", ["test_parser_right_answers_pass"], ["test_parser_wrong_answers_are_explained"]),
    "12.1": ("test_checks_12", ["test_right_answers_pass"], ["test_wrong_answers_are_explained"]),
}


def _answers(test, name: str) -> list:
    """The learner answers a test runs: the values of its `name` parameter (one if it has none)."""
    marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
    for mark in marks:
        argnames = mark.args[0]
        argnames = [a.strip() for a in argnames.split(",")] if isinstance(argnames, str) else list(argnames)
        if name in argnames:
            index = argnames.index(name)
            return [values[index] if len(argnames) > 1 else values for values in mark.args[1]]
    if marks:  # parametrized over styles (e.g. how the session is created), not over answers
        return list(range(math.prod(len(m.args[1]) for m in marks)))
    return [test]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_each_exercise_has_enough_wrong_and_right_answers(exercise):
    module_name, right_tests, wrong_tests = EXERCISES[exercise]
    module = importlib.import_module(f"tests.{module_name}")
    right = [a for t in right_tests for a in _answers(getattr(module, t), "right")]
    wrong = [a for t in wrong_tests for a in _answers(getattr(module, t), "wrong")]
    assert len(right) >= MIN_RIGHT, f"exercise {exercise}: {len(right)} right answers"
    assert len({id(a) for a in wrong}) >= MIN_WRONG, f"exercise {exercise}: {len(wrong)} wrong answers"
