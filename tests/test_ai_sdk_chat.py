"""POST /api/chat (the AI SDK's UI message stream protocol) from Python: what the JavaScript
client tests (test_js_clients.py) cannot reach, the mapping rules on ADK events made here,
and the contract it shares with the native endpoint (auth, sessions, 4xx before the stream).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from reference_server import Settings, create_app
from reference_server.ai_sdk import UIMessageMapper, chat_session_id
from workshop.servers import BackgroundServer
from workshop.testing import REFERENCE_TOKENS

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}


def body(text: str, chat_id: str = "chat-1", **extra) -> dict:
    return {"id": chat_id, "trigger": "submit-message", **extra,
            "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": text}]}]}


def text_of(raw: str) -> str:
    return "".join(p["delta"] for p in chunks(raw) if isinstance(p, dict) and p["type"] == "text-delta")


def chunks(raw: str) -> list:
    """The ``data:`` payloads of a UI message stream, JSON decoded ("[DONE]" kept as text)."""
    out = []
    for line in raw.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


@pytest.fixture
def client(reference_server):
    with httpx.Client(base_url=reference_server.url, timeout=10) as c:
        yield c


def test_the_protocol_header_and_the_frame_shape(client, emulator):
    response = client.post("/api/chat", json=body("Count to 3"), headers=ALICE)
    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-turn-id"]
    parts = chunks(response.text)
    assert parts[0] == {"type": "start", "messageId": response.headers["x-turn-id"]}
    assert [p["type"] for p in parts[-3:-1]] == ["text-end", "finish"] and parts[-1] == "[DONE]"
    assert parts[-2]["finishReason"] == "stop"
    text = "".join(p["delta"] for p in parts if isinstance(p, dict) and p["type"] == "text-delta")
    assert text == "1, 2, 3."  # the final event's whole text is not sent again
    # every frame is "data: <json>" and a blank line, as the ai package's JsonToSseTransformStream
    assert all(frame.startswith("data: ") for frame in response.text.split("\n\n") if frame)


@pytest.mark.parametrize("payload,status,code", [
    ({"messages": []}, 422, "INVALID_REQUEST"),
    ({"id": "c", "messages": []}, 422, "INVALID_REQUEST"),
    ({"id": "c", "messages": [{"role": "assistant", "parts": [{"type": "text", "text": "x"}]}]},
     422, "INVALID_REQUEST"),
    ({"id": "c", "messages": [{"role": "user", "parts": [{"type": "text", "text": "  "}]}]},
     422, "INVALID_REQUEST"),
    ({"id": "new-chat", "trigger": "regenerate-message", "messages": [  # a fresh chat: no answer
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]},  # to message 2
        {"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "Hello"}]},
        {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "And?"}]}]},
     422, "NOTHING_TO_REGENERATE"),
    ({"id": "x" * 129, "messages": [{"role": "user", "parts": []}]}, 422, "INVALID_REQUEST"),
])
def test_bad_bodies_are_refused_before_the_stream(client, reference_server, emulator, payload, status, code):
    response = client.post("/api/chat", json=payload, headers=ALICE)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert emulator.requests == []
    settings = reference_server.app.state.settings  # and no session was made for the chat id
    if isinstance(payload.get("id"), str) and len(payload["id"]) <= 128:
        assert asyncio.run(settings.session_service.get_session(
            app_name=settings.app_name, user_id="alice", session_id=chat_session_id("alice", payload["id"]))) is None


def conversation(*texts: str, answers: tuple[str, ...] = ()) -> list[dict]:
    """useChat's messages: user texts, each followed by its answer when one is given."""
    messages = []
    for i, text in enumerate(texts):
        messages.append({"id": f"u{i}", "role": "user", "parts": [{"type": "text", "text": text}]})
        if i < len(answers):
            messages.append({"id": f"a{i}", "role": "assistant", "parts": [{"type": "text", "text": answers[i]}]})
    return messages


def said(client: httpx.Client, user: str, chat_id: str) -> list[tuple[str, str]]:
    """The chat's session as the model sees it: (role, text) of each event."""
    sid = chat_session_id(user, chat_id)
    events = client.get(f"/api/sessions/{sid}/events", headers=ALICE).json()["events"]
    return [(e["content"]["role"], "".join(p.get("text", "") for p in e["content"]["parts"]))
            for e in events if e.get("content")]


def contents(record) -> list[tuple[str, str]]:
    """(role, text) of each content of a model request the emulator saw."""
    return [(c["role"], "".join(p.get("text", "") for p in c["parts"])) for c in record.body["contents"]]


def test_regenerate_replaces_the_last_answer_and_the_model_sees_no_trace_of_it(client, emulator):
    """useChat's ``regenerate()`` sends the messages up to the user message whose answer is made
    again, with ``trigger: "regenerate-message"``: the session is rewound to before that message
    (ADK's rewind), which is sent again; the old answer is gone for the model and the history."""
    c3, c5 = "Count to 3", "Count to 5"
    for messages in (conversation(c3), conversation(c3, c5, answers=("1, 2, 3.",))):
        assert client.post("/api/chat", json={"id": "regen", "messages": messages}, headers=ALICE).status_code == 200
    emulator.script({"text": "Five: 1, 2, 3, 4, 5."})
    again = client.post("/api/chat", headers=ALICE, json={
        "id": "regen", "trigger": "regenerate-message", "messageId": "a1",
        "messages": conversation(c3, c5, answers=("1, 2, 3.",))})
    assert again.status_code == 200 and text_of(again.text) == "Five: 1, 2, 3, 4, 5."
    assert contents(emulator.requests[-1]) == [("user", c3), ("model", "1, 2, 3."), ("user", c5)]
    assert said(client, "alice", "regen") == [("user", c3), ("model", "1, 2, 3."),
                                              ("user", c5), ("model", "Five: 1, 2, 3, 4, 5.")]
    # regenerate() of the first answer: the conversation goes back to its first message
    emulator.script({"text": "Three."})
    first = client.post("/api/chat", headers=ALICE, json={
        "id": "regen", "trigger": "regenerate-message", "messageId": "a0", "messages": conversation(c3)})
    assert first.status_code == 200 and text_of(first.text) == "Three."
    assert contents(emulator.requests[-1]) == [("user", c3)]
    assert said(client, "alice", "regen") == [("user", c3), ("model", "Three.")]


def test_regenerate_after_a_failed_answer_sends_the_message_as_new(client, emulator):
    """A message whose model failed before its first byte (503) was rewound already: the
    client's retry, ``regenerate()``, finds one user message fewer and just sends it."""
    assert client.post("/api/chat", json={"id": "flaky", "messages": conversation("Hi")}, headers=ALICE).status_code == 200
    failed = client.post("/api/chat", headers=ALICE, json={
        "id": "flaky", "messages": conversation("Hi", "[fault:503] Count to 2", answers=("Hello",))})
    assert failed.status_code == 503
    emulator.script({"text": "1, 2."})
    retried = client.post("/api/chat", headers=ALICE, json={
        "id": "flaky", "trigger": "regenerate-message",
        "messages": conversation("Hi", "Count to 2", answers=("Hello",))})
    assert retried.status_code == 200 and text_of(retried.text) == "1, 2."
    assert [role for role, _ in said(client, "alice", "flaky")] == ["user", "model", "user", "model"]


def test_a_regenerate_whose_rewind_fails_ends_in_an_error_and_keeps_the_session(client, reference_server,
                                                                              emulator, monkeypatch):
    """The rewind runs inside the turn: if ADK's rewind fails, the stream ends with an error
    chunk (as any failure of the run), the model is not asked, and the history is as it was."""
    c3 = "Count to 3"
    assert client.post("/api/chat", json={"id": "stuck", "messages": conversation(c3)}, headers=ALICE).status_code == 200
    before, asked = said(client, "alice", "stuck"), len(emulator.requests)

    async def broken_rewind(**kwargs):
        raise RuntimeError("the session store is down")

    monkeypatch.setattr(reference_server.app.state.runner, "rewind_async", broken_rewind)
    again = client.post("/api/chat", headers=ALICE, json={
        "id": "stuck", "trigger": "regenerate-message", "messages": conversation(c3)})
    assert again.status_code == 200
    kinds = [c["type"] for c in chunks(again.text) if isinstance(c, dict)]
    assert "error" in kinds and "text-delta" not in kinds, kinds
    assert len(emulator.requests) == asked
    assert said(client, "alice", "stuck") == before


def test_auth_and_non_json(client, emulator):
    assert client.post("/api/chat", json=body("Hi")).status_code == 401
    response = client.post("/api/chat", content=b"{not json", headers=ALICE)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "INVALID_JSON")
    assert emulator.requests == []


def test_a_chat_id_names_a_session_of_its_user_only(client, reference_server, emulator):
    """Bob sending the chat id Alice uses gets his own session: no 409 from her turn, no
    replay of her stream, and the native API finds the session under her user only."""
    emulator.set_pacing(chunk_s=0.02)
    with client.stream("POST", "/api/chat", json=body("Count to 80", "shared-id"), headers=ALICE) as alice:
        assert alice.status_code == 200
        assert client.get("/api/chat/shared-id/stream", headers=BOB).status_code == 204
        bob = client.post("/api/chat", json=body("Hello", "shared-id"), headers=BOB)
        assert bob.status_code == 200 and "1, 2" not in text_of(bob.text)
        alice_text = alice.read().decode()
    assert text_of(alice_text).endswith("79, 80.")
    sid = chat_session_id("alice", "shared-id")
    assert sid != chat_session_id("bob", "shared-id")
    # the chat's session is an ordinary session of its user: the native endpoint serves it
    assert client.post(f"/api/sessions/{sid}/messages", json={"text": "Hi"}, headers=ALICE).status_code == 200
    assert client.post(f"/api/sessions/{sid}/messages", json={"text": "Hi"}, headers=BOB).status_code == 404


def test_resume_replays_a_running_turn_then_204(emulator):
    """useChat({resume: true}): GET /api/chat/{id}/stream replays the running turn from its
    start (with the grace period instead of cancel-on-leave), 204 once it is over."""
    emulator.set_pacing(chunk_s=0.02)
    settings = Settings(tokens=dict(REFERENCE_TOKENS), database_url="memory://",
                        chat_cancel_on_disconnect=False)
    with BackgroundServer(create_app(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/api/chat", json=body("Count to 40", "resumable"),
                           headers=ALICE) as first:
            next(first.iter_bytes())  # the client leaves after its first bytes
        replay = client.get("/api/chat/resumable/stream", headers=ALICE)
        assert replay.status_code == 200
        assert replay.headers["x-vercel-ai-ui-message-stream"] == "v1"
        parts = chunks(replay.text)
        assert parts[0]["type"] == "start" and parts[-1] == "[DONE]"
        text = "".join(p["delta"] for p in parts if isinstance(p, dict) and p["type"] == "text-delta")
        assert text.startswith("1, 2, 3,") and text.endswith("40.")
        assert client.get("/api/chat/resumable/stream", headers=ALICE).status_code == 204
        assert client.get("/api/chat/never-used/stream", headers=ALICE).status_code == 204


def test_leaving_cancels_the_turn_and_closes_the_model_request(client, reference_server, emulator):
    emulator.set_pacing(chunk_s=0.02)
    with client.stream("POST", "/api/chat", json=body("Count to 200", "stop-me"), headers=ALICE) as r:
        next(r.iter_bytes())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and emulator.requests[-1].outcome == "running":
        time.sleep(0.05)
    assert emulator.requests[-1].outcome == "client_closed"
    store = reference_server.app.state.turns.store
    tail = threading_run(store.read(chat_session_id("alice", "stop-me"), 0))
    while time.monotonic() < deadline and not tail.finished:  # the end is written just after
        time.sleep(0.05)
        tail = threading_run(store.read(chat_session_id("alice", "stop-me"), 0))
    assert tail.finished and tail.frames[-1].kind == "cancelled"
    assert json.loads(tail.frames[-1].data) == {"reason": "client_closed"}


def threading_run(coro):
    """Run a coroutine to completion in a thread of its own (the server's loop is elsewhere)."""
    import asyncio

    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", asyncio.run(coro)))
    thread.start()
    thread.join(5)
    return result["value"]


# -- the mapping, on ADK events as the native stream sends them ---------------------------------
def ev(event_id, parts, partial=None):
    event = {"id": event_id, "author": "assistant", "content": {"role": "model", "parts": parts}}
    if partial is not None:
        event["partial"] = partial
    return event


def run_mapper(*events, end=("done", {"events": 0})):
    mapper = UIMessageMapper("m")
    out = mapper.start()
    for event in events:
        out += mapper.event(event)
    return out + mapper.end(*end)


def test_mapper_a_reply_that_arrives_whole_is_shown_once():
    out = run_mapper(ev("a", [{"text": "Whole reply."}], partial=False))
    assert [c["type"] for c in out] == ["start", "text-start", "text-delta", "text-end", "finish"]
    assert out[2]["delta"] == "Whole reply."


def test_mapper_partial_calls_wait_for_the_whole_call():
    call = {"functionCall": {"id": "c1", "name": "get_weather", "args": {"city": "Paris"}}}
    out = run_mapper(ev("a", [{"text": "Let me look."}], partial=True), ev("a", [call], partial=True),
                     ev("a", [{"text": "Let me look."}, call], partial=False),
                     ev("b", [{"functionResponse": {"id": "c1", "name": "get_weather",
                                                    "response": {"sky": "sunny"}}}]))
    types = [c["type"] for c in out]
    assert types == ["start", "text-start", "text-delta", "text-end", "tool-input-start",
                     "tool-input-available", "tool-output-available", "finish"]
    assert out[5]["input"] == {"city": "Paris"} and out[6]["output"] == {"sky": "sunny"}


def test_mapper_thoughts_then_text_and_the_endings():
    out = run_mapper(ev("a", [{"text": "Hmm.", "thought": True}, {"text": "Hi"}], partial=True),
                     ev("a", [{"text": "!"}], partial=True),
                     ev("a", [{"text": "Hmm.", "thought": True}, {"text": "Hi!"}], partial=False),
                     end=("error", {"error": {"code": "MODEL_ERROR", "message": "No."}}))
    assert [c["type"] for c in out] == [
        "start", "reasoning-start", "reasoning-delta", "reasoning-end", "text-start", "text-delta",
        "text-delta", "text-end", "error", "finish"]
    assert out[-2]["errorText"] == "MODEL_ERROR: No." and out[-1]["finishReason"] == "error"
    cancelled = run_mapper(ev("a", [{"text": "Hi"}], partial=True),
                           end=("cancelled", {"reason": "client_closed"}))
    assert cancelled[-2:] == [{"type": "text-end", "id": "text-1"},
                              {"type": "abort", "reason": "client_closed"}]
