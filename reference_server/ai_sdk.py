"""The AI SDK's UI message stream protocol, for ``useChat`` frontends: ``POST /api/chat``.

The ``ai`` npm package's ``DefaultChatTransport`` (what ``useChat`` uses) POSTs
``{"id": <chat id>, "messages": [<UI messages>], "trigger": "submit-message", "messageId": ...}``
(``"regenerate-message"`` for ``regenerate()``: the messages then end with the user message
whose answer is to be made again, and the session is rewound to before it) and reads SSE
whose every ``data:`` is one JSON *chunk*, then ``data: [DONE]``; the response header
``x-vercel-ai-ui-message-stream: v1`` marks the protocol. Checked against ``ai`` 6.0
(``tests/js/package.json``): its ``uiMessageChunkSchema`` and ``processUIMessageStream``.

This module only translates: the turn is the same ``TurnManager`` turn as the native endpoint's
(one per session, 409, cancel, replay), and ``UIMessageStreamEncoder`` turns the turn's stored
frames (the native endpoint's ADK event JSON and its terminal frame) into chunks:

==============================================  =================================================
ADK                                             UI message chunks
==============================================  =================================================
(the stream opens)                              ``start`` (``messageId``: the turn's id)
thought text of a model response                ``reasoning-start``, ``reasoning-delta``...,
                                                ``reasoning-end``
answer text of a model response                 ``text-start``, ``text-delta``..., ``text-end``
a function call (non-partial event)             ``tool-input-start``, ``tool-input-available``
a function response                             ``tool-output-available`` (same ``toolCallId``)
terminal ``done`` / ``error`` / ``cancelled``   ``finish`` / ``error`` then ``finish`` (reason
                                                ``error``) / ``abort``; then ``[DONE]``
==============================================  =================================================

No text twice: ADK yields a model response as partial events (the pieces), then one
non-partial event with the whole text under the same ``event.id``; the pieces become deltas,
and of the whole only what the pieces did not show (nothing, usually; all of it for a reply
that arrives in one piece, such as a callback's). A partial function call is never run by ADK:
only the non-partial one becomes a tool part.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .replay import EVENT, Frame

# What the ``ai`` package's createUIMessageStreamResponse sends (UI_MESSAGE_STREAM_HEADERS).
UI_MESSAGE_STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "x-vercel-ai-ui-message-stream": "v1",
}
DONE = b"data: [DONE]\n\n"
# useChat sends the whole conversation with every message: a long chat outgrows the native
# endpoint's 32 KiB. Only the last message is read (the session holds the history).
CHAT_MAX_BODY_BYTES = 1024 * 1024
MAX_CHAT_ID_CHARS = 128
FINISH_REASONS = {"done": "stop", "error": "error"}


class ChatRequest(BaseModel):
    """The body ``DefaultChatTransport`` sends. Extra fields (a ``body`` option) are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=MAX_CHAT_ID_CHARS, description="The chat's id.")
    messages: list[dict[str, Any]] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    messageId: str | None = None

    def user_messages(self) -> int:
        """How many of the messages are the user's (a regenerate answers the last of them)."""
        return sum(1 for m in self.messages if isinstance(m, dict) and m.get("role") == "user")

    def user_text(self) -> str | None:
        """The text of the last message if it is the user's (its ``text`` parts joined)."""
        last = self.messages[-1]
        if last.get("role") != "user" or not isinstance(last.get("parts"), list):
            return None
        text = "".join(p.get("text", "") for p in last["parts"]
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
        return text if text.strip() else None


def chat_session_id(user_id: str, chat_id: str) -> str:
    """The session behind a chat: derived from the user *and* the chat id, so a chat id chosen
    by one user never names another user's session (the replay store and the one-turn-per-
    session rule are keyed by session id alone)."""
    digest = hashlib.sha256(f"{user_id}\0{chat_id}".encode()).hexdigest()
    return f"chat-{digest[:32]}"


def _texts(event: dict) -> tuple[str, str]:
    """(thought text, answer text) of an ADK event as JSON, joined part by part."""
    parts = (event.get("content") or {}).get("parts") or []
    thought = "".join(p["text"] for p in parts if p.get("text") and p.get("thought"))
    answer = "".join(p["text"] for p in parts if p.get("text") and not p.get("thought"))
    return thought, answer


class UIMessageMapper:
    """ADK events (the JSON the native stream sends, as dicts) in, UI message chunks out.

    ``start()`` first, ``event(e)`` for each ADK event, ``end(kind, data)`` for the turn's
    terminal frame. Stateful: it remembers the open text or reasoning block and what each
    model response (``event.id``) has shown so far."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.shown: dict[tuple[str, str], str] = {}  # (event id, "text"|"reasoning") -> shown
        self.open: tuple[str, str, str] | None = None  # (kind, event id, block id)
        self.blocks = 0

    def start(self) -> list[dict]:
        return [{"type": "start", "messageId": self.message_id}]

    def _close(self) -> list[dict]:
        if self.open is None:
            return []
        kind, _, block = self.open
        self.open = None
        return [{"type": f"{kind}-end", "id": block}]

    def _delta(self, kind: str, event_id: str, text: str, partial: bool) -> list[dict]:
        before = self.shown.get((event_id, kind), "")
        if partial:
            new = text
        elif text.startswith(before):  # the whole response: only what its pieces did not show
            new = text[len(before):]
        else:  # never seen with ADK 2.13: show nothing rather than twice
            new = ""
        if not new:
            return []
        self.shown[(event_id, kind)] = before + new
        chunks = []
        if self.open is None or self.open[:2] != (kind, event_id):
            chunks += self._close()
            self.blocks += 1
            self.open = (kind, event_id, f"{kind}-{self.blocks}")
            chunks.append({"type": f"{kind}-start", "id": self.open[2]})
        chunks.append({"type": f"{kind}-delta", "id": self.open[2], "delta": new})
        return chunks

    def event(self, event: dict) -> list[dict]:
        event_id = event.get("id", "")
        partial = bool(event.get("partial"))
        chunks: list[dict] = []
        if self.open is not None and self.open[1] != event_id:
            chunks += self._close()  # another model response (or a tool's result) begins
        thought, answer = _texts(event)
        chunks += self._delta("reasoning", event_id, thought, partial)
        chunks += self._delta("text", event_id, answer, partial)
        parts = (event.get("content") or {}).get("parts") or []
        for part in parts:
            call, result = part.get("functionCall"), part.get("functionResponse")
            if call and not partial:  # a partial call is never run: wait for the whole one
                chunks += self._close()
                call_id = call.get("id") or f"{event_id}-{call.get('name')}"
                chunks.append({"type": "tool-input-start", "toolCallId": call_id,
                               "toolName": call.get("name", "")})
                chunks.append({"type": "tool-input-available", "toolCallId": call_id,
                               "toolName": call.get("name", ""), "input": call.get("args") or {}})
            elif result:
                chunks += self._close()
                call_id = result.get("id") or f"{event_id}-{result.get('name')}"
                chunks.append({"type": "tool-output-available", "toolCallId": call_id,
                               "output": result.get("response")})
        return chunks

    def end(self, kind: str, data: dict) -> list[dict]:
        """The turn's terminal frame (``done``, ``error`` or ``cancelled``) and its JSON."""
        chunks = self._close()
        if kind == "cancelled":
            return [*chunks, {"type": "abort", "reason": str(data.get("reason", "cancelled"))}]
        if kind == "error":
            error = data.get("error") or {}
            chunks.append({"type": "error",
                           "errorText": f"{error.get('code', 'ERROR')}: {error.get('message', '')}"})
        return [*chunks, {"type": "finish", "finishReason": FINISH_REASONS.get(kind, "other")}]


def encode_chunk(chunk: dict) -> bytes:
    """One chunk as SSE bytes, as the ``ai`` package's JsonToSseTransformStream writes it."""
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


class UIMessageStreamEncoder:
    """``TurnManager.follow(..., encode=...)``: a turn's frames as UI message stream bytes;
    ``start`` before the first, ``[DONE]`` after the terminal frame."""

    def __init__(self, message_id: str) -> None:
        self.mapper = UIMessageMapper(message_id)
        self.started = False

    def __call__(self, frames: list[Frame]) -> bytes:
        chunks = [] if self.started else self.mapper.start()
        self.started = True
        terminal = False
        for frame in frames:
            if frame.kind == EVENT:
                chunks += self.mapper.event(json.loads(frame.data))
            else:
                chunks += self.mapper.end(frame.kind, json.loads(frame.data))
                terminal = True
        return b"".join(map(encode_chunk, chunks)) + (DONE if terminal else b"")
