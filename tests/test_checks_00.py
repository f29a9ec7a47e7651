"""The check cell of notebook 00 passes right answers and explains typical wrong ones.

Each answer below is written as a learner would write it in the notebook (the cell's globals
`run_config` and `types`), and run through the check exactly as the check cell calls it.
"""

import asyncio
import contextlib

import pytest
from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from workshop.checks import CheckFailed, nb00

run_config = RunConfig(streaming_mode=StreamingMode.SSE)  # the notebook's


@pytest.fixture
def runner_and_sessions(emulator):
    sessions = InMemorySessionService()
    agent = Agent(name="assistant", model="gemini-3.5-flash", instruction="Answer briefly.")
    return Runner(app_name="workshop", agent=agent, session_service=sessions), sessions


def message(text):
    return types.Content(role="user", parts=[types.Part(text=text)])


# -- right answers, in different styles ------------------------------------------------------

async def solution(runner, user_id, session_id, text):
    pieces = []
    async for event in runner.run_async(
        user_id=user_id, session_id=session_id, new_message=message(text), run_config=run_config
    ):
        if event.partial and event.content and event.content.parts:
            for part in event.content.parts:
                if part.text and not part.thought:
                    print(part.text, end="", flush=True)
                    pieces.append(part.text)
    print()
    return "".join(pieces)


async def skips_the_final_response(runner, user_id, session_id, text):
    """Prints everything but the final response; builds a string; no newline at the end."""
    answer = ""
    stream = runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                              run_config=RunConfig(streaming_mode="sse"))
    async with contextlib.aclosing(stream) as events:
        async for event in events:
            if event.is_final_response() or not event.content:
                continue
            text_now = "".join(p.text or "" for p in event.content.parts or [] if not p.thought)
            print(text_now, end="")
            answer += text_now
    return answer


@pytest.mark.parametrize("right", [solution, skips_the_final_response])
async def test_right_answers_pass(runner_and_sessions, capsys, right):
    await nb00.check_stream_answer(right, *runner_and_sessions)
    out = capsys.readouterr().out
    assert "✅" in out
    assert "\n✅" in out and "\n\n✅" not in out, "the pass line starts on a line of its own"
    assert "1, 2, 3" in out, "the learner's own stream stays visible"


# -- wrong answers, one mistake each -------------------------------------------------------------

async def prints_every_event(runner, user_id, session_id, text):  # the final event repeats it all
    pieces = []
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                        run_config=run_config):
        for part in event.content.parts if event.content and event.content.parts else []:
            if part.text:
                print(part.text, end="")
                if event.partial:
                    pieces.append(part.text)
    return "".join(pieces)


async def forgets_run_config(runner, user_id, session_id, text):
    pieces = []
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text)):
        if event.partial and event.content and event.content.parts:
            for part in event.content.parts:
                print(part.text, end="")
                pieces.append(part.text)
    return "".join(pieces)


async def keeps_the_last_piece(runner, user_id, session_id, text):
    piece = ""
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                        run_config=run_config):
        if event.partial and event.content and event.content.parts and event.content.parts[0].text:
            piece = event.content.parts[0].text
            print(piece, end="")
    return piece


async def returns_inside_the_loop(runner, user_id, session_id, text):
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                        run_config=run_config):
        if event.partial and event.content and event.content.parts:
            print(event.content.parts[0].text, end="")
            return event.content.parts[0].text
    return ""


async def prints_each_piece_on_a_line(runner, user_id, session_id, text):
    pieces = []
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                        run_config=run_config):
        if event.partial and event.content and event.content.parts:
            for part in event.content.parts:
                print(part.text)
                pieces.append(part.text)
    return "".join(pieces)


async def prints_at_the_end(runner, user_id, session_id, text):
    answer = ""
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                        run_config=run_config):
        if event.is_final_response():
            answer = event.content.parts[0].text
    print(answer)
    return answer


async def returns_nothing(runner, user_id, session_id, text):
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message(text),
                                        run_config=run_config):
        if event.partial and event.content and event.content.parts:
            print(event.content.parts[0].text, end="")


async def uses_its_own_runner_call_nowhere(runner, user_id, session_id, text):
    print("1, 2, 3", end="")
    await asyncio.sleep(0)
    return "1, 2, 3"


@pytest.mark.parametrize(("wrong", "message_"), [
    (prints_every_event, "printed twice"),
    (forgets_run_config, "StreamingMode.SSE"),
    (keeps_the_last_piece, "only the last piece"),
    (returns_inside_the_loop, "stopped before its end"),
    (prints_each_piece_on_a_line, "on a line of its own"),
    (prints_at_the_end, "not streaming"),
    (returns_nothing, "not a string"),
    (uses_its_own_runner_call_nowhere, "never called runner.run_async"),
])
async def test_wrong_answers_are_explained(runner_and_sessions, capsys, wrong, message_):
    with pytest.raises(CheckFailed, match=message_):
        await nb00.check_stream_answer(wrong, *runner_and_sessions)
    assert "Hint:" in capsys.readouterr().out


async def test_forgotten_run_config_is_named_before_anything_else(runner_and_sessions, capsys):
    with pytest.raises(CheckFailed) as failure:
        await nb00.check_stream_answer(forgets_run_config, *runner_and_sessions)
    assert "no streaming_mode" in str(failure.value) and "printed" not in str(failure.value)


async def test_a_failure_leaves_the_learners_output_visible(runner_and_sessions, capsys):
    """The learner must see the doubled text the check complains about."""
    with pytest.raises(CheckFailed, match="printed twice"):
        await nb00.check_stream_answer(prints_every_event, *runner_and_sessions)
    out = capsys.readouterr().out
    stream, verdict = out.split("❌")
    assert stream.count("1, 2, 3, 4") == 2 and stream.endswith("\n")


async def test_unfinished_exercise_raises_not_implemented(runner_and_sessions):
    async def stub(*args):
        raise NotImplementedError("Exercise 0.1: print each partial text once and return the whole answer")

    with pytest.raises(NotImplementedError):
        await nb00.check_stream_answer(stub, *runner_and_sessions)
