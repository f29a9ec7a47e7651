"""Checks for 13_frontend_protocols."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable

from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.models import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from reference_server.ai_sdk import UIMessageMapper

from .. import ui_messages
from ._report import fail, passed

SSE = RunConfig(streaming_mode=StreamingMode.SSE)
THINKING = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))


def get_weather(city: str) -> dict:
    """Get the current weather in a city."""
    return {"city": city, "forecast": "sunny", "temperature_c": 21}


def _reply_whole(callback_context, llm_request) -> LlmResponse:
    """A before_model_callback: the reply arrives in one piece, no partial event before it."""
    return LlmResponse(content=types.Content(role="model", parts=[
        types.Part(text="We are closed today; back tomorrow at nine.")]))


async def record_turn(agent: Agent, text: str) -> list[dict]:
    """One turn's ADK events as the native endpoint sends them (camelCase JSON, no nulls)."""
    runner = Runner(app_name="check13", agent=agent, session_service=InMemorySessionService(),
                    auto_create_session=True)
    message = types.Content(role="user", parts=[types.Part(text=text)])
    async with contextlib.aclosing(runner.run_async(
            user_id="learner", session_id="check", new_message=message, run_config=SSE)) as run:
        return [json.loads(e.model_dump_json(exclude_none=True, by_alias=True)) async for e in run]


async def recorded_turns(model: str) -> list[tuple[str, list[dict]]]:
    """Four real turns: text; thoughts then text; text, a tool call and text; a reply that
    arrives whole (a callback's)."""
    plain = Agent(name="assistant", model=model)
    thinker = Agent(name="thinker", model=model, generate_content_config=THINKING)
    weather = Agent(name="weather", model=model, tools=[get_weather])
    closed = Agent(name="closed", model=model, before_model_callback=_reply_whole)
    return [
        ("text", await record_turn(plain, "Count to 8")),
        ("thoughts then text", await record_turn(thinker, "What is the capital of France?")),
        ("text, a tool call, text", await record_turn(weather, "Explain how you check the weather in Paris")),
        ("a reply that arrives whole", await record_turn(closed, "Are you open?")),
    ]


def reference_chunks(events: list[dict]) -> list[dict]:
    """The reference server's mapping (reference_server/ai_sdk.py) of a turn that ended well."""
    mapper = UIMessageMapper("msg-1")
    chunks = mapper.start()
    for event in events:
        chunks += mapper.event(event)
    return chunks + mapper.end("done", {"events": len(events)})


def _shape(message: dict | None) -> list[dict]:
    """What a UI renders of the message: each part's type, text or tool state, input, output."""
    shape = []
    for part in (message or {}).get("parts", []):
        kind = part.get("type", "")
        if kind in ("text", "reasoning"):
            shape.append({"type": kind, "text": part.get("text"), "state": part.get("state")})
        elif kind.startswith("tool-") or kind == "dynamic-tool":
            shape.append({"type": kind, "state": part.get("state"), "input": part.get("input"),
                          "output": part.get("output")})
    return shape


def diagnose(got: list[dict], want: list[dict]) -> tuple[str, str]:
    """What differs between the learner's message and the expected one, and a hint."""
    got_texts = [p for p in got if p["type"] == "text"]
    want_text = "".join(p["text"] for p in want if p["type"] == "text")
    got_text = "".join(p["text"] or "" for p in got_texts)
    want_thoughts = "".join(p["text"] for p in want if p["type"] == "reasoning")
    if want_text and got_text.count(want_text[:20]) >= 2 or (want_text and got_text == want_text * 2):
        return (f"the answer appears twice: {got_text[:70]!r}...",
                "The non-partial event repeats the whole response: send a delta only for what "
                "the partial events of the same event id did not already show.")
    if want_thoughts and want_thoughts in got_text:
        return ("the model's thoughts ended up in the answer text.",
                "Parts with \"thought\": true go into reasoning-start/-delta/-end, not text-*.")
    if want_thoughts and not any(p["type"] == "reasoning" for p in got):
        return ("the thoughts are missing: no reasoning part.",
                "Send thought text as reasoning-start, reasoning-delta and reasoning-end chunks.")
    if len(got_text) < len(want_text):
        return (f"the answer is {got_text[:70]!r}, but should be {want_text[:70]!r}.",
                "A response can arrive whole in one non-partial event, with no partial event "
                "before it: send what the pieces of its event id did not show, not nothing.")
    want_tools = [p for p in want if p["type"].startswith("tool-")]
    got_tools = [p for p in got if p["type"].startswith("tool-")]
    if len(got_tools) != len(want_tools):
        return (f"the message has {len(got_tools)} tool part(s), expected {len(want_tools)}.",
                "A non-partial functionCall part becomes tool-input-start then "
                "tool-input-available, with toolCallId = the call's id; partial calls are not run.")
    for g, w in zip(got_tools, want_tools, strict=True):
        if g["state"] != w["state"]:
            return (f"the tool part ends in state {g['state']!r}, expected {w['state']!r}.",
                    "A functionResponse part becomes tool-output-available with the same "
                    "toolCallId (the response's id) and output = its response.")
        if g != w:
            return (f"the tool part is {g}, expected {w}.",
                    "input is the call's args; output is the functionResponse's response.")
    not_done = [p for p in got if p["type"] in ("text", "reasoning") and p["state"] != "done"]
    if not_done:
        return (f"a {not_done[0]['type']} part is still 'streaming' at the end.",
                "Close every block you open: text-end (or reasoning-end) with its id, before "
                "a tool call, another response, and the finish.")
    return (f"the message's parts are {got}, expected {want}.",
            "One text part per model response, reasoning apart, a tool part per call.")


async def check_to_ui_chunks(to_ui_chunks: Callable[[list[dict]], list[dict]], model: str) -> None:
    """Record four real turns, then ``judge`` the learner's mapping on them."""
    judge(to_ui_chunks, await recorded_turns(model))


def judge(to_ui_chunks: Callable[[list[dict]], list[dict]],
          turns: list[tuple[str, list[dict]]]) -> None:
    """Run the learner's mapping over recorded turns and read each result with the AI SDK's
    client (the real one when node and tests/js/node_modules are there); compare the message
    the client builds with the one the reference mapping makes it build."""
    reader = ""
    for label, events in turns:
        try:
            chunks = to_ui_chunks(copy.deepcopy(events))
        except NotImplementedError:
            raise
        except Exception as error:
            fail(f"to_ui_chunks raised {type(error).__name__}: {error} on the turn '{label}'.",
                 "Events without content, or whose parts hold a functionCall or a "
                 "functionResponse instead of text, are normal: handle every part kind.")
        if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
            fail(f"to_ui_chunks returned {type(chunks).__name__}, not a list of dicts ('{label}').",
                 "Return the chunks as a list of dicts, e.g. {'type': 'text-delta', 'id': ..., "
                 "'delta': ...}.")
        reading, reader = ui_messages.read(chunks)
        if reading["errors"]:
            first = reading["errors"][0].splitlines()[0][:200]
            fail(f"the client could not read your stream for '{label}': {first}",
                 "Each text-delta needs a text-start with the same id before it (reasoning "
                 "likewise), and every chunk needs its fields: id, delta, toolCallId, ...")
        want = _shape(ui_messages.read_in_python(reference_chunks(events))["message"])
        got = _shape(reading["message"])
        if got != want:
            what, hint = diagnose(got, want)
            fail(f"In the turn '{label}': {what}", hint)
    passed(f"The client built the right message from your chunks for all {len(turns)} turns "
           f"(text, thoughts, a tool call, a reply that arrives whole); read by {reader}.")
