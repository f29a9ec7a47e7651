"""The reference SSE server: ``create_app(settings)`` builds the FastAPI app.

The API's routes live in ``router`` (an ``APIRouter``); their dependencies read what
``create_app`` puts in ``request.app.state`` (``settings``, ``runner``, ``turns``,
``current_user``), so a route is added with ``@router.get(...)`` and
``Depends(owned_session)``, nothing else. Notebook 05 builds the core of its contract step by
step (``examples/minimal_sse_endpoint.py`` in the workshop); this module is the complete,
production version. Run it with ``make serve`` or ``python -m reference_server``.
"""

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from google.adk.agents import BaseAgent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.events import Event
from google.adk.models import Gemini
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from pydantic import ValidationError

from .agent import build_agent, model_name
from .ai_sdk import (
    CHAT_MAX_BODY_BYTES,
    UI_MESSAGE_STREAM_HEADERS,
    ChatRequest,
    UIMessageStreamEncoder,
    chat_session_id,
)
from .auth import TOKENS_ENV, JwtVerifier, make_current_user, parse_tokens
from .drain import DEFAULT_DRAIN_S, RESTARTING, Drain, drain_s_from_env
from .errors import STREAM_ERRORS, api_error, error_body, install_error_handlers
from .messages import MAX_BODY_BYTES, MessageIn, read_json, read_message
from .model_responses import model_client_kwargs
from .observability import Observability
from .production import (
    DEFAULT_FIRST_EVENT_WAIT_S,
    DEFAULT_REPLAY_TTL_S,
    DEFAULT_RESUME_GRACE_S,
    RETRY_AFTER_S,
    default_retry_options,
    hardening_from_env,
    last_event_id,
    plausible_session_id,
    require_json,
)
from .quotas import QuotaGuard, Quotas
from .redaction import event_dict
from .replay import InMemoryReplayStore, ReplayStore
from .turns import NOT_STARTED, Turn, TurnManager, live_events, not_started

STATIC_DIR = Path(__file__).parent / "static"
DEV_USER = "developer"

_PLACEHOLDER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ADK SSE reference server</title></head>
<body><h1>ADK SSE reference server</h1>
<p>The chat page (<code>reference_server/static/index.html</code>) is not there yet.
The API is: <code>POST /api/sessions</code>, then <code>POST /api/sessions/{id}/messages</code>
with <code>{"text": "..."}</code> and <code>Authorization: Bearer &lt;token&gt;</code>.
See <a href="/docs">/docs</a>.</p></body></html>
"""


# What FastAPI's EventSourceResponse sends besides the content type; the streams are framed
# by hand (replay.Frame.encode), which costs less than half its CPU per frame (notebook 11).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_RESPONSE = {200: {"description": "The turn's SSE frames", "content": {"text/event-stream": {}}}}
TURN_HEADER = "X-Turn-Id"  # which turn a stream carries; resume with ?turn= to refuse any other


def sse_response(frames: AsyncIterator[bytes], turn_id: str, request: Request | None = None) -> StreamingResponse:
    if request is not None and (release := getattr(request.state, "release_stream_slot", None)):
        frames = released_at_end(frames, release)
    return StreamingResponse(frames, media_type="text/event-stream",
                             headers={**SSE_HEADERS, TURN_HEADER: turn_id})


async def released_at_end(frames: AsyncIterator[bytes], release) -> AsyncIterator[bytes]:
    """``frames``, then the caller's stream slot freed (per-user stream limit, quotas.py)."""
    try:
        async for frame in frames:
            yield frame
    finally:
        await release()


def history_event(event: Event) -> dict:
    """A persisted event as ADK's own session route shows it (no internal metadata, no
    credential secrets), and without ``error_message``, as the stream sends it."""
    return event_dict(event.model_copy(update={"error_message": None}))


def _sse_run_config() -> RunConfig:
    return RunConfig(streaming_mode=StreamingMode.SSE)


@dataclass
class Settings:
    """What the server needs; everything has a default but the tokens.

    ``tokens`` maps a bearer token to a user id. Conversations live in ``session_service``
    (any ADK ``BaseSessionService``) if given, else in ``database_url`` (``DATABASE_URL``;
    ``persistence.session_service_from_url`` reads it): unset, SQLite in
    ``.workshop/sessions.db``, whether the settings come from ``Settings(...)`` or
    ``Settings.from_env()``; ``"memory://"`` keeps them in memory.
    ``agent`` defaults to ``build_agent()`` on ``Gemini(model=..., retry_options=retry_options)``.
    Tokens never appear in ``repr``. The production fields (grace period, replay time, first
    event wait, retries, CORS origins, replay store) are documented in ``production.py``.
    """

    tokens: dict[str, str] = field(repr=False)
    app_name: str = "workshop"
    session_service: BaseSessionService | None = None  # None: built from database_url
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    agent: BaseAgent | None = None
    run_config: RunConfig = field(default_factory=_sse_run_config)
    static_dir: Path = STATIC_DIR
    dev_token: str | None = field(default=None, repr=False)  # set when generated for development
    # Production behaviour (production.py documents each, with its environment variable).
    resume_grace_s: float = DEFAULT_RESUME_GRACE_S
    replay_ttl_s: float = DEFAULT_REPLAY_TTL_S
    first_event_wait_s: float = DEFAULT_FIRST_EVENT_WAIT_S
    retry_options: types.HttpRetryOptions | None = field(default_factory=default_retry_options)
    cors_origins: tuple[str, ...] = ()
    replay_store: ReplayStore | None = None  # None: InMemoryReplayStore(replay_ttl_s)
    # Operators (observability.py): metrics on /metrics when set; spans always.
    observability: Observability = field(default_factory=Observability)
    # JWTs from an identity provider, beside (or instead of) the static tokens (auth.py).
    jwt: JwtVerifier | None = None
    # POST /api/chat (the AI SDK's useChat): its Stop only aborts the request, so a client
    # that leaves cancels the turn at once. False: the grace period, as the native endpoint
    # (a useChat with `resume: true` reconnects through GET /api/chat/{id}/stream).
    chat_cancel_on_disconnect: bool = True
    # Per-user limits (quotas.py: turns per minute, streams at once, tokens); off by default.
    quotas: Quotas = field(default_factory=Quotas)
    # SIGTERM: running turns get this long to finish, then are handed over (drain.py).
    drain_s: float = DEFAULT_DRAIN_S

    def __post_init__(self) -> None:
        if self.session_service is None:  # the one default, however the settings were made
            from .persistence import session_service_from_url

            self.session_service = session_service_from_url(self.database_url)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Tokens from WORKSHOP_TOKENS ("tok-a:alice,tok-b:bob"); unset: one random dev token.
        Sessions in DATABASE_URL (see persistence.py; DATABASE_POOL_SIZE sizes a PostgreSQL
        pool); the replay buffer there too with WORKSHOP_REPLAY_STORE=database, in Redis with
        REDIS_URL (persistence.replay_store_from_env)."""
        environ = os.environ if environ is None else environ
        overrides = {**hardening_from_env(environ), **overrides}
        from .persistence import replay_store_from_env, session_service_from_env

        if "session_service" not in overrides and "database_url" not in overrides:
            overrides["session_service"] = session_service_from_env(environ)
        overrides.setdefault("observability", Observability.from_env(environ))
        overrides.setdefault("jwt", JwtVerifier.from_env(environ))
        overrides.setdefault("quotas", Quotas.from_env(environ))
        overrides.setdefault("drain_s", drain_s_from_env(environ))
        if "replay_store" not in overrides:  # database or Redis: shared by processes
            overrides["replay_store"] = replay_store_from_env(
                environ, overrides.get("replay_ttl_s", DEFAULT_REPLAY_TTL_S))
        spec = environ.get(TOKENS_ENV, "").strip()
        if spec:
            return cls(tokens=parse_tokens(spec), **overrides)
        if overrides["jwt"] is not None:  # JWTs only: no development token
            return cls(tokens={}, **overrides)
        dev_token = secrets.token_urlsafe(24)
        return cls(tokens={dev_token: DEV_USER}, dev_token=dev_token, **overrides)


# -- dependencies: each reads what create_app put in request.app.state -----------------------
async def current_user(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller's user id, from ``Authorization: Bearer <token>`` (401 otherwise)."""
    return await request.app.state.current_user(authorization)


async def owned_session(session_id: str, request: Request,
                        user: Annotated[str, Depends(current_user)]) -> Session:
    """The caller's session, or 404: a foreign id gets the same answer as an unknown one."""
    if not plausible_session_id(session_id):  # never sent to the session service
        raise api_error(404, "SESSION_NOT_FOUND", "No such session.")
    settings: Settings = request.app.state.settings
    session = await settings.session_service.get_session(
        app_name=settings.app_name, user_id=user, session_id=session_id,
        config=GetSessionConfig(num_recent_events=0),
    )
    if session is None:
        raise api_error(404, "SESSION_NOT_FOUND", "No such session.")
    return session


async def turn_manager(request: Request) -> TurnManager:
    return request.app.state.turns


async def stream_slot(request: Request, user: Annotated[str, Depends(current_user)]) -> AsyncIterator[None]:
    """One of the caller's stream slots, or 429 ``TOO_MANY_STREAMS`` before the response. Held
    until the stream's last frame has gone (``sse_response``); at the latest until the response
    has ended (FastAPI ends a dependency with yield after it), which is too late for a client
    that sends its next message as soon as it has read the last frame."""
    async with request.app.state.quotas.stream(user) as release:
        request.state.release_stream_slot = release
        yield


Turns = Annotated[TurnManager, Depends(turn_manager)]
StreamSlot = Annotated[None, Depends(stream_slot)]
OwnedSession = Annotated[Session, Depends(owned_session)]


def _not_started_error(code: str):
    return api_error(503, code, STREAM_ERRORS[code], headers={"Retry-After": str(RETRY_AFTER_S)})


async def resume(request: Request, session_id: str, turns: TurnManager, *,
                 missing_status: int = 404) -> Response:
    """The session's latest turn after the client's ``Last-Event-ID``: its missed frames, then
    the rest live (200); 204 if the client has seen its terminal frame already (what makes a
    browser ``EventSource`` stop reconnecting); the same 503 as its POST got if the model
    failed before the first byte (that turn has no stream to replay). No turn to resume
    (none yet, expired, or not the ``?turn=`` asked for): ``missing_status``."""
    after = last_event_id(request)
    tail = await turns.store.read(session_id, after)
    wanted = request.query_params.get("turn")
    if tail is None or (wanted is not None and wanted != tail.turn_id):
        if missing_status == 409:
            raise api_error(409, "NOT_A_NEW_MESSAGE",
                            "This request carries Last-Event-ID: it reconnects to a turn, it does "
                            "not send a message, and there is no turn to resume. Send the message "
                            "again without Last-Event-ID.")
        message = ("This session has no turn to resume (none yet, or it expired)." if tail is None
                   else "That turn is over and a newer one has replaced it: reload the conversation.")
        raise api_error(404, "NO_TURN_TO_RESUME", message)
    if tail.finished:
        if not tail.frames:  # the client has the terminal frame: nothing more, ever
            return Response(status_code=204, headers={TURN_HEADER: tail.turn_id})
        if tail.frames[-1].code in NOT_STARTED:
            whole = tail if after == 0 else await turns.store.read(session_id, 0)
            code = not_started(whole.frames) if whole is not None else None
            if code is not None:
                raise _not_started_error(code)
    return sse_response(turns.follow(session_id, after), tail.turn_id, request)


IDEMPOTENCY_KEY_CHARS = 128


async def idempotency_key(idempotency_key: Annotated[str | None, Header(
        description="Optional, chosen by the client for each new message: sending the same "
                    "message again with the same key (after a lost connection, before any "
                    "frame) never starts a second turn; it reads the first one from its start.",
        max_length=IDEMPOTENCY_KEY_CHARS)] = None) -> str | None:
    return idempotency_key


async def repeat_of(session_id: str, turns: TurnManager, key: str) -> Response | None:
    """The answer to a message sent again with the ``Idempotency-Key`` of the session's latest
    turn: that turn from its first frame (replayed, then live), or None to start a new turn
    (another key, no turn any more, or one whose model failed before the first byte: a retry
    of that is a new attempt)."""
    tail = await turns.store.read(session_id, 0)
    if tail is None or tail.key != key or (tail.finished and not_started(tail.frames)):
        return None
    if tail.finished and tail.frames and tail.frames[-1].code == RESTARTING:
        return None  # handed over by a draining server, and rewound: a new attempt
    return sse_response(turns.follow(session_id, 0), tail.turn_id)


router = APIRouter()


@router.get("/", include_in_schema=False)
async def index(request: Request):
    page = request.app.state.settings.static_dir / "index.html"
    if page.is_file():
        return FileResponse(page, headers={"Cache-Control": "no-cache"})
    return HTMLResponse(_PLACEHOLDER_PAGE)


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    if request.app.state.drain.draining:  # a load balancer stops sending new requests here
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.post("/api/sessions", status_code=201)
async def create_session(request: Request, user: Annotated[str, Depends(current_user)]) -> dict:
    settings: Settings = request.app.state.settings
    session = await settings.session_service.create_session(
        app_name=settings.app_name, user_id=user, session_id=secrets.token_urlsafe(16))
    return {"session_id": session.id}


@router.post(
    "/api/sessions/{session_id}/messages",
    response_class=StreamingResponse,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": MessageIn.model_json_schema()}}}},
    responses=SSE_RESPONSE | {204: {"description": "With Last-Event-ID: the turn was read to its end"}}
    | {code: {"description": text, "content": {"application/json": {"example": error_body(name, "...")}}}
       for code, name, text in [
           (400, "INVALID_JSON", "The body is not JSON"),
           (401, "UNAUTHENTICATED", "Missing or unknown bearer token"),
           (404, "SESSION_NOT_FOUND", "No such session (or not yours)"),
           (409, "TURN_IN_PROGRESS", "A turn of this session is still running (also "
                                     "NOT_A_NEW_MESSAGE: Last-Event-ID and no turn to resume)"),
           (413, "PAYLOAD_TOO_LARGE", f"Body over {MAX_BODY_BYTES} bytes"),
           (415, "UNSUPPORTED_MEDIA_TYPE", "Body not declared as JSON"),
           (422, "INVALID_REQUEST", "JSON of the wrong shape"),
           (429, "TOO_MANY_TURNS", "A per-user limit, with Retry-After (also TOO_MANY_STREAMS, "
                                   "TOKEN_QUOTA_EXCEEDED): quotas.py"),
           (503, "MODEL_UNAVAILABLE", "The model failed before the first byte "
                                      "(also RATE_LIMITED), after retries; or SERVER_DRAINING")]},
)
async def post_message(
    request: Request,
    session: OwnedSession,
    turns: Turns,
    _json: Annotated[None, Depends(require_json)],
    message: Annotated[MessageIn, Depends(read_message)],
    key: Annotated[str | None, Depends(idempotency_key)],
    _slot: StreamSlot,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID",
                                                       include_in_schema=False)] = None,
) -> Response:
    """Stream the agent's answer: one frame per ADK event, then ``done`` (or ``error``, or
    ``cancelled``). The turn runs on if the client leaves; resume it with ``GET .../stream``.

    A POST that carries ``Last-Event-ID`` is a client reconnecting by itself (fetch-event-source
    and aiohttp-sse-client resend the POST): it never starts a turn, it resumes the latest one
    (as ``GET .../stream``), or gets 409 ``NOT_A_NEW_MESSAGE`` if there is none. A POST whose
    ``Idempotency-Key`` is that of the session's latest turn is the same message sent again:
    it reads that turn from its first frame instead of starting another.

    The server waits (at most ``first_event_wait_s``) for the model's first event: a model that
    fails before it (429/503, after google-genai's retries) is answered 503 with JSON, no
    stream opened, and the message is taken back out of the conversation."""
    if last_event_id_header is not None:
        return await resume(request, session.id, turns, missing_status=409)
    if key is not None and (repeat := await repeat_of(session.id, turns, key)):
        return repeat
    request.app.state.drain.refuse_new_turn()  # 503 SERVER_DRAINING: retried on another worker
    await refuse_if_running(turns, session.id)  # a double send: 409 before it counts toward a limit
    await request.app.state.quotas.admit_turn(session.user_id)  # 429 before the session is touched
    turn = await turns.start(session.user_id, session.id, message.text, key)
    if turn is None and key is not None and (repeat := await repeat_of(session.id, turns, key)):
        return repeat  # the same message, sent twice at once: one turn, two readers
    await first_event_or_refusal(request, turn)
    return sse_response(turns.follow(turn.session_id), turn.turn_id, request)


async def start_turn(request: Request, turns: TurnManager, user_id: str, session_id: str,
                     text: str, rewind_before: str | None = None) -> Turn:
    """``post_message``'s start, without its resume and Idempotency-Key paths (for /api/chat):
    409 if a turn of the session runs; 503 if the model failed before its first event. The
    caller has refused it already while draining (``Drain.refuse_new_turn``)."""
    turn = await turns.start(user_id, session_id, text, rewind_before=rewind_before)
    await first_event_or_refusal(request, turn)
    return turn


def turn_in_progress() -> HTTPException:
    return api_error(409, "TURN_IN_PROGRESS",
                     "A turn of this session is still running: wait for it or cancel it.")


async def refuse_if_running(turns: TurnManager, session_id: str) -> None:
    """409 at once if a turn of the session is still running, in this process or another
    (``TurnManager.refuses_new_turn``): before the per-user turn limit counts the message.
    ``TurnManager.start`` decides for every process, atomically."""
    if await turns.refuses_new_turn(session_id):
        raise turn_in_progress()


async def first_event_or_refusal(request: Request, turn: Turn | None) -> None:
    """409 if no turn started (one of the session runs); else wait (at most
    ``first_event_wait_s``) for the model's first event, and 503 if it failed before it."""
    if turn is None:
        raise turn_in_progress()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(request.app.state.settings.first_event_wait_s):
            await turn.decided.wait()
    code = turn.failed_before_first_byte()
    if code is not None:
        raise _not_started_error(code)


@router.get("/api/sessions/{session_id}/stream", response_class=StreamingResponse,
            responses=SSE_RESPONSE | {204: {"description": "The client has the turn's terminal frame"}})
async def resume_stream(request: Request, session: OwnedSession, turns: Turns,
                        _slot: StreamSlot) -> Response:
    """The session's latest turn from the frame after ``Last-Event-ID`` (header) or
    ``?last_event_id=``: the missed frames, then the rest live, to its terminal frame; 204 once
    the client has the terminal frame. ``?turn=<X-Turn-Id>``: only if that is still the latest
    turn (else 404)."""
    return await resume(request, session.id, turns)


@router.get("/api/sessions/{session_id}/events")
async def session_events(request: Request, session: OwnedSession, turns: Turns) -> dict:
    """The conversation so far, to draw it again (a reloaded page): the session's persisted
    events as the model sees them (the user's messages and the model's whole responses, never
    partial ones, nor a message rewound after a failure), and whether a turn is running (resume
    it with ``GET .../stream``, ``Last-Event-ID: 0``)."""
    settings: Settings = request.app.state.settings
    full = await settings.session_service.get_session(app_name=settings.app_name,
                                                      user_id=session.user_id, session_id=session.id)
    return {"events": [history_event(e) for e in live_events(full.events if full else [])],
            "running": await turns.is_running(session.id)}


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (``WORKSHOP_METRICS=on``; 404 otherwise). Unauthenticated, like most
    scrape targets: expose it on an internal port or block it at the proxy."""
    observed = request.app.state.settings.observability.metrics
    if observed is None:
        raise api_error(404, "NOT_FOUND", "Metrics are off (WORKSHOP_METRICS=on turns them on).")
    return Response(observed.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.post("/api/sessions/{session_id}/cancel")
async def cancel_turn(session: OwnedSession, turns: Turns) -> dict:
    """Stop the session's running turn (its stream ends with ``event: cancelled``).
    ``{"cancelled": false}`` when no turn is running."""
    turn = turns.running(session.id)
    if turn is None:  # not here: with a shared store, maybe on another process
        return {"cancelled": await turns.cancel_elsewhere(session.id)}
    await turns.cancel(turn, "cancel_requested")
    return {"cancelled": True}


# -- the AI SDK's UI message stream protocol (useChat): ai_sdk.py maps, the turns are the same --
_stopping: set[asyncio.Task] = set()  # cancels started by a client leaving (kept referenced)


async def chat_session(settings: Settings, user: str, chat_id: str, *, create: bool) -> Session | None:
    """The session behind the caller's chat (``ai_sdk.chat_session_id``), created on first use."""
    key = {"app_name": settings.app_name, "user_id": user, "session_id": chat_session_id(user, chat_id)}
    session = await settings.session_service.get_session(**key, config=GetSessionConfig(num_recent_events=0))
    if session is None and create:
        try:
            session = await settings.session_service.create_session(**key)
        except Exception:  # created meanwhile by a racing first message: use that one
            session = await settings.session_service.get_session(**key)
            if session is None:
                raise
    return session


def ui_message_response(request: Request, turns: TurnManager, session_id: str,
                        turn_id: str) -> StreamingResponse:
    """The turn from its first frame as a UI message stream. A client that leaves before the
    end cancels the turn (``chat_cancel_on_disconnect``): useChat's Stop is an abort."""
    cancel_on_leave = request.app.state.settings.chat_cancel_on_disconnect

    async def body() -> AsyncIterator[bytes]:
        complete = False
        try:
            async for chunk in turns.follow(session_id, encode=UIMessageStreamEncoder(turn_id)):
                yield chunk
            complete = True
        finally:
            turn = turns.running(session_id)
            if not complete and cancel_on_leave and turn is not None and turn.turn_id == turn_id:
                # this generator is being cancelled: the cancel runs in a task of its own
                task = asyncio.create_task(turns.cancel(turn, "client_closed"))
                _stopping.add(task)
                task.add_done_callback(_stopping.discard)
            if release := getattr(request.state, "release_stream_slot", None):
                await release()  # the stream limit's slot, as the last chunk goes (stream_slot)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={**UI_MESSAGE_STREAM_HEADERS, TURN_HEADER: turn_id})


@router.post("/api/chat", response_class=StreamingResponse, responses=SSE_RESPONSE)
async def ai_sdk_chat(request: Request, user: Annotated[str, Depends(current_user)], turns: Turns,
                      _json: Annotated[None, Depends(require_json)], _slot: StreamSlot) -> Response:
    """The AI SDK's UI message stream protocol (``useChat``'s ``DefaultChatTransport``): the
    body is ``{"id", "messages", ...}``; the chat ``id`` names a session of the caller, created
    on first use, which holds the history (only the last message, the user's, is read). The
    same turns as ``POST /api/sessions/{id}/messages``: 409 while one runs, 503 before the
    first byte if the model is down; after it, errors are ``error`` chunks. ``trigger:
    "regenerate-message"`` (useChat's ``regenerate()``) rewinds the session to before the user
    message it ends with, then answers that message again."""
    data = await read_json(request, CHAT_MAX_BODY_BYTES, '{"id": "...", "messages": [...]}')
    try:
        chat = ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None
    text = chat.user_text()
    if text is None:
        raise api_error(422, "INVALID_REQUEST", "The last message must be the user's, with text.")
    settings: Settings = request.app.state.settings
    request.app.state.drain.refuse_new_turn()  # 503 SERVER_DRAINING before a turn is counted
    session_id = chat_session_id(user, chat.id)
    await refuse_if_running(turns, session_id)  # 409 before it is counted
    rewind_before = None
    if chat.trigger == "regenerate-message":  # 422 before it is counted, nothing made
        rewind_before = await regenerate_point(settings, user, session_id, chat.user_messages())
    await request.app.state.quotas.admit_turn(user)  # 429 before a session is made or touched
    session = await chat_session(settings, user, chat.id, create=True)
    turn = await start_turn(request, turns, user, session.id, text, rewind_before)
    return ui_message_response(request, turns, session.id, turn.turn_id)


async def regenerate_point(settings: Settings, user: str, session_id: str,
                           nth_user_message: int) -> str | None:
    """useChat's ``regenerate()``: the invocation of the session's ``nth_user_message`` (the
    turn to make again, and everything after it, is rewound); None when the session holds one
    user message fewer (that message's turn failed and was rewound already: send it as new).
    422 if the session holds fewer still: the client's conversation is not this session's."""
    full = await settings.session_service.get_session(app_name=settings.app_name, user_id=user,
                                                      session_id=session_id)  # None: a new chat
    said = [e for e in live_events(full.events if full else []) if e.author == "user"]
    if len(said) >= nth_user_message:
        return said[nth_user_message - 1].invocation_id
    if len(said) == nth_user_message - 1:
        return None
    raise api_error(422, "NOTHING_TO_REGENERATE",
                    f"This chat holds {len(said)} user message{'s' * (len(said) != 1)}: there is no "
                    f"answer to message {nth_user_message} to make again. Send a new message.")


@router.get("/api/chat/{chat_id}/stream", response_class=StreamingResponse,
            responses=SSE_RESPONSE | {204: {"description": "No turn of this chat is running"}})
async def ai_sdk_resume(chat_id: str, request: Request, user: Annotated[str, Depends(current_user)],
                        turns: Turns, _slot: StreamSlot) -> Response:
    """``useChat({resume: true})``: the chat's running turn replayed from its start (the AI
    SDK's ``resumeStreamIsReplay``), then live; 204 when none runs."""
    session = await chat_session(request.app.state.settings, user, chat_id, create=False)
    tail = await turns.store.read(session.id, 0) if session is not None else None
    if tail is None or tail.finished:
        return Response(status_code=204)
    return ui_message_response(request, turns, session.id, tail.turn_id)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app of the reference server. The environment must already point at a
    model: google-genai reads ``GOOGLE_API_KEY`` (or Vertex AI settings, and
    ``GOOGLE_GEMINI_BASE_URL`` for another endpoint) from the environment."""
    settings = settings or Settings.from_env()
    agent = settings.agent or build_agent(Gemini(model=model_name(), retry_options=settings.retry_options,
                                                 client_kwargs=model_client_kwargs()))
    runner = Runner(app_name=settings.app_name, agent=agent, session_service=settings.session_service)
    store = settings.replay_store  # `is None`, not `or`: an empty InMemoryReplayStore is falsy (len 0)
    if store is None:
        store = InMemoryReplayStore(ttl_s=settings.replay_ttl_s)
    quotas = QuotaGuard(settings.quotas, settings.observability)
    turns = TurnManager(runner, store, settings.run_config, grace_s=settings.resume_grace_s,
                        observability=settings.observability, meter=quotas.meter)
    drain = Drain(turns, settings.drain_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Done already under DrainingServer (python -m reference_server); under another server
        # the connections are closed by now: wait for the turns only if others can read them.
        await drain.run(wait=turns.store.shared)
        await turns.close()
        await store.close()
        await runner.close()
        await quotas.close()

    app = FastAPI(
        title="ADK SSE reference server",
        summary="An ADK agent streamed over Server-Sent Events (ADK SSE Streaming Workshop).",
        lifespan=lifespan,
        redirect_slashes=False,  # a 404, not a 307 to a Location built from the Host header
    )
    app.state.settings = settings
    app.state.runner = runner
    app.state.turns = turns
    app.state.quotas = quotas
    app.state.drain = drain
    app.state.current_user = make_current_user(settings.tokens, settings.jwt)
    install_error_handlers(app)
    if settings.cors_origins:  # closed by default: no CORS header, so browsers block other origins
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_credentials=False, max_age=600,
                           allow_headers=["Authorization", "Content-Type", "Last-Event-ID",
                                          "Idempotency-Key"],
                           expose_headers=[TURN_HEADER])

    app.include_router(router)
    if settings.static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=settings.static_dir), name="static")
    return app
