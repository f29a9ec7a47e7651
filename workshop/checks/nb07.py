"""Checks for 07_progressive_sse_streaming."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.events import Event
from google.adk.features import FeatureName
from google.adk.features._feature_registry import temporary_feature_override
from google.adk.models import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from ..display import TurnView, event_row, part_kinds, turn_shape
from ._report import fail, passed

SSE = RunConfig(streaming_mode=StreamingMode.SSE)
THINKING = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
PREDICTION_PROMPT = "What's the weather in Paris?"


@contextlib.contextmanager
def progressive_sse(enabled: bool) -> Iterator[None]:
    """Progressive SSE streaming on or off inside the block; the previous state afterwards."""
    with temporary_feature_override(FeatureName.PROGRESSIVE_SSE_STREAMING, enabled):
        yield


def get_weather(city: str) -> dict:
    """Get the current weather in a city."""
    return {"city": city, "forecast": "sunny", "temperature_c": 21}


async def run_turn(agent: Agent, text: str, *, progressive: bool = True) -> list[Event]:
    """The events of one turn on a fresh session, with progressive SSE streaming on or off."""
    runner = Runner(app_name="check07", agent=agent, session_service=InMemorySessionService(),
                    auto_create_session=True)
    message = types.Content(role="user", parts=[types.Part(text=text)])
    with progressive_sse(progressive):
        async with contextlib.aclosing(runner.run_async(
            user_id="learner", session_id="check", new_message=message, run_config=SSE,
        )) as stream:
            return [event async for event in stream]


# -- Exercise 7.1: the display filter -----------------------------------------------------------
def _text_event(event_id: str, partial: bool | None, *parts: tuple[str, bool]) -> Event:
    return Event(id=event_id, author="assistant", invocation_id="synthetic", partial=partial,
                 content=types.Content(role="model", parts=[
                     types.Part(text=text, thought=thought or None) for text, thought in parts]))


def synthetic_events() -> list[Event]:
    """A response whose events hold several text parts, and thoughts next to text."""
    return [
        _text_event("multi", True, ("Planning a greeting.", True)),
        _text_event("multi", True, ("Hello, ", False)),
        _text_event("multi", True, ("wor", False), ("ld", False)),  # one event, two text parts
        _text_event("multi", True, (" Have a", False), (" nice day.", False)),
        _text_event("multi", False, ("Planning a greeting.", True),
                    ("Hello, world Have a nice day.", False)),
    ]


def expected_view(events: list[Event]) -> dict[str, dict[str, str]]:
    """The reference display filter (workshop.display.TurnView), in the exercise's shape."""
    view = TurnView()
    for event in events:
        view.apply(event)
    return {m.id: {"thoughts": m.thoughts, "answer": m.text} for m in view.messages}


def _shown(view: Any) -> dict[str, dict[str, str]]:
    """The learner's view without entries that show nothing (those are optional)."""
    return {key: {"thoughts": value.get("thoughts", ""), "answer": value.get("answer", "")}
            for key, value in view.items()
            if isinstance(value, dict) and (value.get("thoughts") or value.get("answer"))}


def _describe(event: Event, index: int) -> str:
    partial, kinds, finish, final = event_row(event)
    return f"event #{index} (partial={partial}, parts: {kinds}, final: {final})"


def diagnose_view(got: dict, want: dict, event: Event, index: int) -> tuple[str, str]:
    """Why the learner's view differs from the reference right after ``event``."""
    where = _describe(event, index)
    for key, expected in want.items():
        entry = got.get(key)
        if entry is None and not event.partial:
            return (f"After {where} the view has no entry for its id {key[:8]}..., which shows "
                    f"{expected['answer'] or expected['thoughts']!r}.",
                    "A non-partial event holds the whole response: it replaces the streamed text, "
                    "and when nothing streamed before it (a reply that arrived whole) it creates "
                    "the entry. Never skip non-partial events.")
        if entry is None:
            return (f"After {where} the view has no entry for its id {key[:8]}..., which shows "
                    f"{expected['answer'] or expected['thoughts']!r}.",
                    "Key the view by event.id and create the entry when an event has text to show.")
        for field, other in (("answer", "thoughts"), ("thoughts", "answer")):
            shown, right = entry[field], expected[field]
            if shown == right:
                continue
            if right and shown.count(right) >= 2 or (right and shown == right + right):
                return (f"After {where} its {field} holds the text twice: {shown[:70]!r}...",
                        "The non-partial event repeats the whole response: let it replace the "
                        "entry's text (=), and append (+=) only for partial events.")
            if expected[other] and expected[other] in shown:
                return (f"After {where} the {field} holds {other} text: {shown[:70]!r}.",
                        "Send parts with part.thought == True to 'thoughts' and the other text "
                        "parts to 'answer'.")
            if right.endswith(shown) and len(shown) < len(right) and event.partial:
                return (f"After {where} the {field} is only {shown!r}, but the pieces so far make "
                        f"{right!r}.",
                        "Append (+=) the text of a partial event; replace only for the "
                        "non-partial (aggregated) event.")
            if len(shown) < len(right):
                return (f"After {where} the {field} is {shown!r}, but should be {right!r}: some "
                        "text is missing.",
                        "Join the text of every part of the event (an event can hold several "
                        "text parts), not only parts[0].")
            return (f"After {where} the {field} is {shown[:70]!r}, but should be {right[:70]!r}.",
                    "Partial events add their text to the entry of their id; the non-partial "
                    "event with the same id replaces it.")
    extra = next(key for key in got if key not in want)
    return (f"After {where} the view shows an entry {extra[:12]!r} that should not be there: "
            f"{got[extra]}.",
            "Use event.id as the key, and make no entry for an event that has no text to show.")


def _fold_and_compare(update_view: Callable, events: list[Event], label: str) -> int:
    """Fold events one by one into the learner's view; fail at the first difference."""
    view: dict = {}
    for index, event in enumerate(events, 1):
        before = copy.deepcopy(view)
        try:
            returned = update_view(view, copy.deepcopy(event))
        except NotImplementedError:
            raise
        except Exception as error:
            fail(f"update_view raised {type(error).__name__}: {error} on {_describe(event, index)} "
                 f"of {label}.",
                 "Events without content (event.content is None), without parts, or with parts "
                 "that carry no text (function calls and responses) are normal: skip them.")
        if view == before and isinstance(returned, dict) and returned != before:
            fail("update_view returned a new dict instead of changing the view it was given.",
                 "Change `view` in place (view[event.id] = ...); the caller keeps its own dict.")
        want = expected_view(events[:index])
        got = _shown(view)
        if got != want:
            what, hint = diagnose_view(got, want, event, index)
            fail(f"{label}: {what}", hint)
    return len(events)


def answer_without_the_model(callback_context, llm_request) -> LlmResponse:
    """A guardrail callback that answers by itself: ADK yields its reply as one non-partial event."""
    return LlmResponse(content=types.Content(role="model", parts=[
        types.Part(text="I only answer questions about the weather.")]))


async def check_update_view(update_view: Callable, model: str) -> None:
    """Run four real turns (and one synthetic response) through the learner's display filter."""
    thinker = Agent(name="thinker", model=model, generate_content_config=THINKING)
    weather = Agent(name="weather", model=model, tools=[get_weather])
    guarded = Agent(name="guarded", model=model, before_model_callback=answer_without_the_model)
    cases = [
        ("a response with several text parts per event", synthetic_events()),
        ("a reply that arrived whole (a callback answered, nothing streamed)",
         await run_turn(guarded, "Tell me a joke")),
        ("thoughts then text (progressive on)",
         await run_turn(thinker, "What is the capital of France?")),
        ("text, tool call, text (progressive on)",
         await run_turn(weather, "Explain how you check the weather in Paris")),
        ("text, tool call, text (progressive off)",
         await run_turn(weather, "Explain how you check the weather in Paris", progressive=False)),
    ]
    total = sum(_fold_and_compare(update_view, events, label) for label, events in cases)
    passed(f"Your display filter showed each piece once, thoughts apart, over {total} events of "
           f"{len(cases)} turns, with progressive SSE streaming on and off.")


# -- Exercise 7.2: predict a turn's event sequence ----------------------------------------------
def _normalize(prediction: Any) -> list[tuple[bool, tuple[str, ...]]]:
    rows = []
    for row in prediction:
        partial, kinds = row
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        rows.append((bool(partial), kinds))
    return rows


def _meaning(row: tuple[bool, tuple[str, ...]]) -> str:
    """What a row of a turn's shape is, as a hint."""
    partial, kinds = row
    if kinds == ("response",):
        return ("A tool's result is one event and never partial (partial is None, which counts "
                "as False).")
    if not partial:
        return ("After the partial events of one model response, ADK yields one non-partial "
                "event that holds all its parts, in order, thoughts included.")
    if kinds == ("call",):
        return ("With progressive SSE on, a function call first arrives in a partial event "
                "(shown, never run), then again in the non-partial aggregate.")
    if kinds == ("thought",):
        return ("Thoughts were requested (include_thoughts=True), and the model thinks before "
                "each response: the one after the tool result too.")
    return "The answer streams as partial text events, one row for the whole run of them."


def explain_mismatch(predicted: list, actual: list) -> tuple[str, str]:
    """Where a predicted (partial, kinds) sequence first differs from the real one, and why."""
    for i, (mine, real) in enumerate(zip(predicted, actual, strict=False)):
        if mine == real:
            continue
        row = i + 1
        if real == (False, ("response",)) and mine == (True, ("response",)):
            return (f"Row {row}: you predicted {mine}, the run produced {real}.",
                    "Function responses are never partial: partial is None, which counts as False.")
        if i + 1 < len(actual) and mine == actual[i + 1]:
            return f"Row {row}: the run has {real} here, which your prediction skips.", _meaning(real)
        if i + 1 < len(predicted) and predicted[i + 1] == real:
            return (f"Row {row}: your prediction has {mine} here, which the run does not.",
                    _meaning(real) + " Consecutive events of the same kind make one row.")
        return f"Row {row}: you predicted {mine}, the run produced {real}.", _meaning(real)
    if len(predicted) < len(actual):
        return (f"Your prediction stops after {len(predicted)} rows; the run went on with "
                f"{actual[len(predicted):]}.",
                "After the function response, the model is called again and streams its answer.")
    return (f"Your prediction has {len(predicted) - len(actual)} more row(s) than the run: "
            f"{predicted[len(actual):]}.",
            "Collapse consecutive events with the same (partial, kinds) into one row.")


async def check_prediction(predict: Callable, model: str, offline: bool = True) -> None:
    """Run the turn the learner predicted and diff the two sequences."""
    prediction = predict()
    try:
        mine = _normalize(prediction)
    except (TypeError, ValueError):
        fail(f"The prediction should be a list of (partial, kinds) pairs, got {prediction!r:.80}.",
             "Write rows like (True, ('thought',)) or (False, ('text', 'call')).")
    agent = Agent(name="weather", model=model, tools=[get_weather], generate_content_config=THINKING)
    events = await run_turn(agent, PREDICTION_PROMPT)
    actual = turn_shape(events)
    if mine == actual:
        passed(f"All {len(actual)} rows right: you can read a streamed turn before it happens.")
        return
    what, hint = explain_mismatch(mine, actual)
    print("The run produced:")
    for i, row in enumerate(actual, 1):
        print(f"  {i}. {row}")
    if not offline:
        print(f"Note: {what} {hint}\n(A real model decides for itself what to send, so this is "
              "not checked strictly online.)")
        return
    fail(what, hint)


def kinds_of(events: list[Event]) -> list[tuple[str, ...]]:
    """Part kinds of each event (empty text parts included), for quick looks in tests."""
    return [part_kinds(event, empty=True) for event in events]
