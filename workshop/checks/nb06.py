"""Checks for 06_browser_client."""

from __future__ import annotations

import copy
import json

from google.adk.events import Event
from google.genai import types

from ._report import fail, passed


def reference_render(state: dict, event_json: str) -> dict:
    """The chat page's rules (static/render.js), in Python: the answer to exercise 6.1."""
    event = json.loads(event_json)
    parts = (event.get("content") or {}).get("parts") or []
    thoughts = "".join(p["text"] for p in parts if p.get("text") and p.get("thought"))
    text = "".join(p["text"] for p in parts if p.get("text") and not p.get("thought"))
    message = state.get(event["id"])
    if message is None:
        if not (thoughts or text):
            return state
        message = state[event["id"]] = {"thoughts": "", "text": ""}
    if event.get("partial"):
        message["thoughts"] += thoughts
        message["text"] += text
    else:
        message["thoughts"], message["text"] = thoughts, text
    return state


def _event_json(event_id: str, parts: list[types.Part], partial: bool | None) -> str:
    """A real ADK Event, serialized as the reference server sends it."""
    event = Event(id=event_id, invocation_id="e-check", author="assistant", partial=partial,
                  content=types.Content(role="model", parts=parts))
    return event.model_dump_json(exclude_none=True, by_alias=True)


def thinking_stream() -> list[str]:
    """A turn with thoughts, then an answer: partial events (one holds the last thought and the
    first words, one holds two text parts), then the aggregate."""
    thought1, thought2 = "The user greets me. ", "A short greeting back will do."
    text1, text2, text3 = "Hello! ", "How can ", "I help?"
    return [
        _event_json("m-1", [types.Part(text=thought1, thought=True)], True),
        _event_json("m-1", [types.Part(text=thought2, thought=True), types.Part(text=text1)], True),
        _event_json("m-1", [types.Part(text=text2), types.Part(text=text3)], True),
        _event_json("m-1", [types.Part(text="")], True),
        _event_json("m-1", [types.Part(text=thought1 + thought2, thought=True),
                            types.Part(text=text1 + text2 + text3)], False),
    ]


def whole_reply_stream() -> list[str]:
    """A reply that did not stream: one non-partial event, no partial before it (what an agent's
    callback that answers by itself sends, e.g. a guardrail refusing a question)."""
    return [_event_json("m-2", [types.Part(text="I can only talk about the weather.")], None)]


def _replay(render, events: list[str]) -> list[dict]:
    """The learner's state after each event (deep copies), starting from {}."""
    state: dict = {}
    shown = []
    for index, event_json in enumerate(events):
        try:
            result = render(state, event_json)
        except NotImplementedError:
            raise
        except KeyError as error:
            event = json.loads(event_json)
            kind = "a partial" if event.get("partial") else "a non-partial"
            fail(f"render raised KeyError: {error} on event {index} ({kind} event, keys "
                 f"{sorted(event)}).",
                 "The server serializes with exclude_none=True: a field that is None (partial on "
                 "a function response or on a reply that did not stream, content on some events) "
                 "is absent from the JSON, not null. Read optional fields with "
                 "event.get('partial'), (event.get('content') or {}).get('parts').")
        except Exception as error:
            fail(f"render raised {type(error).__name__}: {error} on event {index}: "
                 f"{event_json[:90]}...",
                 "Events without text (a function call, a function response, an empty chunk) are "
                 "normal: skip them, and read optional fields with .get().")
        if result is None:
            fail(f"render returned None (after event {index}).",
                 "Return the state: `return state` at the end, also when the event changed nothing.")
        if not isinstance(result, dict):
            fail(f"render returned {type(result).__name__}, not the state dict.",
                 "Return the (updated) state dict.")
        state = result
        shown.append(copy.deepcopy(state))
    return shown


def _diagnose(name: str, events: list[str], got: list[dict], want: list[dict]) -> None:
    """Compare the learner's states with the reference, event by event; fail at the first gap."""
    for index, (mine, right) in enumerate(zip(got, want, strict=True)):
        if mine == right:
            continue
        event = json.loads(events[index])
        kind = "partial" if event.get("partial") else "non-partial (aggregated)"
        extra = sorted(set(mine) - set(right))
        missing = sorted(set(right) - set(mine))
        if extra:
            empty = all(isinstance(mine[k], dict) and not (mine[k].get("text") or mine[k].get("thoughts"))
                        for k in extra)
            if empty:
                fail(f"{name}: event {index} (no text: a function call or response) created an empty message.",
                     "Only an event with text (or thoughts) starts a message; skip the others.")
            fail(f"{name}: after event {index} the state has keys {extra}; the messages are keyed by Event id.",
                 "Use event['id'] as the key: partial events and their aggregate share it.")
        if missing and not event.get("partial"):
            fail(f"{name}: after event {index}, a non-partial event with text, there is no message "
                 f"for Event id {missing[0]!r}.",
                 "A non-partial event holds the whole response: it replaces the partial text, and "
                 "when nothing streamed before it (a reply that arrived whole) it creates the "
                 "message. Never skip non-partial events.")
        if missing:
            fail(f"{name}: after event {index} ({kind}) there is no message for Event id {missing[0]!r}.",
                 "Key the state by event['id'] and create the message when an event with text arrives.")
        for key, right_message in right.items():
            message = mine[key]
            if not isinstance(message, dict) or set(message) != {"thoughts", "text"}:
                fail(f"{name}: state[{key!r}] is {message!r}.",
                     'Each message is a dict {"thoughts": "...", "text": "..."}.')
            text, want_text = message["text"], right_message["text"]
            before = want[index - 1].get(key, {}).get("text", "") if index else ""
            if not event.get("partial") and before and text == before + want_text:
                fail(f"{name}: the final aggregated event was appended: the answer now reads twice.",
                     "The non-partial event holds the WHOLE response: replace the message's text, don't add to it.")
            if event.get("partial") and text and want_text.endswith(text) and text != want_text:
                fail(f"{name}: after partial event {index} the message shows only the latest piece ({text!r}).",
                     "A partial event carries the NEW piece only: append it to the text shown so far.")
            if right_message["thoughts"] and right_message["thoughts"] in text:
                fail(f"{name}: thoughts ended up in the answer text.",
                     "A part with part.get('thought') true goes into 'thoughts', every other text part into 'text'.")
            if text != want_text:
                fail(f"{name}: after event {index} ({kind}) the text is {text!r}, expected {want_text!r}.",
                     "Join every text part of the event (not only parts[0]); append for partial events, "
                     "replace for the aggregate.")
            if message["thoughts"] != right_message["thoughts"]:
                fail(f"{name}: after event {index} the thoughts are {message['thoughts']!r}, "
                     f"expected {right_message['thoughts']!r}.",
                     "Collect thought parts the same way as text: append when partial, replace on the aggregate.")
        fail(f"{name}: after event {index} the state differs from the page's.", "Compare with the rules above.")


def check_render(render, recorded: list[str]) -> None:
    """Replay a recorded stream (the data of its message frames) and a thinking turn through
    the learner's render, frame by frame, against the page's rules."""
    if not recorded:
        fail("No recorded events were given.", "Pass the data of the recorded stream's message frames.")
    cases = (("recorded stream", recorded), ("thinking turn", thinking_stream()),
             ("a reply that arrived whole", whole_reply_stream()))
    for name, events in cases:
        got = _replay(render, events)
        want = _replay(reference_render, events)
        _diagnose(name, events, got, want)

    # Say what the replay showed: growth while streaming, then the answer exactly once.
    got = _replay(render, recorded)
    final = got[-1]
    answers = {key: message["text"] for key, message in final.items() if message["text"]}
    lengths = sorted({len(state[key]["text"]) for state in got for key in answers if key in state})
    shown = "\n\n".join(answers.values())
    events = [json.loads(e) for e in recorded]
    replaced = sum(1 for e in events if not e.get("partial") and e["id"] in answers)
    skipped = sum(1 for e in events if e["id"] not in final)
    passed(f"Replayed {len(recorded)} events: the answer grew through {len(lengths)} lengths to "
           f"{len(shown)} characters and reads once ({replaced} aggregate replaced the partial text, "
           f"{skipped} events without text skipped); the thinking turn kept its thoughts apart, "
           "and a reply that arrived whole was shown.")
