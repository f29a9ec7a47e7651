"""The reference server is as careful as ADK's own: what an event may show a client, and input
built to break the parser.

- Every event goes through ADK 2.13's ``/run_sse`` rules (``reference_server/redaction.py``):
  a real tool that asks for OAuth credentials never gets its client secret or tokens to the
  client, our frames equal ADK's ``/run_sse`` frames for the same run, and our copy of ADK's
  rules gives what ADK's own functions give.
- Bad input never gets a 500: a table of parser-level attacks, each a 4xx with a JSON reason, on
  a keep-alive connection that then answers the next request.

Servers run under real uvicorn on loopback against the ``emulator`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import json
import random
import socket
import time

import httpx
import pydantic_core
import pytest
from google.adk.auth import auth_credential as adk_auth_credential
from google.adk.events import Event, EventActions
from google.adk.events import _internal_metadata as adk_internal_metadata
from google.genai import types

from reference_server import MAX_BODY_BYTES, Settings, create_app, messages, redaction
from reference_server.redaction import event_json, may_carry_credentials
from workshop.servers import BackgroundServer
from workshop.testing import REFERENCE_TOKENS

ALICE = {"Authorization": "Bearer tok-alice"}

# -- a real tool that asks the user to sign in ------------------------------------------------------
CLIENT_SECRET = "oauth-client-secret-" + "5f1e9c0a7b3d"
ACCESS_TOKEN = "ya29.access-token-" + "c4b8e2f6a1d0"
REFRESH_TOKEN = "1//refresh-token-" + "9a7c5e3b1f0d"
ID_TOKEN = "eyJ.id-token-" + "0d2f4b6a8c1e"
SECRETS = (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN)

# One agent module, loaded by our server and by ADK's own (get_fast_api_app needs a file).
AGENT_SOURCE = f'''
from fastapi.openapi.models import OAuth2, OAuthFlowAuthorizationCode, OAuthFlows
from google.adk.agents import Agent
from google.adk.auth import AuthConfig, AuthCredential, AuthCredentialTypes, OAuth2Auth
from google.adk.models import Gemini
from google.adk.tools import ToolContext

from reference_server.model_responses import model_client_kwargs


def get_calendar(tool_context: ToolContext) -> dict:
    """Read the user's calendar (the user signs in with OAuth first)."""
    flows = OAuthFlows(authorizationCode=OAuthFlowAuthorizationCode(
        authorizationUrl="https://accounts.example.com/auth",
        tokenUrl="https://accounts.example.com/token", scopes={{"calendar": "read"}}))
    tool_context.request_credential(AuthConfig(
        auth_scheme=OAuth2(flows=flows),
        raw_auth_credential=AuthCredential(
            auth_type=AuthCredentialTypes.OAUTH2,
            oauth2=OAuth2Auth(client_id="calendar-client", client_secret={CLIENT_SECRET!r},
                              access_token={ACCESS_TOKEN!r}, refresh_token={REFRESH_TOKEN!r},
                              id_token={ID_TOKEN!r}))))
    return {{"status": "waiting for the user to sign in"}}


root_agent = Agent(name="assistant", instruction="Help with the calendar.", tools=[get_calendar],
                   model=Gemini(model="gemini-3.5-flash", client_kwargs=model_client_kwargs()))
'''
CALENDAR_CALL = {"function_call": {"name": "get_calendar", "args": {}}}
PROMPT = "What's on my calendar?"


@pytest.fixture
def agents_dir(tmp_path):
    """``calendar_app/agent.py`` (what ADK's ``get_fast_api_app`` loads)."""
    app_dir = tmp_path / "calendar_app"
    app_dir.mkdir()
    (app_dir / "__init__.py").write_text("from . import agent\n")
    (app_dir / "agent.py").write_text(AGENT_SOURCE)
    return tmp_path


def load_agent(agents_dir):
    spec = importlib.util.spec_from_file_location("calendar_agent", agents_dir / "calendar_app" / "agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.root_agent


@contextlib.contextmanager
def serve(**settings):
    settings.setdefault("tokens", dict(REFERENCE_TOKENS))
    with BackgroundServer(create_app(Settings(**settings))) as server, \
            httpx.Client(base_url=server.url, timeout=15) as client:
        client.server = server
        yield client


def data_frames(raw: bytes) -> list[dict]:
    """The JSON of every plain ``data:`` frame (the ADK events) of an SSE body."""
    frames = []
    for block in raw.decode().split("\n\n"):
        lines = block.split("\n")
        if any(line.startswith("event:") for line in lines):
            continue  # done / error / cancelled
        data = [line[len("data: "):] for line in lines if line.startswith("data: ")]
        if data:
            frames.append(json.loads("\n".join(data)))
    return frames


def credential_request(frames: list[dict]) -> dict:
    calls = [part["functionCall"] for frame in frames for part in frame.get("content", {}).get("parts", [])
             if part.get("functionCall", {}).get("name") == "adk_request_credential"]
    assert len(calls) == 1, frames
    return calls[0]


def test_a_tool_that_requests_credentials_never_sends_its_secrets(emulator, agents_dir):
    with serve(agent=load_agent(agents_dir)) as client:
        session_service = client.server.app.state.settings.session_service
        sid = client.post("/api/sessions", headers=ALICE).json()["session_id"]
        emulator.script(CALENDAR_CALL)
        with client.stream("POST", f"/api/sessions/{sid}/messages", headers=ALICE,
                           json={"text": PROMPT}) as response:
            assert response.status_code == 200
            raw = b"".join(response.iter_raw())  # the bytes on the wire, before any parsing
        resumed = client.get(f"/api/sessions/{sid}/stream", headers={**ALICE, "Last-Event-ID": "0"}).content
        history = client.get(f"/api/sessions/{sid}/events", headers=ALICE)  # what a reloaded page reads
        assert client.server.errors == []
    assert history.status_code == 200
    credential_request(history.json()["events"])  # the stored request, redacted the same way
    assert raw.rstrip().split(b"\n\n")[-1].split(b"\n")[1] == b"event: done"
    for secret in SECRETS:
        assert secret.encode() not in raw and secret.encode() not in resumed
        assert secret.encode() not in history.content
    # The client still gets what it needs to send the user to sign in.
    auth_config = credential_request(data_frames(raw))["args"]["authConfig"]
    oauth2 = auth_config["exchangedAuthCredential"]["oauth2"]
    assert oauth2["clientId"] == "calendar-client"
    assert oauth2["authUri"].startswith("https://accounts.example.com/auth?")
    assert resumed == raw  # a resume replays the same (redacted) frames
    # The run really carried the tokens: ADK keeps them in the session (never sent).
    session = asyncio.run(session_service.get_session(app_name="workshop", user_id="alice", session_id=sid))
    stored = "".join(event.model_dump_json() for event in session.events)
    assert ACCESS_TOKEN in stored and REFRESH_TOKEN in stored


VOLATILE = {"id", "timestamp", "invocationId", "functionCallId", "state", "authUri", "longRunningToolIds"}


def _normalized(value):
    """A frame with what differs between two runs of the same turn (ids, times, OAuth state)
    blanked out, and function-call ids (also used as keys) replaced by one placeholder."""
    if isinstance(value, dict):
        if set(value) and all(len(k) == 8 and k.isalnum() for k in value):  # keyed by model call ids
            value = {f"CALL-{i}": val for i, val in enumerate(value.values())}
        return {("adk-ID" if key.startswith("adk-") else key): "*" if key in VOLATILE else _normalized(val)
                for key, val in value.items()}
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return "adk-ID" if isinstance(value, str) and value.startswith("adk-") else value


def test_our_frames_equal_adks_own_run_sse_frames_for_the_same_turn(emulator, agents_dir):
    from google.adk.cli.fast_api import get_fast_api_app

    adk_app = get_fast_api_app(agents_dir=str(agents_dir), web=False, session_service_uri="memory://")
    with BackgroundServer(adk_app) as server, httpx.Client(base_url=server.url, timeout=15) as client:
        sid = client.post("/apps/calendar_app/users/u/sessions").json()["id"]
        emulator.script(CALENDAR_CALL)
        with client.stream("POST", "/run_sse", json={
                "app_name": "calendar_app", "user_id": "u", "session_id": sid, "streaming": True,
                "new_message": {"role": "user", "parts": [{"text": PROMPT}]}}) as response:
            theirs = data_frames(b"".join(response.iter_raw()))
    with serve(agent=load_agent(agents_dir)) as client:
        sid = client.post("/api/sessions", headers=ALICE).json()["session_id"]
        emulator.script(CALENDAR_CALL)
        with client.stream("POST", f"/api/sessions/{sid}/messages", headers=ALICE,
                           json={"text": PROMPT}) as response:
            ours = data_frames(b"".join(response.iter_raw()))
    credential_request(theirs)  # ADK's server sends the request too, redacted the same way
    assert len(ours) == len(theirs) >= 4
    assert [_normalized(f) for f in ours] == [_normalized(f) for f in theirs]


# -- our rules and ADK's ------------------------------------------------------------------------------
def adk_run_sse_json(event: Event) -> str:
    """Exactly what ADK 2.13's /run_sse does to an event (google/adk/cli/api_server.py)."""
    return pydantic_core.to_json(adk_auth_credential._redact_credential_secrets(
        adk_internal_metadata.public_event(event).model_dump(exclude_none=True, by_alias=True, mode="json")
    )).decode("utf-8")


def test_the_pinned_adk_rules_are_used():
    assert redaction.ADK_RULES
    assert redaction.redact_credential_secrets is adk_auth_credential._redact_credential_secrets
    assert redaction.public_event is adk_internal_metadata.public_event
    # The copies' constants are ADK's.
    assert redaction.CREDENTIAL_SECRET_KEYS == adk_auth_credential._CREDENTIAL_SECRET_KEYS
    assert redaction.AUTH_TYPES == adk_auth_credential._AUTH_TYPE_VALUES
    assert redaction.INTERNAL_METADATA_PREFIX == adk_internal_metadata.INTERNAL_METADATA_PREFIX


def test_adks_rules_are_still_the_ones_copied():
    """A tripwire for upgrades: ADK's rule functions as they were when redaction.py copied them
    (google-adk 2.13.0). When this fails, ADK changed them: re-read them, bring the copies and
    ``_CARRIERS`` up to date, then update the hash."""
    import hashlib
    import inspect

    functions = (adk_auth_credential._redact_credential_secrets, adk_auth_credential._redact_auth_config_secrets,
                 adk_internal_metadata.public_event, adk_internal_metadata.public_metadata)
    source = "".join(inspect.getsource(f) for f in functions)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == "c2878191ee4a9825"


def _payload(rng: random.Random, depth: int):
    """Random JSON-like data made of what the redaction rules look at."""
    keys = [*sorted(redaction.CREDENTIAL_SECRET_KEYS), "authType", "auth_type", "name", "args",
            "response", "authConfig", "auth_config", "requestedAuthConfigs", "requested_auth_configs",
            "rawAuthCredential", "raw_auth_credential", "exchangedAuthCredential",
            "exchanged_auth_credential", "oauth2", "text", "x"]
    leaves = [*sorted(redaction.AUTH_TYPES), "adk_request_credential", "s3cret", "oauth", 7, None, True]
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(leaves)
    if rng.random() < 0.75:
        return {rng.choice(keys): _payload(rng, depth - 1) for _ in range(rng.randint(0, 4))}
    return [_payload(rng, depth - 1) for _ in range(rng.randint(0, 3))]


def test_our_copy_of_the_rules_gives_what_adks_gives():
    rng = random.Random(11)
    changed = 0
    for _ in range(4000):
        payload = _payload(rng, 5)
        theirs = adk_auth_credential._redact_credential_secrets(payload)
        assert redaction._redact_credential_secrets(payload) == theirs, payload
        if theirs != payload:
            changed += 1
            # The shortcut in event_json never skips a payload the redaction would change.
            assert may_carry_credentials(pydantic_core.to_json(payload).decode()), payload
    assert changed > 500  # the corpus exercised the rules
    for metadata in [None, {}, {"a": 1}, {"__adk_internal_x": 1}, {"__adk_internal_x": 1, "b": 2}]:
        event = Event(author="a", custom_metadata=metadata)
        assert redaction._public_event(event) == adk_internal_metadata.public_event(event)


def _events() -> list[Event]:
    """Events of every kind that go out, some carrying secrets where ADK's rules look."""
    text = types.Content(role="model", parts=[types.Part(text='Say "authType" and {"token": 1}')])
    call = types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(
        name="adk_request_credential", args={"authConfig": {"rawAuthCredential": {
            "authType": "oauth2", "oauth2": {"clientSecret": CLIENT_SECRET, "clientId": "c"}}}}))])
    reply = types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
        name="lookup", response={"credential": {"auth_type": "http", "http": {
            "scheme": "bearer", "credentials": {"token": ACCESS_TOKEN}}}}))])
    return [
        Event(author="assistant", partial=True, content=types.Content(
            role="model", parts=[types.Part(text="Hello", thought_signature=b"\x01\x02")])),
        Event(author="assistant", content=text, custom_metadata={"__adk_internal_x": 1, "mine": "ok"}),
        Event(author="assistant", content=call, long_running_tool_ids={"adk-1"}),
        Event(author="assistant", content=reply),
        Event(author="assistant", actions=EventActions(state_delta={"temp:cred": {
            "authType": "oauth2", "oauth2": {"accessToken": ACCESS_TOKEN}}})),
        Event(author="assistant", error_code="MAX_TOKENS", custom_metadata={"__adk_internal_y": 2}),
    ]


def test_event_json_is_what_adks_run_sse_sends():
    for event in _events():
        assert event_json(event) == adk_run_sse_json(event)
        assert redaction.event_dict(event) == json.loads(adk_run_sse_json(event))
    assert not any(secret in event_json(e) for e in _events() for secret in SECRETS)


# -- hostile input: parser-level attacks ----------------------------------------------------------------
JSON_HEADERS = b"Content-Type: application/json\r\n"
PARSER_ATTACKS = [
    # (name, body, status, code): each sent as a POST of a message to alice's session
    ("deeply nested arrays", b'{"text": ' + b"[" * 15000 + b"]" * 15000 + b"}", 400, "INVALID_JSON"),
    ("deeply nested objects", b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, "INVALID_JSON"),
    ("integer over Python's 4300 digits", b'{"text": ' + b"7" * 5000 + b"}", 400, "INVALID_JSON"),
    ("long integer under the limit", b'{"text": ' + b"7" * 4000 + b"}", 422, "INVALID_REQUEST"),
    ("long fraction", b'{"text": 0.' + b"7" * 30000 + b"}", 422, "INVALID_REQUEST"),
    ("number overflowing a float", b'{"text": 1e999999}', 400, "INVALID_JSON"),
    ("NaN", b'{"text": NaN}', 400, "INVALID_JSON"),
    ("Infinity", b'{"text": "Hi", "n": -Infinity}', 400, "INVALID_JSON"),
    ("invalid UTF-8", b'{"text": "\xff\xfe"}', 400, "INVALID_JSON"),
    ("overlong UTF-8", b'{"text": "\xc0\xaf"}', 400, "INVALID_JSON"),
    ("UTF-8-encoded surrogate", b'{"text": "\xed\xa0\x80"}', 400, "INVALID_JSON"),
    ("UTF-16 with BOM", '{"text": "Hi"}'.encode("utf-16"), 400, "INVALID_JSON"),
    ("UTF-16 without BOM", '{"text": "Hi"}'.encode("utf-16-le"), 400, "INVALID_JSON"),
    ("UTF-32", '{"text": "Hi"}'.encode("utf-32"), 400, "INVALID_JSON"),
    ("UTF-8 BOM", b'\xef\xbb\xbf{"text": "Hi"}', 400, "INVALID_JSON"),
    ("lone high surrogate", b'{"text": "Hi \\ud800"}', 400, "INVALID_JSON"),
    ("lone low surrogate in a key", b'{"text": "Hi", "\\udc00": 1}', 400, "INVALID_JSON"),
    ("duplicate keys", b'{"text": "Hello", "text": "[fault:503] Hello"}', 400, "INVALID_JSON"),
    ("NUL escaped in the text", b'{"text": "Hi\\u0000there"}', 422, "INVALID_REQUEST"),
    ("raw NUL byte", b'{"text": "Hi\x00there"}', 400, "INVALID_JSON"),
    ("raw control character", b'{"text": "Hi\x1bthere"}', 400, "INVALID_JSON"),
    ("empty body", b"", 400, "INVALID_JSON"),
    ("whitespace body", b" \r\n\t ", 400, "INVALID_JSON"),
    ("trailing garbage", b'{"text": "Hi"} x', 400, "INVALID_JSON"),
    ("two documents", b'{"text": "Hi"}{"text": "Hi"}', 400, "INVALID_JSON"),
    ("a string, not an object", b'"Hi"', 422, "INVALID_REQUEST"),
    ("null", b"null", 422, "INVALID_REQUEST"),
    ("thousands of unknown keys", json.dumps({f"k{i}": 0 for i in range(2500)}).encode(),
     422, "INVALID_REQUEST"),
    ("one huge unknown key", json.dumps({"text": "Hi", "k" * 30000: 0}).encode(), 422, "INVALID_REQUEST"),
]


def response_on(sock: socket.socket) -> tuple[int, dict, bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def message_request(sid: str, body: bytes, headers: bytes = JSON_HEADERS, *, length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    return (f"POST /api/sessions/{sid}/messages HTTP/1.1\r\nHost: test\r\n"
            f"Authorization: Bearer tok-alice\r\nContent-Length: {length}\r\n").encode() + headers + b"\r\n" + body


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


def assert_json_error(status, headers, body, expected_status, code):
    assert status == expected_status, body
    assert headers["content-type"] == "application/json", headers  # no stream was started
    assert int(headers["content-length"]) == len(body)  # whole, not half-written
    error = json.loads(body)
    assert set(error) == {"error"} and set(error["error"]) == {"code", "message"}, error
    assert error["error"]["code"] == code and error["error"]["message"]
    assert b"Traceback" not in body and b'File "' not in body
    assert len(body) < 1024  # a reason, never the input echoed back
    return error


@pytest.fixture(scope="module")
def hostile_server():
    with serve() as client:
        yield client


@pytest.fixture
def alice_session(hostile_server, emulator):
    return hostile_server.post("/api/sessions", headers=ALICE).json()["session_id"]


@pytest.mark.parametrize(("body", "status", "code"), [case[1:] for case in PARSER_ATTACKS],
                         ids=[case[0] for case in PARSER_ATTACKS])
def test_a_parser_attack_gets_its_4xx_and_the_connection_stays_usable(hostile_server, emulator, alice_session,
                                                                      body, status, code):
    assert len(body) <= MAX_BODY_BYTES
    server = hostile_server.server
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(message_request(alice_session, body))
        assert_json_error(*response_on(sock), status, code)
        sock.sendall(HEALTHZ)  # the same keep-alive connection answers the next request
        assert response_on(sock)[0] == 200
    assert emulator.requests == []  # nothing reached the model
    assert server.errors == []  # nothing logged as a crash


def test_what_the_parser_still_accepts():
    parse = messages.parse_json
    assert parse(b'{"text": "\\ud83d\\ude00 caf\\u00e9"}') == {"text": "\U0001F600 café"}  # a surrogate pair
    assert parse('{"text": "naïve ✓"}'.encode()) == {"text": "naïve ✓"}
    assert parse(b'{"text": "a", "n": [1.5, -2, 1e300, {"x": null}]}')["n"][3] == {"x": None}
    assert messages.MessageIn.model_validate(parse(b'{"text": "tab\\tand\\nnewline"}')).text == "tab\tand\nnewline"


def exchange(server, data: bytes, *, timeout: float = 10) -> tuple[socket.socket, tuple]:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    sock.sendall(data)
    return sock, response_on(sock)


def closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        sock.sendall(HEALTHZ)
        return sock.recv(1) == b""
    except OSError:
        return True


def test_a_body_shorter_than_its_content_length_is_a_408_and_a_closed_connection(
        hostile_server, emulator, alice_session, monkeypatch):
    monkeypatch.setattr(messages, "BODY_TIMEOUT_S", 0.5)
    sock, answer = exchange(hostile_server.server, message_request(alice_session, b'{"text": "Hi', length=100))
    with sock:
        assert_json_error(*answer, 408, "REQUEST_TIMEOUT")
        assert answer[1]["connection"] == "close"
        assert closed(sock)  # not left waiting for the rest of a body nobody reads
    assert emulator.requests == [] and hostile_server.server.errors == []


def test_a_client_that_gives_up_mid_body_is_no_error(hostile_server, emulator, alice_session):
    sock = socket.create_connection((hostile_server.server.host, hostile_server.server.port), timeout=10)
    with sock:
        sock.sendall(message_request(alice_session, b'{"text": "Hi', length=100))
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer == b"" or b'"INCOMPLETE_BODY"' in answer  # nobody left to answer, or a 400
    assert hostile_server.get("/healthz").status_code == 200
    assert emulator.requests == [] and hostile_server.server.errors == []


def test_a_body_longer_than_its_content_length_is_cut_there(hostile_server, emulator, alice_session):
    body = b'{"text": "Hello"}'
    sock, answer = exchange(hostile_server.server, message_request(alice_session, body, length=9))
    with sock:
        assert_json_error(*answer, 400, "INVALID_JSON")  # the first 9 bytes, then the rest is
    assert emulator.requests == []                       # not a request (uvicorn refuses it)


def test_a_request_hidden_in_a_refused_body_is_never_run(hostile_server, emulator, alice_session):
    hidden = message_request(alice_session, b'{"text": "Hello"}')
    padding = b"a" * (MAX_BODY_BYTES + 10 - len(hidden))
    sock, answer = exchange(hostile_server.server, message_request(alice_session, hidden + padding))
    with sock:
        assert_json_error(*answer, 413, "PAYLOAD_TOO_LARGE")
        sock.sendall(HEALTHZ)
        status, _, body = response_on(sock)
        assert (status, json.loads(body)) == (200, {"status": "ok"})  # the next answer is healthz's
    assert emulator.requests == []


def test_a_chunked_body_past_the_limit_is_a_413(hostile_server, emulator, alice_session):
    chunk = b"a" * 4096
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // 4096 + 2))
    request = (f"POST /api/sessions/{alice_session}/messages HTTP/1.1\r\nHost: test\r\n"
               "Authorization: Bearer tok-alice\r\nTransfer-Encoding: chunked\r\n").encode()
    sock, answer = exchange(hostile_server.server, request + JSON_HEADERS + b"\r\n" + chunks + b"0\r\n\r\n")
    with sock:
        assert_json_error(*answer, 413, "PAYLOAD_TOO_LARGE")
    assert emulator.requests == []


@pytest.mark.parametrize(("name", "headers", "status", "code"), [
    ("a 12 KiB bearer token", {"Authorization": "Bearer " + "a" * 12_000}, 401, "UNAUTHENTICATED"),
    ("a 12 KiB Last-Event-ID", {"Last-Event-ID": "9" * 12_000}, 400, "INVALID_LAST_EVENT_ID"),
    ("a 40 KiB unrelated header", {"X-Padding": "p" * 40_000}, 404, "NO_TURN_TO_RESUME"),
    ("Last-Event-ID with a line break", {"Last-Event-ID": "1\u2028"}, 400, "INVALID_LAST_EVENT_ID"),
    ("Last-Event-ID in full-width digits", {"Last-Event-ID": "\uff11\uff12"}, 400, "INVALID_LAST_EVENT_ID"),
])
def test_very_long_or_odd_header_values_get_a_json_4xx(hostile_server, emulator, alice_session, name,
                                                        headers, status, code):
    lines = "".join(f"{k}: {v}\r\n" for k, v in {**ALICE, **headers}.items())
    request = f"GET /api/sessions/{alice_session}/stream HTTP/1.1\r\nHost: test\r\n{lines}\r\n"
    sock, answer = exchange(hostile_server.server, request.encode("utf-8"))
    with sock:
        assert_json_error(*answer, status, code)
    assert hostile_server.server.errors == []


SESSION_ID_TRICKS = [
    "%2e%2e", "..", ".", "%252F..%252F", "..%5C..%5Cetc", "%00", "{sid}%00", "{sid};x=1", "{sid}%3Fa=1",
    "%C0%AE%C0%AE", "{sid}%20", "%20{sid}", "{sid}%0d%0aX-Injected:%201", "{sid}%09", "{SID}",
    "{sid}*", "{sid}%25", "%E2%80%AE{sid}", "{sid}%EF%BC%8F",
]


@pytest.mark.parametrize("trick", SESSION_ID_TRICKS)
@pytest.mark.parametrize("route", ["messages", "stream", "cancel"])
def test_a_session_id_with_path_tricks_is_not_found(hostile_server, emulator, alice_session, trick, route):
    path = f"/api/sessions/{trick.replace('{sid}', alice_session).replace('{SID}', alice_session.upper())}/{route}"
    method = "GET" if route == "stream" else "POST"
    body = b'{"text": "Hi"}' if route == "messages" else b""
    request = (f"{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer tok-alice\r\n"
               f"Content-Length: {len(body)}\r\n").encode() + JSON_HEADERS + b"\r\n" + body
    sock, answer = exchange(hostile_server.server, request)
    with sock:
        assert_json_error(*answer, 404, "SESSION_NOT_FOUND")
    assert emulator.requests == [] and hostile_server.server.errors == []


def test_a_trailing_slash_is_not_redirected(hostile_server, emulator, alice_session):
    response = hostile_server.post(f"/api/sessions/{alice_session}/messages/", headers={**ALICE, "Host": "evil.example"},
                                   json={"text": "Hi"})
    assert response.status_code == 404 and "location" not in response.headers
    assert emulator.requests == []


# -- the model-response fix when google-genai would pick aiohttp -----------------------------------------
def _aiohttp(mode: str, monkeypatch) -> None:
    """"real": aiohttp is installed (skipped where it is not: the requirements leave it out);
    "simulated": google-genai is told it is (its own flag, read by its own choice)."""
    from google.genai import _api_client

    if mode == "real":
        pytest.importorskip("aiohttp")
        assert _api_client.has_aiohttp
    else:
        monkeypatch.setattr(_api_client, "has_aiohttp", True)


def _uses_aiohttp(model) -> bool:
    return model.api_client._api_client._use_aiohttp()  # google-genai's own choice


@pytest.mark.parametrize("mode", ["simulated", "real"])
def test_the_model_response_fix_holds_where_google_genai_would_pick_aiohttp(emulator, monkeypatch, mode):
    from google.adk.agents import Agent
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.models import Gemini
    from google.adk.runners import InMemoryRunner

    from reference_server.model_responses import closing_model_responses, model_client_kwargs

    _aiohttp(mode, monkeypatch)
    assert _uses_aiohttp(Gemini(model="gemini-3.5-flash"))  # what a plain model would do
    model = Gemini(model="gemini-3.5-flash", client_kwargs=model_client_kwargs())
    assert not _uses_aiohttp(model)
    emulator.set_pacing(chunk_s=0.05)

    async def stopped_turn():
        runner = InMemoryRunner(agent=Agent(name="assistant", model=model, instruction="Count."), app_name="a")
        session = await runner.session_service.create_session(app_name="a", user_id="u")
        message = types.Content(role="user", parts=[types.Part(text="Count to 1000")])
        async with closing_model_responses() as responses:
            async with contextlib.aclosing(runner.run_async(
                    user_id="u", session_id=session.id, new_message=message,
                    run_config=RunConfig(streaming_mode=StreamingMode.SSE))) as events:
                async for event in events:
                    if event.partial:
                        break  # the turn stops between two chunks
        await runner.close()
        return responses

    responses = asyncio.run(stopped_turn())
    assert [type(r) for r in responses] == [httpx.Response] and responses[0].is_closed
    record = emulator.requests[-1]
    deadline = time.monotonic() + 5
    while record.outcome == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
        record = emulator.requests[-1]
    assert record.outcome == "client_closed"  # the model stopped generating


def test_the_model_response_fix_refuses_the_httpx2_client(monkeypatch):
    from reference_server.model_responses import model_client_kwargs

    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", "httpx2")
    with pytest.raises(RuntimeError, match="httpx2"):
        model_client_kwargs()


@pytest.mark.parametrize(("query", "status", "code"), [
    ("last_event_id=%ff", 400, "INVALID_LAST_EVENT_ID"),
    ("last_event_id=-1", 400, "INVALID_LAST_EVENT_ID"),
    ("last_event_id=1e3", 400, "INVALID_LAST_EVENT_ID"),
    ("last_event_id=" + "9" * 5000, 400, "INVALID_LAST_EVENT_ID"),
    ("turn=" + "t" * 5000, 404, "NO_TURN_TO_RESUME"),
    ("&".join(f"p{i}=1" for i in range(5000)), 404, "NO_TURN_TO_RESUME"),
])
def test_query_string_tricks_get_a_json_4xx(hostile_server, emulator, alice_session, query, status, code):
    request = (f"GET /api/sessions/{alice_session}/stream?{query} HTTP/1.1\r\nHost: test\r\n"
               "Authorization: Bearer tok-alice\r\n\r\n").encode()
    sock, answer = exchange(hostile_server.server, request)
    with sock:
        assert_json_error(*answer, status, code)
    assert hostile_server.server.errors == []
