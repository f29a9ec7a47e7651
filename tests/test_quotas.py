"""Per-user limits (reference_server/quotas.py): each refusal a 429 with JSON and Retry-After
before the stream, the session untouched; a turn over its token budget ends with an error
frame; the counts shared by two server processes through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import time
import uuid

import httpx
import pytest
from fastapi import HTTPException
from httpx_sse import connect_sse

from reference_server import Settings, create_app
from reference_server.ai_sdk import chat_session_id
from reference_server.observability import Metrics, Observability
from reference_server.quotas import STREAM_RETRY_AFTER_S, QuotaGuard, Quotas, _key
from workshop.servers import BackgroundServer
from workshop.servers.scaleout import start_processes

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


@contextlib.contextmanager
def limited(**quotas):
    """A server with these ``Quotas`` and metrics on; yields a client of it."""
    settings = Settings(tokens=dict(TOKENS), database_url="memory://", quotas=Quotas(**quotas),
                        observability=Observability(Metrics()))
    with BackgroundServer(create_app(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        client.settings = settings  # what the server stores, for the tests to look at
        yield client
    assert not server.errors, server.errors  # nothing uvicorn logged as an error


def new_session(client, headers=ALICE) -> str:
    return client.post("/api/sessions", headers=headers).json()["session_id"]


def turn(client, session_id, text, headers=ALICE) -> list:
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=headers,
                     json={"text": text}) as source:
        assert source.response.status_code == 200, source.response.read()
        return list(source.iter_sse())


def history(client, session_id, headers=ALICE) -> list:
    return client.get(f"/api/sessions/{session_id}/events", headers=headers).json()["events"]


def assert_429(response: httpx.Response, code: str) -> int:
    """The refusal: 429, the JSON error shape, and Retry-After in whole seconds (returned)."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert f"{retry_after} s" in body["error"]["message"]  # the wait, in words a user reads
    return int(retry_after)


def metric(client, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{re.escape(name)}{re.escape('{' + wanted + '}')} (\S+)$",
                      client.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def chat_events(client, chat_id: str, user: str = "alice") -> int | None:
    """How many events the session behind a chat holds (None: no session)."""
    settings = client.settings
    session = asyncio.run(settings.session_service.get_session(
        app_name=settings.app_name, user_id=user, session_id=chat_session_id(user, chat_id)))
    return None if session is None else len(session.events)


def chat_body(text: str, chat_id: str = "chat-1") -> dict:
    return {"id": chat_id, "trigger": "submit-message",
            "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": text}]}]}


# -- turns per window ---------------------------------------------------------------------------
def test_the_turn_after_the_limit_is_429_and_leaves_the_session_as_it_was(emulator):
    with limited(turn_rate="2/minute") as client:
        session_id = new_session(client)
        for text in ("Count to 2", "Count to 3"):
            assert turn(client, session_id, text)[-1].event == "done"
        before, calls = history(client, session_id), len(emulator.requests)
        refused = client.post(f"/api/sessions/{session_id}/messages", headers=ALICE,
                              json={"text": "Count to 4"})
        wait = assert_429(refused, "TOO_MANY_TURNS")
        assert 30 <= wait <= 60  # the first turn leaves the one-minute window in under a minute
        assert history(client, session_id) == before  # no user message stored
        assert len(emulator.requests) == calls  # the model was not asked
        assert not client.get(f"/api/sessions/{session_id}/events", headers=ALICE).json()["running"]
        # per user: Bob is not limited by Alice's turns
        assert turn(client, new_session(client, BOB), "Count to 2", BOB)[-1].event == "done"
        assert metric(client, "sse_quota_refusals_total", reason="turns") == 1


def test_a_turn_is_allowed_again_once_the_window_has_moved_on(emulator):
    # A window that a short turn cannot outlast, even on a loaded machine.
    with limited(turn_rate="1/5second") as client:
        session_id = new_session(client)
        assert turn(client, session_id, "Count to 2")[-1].event == "done"
        refused = client.post(f"/api/sessions/{session_id}/messages", headers=ALICE, json={"text": "Hi"})
        wait = assert_429(refused, "TOO_MANY_TURNS")
        assert wait <= 5
        time.sleep(wait)
        assert turn(client, session_id, "Count to 3")[-1].event == "done"


def test_api_chat_counts_turns_too(emulator):
    with limited(turn_rate="1/minute") as client:
        first = client.post("/api/chat", json=chat_body("Count to 2"), headers=ALICE)
        assert first.status_code == 200 and '"finish"' in first.text
        calls, before = len(emulator.requests), chat_events(client, "chat-1")
        assert_429(client.post("/api/chat", json=chat_body("Count to 3"), headers=ALICE), "TOO_MANY_TURNS")
        assert_429(client.post("/api/chat", json=chat_body("Hi", "chat-2"), headers=ALICE), "TOO_MANY_TURNS")
        assert len(emulator.requests) == calls
        assert chat_events(client, "chat-1") == before  # nothing stored
        assert chat_events(client, "chat-2") is None  # not even a session for the new chat


def test_a_spent_token_budget_refuses_the_next_turn(emulator):
    with limited(token_rate="50/hour") as client:
        session_id = new_session(client)
        assert turn(client, session_id, "Tell me about streaming in 40 words")[-1].event == "done"
        before = history(client, session_id)
        refused = client.post(f"/api/sessions/{session_id}/messages", headers=ALICE, json={"text": "Hi"})
        assert 1 <= assert_429(refused, "TOKEN_QUOTA_EXCEEDED") <= 3600
        assert history(client, session_id) == before
        assert turn(client, new_session(client, BOB), "Hi", BOB)[-1].event == "done"
        assert metric(client, "sse_quota_refusals_total", reason="tokens") == 1


# -- streams at once ----------------------------------------------------------------------------
@contextlib.contextmanager
def open_stream(client, session_id, text, headers=ALICE):
    """A turn's stream, open, its first frame read; yields the frame iterator."""
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=headers,
                     json={"text": text}) as source:
        assert source.response.status_code == 200
        frames = source.iter_sse()
        assert next(frames).event == "message"
        yield frames


def once_a_slot_is_free(send, timeout_s: float = 10) -> httpx.Response:
    """``send()`` again while it is refused TOO_MANY_STREAMS: a response's slot is released
    once the response has ended on the server, just after the client read its last byte."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = send()
        if response.status_code != 429 or response.json()["error"]["code"] != "TOO_MANY_STREAMS" \
                or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_a_second_stream_is_refused_while_the_first_is_open(emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    with limited(max_streams=1) as client:
        first, second = new_session(client), new_session(client)
        # 6 s of answer: the refusals below must land while it streams, even on a loaded machine
        with open_stream(client, first, "Count to 300"):
            calls = len(emulator.requests)
            refused = client.post(f"/api/sessions/{second}/messages", headers=ALICE, json={"text": "Hi"})
            assert assert_429(refused, "TOO_MANY_STREAMS") == STREAM_RETRY_AFTER_S
            assert history(client, second) == []
            # resuming is a stream too (the turn is not counted again: only the slot)
            resume = client.get(f"/api/sessions/{first}/stream", headers={**ALICE, "Last-Event-ID": "1"})
            assert_429(resume, "TOO_MANY_STREAMS")
            assert_429(client.post("/api/chat", json=chat_body("Hi"), headers=ALICE), "TOO_MANY_STREAMS")
            assert len(emulator.requests) == calls  # none of them reached the model
            # another user has slots of their own
            assert turn(client, new_session(client, BOB), "Count to 2", BOB)[-1].event == "done"
        # the client left: its slot is free (released as the response ends, just after the
        # connection closed: allow it a moment; the turn runs on for a resume)
        response = once_a_slot_is_free(lambda: client.post(
            f"/api/sessions/{second}/messages", headers=ALICE, json={"text": "Count to 2"}))
        assert response.status_code == 200 and "event: done" in response.text
        assert metric(client, "sse_quota_refusals_total", reason="streams") >= 3  # + the retries above


def test_a_client_that_leaves_frees_its_slot(emulator):
    """The slot is the response's, not the turn's: a client that closes its connection mid-
    answer frees it (the turn runs on, for a resume, in its grace period)."""
    emulator.set_pacing(first_token_s=0, chunk_s=0.05)
    with limited(max_streams=1) as client:
        first, second = new_session(client), new_session(client)
        with open_stream(client, first, "Count to 200"):
            pass  # leaves after the first frame
        left = time.monotonic()
        response = once_a_slot_is_free(lambda: client.post(
            f"/api/sessions/{second}/messages", headers=ALICE, json={"text": "Count to 2"}))
        assert response.status_code == 200 and "event: done" in response.text
        assert time.monotonic() - left < 5  # well before the 10 s the first answer takes
        assert client.get(f"/api/sessions/{first}/events", headers=ALICE).json()["running"]


def test_with_one_stream_a_client_that_sends_as_soon_as_an_answer_ends_is_let_in(emulator):
    """The slot frees as the last frame goes, not after the response has ended: a client that
    reads an answer to its end and sends the next message at once is never refused
    TOO_MANY_STREAMS (it was, every time, while the slot was held until the response ended)."""
    emulator.set_pacing(first_token_s=0, chunk_s=0)
    with limited(max_streams=1) as client:
        session_id = new_session(client)
        for text in ("Count to 3",) * 6:  # one after the other, no pause
            assert turn(client, session_id, text)[-1].event == "done"
        chat = client.post("/api/chat", headers=ALICE, json={
            "id": "c1", "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}]})
        assert chat.status_code == 200, chat.text
        assert turn(client, session_id, "Count to 3")[-1].event == "done"


# -- tokens per turn ----------------------------------------------------------------------------
def test_a_turn_over_its_token_budget_ends_with_an_error_frame(emulator, caplog):
    # The emulator's default model thinks first (47 thought tokens in its first chunk): they count.
    emulator.set_pacing(first_token_s=0, chunk_s=0.01)  # 300 words: 3 s, if it ran to the end
    with limited(max_tokens_per_turn=100) as client:
        session_id = new_session(client)
        frames = turn(client, session_id, "Tell me about streaming in 300 words")
        stopped = time.monotonic()
        while emulator.requests[0].outcome == "running" and time.monotonic() - stopped < 5:
            time.sleep(0.02)
        assert emulator.requests[0].outcome == "client_closed"  # the model's stream was closed
        assert frames[-1].event == "error"
        assert json.loads(frames[-1].data)["error"]["code"] == "TURN_TOKEN_LIMIT"
        assert all(f.event == "message" for f in frames[:-1]) and len(frames) > 2
        text = "".join(p.get("text", "") for f in frames[:-1] for p in
                       json.loads(f.data).get("content", {}).get("parts", []))
        assert 10 <= len(text.split()) < 100  # about 50 answer tokens of a 300-word answer
        # the turn is over: the session takes the next message (under the budget)
        assert turn(client, session_id, "Count to 3")[-1].event == "done"
        assert metric(client, "sse_turns_total", outcome="error", code="TURN_TOKEN_LIMIT") == 1
        # /api/chat: the same stop, as an error chunk then finish
        chat = client.post("/api/chat", json=chat_body("Tell me about streaming in 300 words"),
                           headers=ALICE)
        assert '"errorText":"TURN_TOKEN_LIMIT: ' in chat.text and '"finishReason":"error"' in chat.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text  # a clean stop


# -- shared through Redis -----------------------------------------------------------------------
QUOTA_USER = {"Authorization": "Bearer tok-q"}


@contextlib.contextmanager
def two_processes_on_redis(gemini_emulator_session, redis_url, **env):
    """Two real server processes sharing ``redis_url``, with these extra settings; yields a
    client of each, for a new user (the Redis lives for the whole test session) whose token
    is ``QUOTA_USER``'s."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": "memory://", "WORKSHOP_TOKENS": f"tok-q:{user}", "REDIS_URL": redis_url,
           "GOOGLE_GEMINI_BASE_URL": gemini_emulator_session.url, "GOOGLE_API_KEY": "test-key",
           "GEMINI_API_KEY": None, "GOOGLE_GENAI_USE_VERTEXAI": None, **env}
    a, b = start_processes(2, env)
    try:
        with httpx.Client(base_url=a.url, timeout=30) as on_a, httpx.Client(base_url=b.url, timeout=30) as on_b:
            yield on_a, on_b
    finally:
        a.stop()
        b.stop()


def test_two_processes_share_the_limits_through_redis(gemini_emulator_session, emulator, redis_url):
    """Two real server processes on one Redis: what one counted, the other refuses."""
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    with two_processes_on_redis(gemini_emulator_session, redis_url, WORKSHOP_TURNS_PER_MINUTE="3",
                                WORKSHOP_MAX_STREAMS_PER_USER="1") as (on_a, on_b):
        sa, sb = new_session(on_a, QUOTA_USER), new_session(on_b, QUOTA_USER)
        with open_stream(on_a, sa, "Count to 100", QUOTA_USER) as frames:  # turn 1, on A (2 s)
            refused = on_b.post(f"/api/sessions/{sb}/messages", headers=QUOTA_USER, json={"text": "Hi"})
            assert_429(refused, "TOO_MANY_STREAMS")  # A's open stream counts on B
            assert [f.event for f in frames][-1] == "done"
        r = once_a_slot_is_free(lambda: on_b.post(f"/api/sessions/{sb}/messages", headers=QUOTA_USER,
                                                  json={"text": "Count to 2"}))
        assert r.status_code == 200  # turn 2, on B, once A's stream ended
        r = once_a_slot_is_free(lambda: on_a.post(f"/api/sessions/{sa}/messages", headers=QUOTA_USER,
                                                  json={"text": "Count to 3"}))
        assert r.status_code == 200 and "event: done" in r.text  # turn 3, on A
        refused = once_a_slot_is_free(lambda: on_b.post(f"/api/sessions/{sb}/messages",
                                                        headers=QUOTA_USER, json={"text": "Hi"}))
        assert_429(refused, "TOO_MANY_TURNS")  # two turns on A and one on B: the limit
        assert len(history(on_b, sb, QUOTA_USER)) == 2  # turn 2's question and answer only


def test_a_dead_workers_streams_stop_counting_after_their_ttl(redis_url):
    """A worker that dies holding a stream never releases it: its entry expires instead; a live
    worker's entry has its expiry pushed forward. Judged by Redis's own state, not by sleeping
    past a short TTL (a process paused 2 s by a loaded machine refreshes late)."""
    import redis.asyncio as aioredis

    from reference_server.quotas import KEY_PREFIX

    user = f"u-{uuid.uuid4().hex[:8]}"
    key = f"{KEY_PREFIX}:streams:{_key(user)}"

    async def scenario() -> None:
        quotas = Quotas(max_streams=1, redis_url=redis_url, stream_ttl_s=3.0)
        dead, alive = QuotaGuard(quotas), QuotaGuard(quotas)
        held = dead.stream(user)
        await held.__aenter__()  # taken, never released
        dead._refresher.cancel()  # the worker is gone: nothing refreshes it
        with pytest.raises(HTTPException) as refused:
            async with alive.stream(user):
                pass
        assert refused.value.status_code == 429
        expired_by = time.monotonic() + 3.0 + 10
        while True:  # expired after the TTL: the slot is free
            try:
                async with alive.stream(user):
                    break
            except HTTPException as still:
                assert still.status_code == 429 and time.monotonic() < expired_by
                await asyncio.sleep(0.2)
        await dead.close()
        await alive.close()

        # a live worker's stream does not expire: its expiry is pushed forward (every TTL / 3)
        quotas = Quotas(max_streams=1, redis_url=redis_url, stream_ttl_s=6.0)
        other, alive = QuotaGuard(quotas), QuotaGuard(quotas)
        redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        async with alive.stream(user):
            [(member, first_expiry)] = await redis.zrange(key, 0, -1, withscores=True)
            refreshed_by = time.monotonic() + 2.0 + 10
            while (await redis.zscore(key, member) or 0) <= first_expiry:
                assert time.monotonic() < refreshed_by, "the open stream's expiry was never pushed forward"
                await asyncio.sleep(0.1)
            with pytest.raises(HTTPException) as refused:
                async with other.stream(user):
                    pass
            assert refused.value.status_code == 429
        assert await redis.zcard(key) == 0  # released when the stream ends
        await redis.aclose()
        await other.close()
        await alive.close()

    asyncio.run(scenario())


def test_an_unreachable_redis_lets_requests_through(emulator, caplog):
    """The limits' store down: the chat goes on (a warning is logged), it does not fail."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with limited(turn_rate="1/minute", max_streams=1, redis_url=f"redis://127.0.0.1:{port}/0") as client:
        session_id = new_session(client)
        for text in ("Count to 2", "Count to 3"):
            assert turn(client, session_id, text)[-1].event == "done"
    assert "limits' store failed" in caplog.text


def test_the_environment_turns_each_limit_on():
    assert Quotas.from_env({}) == Quotas()  # all off by default
    quotas = Quotas.from_env({"WORKSHOP_TURNS_PER_MINUTE": "20", "WORKSHOP_MAX_STREAMS_PER_USER": "3",
                              "WORKSHOP_TOKENS_PER_HOUR": "100000", "WORKSHOP_MAX_TOKENS_PER_TURN": "0",
                              "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert (quotas.turn_rate, quotas.max_streams, quotas.token_rate, quotas.max_tokens_per_turn) == (
        "20/minute", 3, "100000/hour", None)  # 0: no limit
    assert "6379" not in repr(quotas)  # a Redis URL may hold a password
    for bad in ("-1", "ten", "1.5"):
        with pytest.raises(ValueError, match="WORKSHOP_MAX_STREAMS_PER_USER"):
            Quotas.from_env({"WORKSHOP_MAX_STREAMS_PER_USER": bad})
    settings = Settings.from_env({"WORKSHOP_TOKENS": "t:u", "WORKSHOP_TURNS_PER_MINUTE": "5"},
                                 database_url="memory://")
    assert settings.quotas.turn_rate == "5/minute"


def test_a_turn_refused_by_one_window_is_counted_in_none():
    """Several windows: the hour does not count the turns the minute refused."""
    from limits import parse

    async def scenario() -> None:
        guard = QuotaGuard(Quotas(turn_rate="1/minute;3/hour"))
        await guard.admit_turn("alice")
        for _ in range(3):
            with pytest.raises(HTTPException) as refused:
                await guard.admit_turn("alice")
            assert refused.value.detail["code"] == "TOO_MANY_TURNS"
            assert "sent 1 message in the last minute:" in refused.value.detail["message"]
        limiter, _ = guard._limiters()
        hour = await limiter.get_window_stats(parse("3/hour"), "turns", _key("alice"))
        assert hour.remaining == 2  # one turn counted, not four
        await guard.admit_turn("bob")  # per user

    asyncio.run(scenario())


def test_a_message_sent_while_a_turn_runs_is_refused_409_without_counting(emulator):
    """A double send (a double click, a second tab): the 409 comes before the turn limit counts
    the message, so it does not spend one of the user's turns; on both endpoints."""
    emulator.set_pacing(chunk_s=0.02)
    with limited(turn_rate="2/minute") as client:
        session_id = new_session(client)
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=ALICE,
                         json={"text": "Count to 40"}) as running:  # turn 1 of 2
            frames = running.iter_sse()
            next(frames)
            for _ in range(3):
                again = client.post(f"/api/sessions/{session_id}/messages", headers=ALICE,
                                    json={"text": "Count to 40"})
                assert (again.status_code, again.json()["error"]["code"]) == (409, "TURN_IN_PROGRESS")
            assert [f.event for f in frames][-1] == "done"
        with client.stream("POST", "/api/chat", headers=ALICE, json=chat_body("Count to 40", "busy")) as chat:
            assert chat.status_code == 200  # turn 2 of 2
            body = chat.iter_bytes()  # kept: a dropped iterator closes the response (a Stop)
            next(body)
            for _ in range(3):
                again = client.post("/api/chat", headers=ALICE, json=chat_body("Hi", "busy"))
                assert (again.status_code, again.json()["error"]["code"]) == (409, "TURN_IN_PROGRESS")
            assert b"".join(body).endswith(b"data: [DONE]\n\n")
        assert metric(client, "sse_quota_refusals_total", reason="turns") == 0
        assert_429(client.post(f"/api/sessions/{session_id}/messages", headers=ALICE,
                               json={"text": "Hi"}), "TOO_MANY_TURNS")  # the third turn


async def test_the_409_pre_check_ends_where_the_store_does_at_the_terminal_frame():
    """A client may send its next message as soon as it reads ``done``, while the turn's task
    still cleans up (CI's loaded runs did, in three tests and lesson 09): the pre-check calls a
    turn over once its terminal frame is written, as the store's ``begin_turn`` does."""
    from types import SimpleNamespace

    from reference_server.app import refuse_if_running
    from reference_server.turns import TurnManager

    def manager(running, shared=False):
        turns = SimpleNamespace(running=lambda session_id: running, store=SimpleNamespace(shared=shared))
        turns.refuses_new_turn = lambda session_id: TurnManager.refuses_new_turn(turns, session_id)
        return turns

    turn = SimpleNamespace(terminal=None)
    with pytest.raises(HTTPException) as refused:
        await refuse_if_running(manager(turn), "s1")
    assert refused.value.status_code == 409 and refused.value.detail["code"] == "TURN_IN_PROGRESS"
    turn.terminal = "done"  # written; the task has not finished yet
    await refuse_if_running(manager(turn, shared=True), "s1")  # the store is not asked
    await refuse_if_running(manager(None), "s1")


def test_a_message_for_a_turn_running_on_another_process_is_refused_409_without_counting(
        gemini_emulator_session, emulator, redis_url, tmp_path):
    """The double send of a multi-worker deployment: the turn runs on A, the second click lands
    on B. B reads the live-stream store and answers 409 before its turn limit counts it (it
    used to count it first: two such clicks spent the user's two turns)."""
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    with two_processes_on_redis(gemini_emulator_session, redis_url, WORKSHOP_TURNS_PER_MINUTE="2",
                                DATABASE_URL=f"sqlite:///{tmp_path}/sessions.db") as (on_a, on_b):
        session_id = new_session(on_a, QUOTA_USER)
        # turn 1 of 2, on A: 3 s, so the clicks on B land while it runs, even on a loaded machine
        with open_stream(on_a, session_id, "Count to 150", QUOTA_USER) as frames:
            for _ in range(3):
                again = on_b.post(f"/api/sessions/{session_id}/messages", headers=QUOTA_USER,
                                  json={"text": "Count to 40"})
                assert (again.status_code, again.json()["error"]["code"]) == (409, "TURN_IN_PROGRESS")
            assert [f.event for f in frames][-1] == "done"
        second = on_b.post(f"/api/sessions/{session_id}/messages", headers=QUOTA_USER,
                           json={"text": "Count to 2"})
        assert second.status_code == 200 and "event: done" in second.text  # turn 2 of 2, on B
        assert_429(on_b.post(f"/api/sessions/{session_id}/messages", headers=QUOTA_USER,
                             json={"text": "Hi"}), "TOO_MANY_TURNS")  # the third turn
        assert len(history(on_a, session_id, QUOTA_USER)) == 4  # two questions, two answers
