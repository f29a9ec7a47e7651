"""The reference SSE server of the workshop: an ADK agent streamed over Server-Sent Events.

Run it: ``make serve`` (the workshop's model: the offline emulator unless a key is set) or
``python -m reference_server`` (the model google-genai finds in the environment; it never
starts an emulator); ``HOST``/``PORT`` override ``127.0.0.1:8000``. Build it in code:
``create_app(Settings(tokens={"tok-a": "alice"}))``. Notebook 05 builds the core of this
contract step by step (``examples/minimal_sse_endpoint.py``); this server goes further.

The contract (later lessons, the browser page and the tests rely on it):

- ``GET /``: the chat page (``static/index.html``); ``/static/...``: its files;
  ``GET /healthz``: 200 ``{"status": "ok"}``.
- Every ``/api`` call needs ``Authorization: Bearer <token>``; the token maps to a user
  (``WORKSHOP_TOKENS="tok-a:alice,tok-b:bob"``; unset: one random development token,
  printed at start-up). Missing or unknown: 401 with ``WWW-Authenticate: Bearer``.
- ``POST /api/sessions``: 201 ``{"session_id": "..."}`` (random), owned by the caller.
- ``POST /api/sessions/{session_id}/messages`` with ``{"text": "..."}``: 200
  ``text/event-stream``; one frame per ADK event (``id:`` 1, 2, ..., ``data:`` the event as
  ADK's ``/run_sse`` sends it: camelCase, no nulls, credential secrets and ADK's internal
  metadata removed, ``redaction.event_json``, by ``streaming.event_frame``, the one place
  where an event becomes a ``replay.Frame``), then exactly one terminal frame:
  ``event: done`` (success, ``{"events": n}``), ``event: error`` with
  ``{"error": {"code", "message"}}`` (codes: ``errors.STREAM_ERRORS`` and
  ``turns.TURN_ERRORS``; ``SERVER_RESTARTING`` with ``"retry": "resend"`` when a draining
  server hands the turn over, ``drain.py``), or ``event: cancelled`` with ``{"reason": "cancel_requested" |
  "abandoned" | "shutdown"}``; then a clean close. Every frame has an ``id:``.
- Before the first byte: 401 (token), 404 ``SESSION_NOT_FOUND`` (unknown or another
  user's session, or an id that is not 1-128 of ``[A-Za-z0-9_-]``), 409 ``TURN_IN_PROGRESS``
  (a turn of the session is still running: of N messages racing for one session, exactly one
  starts a turn, ``ReplayStore.begin_turn`` being one atomic step in every store), 413
  ``PAYLOAD_TOO_LARGE`` (body over ``MAX_BODY_BYTES``), 415
  ``UNSUPPORTED_MEDIA_TYPE`` (a Content-Type other than JSON; none is read as JSON), 400
  ``INVALID_JSON`` (strict UTF-8 JSON: ``messages.parse_json``), 408 ``REQUEST_TIMEOUT`` (a
  body slower than ``messages.BODY_TIMEOUT_S``), 422 ``INVALID_REQUEST`` (missing, blank,
  wrong-typed or extra fields, a NUL in the text; the body holds one text, so one part: arrays
  and ``parts`` are rejected), and 503
  ``MODEL_UNAVAILABLE`` / ``RATE_LIMITED`` with ``Retry-After`` when the model fails before
  its first event even after google-genai's retries (``Settings.retry_options``; the
  server waits at most ``first_event_wait_s`` for that first event before it commits to the
  200 stream; the failed message is rewound out of the conversation with ADK's
  ``Runner.rewind_async``, so its retry is not in the history twice), or ``SERVER_DRAINING``
  after SIGTERM (``drain.py``: send it again, another server answers); 429 with
  ``Retry-After`` for a per-user limit (``quotas.py``, off unless configured:
  ``TOO_MANY_TURNS``, ``TOKEN_QUOTA_EXCEEDED``, ``TOO_MANY_STREAMS``, the last also on every
  resume), the session untouched. Every error body is
  ``{"error": {"code": "...", "message": "..."}}``.
- The same POST with a ``Last-Event-ID`` header is a client reconnecting by itself
  (fetch-event-source, aiohttp-sse-client): never a new turn; it is answered as ``GET .../stream``
  below, or 409 ``NOT_A_NEW_MESSAGE`` if there is no turn to resume. With an optional
  ``Idempotency-Key: <key>`` (a new one per message), sending the message again with the same
  key reads that message's turn from its first frame instead of starting a second one (unless
  it failed before the first byte: then it is a new attempt).
- ``GET /api/sessions/{session_id}/events``: ``{"events": [...], "running": bool}``, the
  session's persisted events as the model sees them (rewound messages left out; serialized as
  the stream does, credentials redacted as in ADK's own session route) and whether a turn is
  running; what a reloaded page draws again.
- ``POST /api/sessions/{session_id}/cancel``: stops the running turn (ADK's
  ``abort_signal``; the model request is closed), answers ``{"cancelled": true}`` once it
  has stopped (``false`` if no turn was running); the stream ends with ``event: cancelled``.
- ``GET /api/sessions/{session_id}/stream`` with ``Last-Event-ID: <id>`` (or
  ``?last_event_id=<id>``; none: 0): the frames of the session's latest turn after that id,
  then the rest live, to its terminal frame; the model is not called again (ids restart at 1
  with each turn, so an id is only meaningful for the latest turn: every stream carries
  ``X-Turn-Id``, and ``?turn=<that id>`` makes a resume fail rather than read a newer turn).
  204 if that id is at or past the turn's terminal frame (nothing more: a browser
  ``EventSource`` stops reconnecting); the POST's 503 for a turn whose model failed before the
  first byte; 404 ``NO_TURN_TO_RESUME`` if there is none (or it expired, or ``turn`` is not
  the latest), 400 ``INVALID_LAST_EVENT_ID``.
- ``POST /api/chat``: the same turns in the AI SDK's UI message stream protocol, for a
  ``useChat`` frontend (``ai_sdk.py`` has the mapping); the chat ``id`` names a session of
  the caller, created on first use; a client that leaves cancels the turn at once (useChat's
  Stop is an abort) unless ``Settings.chat_cancel_on_disconnect`` is False. ``GET
  /api/chat/{id}/stream``: the chat's running turn replayed from its start (``useChat``'s
  ``resume``), 204 if none runs.

A turn runs in its own task (``turns.TurnManager``) and writes its frames to a replay buffer
(``replay.ReplayStore``; ``InMemoryReplayStore`` by default, ``Settings.replay_store`` for a
shared one: ``persistence.DatabaseReplayStore`` or ``replay_redis.RedisReplayStore``, which
``WORKSHOP_REPLAY_STORE`` and ``REDIS_URL`` choose); requests only read that buffer. A client that drops its connection does not
stop the turn: it runs on for ``WORKSHOP_RESUME_GRACE_S`` (default 30 s) and is cancelled if
no client has resumed by then. An ended turn's frames stay resumable for
``WORKSHOP_REPLAY_TTL_S`` (default 300 s). CORS is closed unless
``WORKSHOP_CORS_ORIGINS="https://app.example.com"`` names the origins (``production.py``
lists every setting and default). Conversations live in ``Settings.session_service``, else
``Settings.database_url`` (``DATABASE_URL``): unset, SQLite in ``.workshop/sessions.db``
whether the settings are built in code or ``Settings.from_env()`` (``persistence.py``).
Streams are framed by hand (``replay.Frame.encode``) into a ``StreamingResponse``: the frames
that are ready go out in one write; an idle stream gets the comment line ``: ping`` every 15 s,
with no blank line after it (which would make httpx-sse and fetch-event-source dispatch an
empty message). The routes are in ``app.router`` (an ``APIRouter``); their dependencies read
``request.app.state``. Each turn closes the model responses ADK leaves open when it stops a run
(``model_responses.py``); an agent passed in ``Settings(agent=...)`` needs its model built
with ``Gemini(..., client_kwargs=model_client_kwargs())`` for that.

What the session keeps: a completed turn, the user's message and the final events. A turn
cancelled (or abandoned): the user's message and ADK's event with
``error_code="INVOCATION_ABORTED"``, no partial answer. A failure (before or after the first
byte): the user's message and ADK's error event if it made one, no partial answer. Partial events are never
persisted, so the next message always works.
"""

from .agent import build_agent, get_weather
from .app import DEV_USER, STATIC_DIR, Settings, create_app
from .auth import make_current_user, parse_tokens
from .errors import (
    STREAM_ERRORS,
    api_error,
    classify_error_code,
    classify_exception,
    error_frame,
    install_error_handlers,
)
from .messages import MAX_BODY_BYTES, MessageIn, read_message
from .model_responses import closing_model_responses, model_client_kwargs
from .production import default_retry_options, hardening_from_env
from .replay import Frame, InMemoryReplayStore, ReplayStore, Tail
from .streaming import event_frames, in_own_task, sse_frames
from .turns import TURN_ERRORS, Turn, TurnManager

__all__ = [
    "DEV_USER",
    "MAX_BODY_BYTES",
    "STATIC_DIR",
    "STREAM_ERRORS",
    "TURN_ERRORS",
    "Frame",
    "InMemoryReplayStore",
    "MessageIn",
    "ReplayStore",
    "Settings",
    "Tail",
    "Turn",
    "TurnManager",
    "api_error",
    "build_agent",
    "classify_error_code",
    "classify_exception",
    "closing_model_responses",
    "create_app",
    "default_retry_options",
    "error_frame",
    "event_frames",
    "get_weather",
    "hardening_from_env",
    "in_own_task",
    "install_error_handlers",
    "make_current_user",
    "model_client_kwargs",
    "parse_tokens",
    "read_message",
    "sse_frames",
]
