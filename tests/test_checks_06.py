"""The check cell of notebook 06 passes a right answer and explains typical wrong ones."""

import json

import pytest
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from reference_server import build_agent
from workshop.checks import CheckFailed, nb06


@pytest.fixture
async def recorded(emulator) -> list[str]:
    """A real tool-call turn's events, serialized as the reference server sends them."""
    sessions = InMemorySessionService()
    runner = Runner(app_name="workshop", agent=build_agent("gemini-3.5-flash"), session_service=sessions)
    session = await sessions.create_session(app_name="workshop", user_id="u")
    message = types.Content(role="user", parts=[types.Part(text="What's the weather in Paris?")])
    events = [
        event.model_dump_json(exclude_none=True, by_alias=True)
        async for event in runner.run_async(user_id="u", session_id=session.id, new_message=message,
                                            run_config=RunConfig(streaming_mode=StreamingMode.SSE))
    ]
    await runner.close()
    return events


def parts_of(event: dict) -> list[dict]:
    return (event.get("content") or {}).get("parts") or []


def make(*, append_final=False, replace_partial=False, mix_thoughts=False, first_part_only=False,
         key="id", empty_messages=False, return_none=False):
    def render(state, event_json):
        event = json.loads(event_json)
        parts = parts_of(event)
        if first_part_only:
            parts = parts[:1]
        thoughts = "".join(p["text"] for p in parts if p.get("text") and p.get("thought") and not mix_thoughts)
        text = "".join(p["text"] for p in parts if p.get("text") and (mix_thoughts or not p.get("thought")))
        message = state.get(event[key])
        if message is None:
            if not (thoughts or text or empty_messages):
                return None if return_none else state
            message = state[event[key]] = {"thoughts": "", "text": ""}
        if event.get("partial") and not replace_partial:
            message["thoughts"] += thoughts
            message["text"] += text
        elif event.get("partial") or not append_final:
            message["thoughts"], message["text"] = thoughts, text
        else:
            message["thoughts"] += thoughts
            message["text"] += text
        return None if return_none else state

    return render


async def test_right_answer_passes(recorded, capsys):
    nb06.check_render(nb06.reference_render, recorded)
    out = capsys.readouterr().out
    assert "✅" in out and "reads once" in out


@pytest.mark.parametrize(("wrong", "message"), [
    (make(append_final=True), "appended"),
    (make(replace_partial=True), "only the latest piece"),
    (make(mix_thoughts=True), "thoughts ended up in the answer"),
    (make(first_part_only=True), "Join every text part"),
    (make(key="invocationId"), "keyed by Event id"),
    (make(empty_messages=True), "created an empty message"),
    (make(return_none=True), "returned None"),
])
async def test_wrong_answers_are_explained(recorded, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        nb06.check_render(wrong, recorded)
    assert "Hint:" in capsys.readouterr().out


async def test_the_recorded_turn_has_what_the_check_needs(recorded):
    events = [json.loads(e) for e in recorded]
    assert sum(1 for e in events if e.get("partial") and any(p.get("text") for p in parts_of(e))) >= 5
    assert any("functionCall" in p for e in events for p in parts_of(e))


async def test_unfinished_exercise_raises_not_implemented(recorded):
    def stub(state, event_json):
        raise NotImplementedError("Exercise 6.1: update the message with this event's id in place")

    with pytest.raises(NotImplementedError):
        nb06.check_render(stub, recorded)
