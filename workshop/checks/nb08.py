"""Checks for 08_live_chat_widget."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.genai import types

from ._report import fail, passed

SSE = RunConfig(streaming_mode=StreamingMode.SSE)
LONG_PROMPT = "Explain Server-Sent Events in 300 words"
SHORT_PROMPT = "Hello"
STOP_WAIT_S = 5.0


class _Turn:
    """A turn running as a task, the way the chat widget runs one, with what it saw."""

    def __init__(self, runner: Runner, user_id: str, session_id: str, text: str) -> None:
        self.events = 0
        self.closed = False
        self.cancelled = False
        self.task = asyncio.get_running_loop().create_task(
            self._run(runner, user_id, session_id, text))

    async def _run(self, runner: Runner, user_id: str, session_id: str, text: str) -> None:
        message = types.Content(role="user", parts=[types.Part(text=text)])
        stream = runner.run_async(user_id=user_id, session_id=session_id, new_message=message,
                                  run_config=SSE)
        try:
            async with contextlib.aclosing(stream) as events:
                async for _event in events:
                    self.events += 1
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.closed = stream.ag_frame is None  # the generator is finished: closed


async def _settled(predicate: Callable[[], bool], seconds: float) -> bool:
    """Wait up to ``seconds`` for ``predicate()`` to hold."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while not predicate():
                await asyncio.sleep(0.02)
    return predicate()


async def _outcome(emulator: Any, number: int) -> str:
    """The emulator's outcome of its request ``number`` once it is no longer running."""
    def record():
        return next((r for r in emulator.requests if r.number == number), None)

    await _settled(lambda: (r := record()) is not None and r.outcome != "running", 10)
    found = record()
    return found.outcome if found else "missing"


async def check_stop_button(stop_button_for: Callable, runner: Runner, backend: Any,
                            user_id: str = "learner") -> None:
    """Start a long turn, press the learner's Stop button, and prove the turn really stopped."""
    sessions = runner.session_service
    session = await sessions.create_session(app_name=runner.app_name, user_id=user_id)
    emulator = backend.emulator if backend.offline else None
    first_request = emulator.stats()["requests"] + 1 if emulator else 0  # the turn's request

    turn = _Turn(runner, user_id, session.id, LONG_PROMPT)
    try:
        button = stop_button_for(turn.task)
        if not isinstance(button, widgets.Button):
            fail(f"stop_button_for returned {type(button).__name__}, not an ipywidgets Button.",
                 "Create widgets.Button(description='Stop'), register on_click, return the button.")
        if button.disabled:
            fail("The Stop button is disabled while the turn is running.",
                 "Enable it while the turn runs; disable it once the turn has ended.")
        if not await _settled(lambda: turn.events >= 3 or turn.task.done(), 30):
            fail("The turn produced no events within 30 s.", "Is the backend reachable?")
        if turn.task.done() and (turn.cancelled or turn.task.cancelled()):
            fail("The turn was cancelled before Stop was clicked.",
                 "Give on_click a function to call later, not the result of calling one now: "
                 "button.on_click(lambda _button: task.cancel()), not "
                 "button.on_click(task.cancel()).")
        if turn.task.done():
            fail("The turn ended before Stop could be pressed.",
                 f"The check needs a long answer; does {LONG_PROMPT!r} get one?")
        button.click()  # what the browser's click does, through the same on_click handlers
        # A cancelled task ends within milliseconds; 5 s so a loaded machine (a process paused
        # for 2-3 s) never fails a right answer. A wrong one waits that long, or to its end.
        if not await _settled(turn.task.done, STOP_WAIT_S):
            fail(f"The turn was still running {STOP_WAIT_S:.0f} s after Stop was clicked.",
                 "Hiding the output is not stopping: cancel the task that runs the turn "
                 "(task.cancel()), so run_async's generator is closed and the model request ends.")
        if not turn.cancelled:
            fail("The turn ran to its end after Stop was clicked: it was not cancelled.",
                 "Call task.cancel() in the click handler.")
        if not button.disabled:
            fail("After Stop the button is still enabled.",
                 "Set button.disabled = True once the turn has ended, so nobody stops it twice.")
        stopped_outcome = await _outcome(emulator, first_request) if emulator else None
    finally:
        if not turn.task.done():
            turn.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await turn.task
    if emulator and stopped_outcome != "client_closed":
        fail(f"The model's request ended as {stopped_outcome!r}, not 'client_closed'.",
             "Cancel the task while it streams; the turn must close its stream (aclosing).")

    # A turn that ends by itself should leave a disabled button too.
    short = _Turn(runner, user_id, session.id, SHORT_PROMPT)
    short_button = stop_button_for(short.task)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(short.task), 30)
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    if not short_button.disabled:
        fail("When a turn ends by itself, its Stop button stays enabled.",
             "task.add_done_callback(lambda task: setattr(button, 'disabled', True)) covers "
             "both endings: a finished turn and a stopped one.")
    where = (f"the emulator saw the request end as {stopped_outcome!r}" if emulator
             else "the turn's task was cancelled")
    passed(f"Stop cancelled the turn after {turn.events} events and closed run_async's generator "
           f"(closed: {turn.closed}); {where}; the button disabled itself both times.")
