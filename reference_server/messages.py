"""The body of ``POST /api/sessions/{id}/messages``, read and validated before the first byte."""

from __future__ import annotations

import asyncio
import json
import math

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import ClientDisconnect

from .errors import api_error

MAX_BODY_BYTES = 32 * 1024  # the documented limit of a message body (413 above it)
BODY_TIMEOUT_S = 10.0  # the longest a body may take to arrive (408 after it): no slow-loris


class MessageIn(BaseModel):
    """``{"text": "..."}`` and nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, description="The user's message.")

    @field_validator("text")
    @classmethod
    def not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be blank")
        if "\x00" in text:  # PostgreSQL's text and jsonb cannot store it: refuse it up front
            raise ValueError("must not contain NUL (\\u0000)")
        return text


class _Rejected(ValueError):
    """JSON that parses but that this API refuses (a reason for the client)."""


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: "\ud800" without its pair
        return False
    return True


def _object(pairs: list[tuple[str, object]]) -> dict:
    """Each JSON object as it is decoded: one value per key, and real Unicode in keys and
    string values (a lone surrogate cannot be stored, nor sent on to the model)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):  # parsers disagree on which duplicate wins: refuse both
        raise _Rejected("The body's JSON repeats a key.")
    for key, value in pairs:
        if not _unicode(key) or (isinstance(value, str) and not _unicode(value)):
            raise _Rejected("The body's JSON holds a lone surrogate (\\ud800-\\udfff).")
    return obj


def _constant(name: str) -> None:
    raise _Rejected(f"{name} is not JSON.")


def _float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):  # 1e999 would parse as infinity
        raise _Rejected("The body's JSON holds a number too large for a float.")
    return value


def parse_json(body: bytes, example: str = '{"text": "..."}') -> object:
    """The body as JSON, strictly (RFC 8259 between systems), or a 400 ``INVALID_JSON``.

    UTF-8 only (invalid UTF-8, UTF-16/32 and a byte order mark are refused, where
    ``json.loads(bytes)`` would guess an encoding); no NaN or Infinity (nor 1e999); no repeated
    key; no lone surrogate; no nesting deep enough to exhaust the parser's recursion (thousands
    of brackets fit in 32 KiB); no integer over Python's 4,300 digits. Never a 500.
    """
    try:
        text = body.decode("utf-8")
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant,
                          parse_float=_float)
    except _Rejected as exc:
        raise api_error(400, "INVALID_JSON", str(exc)) from None
    except UnicodeDecodeError:
        raise api_error(400, "INVALID_JSON", "The body must be JSON in UTF-8.") from None
    except RecursionError:
        raise api_error(400, "INVALID_JSON", "The body's JSON is nested too deeply.") from None
    except ValueError:  # JSONDecodeError (a BOM included), an integer too long to convert
        raise api_error(400, "INVALID_JSON", f"The body must be JSON: {example}.") from None


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES,
                    example: str = '{"text": "..."}'):
    """The body as strict JSON (``parse_json``), at most ``max_bytes`` (declared or actually
    sent): 413 for too large, 400 for bytes that are not JSON or a body cut short, 408 for a body
    that takes longer than BODY_TIMEOUT_S to arrive."""
    too_large = api_error(413, "PAYLOAD_TOO_LARGE", f"The body is limited to {max_bytes} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):  # a client that trickles (or never sends) it
            async for chunk in request.stream():  # count what arrives: chunked bodies have no length
                body += chunk
                if len(body) > max_bytes:
                    raise too_large
    except TimeoutError:  # the rest may still come: close, never read it as the next request
        raise api_error(408, "REQUEST_TIMEOUT", "The body did not arrive in time.",
                        headers={"Connection": "close"}) from None
    except ClientDisconnect:  # the client stopped sending before its Content-Length
        raise api_error(400, "INCOMPLETE_BODY", "The body ended before its length.") from None
    return parse_json(bytes(body), example)


async def read_message(request: Request) -> MessageIn:
    """A dependency: the body, at most MAX_BODY_BYTES (declared or actually sent), as a MessageIn.

    413 for too large, 400 for bytes that are not JSON (``parse_json``) or a body cut short, 408
    for a body that takes longer than BODY_TIMEOUT_S to arrive, 422 for JSON of the wrong shape.
    """
    data = await read_json(request)
    try:
        return MessageIn.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None
