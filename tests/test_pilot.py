"""A facilitator's pilot (issue 12): the setup cell and every check verdict leave one line in
.workshop/pilot.jsonl, never under tests or CI unless asked, never an error in the notebook; the
report puts each lesson's time next to the README's."""

from __future__ import annotations

import json
import math
import sys

import pytest

import workshop
from workshop import backend as backend_module
from workshop import pilot
from workshop.checks import CheckFailed, nb11
from workshop.checks._report import passed
from workshop.readme import Stated, stated_minutes

MIN = 60.0


def right_p99(samples):
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * 0.99
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@pytest.fixture
def log(tmp_path, monkeypatch):
    """Recording on (as in a learner's JupyterLab), into a temporary file."""
    path = tmp_path / ".workshop" / "pilot.jsonl"
    monkeypatch.setenv(pilot.LOG_ENV, "on")
    monkeypatch.setenv(pilot.FILE_ENV, str(path))
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/workshop/notebooks/11_benchmarking_streaming.ipynb")
    return path


def events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- recording -----------------------------------------------------------------------------------

def test_a_lesson_run_through_the_real_setup_and_check_is_logged(log, monkeypatch, capsys):
    monkeypatch.setattr(backend_module, "choose_backend", lambda: None)  # no emulator needed here
    workshop.setup(quiet=True)
    with pytest.raises(CheckFailed):
        nb11.check_p99(max)
    nb11.check_p99(right_p99)
    assert "✅" in capsys.readouterr().out
    setup, failed, ok = events(log)
    assert setup["kind"] == "setup" and setup["lesson"] == "11"
    assert (failed["kind"], failed["lesson"], failed["exercise"], failed["check"]) == (
        "fail", "11", "11.1", "nb11.check_p99")
    assert (ok["kind"], ok["exercise"]) == ("pass", "11.1")
    assert setup["ts"] <= failed["ts"] <= ok["ts"] and len({e["pid"] for e in (setup, failed, ok)}) == 1
    timing = pilot.lesson_timings(events(log))["11"]
    assert timing.seconds == ok["ts"] - setup["ts"] and timing.exercises["11.1"].failed == 1


def test_exercise_ids_come_from_the_check_cells_of_each_solution():
    assert pilot.exercise_of_check("nb03.check_run_many") == "3.1"
    assert pilot.exercise_of_check("nb03.check_first_words") == "3.2"
    assert pilot.exercise_of_check("nb13.check_to_ui_chunks") == "13.1"
    assert pilot.exercise_of_check("nb03.no_such_check") is None


def test_the_lesson_of_a_notebook_path_as_jupyter_gives_it():
    """JupyterLab's JPY_SESSION_NAME is relative to where it was started (notebooks/, with make lab)."""
    assert pilot.lesson_of_notebook("05_fastapi_sse_endpoint.ipynb") == "05"
    assert pilot.lesson_of_notebook("/home/me/solutions/13_frontend_protocols.ipynb") == "13"
    assert pilot.lesson_of_notebook("Untitled.ipynb") is None and pilot.lesson_of_notebook(None) is None


def test_a_verdict_outside_a_check_is_logged_without_a_lesson(log):
    passed("right")
    (event,) = events(log)
    assert event["kind"] == "pass" and event["lesson"] is None and event["check"] is None


def test_off_under_pytest_and_ci_unless_asked(monkeypatch):
    for name in (pilot.LOG_ENV, "PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    assert pilot.enabled()  # a learner's JupyterLab
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/x.py::test (call)")  # nbmake's kernel inherits it
    assert not pilot.enabled()
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setenv("CI", "true")
    assert not pilot.enabled()
    monkeypatch.setenv(pilot.LOG_ENV, "on")
    assert pilot.enabled()
    monkeypatch.delenv("CI")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv(pilot.LOG_ENV)
    assert not pilot.enabled()


def test_this_test_run_records_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(pilot.LOG_ENV, raising=False)
    monkeypatch.setenv(pilot.FILE_ENV, str(tmp_path / "pilot.jsonl"))
    nb11.check_p99(right_p99)
    assert not (tmp_path / "pilot.jsonl").exists()


def test_setup_outside_a_notebook_is_not_a_lesson(log, monkeypatch):
    """make serve and make serve-prod call setup() too: no kernel, no notebook, no line."""
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setattr(pilot, "_notebook_path", lambda: None)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    pilot.record_setup()
    assert not log.exists()


def test_opt_out(log, monkeypatch):
    monkeypatch.setenv(pilot.LOG_ENV, "off")
    pilot.record_setup()
    nb11.check_p99(right_p99)
    assert not log.exists()


def test_a_log_that_cannot_be_written_never_reaches_the_notebook(tmp_path, log, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(pilot.FILE_ENV, str(blocker / "pilot.jsonl"))  # its parent is a file
    pilot.record_setup()
    nb11.check_p99(right_p99)  # passes, as without a pilot
    with pytest.raises(CheckFailed):  # and a wrong answer still fails with the check's own error
        nb11.check_p99(max)
    assert "✅" in capsys.readouterr().out

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pilot, "_append", broken)
    monkeypatch.setattr(pilot, "_notebook_path", broken)
    pilot.record_setup()
    pilot.record_verdict(True)
    nb11.check_p99(right_p99)


# -- the report ----------------------------------------------------------------------------------

def learner(start: float, lesson: str, steps: list[tuple[float, str, str]], pid: int = 1,
            named: bool = True) -> list[dict]:
    """A synthetic log: a setup at ``start`` minutes, then (minute, kind, exercise) steps."""
    out = [{"ts": start * MIN, "kind": "setup", "lesson": lesson if named else None, "pid": pid}]
    out += [{"ts": (start + minute) * MIN, "kind": kind, "lesson": lesson, "exercise": exercise,
             "check": f"nb{lesson}.check_{exercise}", "pid": pid} for minute, kind, exercise in steps]
    return out


def test_lesson_and_exercise_times_and_failed_attempts():
    log = learner(0, "03", [(10, "fail", "3.1"), (12, "fail", "3.1"), (15, "pass", "3.1"),
                            (16, "pass", "3.1"), (30, "pass", "3.2"), (31, "fail", "3.2")])
    timing = pilot.lesson_timings(log)["03"]
    assert timing.seconds == 30 * MIN
    assert timing.exercises["3.1"].seconds == 15 * MIN and timing.exercises["3.1"].failed == 2
    assert timing.exercises["3.2"].seconds == 15 * MIN and timing.exercises["3.2"].failed == 0


def test_a_setup_without_a_notebook_name_takes_the_lesson_of_its_process():
    log = (learner(0, "02", [(30, "pass", "2.1")], pid=7, named=False)
           + learner(5, "03", [(40, "pass", "3.1")], pid=8, named=False))
    timings = pilot.lesson_timings(log)
    assert timings["02"].seconds == 30 * MIN and timings["03"].seconds == 40 * MIN


def test_report_flags_lessons_outside_twenty_percent_of_the_stated_range():
    stated = {"02": Stated(40, 40, False), "05": Stated(75, 90, False), "09": Stated(95, 110, True)}
    log = (learner(0, "02", [(47, "pass", "2.1")])  # 40 + 17 %: within
           + learner(100, "05", [(58, "pass", "5.1")])  # under 75 - 20 % = 60
           + learner(200, "09", [(133, "pass", "9.1")]))  # over 110 + 20 % = 132
    text = pilot.report({"me.jsonl": log}, stated)
    lines = text.splitlines()
    assert next(line for line in lines if line.startswith("Lesson 02")).endswith("stated 40: within 20%")
    assert "FASTER" in next(line for line in lines if line.startswith("Lesson 05"))
    assert "SLOWER" in next(line for line in lines if line.startswith("Lesson 09"))
    assert "stated 95-110 (estimate)" in text
    assert lines[-1].startswith("Outside ±20% of the stated time: 05, 09.")


def test_several_learners_give_the_median_per_lesson():
    stated = {"03": Stated(40, 40, False)}
    logs = {f"{name}.jsonl": learner(0, "03", [(minutes / 2, "fail", "3.1"), (minutes / 2, "pass", "3.1"),
                                               (minutes, "pass", "3.2")])
            for name, minutes in (("ann", 30), ("bob", 44), ("cy", 90))}
    text = pilot.report(logs, stated)
    assert "Lesson 03: 44 min (n=3: 30, 44, 90); stated 40: within 20%" in text
    assert "Exercise 3.1: 22.0 min, 1 failed attempt(s) (median)" in text


def test_the_command_reads_files_and_the_readme(tmp_path, capsys):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("\n".join(json.dumps(e) for e in learner(0, "00", [(20, "pass", "0.1")])) + "\nnot json\n")
    second.write_text("\n".join(json.dumps(e) for e in learner(0, "00", [(22, "pass", "0.1")])) + "\n")
    assert pilot.main(["--file", str(first), "--file", str(second)]) == 0
    out = capsys.readouterr().out
    assert f"Lesson 00: 21 min (n=2: 20, 22); stated {stated_minutes()['00']}: within 20%" in out
    assert pilot.main(["--file", str(tmp_path / "missing.jsonl")]) == 1


def test_stated_minutes_read_the_readme_table():
    stated = stated_minutes()
    assert stated["05"] == Stated(75, 90, False)
    assert stated["08"].estimate and stated["08"].low == stated["08"].high
