"""The reference SSE server of the workshop: an ADK agent streamed over Server-Sent Events.

Run it: ``make serve`` (or ``python -m workshop.reference_server``; ``HOST``/``PORT``
override ``127.0.0.1:8000``; offline emulator unless a key is set). Build it in code:
``create_app(Settings(tokens={"tok-a": "alice"}))``. Notebook 05 builds the same endpoint
step by step.

The contract (later lessons, the browser page and the tests rely on it):

- ``GET /``: the chat page (``static/index.html``); ``/static/...``: its files;
  ``GET /healthz``: 200 ``{"status": "ok"}``.
- Every ``/api`` call needs ``Authorization: Bearer <token>``; the token maps to a user
  (``WORKSHOP_TOKENS="tok-a:alice,tok-b:bob"``; unset: one random development token,
  printed at start-up). Missing or unknown: 401 with ``WWW-Authenticate: Bearer``.
- ``POST /api/sessions``: 201 ``{"session_id": "..."}`` (random), owned by the caller.
- ``POST /api/sessions/{session_id}/messages`` with ``{"text": "..."}``: 200
  ``text/event-stream``; one frame per ADK event (``id:`` 1, 2, ..., ``data:`` the event as
  ``model_dump_json(exclude_none=True, by_alias=True)``), then ``event: done``; a failure
  after the first byte is ``event: error`` with ``{"error": {"code", "message"}}``
  (codes: ``errors.STREAM_ERRORS``), then a clean close.
- Before the first byte: 401 (token), 404 ``SESSION_NOT_FOUND`` (unknown or another
  user's session), 413 ``PAYLOAD_TOO_LARGE`` (body over ``MAX_BODY_BYTES``), 400
  ``INVALID_JSON``, 422 ``INVALID_REQUEST`` (missing, blank, wrong-typed or extra fields).
  Every error body is ``{"error": {"code": "...", "message": "..."}}``.
"""

from .agent import build_agent, get_weather
from .app import DEV_USER, STATIC_DIR, Settings, create_app
from .auth import make_current_user, parse_tokens
from .background import BackgroundServer, serve_in_background
from .errors import (
    STREAM_ERRORS,
    api_error,
    classify_error_code,
    classify_exception,
    error_frame,
    install_error_handlers,
)
from .messages import MAX_BODY_BYTES, MessageIn, read_message
from .streaming import in_own_task, sse_frames

__all__ = [
    "DEV_USER",
    "MAX_BODY_BYTES",
    "STATIC_DIR",
    "STREAM_ERRORS",
    "BackgroundServer",
    "MessageIn",
    "Settings",
    "api_error",
    "build_agent",
    "classify_error_code",
    "classify_exception",
    "create_app",
    "error_frame",
    "get_weather",
    "in_own_task",
    "install_error_handlers",
    "make_current_user",
    "parse_tokens",
    "read_message",
    "serve_in_background",
    "sse_frames",
]
