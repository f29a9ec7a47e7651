"""The body of ``POST /api/sessions/{id}/messages``, read and validated before the first byte."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import api_error

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


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES, example: str = '{"text": "..."}'):
    """The body as JSON, at most ``max_bytes`` (declared or actually sent): 413 for too large,
    400 for bytes that are not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise api_error(413, "PAYLOAD_TOO_LARGE", f"The body is limited to {max_bytes} bytes.")
    body = bytearray()
    async for chunk in request.stream():  # count what really arrives (chunked bodies have no length)
        body += chunk
        if len(body) > max_bytes:
            raise api_error(413, "PAYLOAD_TOO_LARGE", f"The body is limited to {max_bytes} bytes.")
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise api_error(400, "INVALID_JSON", f"The body must be JSON: {example}.") from None


async def read_message(request: Request) -> MessageIn:
    """A dependency: the body, at most MAX_BODY_BYTES (declared or actually sent), as a MessageIn.

    413 for too large, 400 for bytes that are not JSON, 422 for JSON of the wrong shape.
    """
    data = await read_json(request)
    try:
        return MessageIn.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None
