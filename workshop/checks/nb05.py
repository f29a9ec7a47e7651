"""Checks for 05_fastapi_sse_endpoint."""

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx

from ._report import fail, passed

PROMPT = "Count to 5"
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


# -- Exercise 5.1: sse_frames ---------------------------------------------------------------
async def _replay(events, then: BaseException | None = None) -> AsyncIterator:
    """The events, as an async iterator that raises ``then`` after the last one."""
    for event in events:
        await asyncio.sleep(0)
        yield event
    if then is not None:
        raise then


async def _collect(sse_frames, events, then=None) -> list:
    result = sse_frames(_replay(events, then))
    if inspect.iscoroutine(result):
        await result  # an unfinished exercise raises its NotImplementedError here
        fail("sse_frames returned a coroutine: it is an `async def` that returns instead of yielding.",
             "Make it an async generator: `yield` each ServerSentEvent inside `async for event in events`.")
    if not hasattr(result, "__aiter__"):
        fail(f"sse_frames returned {type(result).__name__}, not an async generator.",
             "Write it as `async def sse_frames(events):` with `yield ServerSentEvent(...)` in it.")
    return [frame async for frame in result]


def _data(frame) -> str | None:
    """What follows ``data:`` on the wire for this frame (as FastAPI would encode it)."""
    if frame.raw_data is not None:
        return frame.raw_data
    if frame.data is None:
        return None
    if hasattr(frame.data, "model_dump_json"):
        return frame.data.model_dump_json()
    return json.dumps(frame.data)


def _has_null(value) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _check_types(frames) -> None:
    from fastapi.sse import ServerSentEvent

    for frame in frames:
        if not isinstance(frame, ServerSentEvent):
            fail(f"sse_frames yielded a {type(frame).__name__}, not a ServerSentEvent.",
                 "Yield fastapi.sse.ServerSentEvent(raw_data=..., id=...) objects; FastAPI writes the "
                 "data:, id: and event: lines for you.")


def _check_event_frames(frames, events) -> None:
    for number, (frame, event) in enumerate(zip(frames, events, strict=False), start=1):
        if frame.event not in (None, "message"):
            fail(f"Frame {number} (an ADK event) has `event: {frame.event}`.",
                 "Leave `event` unset for ADK events; only the done and error frames are named.")
        if frame.raw_data is None and hasattr(frame.data, "model_dump_json"):
            fail("The event travels as `data=event`: FastAPI then writes snake_case keys and every null field.",
                 "Serialize it yourself: raw_data=event.model_dump_json(exclude_none=True, by_alias=True).")
        text = _data(frame)
        if not text:
            fail(f"Frame {number} has no data.", "Put the event's JSON in raw_data.")
        try:
            sent = json.loads(text)
        except ValueError:
            fail(f"Frame {number}'s data is not JSON: {text[:60]!r}",
                 "Use event.model_dump_json(exclude_none=True, by_alias=True), not str(event).")
        if "invocation_id" in sent or "invocationId" not in sent:
            fail("The event JSON has snake_case keys (invocation_id), not camelCase (invocationId).",
                 "Pass by_alias=True to model_dump_json: the aliases are what the Gemini API and JavaScript use.")
        if _has_null(sent):
            fail("The event JSON holds null fields.",
                 "Pass exclude_none=True to model_dump_json: most of an event's fields are None.")
        expected = json.loads(event.model_dump_json(exclude_none=True, by_alias=True))
        if sent != expected:
            fail(f"Frame {number}'s data is not event {number} of the stream.",
                 "Send one frame per event, in order, each holding that event's JSON.")


def _check_ids(frames, events) -> None:
    ids = [frame.id for frame in frames]
    if any(i is None for i in ids):
        fail("Some frames have no id.",
             "Give every frame id=str(n) with n = 1, 2, 3, ...: a client that reconnects sends the last "
             "one back as Last-Event-ID.")
    event_ids = [e.id for e in events]
    if ids[:len(event_ids)] == event_ids:
        fail("The frames' ids are the ADK events' own ids.",
             "ADK gives the partial events and the final event of one response the same id; the SSE "
             "id must grow with every frame: count them, id=str(n).")
    try:
        numbers = [int(i) for i in ids]
    except ValueError:
        fail(f"The frame ids are not integers: {ids[:4]}...", "Use id=str(n) with a counter n = 1, 2, 3, ...")
    if numbers != list(range(1, len(numbers) + 1)):
        fail(f"The frame ids are {numbers[:6]}..., not 1, 2, 3, ...",
             "Count every frame you yield, the final done or error frame included, starting at 1.")


def _check_error_ends(frames, what: str) -> None:
    """An error frame is the last frame: nothing, not even a second error frame, follows it."""
    errors = [i for i, frame in enumerate(frames) if frame.event == "error"]
    if errors and errors[0] != len(frames) - 1:
        after = [frame.event or "message" for frame in frames[errors[0] + 1:]]
        fail(f"With {what}, {len(after)} frame(s) followed the error frame: {', '.join(after)}.",
             "Return right after yielding an error frame: it ends the stream. ADK raises a tool's "
             "exception after its error event, so without the return the client gets a second "
             "error frame (or a done).")


def _check_terminal(frame, kind: str, expected_code: str | None = None, secret: str | None = None) -> dict:
    if frame.event != kind:
        fail(f"The last frame is `event: {frame.event or 'message'}`, not `event: {kind}`.",
             "After the last event yield ServerSentEvent(event='done', raw_data='{}') ..." if kind == "done"
             else "On a failure yield error_frame(code, n) and stop: a client must see why the stream ended.")
    text = _data(frame)
    if not text:
        fail(f"The {kind} frame has no data: line.",
             "A frame without data is never dispatched by a spec-compliant SSE parser (browsers drop it): "
             "send data, e.g. raw_data='{}' or a small JSON summary.")
    try:
        body = json.loads(text)
    except ValueError:
        fail(f"The {kind} frame's data is not JSON: {text[:60]!r}", "Send JSON, e.g. raw_data=json.dumps(...).")
    if kind == "error":
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or not {"code", "message"} <= set(error):
            fail(f"The error frame's data is {text[:80]}, not {{\"error\": {{\"code\": ..., \"message\": ...}}}}.",
                 "Use error_frame(code, frame_id) from the cell above.")
        if expected_code and error["code"] != expected_code:
            fail(f"The error code is {error['code']}, but this failure is {expected_code}.",
                 "Classify it: classify_exception(exc) for an exception, "
                 "classify_error_code(event.error_code) for an error event.")
        if secret and secret in text:
            fail("The error frame repeats the exception's message to the client.",
                 "Internals stay in the server log; the frame carries the fixed message of its code "
                 "(error_frame does that), never str(exc).")
    return body


async def check_sse_frames(sse_frames, runner, session_service, user_id: str = "learner") -> None:
    """Drive the learner's sse_frames with a real stream, a broken one, an error event, a cancel."""
    import httpx as _httpx
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.events import Event
    from google.genai import types

    session = await session_service.create_session(app_name=runner.app_name, user_id=user_id)
    message = types.Content(role="user", parts=[types.Part(text=PROMPT)])
    events = [e async for e in runner.run_async(
        user_id=user_id, session_id=session.id, new_message=message,
        run_config=RunConfig(streaming_mode=StreamingMode.SSE))]

    # 1. A whole stream: one frame per event, ids 1..n, then done.
    frames = await _collect(sse_frames, events)
    _check_types(frames)
    if len(frames) == len(events):
        fail(f"{len(frames)} frames for {len(events)} events: the done frame is missing.",
             "After the loop, yield ServerSentEvent(event='done', raw_data=..., id=...): without it a "
             "client cannot tell a finished answer from a cut connection.")
    if len(frames) != len(events) + 1:
        fail(f"{len(frames)} frames for {len(events)} events; expected {len(events) + 1} (one per event, then done).",
             "Yield exactly one frame per ADK event, partial and final alike, then one done frame.")
    _check_event_frames(frames, events)
    _check_ids(frames, events)
    _check_terminal(frames[-1], "done")

    # 2. The model's connection breaks after two events.
    cut = _httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    try:
        broken = await _collect(sse_frames, events[:2], then=cut)
    except _httpx.RemoteProtocolError:
        fail("The exception escaped sse_frames.",
             "After the first byte the status (200) is sent: catch Exception around the loop and yield "
             "error_frame(classify_exception(exc), n) instead, so the client learns what happened.")
    _check_types(broken)
    _check_error_ends(broken, "a connection cut after two events")
    if any(f.event == "done" for f in broken):
        fail("A stream that failed ends with a done frame.",
             "done means success; on an exception yield the error frame and return.")
    if len(broken) != 3:
        fail(f"{len(broken)} frames for two events and a failure; expected 3 (two events, one error).",
             "Keep the frames sent before the failure, then yield one error frame.")
    _check_ids(broken, events[:2])
    _check_terminal(broken[-1], "error", "STREAM_INTERRUPTED")

    # 3. A bug of ours: the message must stay on the server.
    secret = "password=hunter2"
    crashed = await _collect(sse_frames, events[:1], then=RuntimeError(f"db connect failed: {secret}"))
    _check_types(crashed)
    _check_error_ends(crashed, "a crash after one event")
    _check_terminal(crashed[-1], "error", "INTERNAL", secret=secret)

    # 4. A finish reason other than STOP: ADK sets error_code on the final event, raises nothing.
    truncated_event = events[-1].model_copy(update={"error_code": "MAX_TOKENS"})
    truncated = await _collect(sse_frames, [*events[:-1], truncated_event])
    _check_types(truncated)
    _check_error_ends(truncated, "a final event carrying error_code='MAX_TOKENS'")
    if truncated[-1].event == "done":
        fail("The final event carried error_code='MAX_TOKENS', and the stream still ended with done.",
             "An event whose error_code is set is a failure (here: the answer was cut at the output "
             "limit): send its frame, then error_frame(classify_error_code(event.error_code), n), and return.")
    if len(truncated) != len(events) + 1:
        fail(f"{len(truncated)} frames for {len(events)} events ending in an error event; expected "
             f"{len(events) + 1}: every event, then one error frame.",
             "Send the error event's own frame too, then the error frame, then stop.")
    _check_terminal(truncated[-1], "error", "RESPONSE_TRUNCATED")

    # 5. A tool raised: ADK yields an event with error_code and str(exception), then raises it.
    tool_error = Event(invocation_id=events[0].invocation_id, author=events[0].author,
                       error_code="RuntimeError", error_message=f"db connect failed: {secret}")
    crashed_tool = await _collect(sse_frames, [events[0], tool_error],
                                  then=RuntimeError(f"db connect failed: {secret}"))
    _check_types(crashed_tool)
    if any(secret in (_data(f) or "") for f in crashed_tool):
        fail("The error event's error_message reached the client (it holds the tool's exception text).",
             "ADK puts str(exception) in error_message. Send the event without it: "
             "event = event.model_copy(update={'error_message': None}).")
    _check_error_ends(crashed_tool, "a tool's error event followed by its exception")
    if len(crashed_tool) != 3:
        fail(f"{len(crashed_tool)} frames for an event, a tool's error event and its exception; "
             "expected 3: both events, then one error frame.",
             "Send the error event's own frame, then one error frame, then return.")
    _check_terminal(crashed_tool[-1], "error", "INTERNAL")

    # 6. A client that goes away cancels the stream: that is not an error to report.
    try:
        cancelled = await _collect(sse_frames, events[:1], then=asyncio.CancelledError())
    except asyncio.CancelledError:
        pass
    else:
        fail(f"Cancellation was swallowed (the stream went on and yielded {len(cancelled)} frames).",
             "Catch Exception, not BaseException (or a bare except): asyncio.CancelledError must pass "
             "through so the server can stop the run when the client leaves.")
    passed(f"{len(frames)} frames for {len(events)} events (ids 1..{len(frames)}, camelCase, no nulls), then "
           "done; a cut, a crash and an error event each end in one error frame with the right code.")


# -- Exercise 5.2: make_current_user --------------------------------------------------------
class _CompareDigestSpy:
    """Counts calls of hmac.compare_digest (also reached as secrets.compare_digest, or as a name
    the learner's code imported) while a request runs. Timing cannot show a constant-time
    comparison reliably; whether the decision went through compare_digest can be observed."""

    def __init__(self, *functions) -> None:
        self.calls = 0
        self._functions = functions
        self._undo: list = []

    def _spy(self, a, b):
        self.calls += 1
        return self._real(a, b)

    def __enter__(self) -> "_CompareDigestSpy":
        import hmac
        import secrets

        self._real = real = hmac.compare_digest
        places = [vars(hmac), vars(secrets)]
        for function in self._functions:
            places.append(getattr(function, "__globals__", {}))  # `from hmac import compare_digest`
        for namespace in places:
            for name, value in list(namespace.items()):
                if value is real:
                    namespace[name] = self._spy
                    self._undo.append(lambda ns=namespace, n=name: ns.__setitem__(n, real))
        for function in self._functions:  # imported inside make_current_user: a closure cell
            for cell in getattr(function, "__closure__", None) or ():
                with contextlib.suppress(ValueError):
                    if cell.cell_contents is real:
                        cell.cell_contents = self._spy
                        self._undo.append(lambda c=cell: setattr(c, "cell_contents", real))
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()


async def _call(current_user, authorization: str | None) -> httpx.Response:
    from fastapi import Depends, FastAPI

    from reference_server.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/me")
    async def me(user: Annotated[str, Depends(current_user)]) -> dict[str, Any]:
        return {"user": user}

    headers = {} if authorization is None else {"Authorization": authorization}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a crash is a 500
    async with httpx.AsyncClient(transport=transport, base_url="http://check") as client:
        return await client.get("/me", headers=headers)


async def check_current_user(make_current_user) -> None:
    """Mount the learner's dependency in a small app and call it with good and bad headers."""
    current_user = make_current_user(dict(TOKENS))
    if not callable(current_user):
        fail(f"make_current_user returned {type(current_user).__name__}, not a function.",
             "Define `async def current_user(authorization: ... = None) -> str` inside it and return it.")
    for header, user in [("Bearer tok-alice", "alice"), ("Bearer tok-bob", "bob")]:
        response = await _call(current_user, header)
        if response.status_code != 200 or response.json() != {"user": user}:
            fail(f"With `Authorization: {header}` the route answered {response.status_code} {response.text[:80]}.",
                 "Read the header with `authorization: Annotated[str | None, Header()] = None`, split off "
                 "'Bearer ', and return the user the token maps to.")
    response = await _call(current_user, "bearer tok-alice")
    if response.status_code != 200:
        fail("`Authorization: bearer tok-alice` (lowercase scheme) was refused.",
             "The scheme is case-insensitive (RFC 7235): compare scheme.lower() == 'bearer'.")
    bad = {
        "no Authorization header": None,
        "an unknown token": "Bearer tok-mallory",
        "a prefix of a real token": "Bearer tok-alic",
        "a longer token": "Bearer tok-alice-and-more",
        "the Basic scheme": "Basic dG9rLWFsaWNlOg==",
        "a token without a scheme": "tok-alice",
        "an empty token": "Bearer",
        "a token with non-ASCII characters": "Bearer tök-alice".encode(),  # as a client may send
    }
    for what, header in bad.items():
        response = await _call(current_user, header)
        if response.status_code == 500:
            fail(f"With {what} the dependency crashed (500).",
                 "hmac.compare_digest raises TypeError for str holding non-ASCII characters: "
                 "compare bytes, token.encode() against candidate.encode().")
        if response.status_code == 422 and header is None:
            fail("A request without the header got FastAPI's 422, not 401.",
                 "Give the header a default, `= None`, and raise the 401 yourself when it is missing.")
        if response.status_code == 403:
            fail(f"With {what} the answer is 403.",
                 "401 means 'who are you?' (missing or wrong credentials); 403 means 'I know you, and no'.")
        if response.status_code != 401:
            fail(f"With {what} the answer is {response.status_code}, not 401.",
                 "Accept only 'Bearer <a known token>', compared whole; raise "
                 "HTTPException(401, ..., headers={'WWW-Authenticate': 'Bearer'}) otherwise.")
        if not response.headers.get("www-authenticate", "").lower().startswith("bearer"):
            fail(f"The 401 for {what} has no `WWW-Authenticate: Bearer` header.",
                 "Pass headers={'WWW-Authenticate': 'Bearer'} to the exception: HTTP requires it with a 401.")
    for what, header in [("an unknown token", "Bearer tok-mallory"),
                         ("a near miss of a real token", "Bearer tok-alicf")]:
        with _CompareDigestSpy(make_current_user, current_user) as spy:
            await _call(current_user, header)
        if not spy.calls:
            fail(f"{what.capitalize()} was refused without hmac.compare_digest being called.",
                 "== and a dict lookup (`token in tokens`) return as soon as a character differs, "
                 "which leaks through timing how close a guess was: compare the presented token "
                 "with every known one using hmac.compare_digest (secrets.compare_digest is the "
                 "same function).")
    passed("Known tokens map to their users; missing, unknown, partial, non-ASCII and non-Bearer "
           "credentials get 401 with WWW-Authenticate: Bearer; unknown tokens were refused through "
           "hmac.compare_digest.")
