"""Notebook 10: its check cells pass the solutions and explain typical wrong answers, and the
test project the notebook writes (taken from its %%writefile cells, so the two cannot drift)
passes under pytest."""

import asyncio
import importlib.util
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

from workshop.checks import CheckFailed, nb10
from workshop.notebooks import REPO_ROOT

NOTEBOOK = REPO_ROOT / "solutions" / "10_testing_streaming_agents.ipynb"
WRITEFILE = re.compile(r"^%%writefile build/lesson10/(?P<name>[\w.]+)\n")
PROJECT_FILES = {"chat_app.py", "streaming_asserts.py", "pytest.ini", "conftest.py", "test_streaming_agent.py"}


def notebook_cells() -> list[str]:
    return [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code"]


def write_project(folder: Path) -> list[str]:
    """Write the notebook's test project into ``folder``, as its %%writefile cells do."""
    names = []
    for source in notebook_cells():
        match = WRITEFILE.match(source)
        if match:
            (folder / match["name"]).write_text(source[match.end():] + "\n")
            names.append(match["name"])
    return names


def cell_defining(name: str) -> str:
    return next(source for source in notebook_cells() if f"def {name}(" in source)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory) -> dict:
    """The notebook's namespace for its exercises: the helpers it writes, and its solutions."""
    folder = tmp_path_factory.mktemp("lesson10")
    write_project(folder)
    spec = importlib.util.spec_from_file_location("streaming_asserts", folder / "streaming_asserts.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    from reference_server import get_weather

    namespace = {**vars(helpers), "get_weather": get_weather}
    exec(cell_defining("assert_streamed_once"), namespace)
    exec(cell_defining("test_weather_in_london"), namespace)
    return namespace


@pytest.fixture(scope="module")
def streams():
    return asyncio.run(nb10.record_streams())


# -- the test project ---------------------------------------------------------------------------
def test_the_notebooks_test_project_passes_under_pytest(tmp_path):
    assert sorted(write_project(tmp_path)) == sorted(PROJECT_FILES)
    command = [sys.executable, "-m", "pytest", str(tmp_path), "-q", "--color=no", "-p", "no:cacheprovider"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "7 passed" in result.stdout


def test_the_notebook_runs_pytest_on_that_project():
    runner = next(source for source in notebook_cells() if "subprocess.run(" in source)
    assert '"pytest", str(TEST_DIR)' in runner and "assert result.returncode == 0" in runner


# -- Exercise 10.1 ------------------------------------------------------------------------------
def grouped_by_id(ns):
    """Another right answer: one pass that groups the events by id, no helper."""
    def check(events):
        finals = [i for i, e in enumerate(events) if e.is_final_response()]
        assert finals == [len(events) - 1], f"final responses at {finals} of {len(events)} events"
        streamed, whole = defaultdict(str), defaultdict(list)
        for event in events:
            if event.partial:
                streamed[event.id] += ns["answer_text"](event)
            else:
                whole[event.id].append(ns["answer_text"](event))
        for response_id, text in streamed.items():
            assert whole[response_id] == [text], f"{response_id}: streamed {text!r}, then {whole[response_id]}"
    return check


@pytest.mark.parametrize("right", [lambda ns: ns["assert_streamed_once"], grouped_by_id],
                         ids=["solution", "grouped-by-id"])
async def test_assert_streamed_once_solution_passes(lesson, streams, capsys, right):
    await nb10.check_streamed_once(right(lesson), streams)
    assert "✅" in capsys.readouterr().out


def only_one_final(ns):
    return lambda events: ns["assert_one_final"](events)


def last_response_only(ns):
    return lambda events: ns["assert_partials_then_one_final"](events)


def counts_events(ns):
    def check(events):
        assert sum(1 for e in events if e.partial) >= 5, "too few chunks"
        ns["assert_partials_then_one_final"](events)
    return check


def last_event_only(ns):
    def check(events):
        final = events[-1]
        assert ns["streamed_text"](events, final.id) == ns["answer_text"](final)
    return check


def crashes(ns):
    def check(events):
        final = next(e for e in events if e.is_final_response())
        assert ns["streamed_text"](events, final.id) == ns["answer_text"](final)
    return check


@pytest.mark.parametrize(("wrong", "message"), [
    (only_one_final, "lost a partial event"),
    (last_response_only, "never got its aggregated event"),
    (counts_events, "rejected a correct stream .a plain answer in bigger chunks"),
    (last_event_only, "final event arrived twice"),
    (crashes, "raised StopIteration"),
])
async def test_assert_streamed_once_wrong_answers_are_explained(lesson, streams, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb10.check_streamed_once(wrong(lesson), streams)
    assert "Hint:" in capsys.readouterr().out


async def test_assert_streamed_once_unfinished_raises_not_implemented(streams):
    def stub(events):
        raise NotImplementedError("Exercise 10.1: one final at the end; ...")

    with pytest.raises(NotImplementedError):
        await nb10.check_streamed_once(stub, streams)


# -- Exercise 10.2 ------------------------------------------------------------------------------
def without_helpers(ns):
    """Another right answer: no helper but collect_turn, every assertion written out."""
    async def test(emulator, agent):
        emulator.script({"function_call": {"name": "get_weather", "args": {"city": "London"}}},
                        {"text": "Light rain in London."})
        events = await ns["collect_turn"](agent, "What's the weather in London?")
        calls = [c for e in events if not e.partial for c in e.get_function_calls()]
        assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "London"})]
        results = [r.response for e in events for r in e.get_function_responses()]
        assert results == [ns["get_weather"]("London")]
        finals = [e for e in events if e.is_final_response()]
        assert len(finals) == 1 and finals[0] is events[-1]
        final = finals[0]
        streamed = "".join(p.text for e in events if e.partial and e.id == final.id
                           for p in e.content.parts if p.text and not p.thought)
        assert streamed == "".join(p.text for p in final.content.parts if p.text) == "Light rain in London."
    return test


@pytest.mark.parametrize("right", [lambda ns: ns["test_weather_in_london"], without_helpers],
                         ids=["solution", "without-helpers"])
async def test_weather_test_solution_passes(lesson, capsys, right):
    await nb10.check_weather_test(right(lesson))
    out = capsys.readouterr().out
    assert "✅" in out and "all 6 broken ones" in out
    assert "not found" not in out  # ADK's warning for the agent without the tool is kept quiet


def scripted(emulator):
    emulator.script({"function_call": {"name": "get_weather", "args": {"city": "London"}}},
                    {"text": "Light rain in London."})


def no_result_check(ns):
    async def test(emulator, agent):
        scripted(emulator)
        events = await ns["collect_turn"](agent, "What's the weather in London?")
        ns["assert_tool_called_once"](events, "get_weather", {"city": "London"})
        assert ns["assert_partials_then_one_final"](events) == "Light rain in London."
    return test


def no_final_check(ns):
    async def test(emulator, agent):
        scripted(emulator)
        events = await ns["collect_turn"](agent, "What's the weather in London?")
        result = ns["assert_tool_called_once"](events, "get_weather", {"city": "London"})
        assert result == ns["get_weather"]("London")
    return test


def unscripted(ns):
    async def test(emulator, agent):
        events = await ns["collect_turn"](agent, "What's the weather in London?")
        result = ns["assert_tool_called_once"](events, "get_weather", {"city": "London"})
        assert result == ns["get_weather"]("London")
        ns["assert_partials_then_one_final"](events)
    return test


def final_text_only(ns):  # never checks that the answer streamed
    async def test(emulator, agent):
        scripted(emulator)
        events = await ns["collect_turn"](agent, "What's the weather in London?")
        result = ns["assert_tool_called_once"](events, "get_weather", {"city": "London"})
        assert result == ns["get_weather"]("London")
        assert ns["answer_text"](ns["assert_one_final"](events)) == "Light rain in London."
    return test


def no_answer_compare(ns):  # streamed once, but never compared with the scripted text
    async def test(emulator, agent):
        scripted(emulator)
        events = await ns["collect_turn"](agent, "What's the weather in London?")
        result = ns["assert_tool_called_once"](events, "get_weather", {"city": "London"})
        assert result == ns["get_weather"]("London")
        ns["assert_partials_then_one_final"](events)
    return test


def wrong_expectation(ns):
    async def test(emulator, agent):
        scripted(emulator)
        events = await ns["collect_turn"](agent, "What's the weather in London?")
        ns["assert_tool_called_once"](events, "get_weather", {"city": "Paris"})
    return test


@pytest.mark.parametrize(("wrong", "message"), [
    (no_result_check, "forgot to register get_weather"),
    (no_final_check, "second final message"),
    (unscripted, "did not script the model"),
    (wrong_expectation, "fails against a correct agent"),
    (final_text_only, "holds the answer back"),
    (no_answer_compare, "rewrites the answer"),
])
async def test_weather_test_wrong_answers_are_explained(lesson, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb10.check_weather_test(wrong(lesson))
    assert "Hint:" in capsys.readouterr().out


async def test_weather_test_unfinished_raises_not_implemented():
    async def stub(emulator, agent):
        raise NotImplementedError("Exercise 10.2: script the call and the answer, ...")

    with pytest.raises(NotImplementedError):
        await nb10.check_weather_test(stub)


def test_the_check_restores_the_environment(emulator):
    import os

    before = {name: os.environ.get(name) for name in ("GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY")}
    with nb10.offline_emulator() as own:
        assert os.environ["GOOGLE_GEMINI_BASE_URL"] == own.url != emulator.url
    assert {name: os.environ.get(name) for name in before} == before


def _cases(test) -> int:
    return next(len(mark.args[1]) for mark in test.pytestmark if mark.name == "parametrize")


def test_each_exercise_holds_five_mistakes_and_two_right_answers():
    """The issue-12 floor: a check is tested with at least five distinct wrong answers and at
    least two right ones written in different styles."""
    for right, wrong in [(test_assert_streamed_once_solution_passes,
                          test_assert_streamed_once_wrong_answers_are_explained),
                         (test_weather_test_solution_passes, test_weather_test_wrong_answers_are_explained)]:
        assert _cases(right) >= 2 and _cases(wrong) >= 5, (right.__name__, wrong.__name__)
