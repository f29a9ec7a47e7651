"""The reference server's contract, status by status, against real uvicorn on loopback.

The ``reference_server`` fixture (workshop/testing.py) serves ``create_app`` on a free port,
talking to the ``emulator`` fixture; tokens ``tok-alice`` (alice) and ``tok-bob`` (bob).
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from google.adk.events import Event
from httpx_sse import connect_sse

from reference_server import MAX_BODY_BYTES, STREAM_ERRORS

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}


@pytest.fixture
def client(reference_server):
    """A client of a fresh server (the ``reference_server`` fixture), for tests that stream."""
    with httpx.Client(base_url=reference_server.url, timeout=10) as c:
        yield c


@pytest.fixture
def session_id(client):
    return client.post("/api/sessions", headers=ALICE).json()["session_id"]


@pytest.fixture(scope="module")
def shared_server():
    """One server for the tests that end before the model is called (fast tables of 4xx).
    Should a request reach the model anyway, it goes to that test's ``emulator``, which
    the test then finds not empty."""
    from reference_server import Settings, create_app
    from workshop.servers import BackgroundServer
    from workshop.testing import REFERENCE_TOKENS

    with BackgroundServer(create_app(Settings(tokens=dict(REFERENCE_TOKENS), database_url="memory://"))) as server:
        yield server


@pytest.fixture
def quick(shared_server, emulator):
    with httpx.Client(base_url=shared_server.url, timeout=10) as c:
        yield c


@pytest.fixture
def quick_session(quick):
    return quick.post("/api/sessions", headers=ALICE).json()["session_id"]


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def read_stream(client, session_id, text, headers=ALICE):
    """(response, [ServerSentEvent, ...]) of one message, read to the end with httpx-sse."""
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                     headers=headers, json={"text": text}) as source:
        frames = list(source.iter_sse())
        return source.response, frames


# -- plain routes -------------------------------------------------------------------------
def test_healthz_and_page(quick):
    response = quick.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    page = quick.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    schema = quick.get("/openapi.json").json()
    assert {"/api/sessions", "/api/sessions/{session_id}/messages"} <= set(schema["paths"])


def test_unknown_route_and_method_use_the_error_shape(quick):
    assert_error(quick.get("/api/nothing-here", headers=ALICE), 404, "NOT_FOUND")
    assert_error(quick.get("/api/sessions", headers=ALICE), 405, "METHOD_NOT_ALLOWED")


# -- 401 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer tok-mallory"},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dG9rLWFsaWNlOg=="},
    {"Authorization": "tok-alice"},
    {"Authorization": "Bearer tok-alic"},  # a prefix of a real token
], ids=["missing", "unknown", "empty", "basic", "no-scheme", "prefix"])
def test_missing_or_wrong_token_is_401(quick, quick_session, headers, caplog):
    for response in (quick.post("/api/sessions", headers=headers),
                     quick.post(f"/api/sessions/{quick_session}/messages", headers=headers,
                                 json={"text": "Hello"})):
        assert_error(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert "tok-" not in caplog.text  # tokens never reach a log line


def test_scheme_is_case_insensitive(quick):
    assert quick.post("/api/sessions", headers={"Authorization": "bearer tok-bob"}).status_code == 201


# -- sessions -----------------------------------------------------------------------------
def test_create_session_is_201_random_and_owned(quick):
    first = quick.post("/api/sessions", headers=ALICE)
    second = quick.post("/api/sessions", headers=ALICE)
    assert first.status_code == 201
    ids = {first.json()["session_id"], second.json()["session_id"]}
    assert len(ids) == 2 and all(len(i) >= 20 and re.fullmatch(r"[\w-]+", i) for i in ids)


def test_foreign_session_is_the_same_404_as_an_unknown_one(quick, quick_session, emulator):
    foreign = quick.post(f"/api/sessions/{quick_session}/messages", headers=BOB, json={"text": "Hello"})
    unknown = quick.post("/api/sessions/no-such-session/messages", headers=ALICE, json={"text": "Hello"})
    assert_error(foreign, 404, "SESSION_NOT_FOUND")
    assert_error(unknown, 404, "SESSION_NOT_FOUND")
    assert foreign.content == unknown.content
    assert emulator.requests == []  # nothing reached the model


# -- bad bodies, before the first byte ------------------------------------------------------
BIG = json.dumps({"text": "a" * (MAX_BODY_BYTES + 1)}).encode()


def chunked(data: bytes):
    for i in range(0, len(data), 4096):
        yield data[i:i + 4096]


@pytest.mark.parametrize(("body", "status", "code"), [
    (b'{"text": "Hel', 400, "INVALID_JSON"),
    (b"", 400, "INVALID_JSON"),
    (b"text=Hello", 400, "INVALID_JSON"),
    (b'\xff\xfe{"text": "Hello"}', 400, "INVALID_JSON"),
    (b"{}", 422, "INVALID_REQUEST"),
    (b'{"text": ""}', 422, "INVALID_REQUEST"),
    (b'{"text": "  \\n\\t "}', 422, "INVALID_REQUEST"),
    (b'{"text": 5}', 422, "INVALID_REQUEST"),
    (b'{"text": ["Hello"]}', 422, "INVALID_REQUEST"),
    (b'{"text": null}', 422, "INVALID_REQUEST"),
    (b'{"text": "Hello", "user_id": "bob"}', 422, "INVALID_REQUEST"),
    (b'["Hello"]', 422, "INVALID_REQUEST"),
    (BIG, 413, "PAYLOAD_TOO_LARGE"),
], ids=["truncated", "empty", "form", "not-utf8", "no-text", "empty-text", "blank-text",
        "int-text", "list-text", "null-text", "extra-field", "not-object", "too-large"])
def test_bad_bodies_get_4xx_json_before_the_stream(quick, quick_session, emulator, body, status, code):
    response = quick.post(f"/api/sessions/{quick_session}/messages", headers=ALICE, content=body)
    assert_error(response, status, code)
    assert emulator.requests == []


def test_size_limit_counts_the_bytes_that_really_arrive(client, session_id, emulator):
    # No Content-Length (chunked transfer): the limit still holds.
    response = client.post(f"/api/sessions/{session_id}/messages", headers=ALICE, content=chunked(BIG))
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    # Just under the limit is fine (and the message is long, not wrong).
    ok = json.dumps({"text": "Count to 3. " + "a" * (MAX_BODY_BYTES - 40)}).encode()
    assert len(ok) <= MAX_BODY_BYTES
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=ALICE,
                     content=ok) as source:
        assert source.response.status_code == 200
        assert [f.event for f in source.iter_sse()][-1] == "done"


def test_validation_message_names_the_field_without_echoing_input(quick, quick_session):
    body = assert_error(quick.post(f"/api/sessions/{quick_session}/messages", headers=ALICE,
                                    json={"text": "Hello", "secret_field": "s3cr3t-value"}),
                        422, "INVALID_REQUEST")
    assert "secret_field" in body["error"]["message"] and "s3cr3t-value" not in body["error"]["message"]


# -- the stream -----------------------------------------------------------------------------
def test_stream_frames_ids_events_final_and_done(client, session_id):
    response, frames = read_stream(client, session_id, "Count to 5")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"

    assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))
    *data_frames, last = frames
    assert last.event == "done" and json.loads(last.data) == {"events": len(data_frames)}
    assert all(f.event == "message" for f in data_frames)  # no event: line = "message"
    events = [Event.model_validate_json(f.data) for f in data_frames]
    assert all(e.partial for e in events[:-1])
    finals = [e for e in events if e.is_final_response()]
    assert finals == [events[-1]]
    assert "".join(p.text for p in events[-1].content.parts if p.text) == "1, 2, 3, 4, 5."
    # Serialized by ADK's model: camelCase aliases, no nulls.
    first = json.loads(data_frames[0].data)
    assert "invocationId" in first and "invocation_id" not in first
    assert all(": null" not in f.data and ":null" not in f.data for f in data_frames)


def test_tool_calls_travel_as_frames(client, session_id):
    _, frames = read_stream(client, session_id, "What's the weather in Paris?")
    assert frames[-1].event == "done"
    events = [Event.model_validate_json(f.data) for f in frames[:-1]]
    calls = [p.function_call for e in events if not e.partial for p in e.content.parts if p.function_call]
    results = [p.function_response for e in events for p in (e.content.parts if e.content else [])
               if p.function_response]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert results[0].response == {"city": "Paris", "forecast": "Sunny", "temperature_c": 21}


def test_the_conversation_continues_in_the_session(client, session_id, emulator):
    read_stream(client, session_id, "Hello")
    _, frames = read_stream(client, session_id, "Count to 3")
    assert frames[-1].event == "done"
    contents = emulator.requests[-1].body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]


def test_session_events_give_the_conversation_back(client, session_id, emulator):
    """GET .../events: what a reloaded page draws again. The persisted events (no partial
    ones), serialized as the stream sends them; same 401 and 404 rules as the other routes."""
    read_stream(client, session_id, "Hello")
    _, frames = read_stream(client, session_id, "Count to 3")
    response = client.get(f"/api/sessions/{session_id}/events", headers=ALICE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["running"] is False
    events = [Event.model_validate(e) for e in body["events"]]
    assert [e.author for e in events] == ["user", "assistant", "user", "assistant"]
    assert not any(e.partial for e in events)
    assert events[2].content.parts[0].text == "Count to 3"
    # The model's last response, byte for byte the stream's last event frame.
    assert body["events"][-1] == json.loads(frames[-2].data)

    foreign = client.get(f"/api/sessions/{session_id}/events", headers=BOB)
    unknown = client.get("/api/sessions/no-such-session/events", headers=ALICE)
    assert_error(foreign, 404, "SESSION_NOT_FOUND")
    assert_error(unknown, 404, "SESSION_NOT_FOUND")
    assert foreign.content == unknown.content
    assert_error(client.get(f"/api/sessions/{session_id}/events"), 401, "UNAUTHENTICATED")


def test_session_events_say_a_turn_is_running(client, session_id, emulator):
    """A page reloaded mid-turn sees the question and ``running``, then resumes the stream."""
    emulator.set_pacing(first_token_s=0, chunk_s=0.05)
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", headers=ALICE,
                     json={"text": "Count to 60"}) as source:
        next(source.iter_sse())
        with httpx.Client(base_url=str(client.base_url), timeout=10) as other:
            body = other.get(f"/api/sessions/{session_id}/events", headers=ALICE).json()
    assert body["running"] is True
    assert [(e["author"], e["content"]["parts"][0]["text"]) for e in body["events"]] == [
        ("user", "Count to 60")]


def test_session_events_redact_credentials_like_adk():
    """A persisted credential request loses its secrets, as in ADK's own session route."""
    from reference_server.app import history_event

    auth_config = {"authScheme": {"type": "oauth2", "flows": {}},
                   "rawAuthCredential": {"authType": "oauth2", "oauth2": {
                       "clientId": "id", "clientSecret": "s3cret-client"}},
                   "exchangedAuthCredential": {"authType": "oauth2", "oauth2": {
                       "clientId": "id", "accessToken": "s3cret-token"}}}
    event = Event.model_validate({
        "author": "assistant", "invocationId": "i-1", "errorCode": "X", "errorMessage": "internal",
        "content": {"role": "model", "parts": [{"functionCall": {
            "id": "c-1", "name": "adk_request_credential",
            "args": {"functionCallId": "c-0", "authConfig": auth_config}}}]}})
    shown = json.dumps(history_event(event))
    assert "s3cret" not in shown and "internal" not in shown
    assert "adk_request_credential" in shown and '"clientId": "id"' in shown


# A model that fails before its first byte (429/503) is answered 503 with JSON: see
# tests/test_production_server.py.
@pytest.mark.parametrize(("prompt", "code", "frames_before"), [
    ("[fault:cut-after=3] Count to 10", "STREAM_INTERRUPTED", 3),
    ("[fault:error-after=2] Count to 10", "MODEL_UNAVAILABLE", 2),
    ("[fault:finish=MAX_TOKENS] Count to 4", "RESPONSE_TRUNCATED", None),
    ("[fault:finish=SAFETY] Count to 4", "RESPONSE_BLOCKED", None),
])
def test_model_failures_end_with_an_error_frame_and_a_clean_close(
        client, session_id, reference_server, prompt, code, frames_before):
    response, frames = read_stream(client, session_id, prompt)  # no exception: a complete body
    assert response.status_code == 200 and response.is_closed
    *data_frames, last = frames
    assert last.event == "error" and last.id == str(len(frames))
    assert json.loads(last.data) == {"error": {"code": code, "message": STREAM_ERRORS[code]}}
    assert not any(f.event == "done" for f in frames)
    partial_text = [e for e in (Event.model_validate_json(f.data) for f in data_frames) if e.partial
                    and e.content and any(p.text for p in e.content.parts)]
    if frames_before is not None:
        assert len(partial_text) == frames_before
    assert Event.model_validate_json(data_frames[-1].data).error_code  # ADK's error event, forwarded
    assert "Traceback" not in last.data
    assert reference_server.errors == []  # uvicorn saw no broken response
    # The session is still usable.
    _, after = read_stream(client, session_id, "Count to 2")
    assert after[-1].event == "done"


def test_an_exception_in_the_run_becomes_internal_without_details(emulator):
    from google.adk.agents import Agent

    from reference_server import Settings, create_app
    from workshop.servers import BackgroundServer

    def get_weather(city: str) -> dict:
        """Get the weather."""
        raise RuntimeError("db password is hunter2")

    agent = Agent(name="assistant", model="gemini-3.5-flash", tools=[get_weather])
    app = create_app(Settings(tokens={"tok-alice": "alice"}, agent=agent, database_url="memory://"))
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        sid = c.post("/api/sessions", headers=ALICE).json()["session_id"]
        response, frames = read_stream(c, sid, "What's the weather in Paris?")
        assert frames[-1].event == "error"
        assert json.loads(frames[-1].data)["error"]["code"] == "INTERNAL"
        assert not any("hunter2" in f.data for f in frames)
        assert server.errors == []


def test_idle_stream_gets_keepalive_comments(client, session_id, emulator, monkeypatch,
                                               reference_server):
    # The reference server frames its streams itself (replay.Frame); default: a ping after 15 s idle.
    monkeypatch.setattr(reference_server.app.state.turns, "keepalive_s", 0.1)
    # The server waits for the model's first event before it opens the stream (at most
    # first_event_wait_s): shorten that wait so that the stream opens before the first token.
    monkeypatch.setattr(reference_server.app.state.settings, "first_event_wait_s", 0.05)
    with client.stream("POST", f"/api/sessions/{session_id}/messages", headers=ALICE,
                       json={"text": "[fault:slow-first-token=0.5] Hello"}) as response:
        raw = b"".join(response.iter_raw())
    before_first_event = raw[:raw.index(b"data:")]
    assert before_first_event.count(b": ping\n") >= 2
    assert b"\n\n: ping\n\n" not in raw and not raw.startswith(b": ping\n\n")  # a bare comment line
    assert b"event: done" in raw


# A quiet gap mid-answer (a slow tool): 20 s in production against a 15 s keep-alive. Here a
# 8 s gap, a 0.1 s keep-alive, and clients whose read timeout (4 s, forty keep-alives: room for
# a process paused 2-3 s by a loaded machine) is shorter than the gap: only the keep-alive holds
# the connection, and no client may see a message that the server did not send. The three
# clients read at once.
QUIET_GAP_S = 8.0


@pytest.fixture
def slow_tool_server(emulator):
    from google.adk.agents import Agent

    from reference_server import Settings, create_app
    from workshop.servers import BackgroundServer

    async def get_weather(city: str) -> dict:
        """Get today's weather forecast for a city."""
        await asyncio.sleep(QUIET_GAP_S)  # a slow backend: nothing to stream meanwhile
        return {"city": city, "forecast": "Sunny", "temperature_c": 21}

    agent = Agent(name="assistant", model="gemini-3.5-flash", tools=[get_weather])
    app = create_app(Settings(tokens={"tok-alice": "alice"}, agent=agent, database_url="memory://"))
    app.state.turns.keepalive_s = 0.1
    with BackgroundServer(app) as server:
        yield server


PROMPT = "Explain step by step: what's the weather in Paris?"  # text, the slow call, then text


def test_a_quiet_gap_mid_answer_keeps_python_clients_reading(slow_tool_server):
    from httpx_sse import aconnect_sse

    from workshop.loadtest import stream_turn  # the load test's client checks every frame

    with httpx.Client(base_url=slow_tool_server.url, timeout=30, headers=ALICE) as c:
        sid = c.post("/api/sessions").json()["session_id"]
        read_stream(c, sid, "Hello")  # the server's first turn is slower (clients made, imports)
    timeout = httpx.Timeout(10, read=QUIET_GAP_S / 2)

    async def clients():
        async with httpx.AsyncClient(base_url=slow_tool_server.url, timeout=timeout, headers=ALICE) as ac:
            sids = [(await ac.post("/api/sessions")).json()["session_id"] for _ in range(3)]

            async def raw_bytes() -> bytes:
                async with ac.stream("POST", f"/api/sessions/{sids[0]}/messages",
                                     json={"text": PROMPT}) as response:
                    return b"".join([chunk async for chunk in response.aiter_raw()])

            async def httpx_sse_frames() -> list:
                async with aconnect_sse(ac, "POST", f"/api/sessions/{sids[1]}/messages",
                                        json={"text": PROMPT}) as source:
                    return [sse async for sse in source.aiter_sse()]

            return await asyncio.gather(raw_bytes(), httpx_sse_frames(),
                                        stream_turn(ac, f"/api/sessions/{sids[2]}/messages", PROMPT))

    raw, frames, load_turn = asyncio.run(clients())
    gap = raw[raw.index(b'"functionCall"'):raw.index(b'"functionResponse"')]
    assert gap.count(b": ping\n") >= 3, gap[-200:]  # mid-answer, between two frames
    assert b": ping\n\n" not in raw
    assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))
    assert all(f.data for f in frames) and frames[-1].event == "done"
    assert load_turn.problem is None


def test_client_disconnect_closes_the_model_request(client, session_id, emulator, reference_server,
                                                   monkeypatch):
    # A dropped connection keeps the turn running for the resume grace period (30 s by
    # default; tests/test_production_server.py measures it); with none, it stops at once.
    monkeypatch.setattr(reference_server.app.state.turns, "grace_s", 0)
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    with client.stream("POST", f"/api/sessions/{session_id}/messages", headers=ALICE,
                       json={"text": "Count to 300"}) as response:
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if seen.count(b"\n\n") >= 3:
                break
    left_at = time.monotonic()
    while emulator.requests[-1].outcome == "running" and time.monotonic() - left_at < 5:
        time.sleep(0.01)
    record = emulator.requests[-1]
    assert record.outcome == "client_closed"
    # Closed early, counted in the model's own chunks (0.02 s apart), not in wall time: a loaded
    # machine slows the emulator's pacing as much as the server (a 1 s bound was a flake risk).
    assert record.chunks_sent < 100  # of 300
    # The session is usable afterwards.
    emulator.set_pacing(chunk_s=0)
    _, frames = read_stream(client, session_id, "Count to 2")
    assert frames[-1].event == "done"


# -- settings and start-up --------------------------------------------------------------------
def test_tokens_never_in_repr_or_errors():
    from reference_server import Settings, parse_tokens

    settings = Settings.from_env({"WORKSHOP_TOKENS": "tok-a:alice, tok-b:bob"})
    assert settings.tokens == {"tok-a": "alice", "tok-b": "bob"} and settings.dev_token is None
    assert "tok-a" not in repr(settings)
    dev = Settings.from_env({})
    assert dev.dev_token and dev.tokens == {dev.dev_token: "developer"} and dev.dev_token not in repr(dev)
    for bad in ["tok-secret", "tok-secret:", ":alice", "tok-secret:a,tok-secret:b", " , "]:
        with pytest.raises(ValueError) as info:
            parse_tokens(bad)
        assert "secret" not in str(info.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_banner_prints_a_generated_token_only():
    from reference_server import Settings
    from reference_server.__main__ import banner

    env = banner(Settings.from_env({"WORKSHOP_TOKENS": "tok-env-a:alice,tok-env-b:bob"}),
                 "http://127.0.0.1:8000")
    assert "tok-env" not in env and "$TOKEN" in env and "alice, bob" in env
    dev = Settings.from_env({})
    shown = banner(dev, "http://127.0.0.1:8000")
    assert dev.dev_token in shown and "curl -N" in shown and "http://127.0.0.1:8000/" in shown


def test_make_serve_starts_the_emulator_then_the_server_and_prints_the_dev_token():
    """``make serve`` is ``python -m workshop.serve``: the workshop's backend, then the server."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
                        "GOOGLE_GENAI_USE_VERTEXAI", "WORKSHOP_TOKENS")}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "workshop.serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in output and "curl -N" in output, output
        assert "offline Gemini emulator" in output
        token = re.search(r"Development token .*: (\S+)", output).group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get("/healthz").json() == {"status": "ok"}
            created = c.post("/api/sessions", headers={"Authorization": f"Bearer {token}"})
            assert created.status_code == 201
            assert c.post("/api/sessions", headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) in (0, -signal.SIGINT)  # uvicorn re-raises SIGINT
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


def test_python_m_reference_server_never_starts_an_emulator():
    """The server alone needs model credentials; without them it says so and exits."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
                        "GOOGLE_GENAI_USE_VERTEXAI")}
    done = subprocess.run([sys.executable, "-m", "reference_server"], env=env, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "GOOGLE_API_KEY" in done.stderr and "emulator" not in done.stdout + done.stderr
