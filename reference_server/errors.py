"""One error shape everywhere: ``{"error": {"code": "...", "message": "..."}}``.

Before the first byte, an error is an HTTP status with that JSON body (``api_error`` and
the handlers ``install_error_handlers`` adds). After the first byte the status is already
200, so an error travels in band as an SSE frame ``event: error`` with the same body
(``error_frame``); ``classify_exception`` and ``classify_error_code`` turn what went wrong
into one of the stable codes of ``STREAM_ERRORS``.
"""

from __future__ import annotations

import json
import logging

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import ServerSentEvent
from google.genai import errors as genai_errors
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("reference_server")

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


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_REQUEST",
    429: "RATE_LIMITED",
}


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if isinstance(detail, dict) and "code" in detail:
        code, message = detail["code"], detail.get("message", "")
    else:
        code = _STATUS_CODES.get(exc.status_code, "ERROR")
        message = detail if isinstance(detail, str) else "Request failed."
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


MAX_PROBLEMS = 5  # a 422 names at most this many problems (a body of 3,000 unknown keys...)
MAX_FIELD_CHARS = 64  # and at most this much of a field's name, which the client chose


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    name = ".".join(parts) or "body"
    # Never more of the client's own text than this, and always encodable (a lone surrogate in
    # an unknown key would make the JSON answer itself fail).
    name = name.encode("utf-8", "backslashreplace").decode()
    return name if len(name) <= MAX_FIELD_CHARS else name[:MAX_FIELD_CHARS] + "..."


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Never echo the input back (it can be large, or hold what the client should not see again).
    problems = [f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"and {len(problems) - MAX_PROBLEMS} more"]
    return JSONResponse(error_body("INVALID_REQUEST", "; ".join(problems) or "Invalid request."), status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("INTERNAL", STREAM_ERRORS["INTERNAL"]), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app answers, FastAPI's own 404/405/422 included, gets the one shape."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
