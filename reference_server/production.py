"""The production settings of the reference server, their environment variables and defaults,
and the small request checks that go with them (notebook 09 teaches each one).

=============================  ========  ====================================================
Environment variable           Default   Meaning
=============================  ========  ====================================================
``WORKSHOP_RESUME_GRACE_S``    30        a turn whose client went away keeps running this
                                         long (buffering its frames) before it is cancelled
``WORKSHOP_REPLAY_TTL_S``      300       an ended turn's frames stay resumable this long
``WORKSHOP_FIRST_EVENT_WAIT_S``  10      the longest the server waits for the model's first
                                         event before it commits to the 200 stream
``WORKSHOP_CORS_ORIGINS``      (none)    comma-separated origins allowed to call the API
                                         from a browser page they serve; unset: CORS closed
=============================  ========  ====================================================

Where the replay buffer lives for several processes (``WORKSHOP_REPLAY_STORE``, ``REDIS_URL``,
``WORKSHOP_REDIS_PREFIX``): ``persistence.replay_store_from_env``.
Per-user limits (turns per minute, streams at once, tokens): ``quotas.py``, off by default.

Model retries (``default_retry_options``): 3 attempts on HTTP 429/500/503/504, waits of
0.5 s then 1 s (plus up to 0.25 s jitter each), so a model that keeps failing is answered
503 after at most about 2 s of backoff plus the attempts themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from fastapi import Request
from google.genai import types

from .errors import api_error

GRACE_ENV = "WORKSHOP_RESUME_GRACE_S"
REPLAY_TTL_ENV = "WORKSHOP_REPLAY_TTL_S"
FIRST_EVENT_WAIT_ENV = "WORKSHOP_FIRST_EVENT_WAIT_S"
CORS_ENV = "WORKSHOP_CORS_ORIGINS"

DEFAULT_RESUME_GRACE_S = 30.0
DEFAULT_REPLAY_TTL_S = 300.0
DEFAULT_FIRST_EVENT_WAIT_S = 10.0
MAX_SESSION_ID_CHARS = 128  # ids we create are 22 characters; longer ones are never looked up
# The characters of the ids we create (token_urlsafe) and of ADK's (uuid4): an id with any other
# (dots, slashes, whitespace, NUL, line breaks...) is never sent to the session service. ADK's
# services strip whitespace from ids, so "id " would otherwise find the session "id".
SESSION_ID_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_SESSION_ID_CHARS}}}")
RETRY_AFTER_S = 5  # the Retry-After of a 503 before the first byte


def default_retry_options() -> types.HttpRetryOptions:
    """google-genai retries a failed model request (before its first byte) with these."""
    return types.HttpRetryOptions(attempts=3, initial_delay=0.5, max_delay=2.0, exp_base=2.0,
                                  jitter=0.25, http_status_codes=[429, 500, 503, 504])


def _seconds(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds") from None
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds >= 0")
    return value


def hardening_from_env(environ: Mapping[str, str]) -> dict:
    """``Settings`` fields from the environment variables above (only those that are set)."""
    found: dict = {}
    for name, key in [(GRACE_ENV, "resume_grace_s"), (REPLAY_TTL_ENV, "replay_ttl_s"),
                      (FIRST_EVENT_WAIT_ENV, "first_event_wait_s")]:
        value = _seconds(environ, name)
        if value is not None:
            found[key] = value
    origins = [o.strip().rstrip("/") for o in environ.get(CORS_ENV, "").split(",") if o.strip()]
    if origins:
        if "*" in origins:
            raise ValueError(f"{CORS_ENV}: name the origins (https://app.example.com), not *")
        found["cors_origins"] = tuple(origins)
    return found


async def require_json(request: Request) -> None:
    """415 for a body declared as anything but JSON (``application/json`` or ``*/*+json``).
    No Content-Type at all is read as JSON (clients such as ``httpx.post(content=...)``)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise api_error(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as Content-Type: application/json.")


def plausible_session_id(session_id: str) -> bool:
    """The id could be one of ours (else: 404 without a look-up)."""
    return SESSION_ID_RE.fullmatch(session_id) is not None


def last_event_id(request: Request) -> int:
    """The last frame id the client saw: header ``Last-Event-ID`` (what ``EventSource`` sends),
    else query ``?last_event_id=``; neither: 0 (from the start). 400 if not a small integer."""
    raw = request.headers.get("last-event-id")
    if raw is None:
        raw = request.query_params.get("last_event_id", "0")
    raw = raw.strip() or "0"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise api_error(400, "INVALID_LAST_EVENT_ID", "Last-Event-ID must be the id of a frame (an integer).")
    return int(raw)
