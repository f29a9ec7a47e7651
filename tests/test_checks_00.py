"""The check cell of notebook 00 passes a right answer and explains typical wrong ones."""

import pytest
from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from workshop.checks import CheckFailed, nb00

SSE = RunConfig(streaming_mode=StreamingMode.SSE)


@pytest.fixture
def runner_and_sessions(emulator):
    sessions = InMemorySessionService()
    return Runner(app_name="workshop", agent=Agent(name="a", model="gemini-3.5-flash"), session_service=sessions), sessions


def make(print_partial=True, print_final=False, keep="all"):
    async def stream_answer(runner, user_id, session_id, text):
        pieces = []
        message = types.Content(role="user", parts=[types.Part(text=text)])
        async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=message, run_config=SSE):
            if not (event.content and event.content.parts):
                continue
            for part in event.content.parts:
                if part.text and ((event.partial and print_partial) or (not event.partial and print_final)):
                    print(part.text, end="")
                    pieces.append(part.text)
        print()
        return {"all": "".join(pieces), "last": pieces[-1] if pieces else "", "none": None}[keep]

    return stream_answer


async def test_right_answer_passes(runner_and_sessions, capsys):
    await nb00.check_stream_answer(make(), *runner_and_sessions)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (make(print_final=True), "printed twice"),
    (make(keep="last"), "only the last piece"),
    (make(keep="none"), "not a string"),
    (make(print_partial=False, print_final=True, keep="all"), "not streaming"),
])
async def test_wrong_answers_are_explained(runner_and_sessions, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        await nb00.check_stream_answer(wrong, *runner_and_sessions)
    assert "Hint:" in capsys.readouterr().out


async def test_unfinished_exercise_raises_not_implemented(runner_and_sessions):
    async def stub(*args):
        raise NotImplementedError("Exercise 0.1: print each partial text once and return the whole answer")

    with pytest.raises(NotImplementedError):
        await nb00.check_stream_answer(stub, *runner_and_sessions)
