"""The check cell of notebook 08 passes a Stop button that stops and explains ones that don't."""

import ipywidgets as widgets
import pytest
from google.adk.agents import Agent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService

from workshop.backend import Backend
from workshop.checks import CheckFailed, nb08


@pytest.fixture
def runner_and_backend(emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)  # long enough to press Stop mid-answer
    runner = Runner(app_name="workshop", agent=Agent(name="a", model="gemini-3.5-flash"),
                    session_service=InMemorySessionService())
    return runner, Backend("emulator", "gemini-3.5-flash", emulator.url, emulator)


def solution(task):
    button = widgets.Button(description="Stop")
    button.on_click(lambda _b: task.cancel())
    task.add_done_callback(lambda _t: setattr(button, "disabled", True))
    return button


def does_nothing(task):
    return widgets.Button(description="Stop")


def only_hides(task):
    button = widgets.Button(description="Stop")
    output = widgets.Output()
    button.on_click(lambda _b: setattr(output.layout, "display", "none"))  # hidden, still running
    return button


def never_disables(task):
    button = widgets.Button(description="Stop")
    button.on_click(lambda _b: task.cancel())
    return button


def disables_on_click_only(task):
    button = widgets.Button(description="Stop")

    def stop(_b):
        task.cancel()
        button.disabled = True

    button.on_click(stop)
    return button


def returns_a_callback(task):
    return lambda: task.cancel()


def starts_disabled(task):
    button = solution(task)
    button.disabled = True
    return button


def named_handlers(task):
    """Another right answer: named handlers, a guard against a finished task, a new label."""
    button = widgets.Button(description="Stop", icon="stop", button_style="danger")

    def on_stop(_button):
        if not task.done():
            task.cancel()

    def on_end(_task):
        button.disabled = True
        button.description = "Stopped" if _task.cancelled() else "Done"

    button.on_click(on_stop)
    task.add_done_callback(on_end)
    return button


def cancels_at_once(task):
    button = widgets.Button(description="Stop")
    button.on_click(task.cancel())  # called now, not on click
    task.add_done_callback(lambda _t: setattr(button, "disabled", True))
    return button


@pytest.mark.parametrize("right", [solution, named_handlers], ids=["solution", "named-handlers"])
async def test_a_stop_button_that_stops_passes(runner_and_backend, capsys, right):
    await nb08.check_stop_button(right, *runner_and_backend)
    out = capsys.readouterr().out
    assert "✅" in out and "client_closed" in out


@pytest.mark.parametrize(("wrong", "message"), [
    (does_nothing, "still running 5 s after Stop"),
    (only_hides, "Hiding the output is not stopping"),
    (never_disables, "still enabled"),
    (disables_on_click_only, "ends by itself"),
    (returns_a_callback, "not an ipywidgets Button"),
    (starts_disabled, "disabled while the turn is running"),
    (cancels_at_once, "cancelled before Stop was clicked"),
], ids=["does-nothing", "only-hides", "never-disables", "disables-on-click-only", "returns-callback",
        "starts-disabled", "cancels-at-once"])
async def test_wrong_stop_buttons_are_explained(runner_and_backend, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb08.check_stop_button(wrong, *runner_and_backend)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_stop_button_raises_not_implemented(runner_and_backend):
    def stub(task):
        raise NotImplementedError("Exercise 8.1: cancel the task on click; disable the button when the turn ends")

    with pytest.raises(NotImplementedError):
        await nb08.check_stop_button(stub, *runner_and_backend)


async def test_no_task_is_left_running(runner_and_backend):
    import asyncio

    with pytest.raises(CheckFailed):
        await nb08.check_stop_button(does_nothing, *runner_and_backend)
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftover == []


def _cases(test) -> int:
    return next(len(mark.args[1]) for mark in test.pytestmark if mark.name == "parametrize")


def test_each_exercise_holds_five_mistakes_and_two_right_answers():
    """The issue-12 floor: a check is tested with at least five distinct wrong answers and at
    least two right ones written in different styles."""
    for right, wrong in [(test_a_stop_button_that_stops_passes, test_wrong_stop_buttons_are_explained)]:
        assert _cases(right) >= 2 and _cases(wrong) >= 5, (right.__name__, wrong.__name__)
