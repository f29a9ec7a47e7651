"""A minimal FastAPI endpoint that streams an ADK agent's answer as Server-Sent Events.

The endpoint lesson 05 (solutions/05_fastapi_sse_endpoint.ipynb) builds, cell by cell: this
file is those cells, in order (a test compares them), plus the ``__main__`` block at the end.

    pip install google-adk fastapi uvicorn       # verified: 2.13.0, 0.165.0, 0.54.0
    export GOOGLE_API_KEY=...                    # or GOOGLE_GEMINI_BASE_URL for another endpoint
    python minimal_sse_endpoint.py               # serves http://127.0.0.1:8000 (HOST, PORT)

    curl -s -X POST -H 'Authorization: Bearer tok-alice' http://127.0.0.1:8000/api/sessions
    curl -N -H 'Authorization: Bearer tok-alice' -H 'Content-Type: application/json' \\
         -d '{"text": "Hello"}' http://127.0.0.1:8000/api/sessions/SESSION_ID/messages

The model is ``WORKSHOP_MODEL`` (default ``gemini-3.5-flash``). ``sse_client.py`` next to
this file reads the stream from Python.

The contract: every ``/api`` call carries ``Authorization: Bearer <token>`` (401 without a
known one); ``POST /api/sessions`` creates a session owned by the caller (201); ``POST
/api/sessions/{id}/messages`` with ``{"text": "..."}`` answers 200 ``text/event-stream``: one
frame per ADK event (``id:`` 1, 2, ...), then ``event: done``, or ``event: error`` with
``{"error": {"code", "message"}}`` when something fails after the first byte. Before the first
byte every error is a 4xx with that same JSON body: 401, 404 (unknown or another user's
session), 400 (not JSON), 413 (over 32 KiB), 422 (not ``{"text": "..."}``).

The reference server (``reference_server/`` in the workshop) keeps this contract and goes further:
one turn at a time per session, retries and a 503 before the first byte, ``/cancel``, resumable
streams with ``Last-Event-ID``, persistent sessions, tokens from the environment.
"""

import json

import httpx
from fastapi import HTTPException
from fastapi.sse import ServerSentEvent
from google.genai import errors as genai_errors

# The codes of `event: error` frames, with the message a user may read (no internals).
STREAM_ERRORS = {
    "RATE_LIMITED": "The model is receiving too many requests. Wait a moment and try again.",
    "MODEL_UNAVAILABLE": "The model is unavailable right now. Try again in a moment.",
    "STREAM_INTERRUPTED": "The connection to the model broke before the answer was complete.",
    "RESPONSE_TRUNCATED": "The answer was cut short: it reached the model's output limit.",
    "RESPONSE_BLOCKED": "The model stopped: the answer was blocked by a safety filter.",
    "MODEL_ERROR": "The model could not answer this request.",
    "INTERNAL": "Something went wrong on the server while answering.",
}

# ADK puts a model error's status name, a non-STOP finish reason, or a transport
# exception's class name into `event.error_code`.
ERROR_CODE_CLASSES = {
    "RESOURCE_EXHAUSTED": "RATE_LIMITED",
    "UNAVAILABLE": "MODEL_UNAVAILABLE",
    "INTERNAL": "MODEL_UNAVAILABLE",
    "DEADLINE_EXCEEDED": "MODEL_UNAVAILABLE",
    "ConnectError": "MODEL_UNAVAILABLE",
    "ConnectTimeout": "MODEL_UNAVAILABLE",
    "RemoteProtocolError": "STREAM_INTERRUPTED",
    "ReadError": "STREAM_INTERRUPTED",
    "ReadTimeout": "STREAM_INTERRUPTED",
    "MAX_TOKENS": "RESPONSE_TRUNCATED",
    "SAFETY": "RESPONSE_BLOCKED",
    "RECITATION": "RESPONSE_BLOCKED",
    "BLOCKLIST": "RESPONSE_BLOCKED",
    "PROHIBITED_CONTENT": "RESPONSE_BLOCKED",
    "SPII": "RESPONSE_BLOCKED",
    "IMAGE_SAFETY": "RESPONSE_BLOCKED",
}


def classify_error_code(error_code: str) -> str:
    """The stream error code for an ADK event's ``error_code``."""
    if error_code in ERROR_CODE_CLASSES:
        return ERROR_CODE_CLASSES[error_code]
    # The model's status names and finish reasons are UPPER_CASE; anything else is the class
    # name of an exception raised in this process (a tool, a callback, ADK itself).
    return "MODEL_ERROR" if error_code.isupper() else "INTERNAL"


def classify_exception(exc: Exception) -> str:
    """The stream error code for an exception raised while iterating the run."""
    if isinstance(exc, genai_errors.APIError):
        if exc.code == 429:
            return "RATE_LIMITED"
        return "MODEL_UNAVAILABLE" if exc.code >= 500 else "MODEL_ERROR"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return "MODEL_UNAVAILABLE"
    if isinstance(exc, httpx.TransportError):
        return "STREAM_INTERRUPTED"
    return "INTERNAL"


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_frame(code: str, frame_id: int) -> ServerSentEvent:
    """The in-band error: ``event: error`` with the same JSON shape as a 4xx body."""
    return ServerSentEvent(
        event="error", raw_data=json.dumps(error_body(code, STREAM_ERRORS[code])), id=str(frame_id)
    )


def api_error(status: int, code: str, message: str, headers: dict | None = None) -> HTTPException:
    """An error answered before the first byte. ``raise api_error(...)``."""
    return HTTPException(status_code=status, detail={"code": code, "message": message}, headers=headers)


import logging
from collections.abc import AsyncIterable, AsyncIterator

from google.adk.events import Event

logger = logging.getLogger("minimal_sse_endpoint")


# [snippet: sse-frames]
async def sse_frames(events: AsyncIterable[Event]) -> AsyncIterator[ServerSentEvent]:
    """Each ADK event as one frame (``id:`` 1, 2, ...), then ``event: done``; or ``event: error``."""
    # Sent as model_dump_json, without the credential redaction of ADK's /run_sse: fine for this
    # agent, whose tool asks for no credentials; before copying this for an agent with a tool that
    # requests credentials, add the reference server's redaction (reference_server/redaction.py).
    frame_id = 0
    try:
        async for event in events:
            frame_id += 1
            # [snippet: serialize-event]
            if event.error_code:  # error_message holds str(exception): internals, not for clients
                event = event.model_copy(update={"error_message": None})
            yield ServerSentEvent(
                raw_data=event.model_dump_json(exclude_none=True, by_alias=True), id=str(frame_id)
            )
            # [end snippet]
            if event.error_code:
                yield error_frame(classify_error_code(event.error_code), frame_id + 1)
                return
    except Exception as exc:  # after the first byte the status is 200: report in band
        logger.warning("stream failed after %d frames", frame_id, exc_info=exc)
        yield error_frame(classify_exception(exc), frame_id + 1)
        return
    yield ServerSentEvent(event="done", raw_data=json.dumps({"events": frame_id}), id=str(frame_id + 1))
# [end snippet]


import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Header


# [snippet: bearer-token]
def make_current_user(tokens: Mapping[str, str]):
    """A FastAPI dependency: the user whose token is in ``Authorization: Bearer <token>``."""
    known = [(token.encode(), user) for token, user in tokens.items()]

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise api_error(401, "UNAUTHENTICATED", "Send Authorization: Bearer <token>.",
                            headers={"WWW-Authenticate": "Bearer"})
        presented = token.strip().encode()
        user = None
        for candidate, name in known:
            if hmac.compare_digest(presented, candidate):
                user = name
        if user is None:
            raise api_error(401, "UNAUTHENTICATED", "The token is not valid.",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return user

    return current_user
# [end snippet]


from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_BODY_BYTES = 32 * 1024  # the documented limit of a message body (413 above it)


class MessageIn(BaseModel):
    """``{"text": "..."}`` and nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, description="The user's message.")

    @field_validator("text")
    @classmethod
    def not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be blank")
        return text


async def read_message(request: Request) -> MessageIn:
    """A dependency: the body, at most MAX_BODY_BYTES (declared or actually sent), as a MessageIn."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise api_error(413, "PAYLOAD_TOO_LARGE", f"The body is limited to {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():  # count what really arrives (chunked bodies have no length)
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise api_error(413, "PAYLOAD_TOO_LARGE", f"The body is limited to {MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested thousands deep
        raise api_error(400, "INVALID_JSON", 'The body must be JSON: {"text": "..."}.') from None
    try:
        return MessageIn.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None


import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import TypeVar

import anyio

T = TypeVar("T")
_END = object()


# [snippet: own-task-aclosing]
async def in_own_task(agen: AsyncGenerator[T, None], close_timeout_s: float = 5.0) -> AsyncIterator[T]:
    """Iterate ``agen`` (e.g. ``runner.run_async(...)``) in its own asyncio task.

    Closing this generator (a client that went away) cancels that task, which closes ``agen``
    with ``contextlib.aclosing`` and so ADK's model request, and waits for it.
    """
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async with contextlib.aclosing(agen) as items:
                async for item in items:
                    await queue.put((item, None))
        except Exception as exc:  # handed to the reader, raised there
            await queue.put((_END, exc))
        else:
            await queue.put((_END, None))

    task = asyncio.create_task(pump(), name="adk-run")
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([task], timeout=close_timeout_s)
# [end snippet]


import os

from google.adk.agents import Agent

MODEL = os.environ.get("WORKSHOP_MODEL") or "gemini-3.5-flash"  # google-adk 2.13's default

FORECASTS = {
    "paris": ("Sunny", 21),
    "london": ("Light rain", 14),
    "tokyo": ("Cloudy", 18),
    "new york": ("Clear", 16),
}


def get_weather(city: str) -> dict:
    """Get today's weather forecast for a city.

    Args:
        city: The city's name, e.g. "Paris".

    Returns:
        The city, a short forecast and the temperature in degrees Celsius.
    """
    forecast, temperature_c = FORECASTS.get(city.strip().lower(), ("Partly cloudy", 19))
    return {"city": city, "forecast": forecast, "temperature_c": temperature_c}


assistant = Agent(
    name="assistant",
    model=MODEL,
    instruction="You are a helpful assistant. Answer clearly and briefly. "
                "When the user asks about the weather somewhere, call get_weather.",
    tools=[get_weather],
)


from http import HTTPStatus

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

api = FastAPI(title="A minimal ADK SSE endpoint")


@api.exception_handler(StarletteHTTPException)  # ours (api_error) and FastAPI's own 404, 405
async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.detail, dict):  # raised with api_error(...)
        code, message = exc.detail["code"], exc.detail["message"]
    else:
        code, message = HTTPStatus(exc.status_code).name, str(exc.detail)  # e.g. NOT_FOUND
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


@api.exception_handler(RequestValidationError)  # a body of the wrong shape: 422
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Say which field is wrong, but never echo the input back (it can be large, or private).
    problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
    return JSONResponse(error_body("INVALID_REQUEST", "; ".join(problems)), status_code=422)


@api.exception_handler(Exception)  # a bug: a 500 with no traceback for the client
async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("INTERNAL", STREAM_ERRORS["INTERNAL"]), status_code=500)


import secrets

from fastapi import Depends
from fastapi.sse import EventSourceResponse
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

APP_NAME = "workshop"
# token -> user. Demonstration tokens: in production, verify a session cookie or a signed JWT.
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}

sessions = InMemorySessionService()
runner = Runner(app_name=APP_NAME, agent=assistant, session_service=sessions)
current_user = make_current_user(TOKENS)


async def owned_session(session_id: str, user: Annotated[str, Depends(current_user)]) -> Session:
    """The caller's session, or 404: a foreign id gets the same answer as an unknown one."""
    session = await sessions.get_session(
        app_name=APP_NAME, user_id=user, session_id=session_id,
        config=GetSessionConfig(num_recent_events=0),
    )
    if session is None:
        raise api_error(404, "SESSION_NOT_FOUND", "No such session.")
    return session


@api.post("/api/sessions", status_code=201)
async def create_session(user: Annotated[str, Depends(current_user)]) -> dict:
    session = await sessions.create_session(
        app_name=APP_NAME, user_id=user, session_id=secrets.token_urlsafe(16)
    )
    return {"session_id": session.id}


# [snippet: fastapi-endpoint]
@api.post("/api/sessions/{session_id}/messages", response_class=EventSourceResponse)
async def post_message(
    session: Annotated[Session, Depends(owned_session)],
    message: Annotated[MessageIn, Depends(read_message)],
) -> AsyncIterator[ServerSentEvent]:
    """Stream the agent's answer: one frame per ADK event, then ``done`` (or ``error``)."""
    content = types.Content(role="user", parts=[types.Part(text=message.text)])
    run = runner.run_async(
        user_id=session.user_id, session_id=session.id, new_message=content,
        run_config=RunConfig(streaming_mode=StreamingMode.SSE),
    )
    async for frame in sse_frames(in_own_task(run)):  # a client that leaves closes the model call
        yield frame
# [end snippet]


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(api, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
