"""How every check cell reports: the learner's output stays visible, the verdict on its own line."""

import pytest

from workshop.checks import CheckFailed
from workshop.checks._report import fail, learner_output, passed


def test_pass_line_starts_on_its_own_line_after_an_unfinished_line(capsys):
    with learner_output():
        print("streamed text without a newline", end="")
    passed("right")
    assert capsys.readouterr().out == "streamed text without a newline\n✅ right\n"


def test_a_silent_capture_keeps_the_line_open(capsys):
    """A check that calls the learner's code many times: only the last printed text matters."""
    with learner_output():
        print("debug", end="")
    with learner_output():
        pass
    passed("right")
    assert capsys.readouterr().out == "debug\n✅ right\n"


def test_no_blank_line_after_a_finished_line(capsys):
    with learner_output():
        print("a whole line")
    passed("right")
    assert capsys.readouterr().out == "a whole line\n✅ right\n"


def test_failure_keeps_the_learners_output_above_the_verdict(capsys):
    with learner_output() as output:
        print("1, 2, 3.", end="")
        print("1, 2, 3.", end="")
    assert output.text == "1, 2, 3.1, 2, 3." and output.text_writes == 2
    with pytest.raises(CheckFailed, match="twice"):
        fail("The answer was printed twice.", "Print partial events only.")
    assert capsys.readouterr().out == ("1, 2, 3.1, 2, 3.\n❌ The answer was printed twice.\n"
                                       "   Hint: Print partial events only.\n")


def test_a_hidden_capture_is_quoted_on_failure(capsys):
    with learner_output(show=False) as output:
        print("one\ntwo", end="")
    assert capsys.readouterr().out == ""
    with pytest.raises(CheckFailed):
        fail("Wrong.", "Fix it.", printed=output.text)
    assert capsys.readouterr().out == "Your code printed:\n   │ one\n   │ two\n❌ Wrong.\n   Hint: Fix it.\n"
    with pytest.raises(CheckFailed):
        fail("Wrong.", "Fix it.", printed="")
    assert "│ (nothing)" in capsys.readouterr().out


def test_an_unfinished_exercise_leaves_no_open_line_for_the_next_cell(capsys):
    with pytest.raises(NotImplementedError), learner_output():
        print("half a line", end="")
        raise NotImplementedError("Exercise 0.1")
    capsys.readouterr()
    passed("the next cell's check")  # a new cell: its output starts on a line of its own anyway
    assert capsys.readouterr().out == "✅ the next cell's check\n"


def test_a_learners_exception_reported_by_the_check_starts_on_a_fresh_line(capsys):
    with pytest.raises(ValueError), learner_output():
        print("half a line", end="")
        raise ValueError("bug")
    with pytest.raises(CheckFailed):
        fail("Your code raised ValueError.", "Read the traceback.")
    assert capsys.readouterr().out.startswith("half a line\n❌")
