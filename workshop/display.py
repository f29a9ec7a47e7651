"""What a chat UI shows for a stream of ADK events: the display rules, in one small class.

Notebook 07 shows each rule against real runs; the chat widget of notebook 08 renders a
``TurnView``. Fold every event of a turn into it with ``view.apply(event)``:

1. **Update by id.** The partial events of one model response and the aggregated event after
   them share one ``Event.id``. Keep one message per id: append the text of a partial event, and
   let the non-partial event *replace* it. No text is shown twice, whether or not progressive
   SSE streaming is on, including the text -> tool call -> text turn, where a non-final
   aggregate (text and call) precedes the tool call.
2. **Thoughts apart.** A part with ``thought=True`` is the model's reasoning, not the answer.
3. **Text per part, not per event.** An event can hold several text parts, or text and a
   function call together; join every text part.
4. **Act on complete calls only.** A function call in a partial event (a streamed call still
   arriving) is progress to show, never something to execute; the non-partial event holds the
   call as ADK runs it. A function response pairs with its call by the call's id.
5. **Usage from the final event**, errors from ``event.error_code``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.adk.events import Event
from google.genai import types

__all__ = [
    "Message",
    "ToolCall",
    "TurnView",
    "event_row",
    "event_table",
    "event_text",
    "part_kinds",
    "turn_shape",
]


def event_text(event: Event) -> tuple[str, str]:
    """(thoughts, answer): the text of every thought part and of every other text part."""
    parts = event.content.parts if event.content and event.content.parts else []
    thoughts = "".join(p.text for p in parts if p.text and p.thought)
    answer = "".join(p.text for p in parts if p.text and not p.thought)
    return thoughts, answer


def part_kinds(event: Event, *, empty: bool = False) -> tuple[str, ...]:
    """The kinds of an event's parts in order: thought, text, call, response (or the type).

    A text part with an empty string carries nothing to show (gemini-3 models end every stream
    with one, holding the finish reason and, with thinking, the thought signature); it is left
    out unless ``empty=True``, which labels it ``"empty"``.
    """
    kinds = []
    for part in event.content.parts if event.content and event.content.parts else []:
        if part.function_call:
            kinds.append("call")
        elif part.function_response:
            kinds.append("response")
        elif part.text:
            kinds.append("thought" if part.thought else "text")
        elif part.text is not None:
            if empty:
                kinds.append("empty")
        else:
            data = {k for k, v in part.model_dump(exclude_none=True).items()
                    if k not in ("thought", "thought_signature")}
            kinds.append(next(iter(sorted(data)), "part"))
    return tuple(kinds)


@dataclass
class Message:
    """One model response as shown: all the events that share one ``Event.id``."""

    id: str
    author: str
    thoughts: str = ""
    text: str = ""
    complete: bool = False  # the non-partial (aggregated) event has arrived


@dataclass
class ToolCall:
    """A function call as shown: streaming in, called, then answered by its result."""

    id: str
    name: str | None
    args: dict[str, Any] = field(default_factory=dict)
    status: str = "streaming"  # "streaming" (partial only) -> "called" -> "done"
    result: Any = None


@dataclass
class TurnView:
    """Everything a UI shows for one turn, in the order it first appeared."""

    items: list[Message | ToolCall] = field(default_factory=list)
    usage: types.GenerateContentResponseUsageMetadata | None = None
    errors: list[str] = field(default_factory=list)
    events: int = 0

    def __post_init__(self) -> None:
        self._messages: dict[str, Message] = {}
        self._calls: dict[str, ToolCall] = {}

    # -- reading ----------------------------------------------------------------------------
    @property
    def messages(self) -> list[Message]:
        return [item for item in self.items if isinstance(item, Message)]

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [item for item in self.items if isinstance(item, ToolCall)]

    @property
    def answer(self) -> str:
        """The answer text of the turn, one paragraph per model response."""
        return "\n\n".join(m.text for m in self.messages if m.text)

    @property
    def thoughts(self) -> str:
        return "\n\n".join(m.thoughts for m in self.messages if m.thoughts)

    # -- folding events in ---------------------------------------------------------------------
    def apply(self, event: Event) -> bool:
        """Fold one event in; True if what the UI shows changed."""
        self.events += 1
        if event.author == "user":
            return False
        changed = self._apply_text(event)
        for call in event.get_function_calls():
            changed |= self._apply_call(call, partial=bool(event.partial))
        for response in event.get_function_responses():
            changed |= self._apply_response(response)
        if event.error_code:
            self.errors.append(f"{event.error_code}: {event.error_message or ''}".rstrip(": "))
            changed = True
        if event.is_final_response() and event.usage_metadata:
            self.usage = event.usage_metadata
            changed = True
        return changed

    def _apply_text(self, event: Event) -> bool:
        thoughts, text = event_text(event)
        message = self._messages.get(event.id)
        if message is None:
            if not (thoughts or text):
                return False  # nothing to show: a call-only, response or empty event
            message = self._messages[event.id] = Message(event.id, event.author)
            self.items.append(message)
        before = (message.thoughts, message.text)
        if event.partial:
            message.thoughts += thoughts
            message.text += text
        else:  # the aggregate holds the whole response: replace, never append
            message.thoughts, message.text, message.complete = thoughts, text, True
        return before != (message.thoughts, message.text)

    def _apply_call(self, call: types.FunctionCall, *, partial: bool) -> bool:
        key = call.id or f"call-{len(self._calls)}"
        tool = self._calls.get(key)
        if tool is None:
            tool = self._calls[key] = ToolCall(key, call.name)
            self.items.append(tool)
        tool.name = call.name or tool.name
        if partial:  # a call still arriving (or not yet run): show it, run nothing
            if call.args:
                tool.args = dict(call.args)
            for arg in call.partial_args or []:
                name = (arg.json_path or "$").removeprefix("$.")
                if arg.string_value is not None:
                    tool.args[name] = str(tool.args.get(name, "")) + arg.string_value
                elif arg.number_value is not None:
                    tool.args[name] = arg.number_value
                elif arg.bool_value is not None:
                    tool.args[name] = arg.bool_value
            return True
        tool.args = dict(call.args or {})
        if tool.status == "streaming":
            tool.status = "called"
        return True

    def _apply_response(self, response: types.FunctionResponse) -> bool:
        key = response.id or next(
            (k for k, t in self._calls.items() if t.name == response.name and t.status == "called"),
            f"response-{len(self._calls)}",
        )
        tool = self._calls.get(key)
        if tool is None:
            tool = self._calls[key] = ToolCall(key, response.name, status="called")
            self.items.append(tool)
        tool.result, tool.status = response.response, "done"
        return True

    def snapshot(self) -> list[dict[str, Any]]:
        """Plain data of what is shown now (for tests and recorded widget states)."""
        shown = []
        for item in self.items:
            if isinstance(item, Message):
                shown.append({"thoughts": item.thoughts, "text": item.text,
                              "complete": item.complete})
            else:
                shown.append({"tool": item.name, "args": dict(item.args), "status": item.status,
                              "result": item.result})
        return shown


# -- reading a turn's event sequence (notebook 07's tables) -------------------------------------
def event_row(event: Event) -> tuple[str, str, str, str]:
    """(partial, part kinds in order, finish reason, is_final_response) of one event, as text."""
    kinds = ", ".join(part_kinds(event, empty=True)) or "(no parts)"
    finish = event.finish_reason.name if event.finish_reason else "-"
    return str(event.partial), kinds, finish, "yes" if event.is_final_response() else "no"


def _collapsed_rows(events: list[Event]) -> list[tuple[int, tuple[str, str, str, str]]]:
    """Runs of consecutive identical rows, as (count, row)."""
    runs: list[tuple[int, tuple[str, str, str, str]]] = []
    for event in events:
        row = event_row(event)
        if runs and runs[-1][1] == row:
            runs[-1] = (runs[-1][0] + 1, row)
        else:
            runs.append((1, row))
    return runs


def event_table(columns: dict[str, list[Event]]) -> str:
    """The event sequences of several runs side by side; identical neighbours collapse to ×N."""
    header = ("events", "partial", "parts", "finish", "final")
    blocks = []
    for title, events in columns.items():
        rows = [header] + [(f"{n}×" if n > 1 else "1", *row) for n, row in _collapsed_rows(events)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [f"{title} ({len(events)} events)"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
        blocks.append(lines)
    height = max(len(b) for b in blocks)
    widths = [max(len(line) for line in b) for b in blocks]
    out = []
    for i in range(height):
        cells = [(b[i] if i < len(b) else "").ljust(w) for b, w in zip(blocks, widths, strict=True)]
        out.append(" │ ".join(cells).rstrip())
    return "\n".join(out)


def turn_shape(events: list[Event]) -> list[tuple[bool, tuple[str, ...]]]:
    """A turn's sequence as (partial, kinds) rows, robust to how the model chunks its text.

    Events whose parts carry nothing (only empty text) are left out, ``partial=None`` counts
    as False, and consecutive identical rows collapse into one.
    """
    shape: list[tuple[bool, tuple[str, ...]]] = []
    for event in events:
        kinds = part_kinds(event)
        if not kinds:
            continue
        row = (bool(event.partial), kinds)
        if not shape or shape[-1] != row:
            shape.append(row)
    return shape
