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


def loop_style(state, event_json):
    """Another right answer: one loop over the parts, setdefault, then drop an empty message."""
    event = json.loads(event_json)
    pieces = {"thoughts": "", "text": ""}
    for part in parts_of(event):
        pieces["thoughts" if part.get("thought") else "text"] += part.get("text") or ""
    if not (pieces["thoughts"] or pieces["text"]) and event["id"] not in state:
        return state
    message = state.setdefault(event["id"], {"thoughts": "", "text": ""})
    for key, piece in pieces.items():
        message[key] = message[key] + piece if event.get("partial", False) else piece
    return state


@pytest.mark.parametrize("right", [nb06.reference_render, loop_style], ids=["reference", "loop"])
async def test_right_answers_pass(recorded, capsys, right):
    nb06.check_render(right, recorded)
    out = capsys.readouterr().out
    assert "✅" in out and "reads once" in out


def partials_only(*, first_part=False):
    """Shows partial events only: the aggregate repeats them, so skipping it looks harmless."""
    def render(state, event_json):
        event = json.loads(event_json)
        parts = parts_of(event)[:1] if first_part else parts_of(event)
        if not event.get("partial"):
            return state
        for part in parts:
            if part.get("text"):
                message = state.setdefault(event["id"], {"thoughts": "", "text": ""})
                message["thoughts" if part.get("thought") else "text"] += part["text"]
        return state

    return render


def subscripts_partial(state, event_json):
    event = json.loads(event_json)
    parts = parts_of(event)
    text = "".join(p["text"] for p in parts if p.get("text") and not p.get("thought"))
    thoughts = "".join(p["text"] for p in parts if p.get("text") and p.get("thought"))
    if not (text or thoughts) and event["id"] not in state:
        return state
    message = state.setdefault(event["id"], {"thoughts": "", "text": ""})
    if event["partial"]:  # absent, not false, on the aggregate
        message["text"] += text
        message["thoughts"] += thoughts
    else:
        message["text"], message["thoughts"] = text, thoughts
    return state


@pytest.mark.parametrize(("wrong", "message"), [
    (make(append_final=True), "appended"),
    (make(replace_partial=True), "only the latest piece"),
    (make(mix_thoughts=True), "thoughts ended up in the answer"),
    (make(first_part_only=True), "Join every text part"),
    (make(key="invocationId"), "keyed by Event id"),
    (make(empty_messages=True), "created an empty message"),
    (make(return_none=True), "returned None"),
    (partials_only(), "Never skip non-partial events"),
    (partials_only(first_part=True), "Join every text part"),
    (subscripts_partial, "KeyError: 'partial'.*event.get\\('partial'\\)"),
], ids=["appends-aggregate", "replaces-partials", "mixes-thoughts", "parts-0", "keyed-by-invocation",
        "empty-messages", "returns-none", "partials-only", "parts-0-partials-only", "event['partial']"])
async def test_wrong_answers_are_explained(recorded, capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        nb06.check_render(wrong, recorded)
    assert "Hint:" in capsys.readouterr().out


async def test_the_recorded_turn_has_what_the_check_needs(recorded):
    events = [json.loads(e) for e in recorded]
    assert sum(1 for e in events if e.get("partial") and any(p.get("text") for p in parts_of(e))) >= 2
    assert any("functionCall" in p for e in events for p in parts_of(e))


async def test_unfinished_exercise_raises_not_implemented(recorded):
    def stub(state, event_json):
        raise NotImplementedError("Exercise 6.1: update the message with this event's id in place")

    with pytest.raises(NotImplementedError):
        nb06.check_render(stub, recorded)


def _cases(test) -> int:
    return next(len(mark.args[1]) for mark in test.pytestmark if mark.name == "parametrize")


def test_each_exercise_holds_five_mistakes_and_two_right_answers():
    """The issue-12 floor: a check is tested with at least five distinct wrong answers and at
    least two right ones written in different styles."""
    for right, wrong in [(test_right_answers_pass, test_wrong_answers_are_explained)]:
        assert _cases(right) >= 2 and _cases(wrong) >= 5, (right.__name__, wrong.__name__)
